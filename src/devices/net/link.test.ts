import { describe, it, expect } from "vitest";
import { createLink } from "./link.js";
import { FrameRecorder } from "./testing.js";
import { buildTcp, ipFrame, parseIpv4, parseMac } from "./frames.js";
import { IpProto, parseFrame } from "./parse.js";
import { csumFold, pseudoHeaderSum, verifyL4Checksum } from "./checksum.js";

describe("createLink", () => {
  it("delivers both ways and counts drops when nobody listens or the receiver refuses", () => {
    const [a, b] = createLink();
    const ra = new FrameRecorder().attach(a);
    a.transmit(new Uint8Array(60));
    expect(a.counters).toEqual({ txFrames: 0, txDropped: 1 });
    const rb = new FrameRecorder().attach(b);
    a.transmit(new Uint8Array(61));
    b.transmit(new Uint8Array(62));
    expect(rb.frames[0]!.frame.length).toBe(61);
    expect(ra.frames[0]!.frame.length).toBe(62);
    rb.accept = false;
    a.transmit(new Uint8Array(60));
    expect(a.counters).toEqual({ txFrames: 1, txDropped: 2 });
  });

  it("segments GSO frames unless told to pass offloads through", () => {
    const f = ipFrame({ srcMac: parseMac("02:00:00:00:00:01"), dstMac: parseMac("02:00:00:00:00:02"), src: parseIpv4("1.1.1.1"), dst: parseIpv4("2.2.2.2"), proto: IpProto.TCP, l4: buildTcp({ srcPort: 5, dstPort: 6, payload: new Uint8Array(3000) }) });
    const p = parseFrame(f);
    const seed = csumFold(pseudoHeaderSum(f, p, 0));
    f[p.l4Offset + 16] = seed >> 8;
    f[p.l4Offset + 17] = seed & 0xff;
    const meta = { gso: { type: "tcpv4" as const, size: 1000, hdrLen: 54 } };
    const [a, b] = createLink();
    const rb = new FrameRecorder().attach(b);
    a.transmit(f, meta);
    expect(rb.frames.length).toBe(3);
    expect(rb.frames.every(({ frame }) => verifyL4Checksum(frame, parseFrame(frame)) === true)).toBe(true);
    const [c, d] = createLink({ passOffloads: true });
    const rd = new FrameRecorder().attach(d);
    c.transmit(f, meta);
    expect(rd.frames.length).toBe(1);
    expect(rd.frames[0]!.meta).toBe(meta);
  });
});
