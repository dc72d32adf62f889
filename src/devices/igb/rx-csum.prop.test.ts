import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { parseFrame, rxChecksumBits, validCsum, verifyCsum, RXC_IP_CHECKED, RXC_IP_OK, RXC_L4_CHECKED, RXC_L4_OK, RXC_UDP, type RxCsum } from "./offload.js";
import { buildTcp, buildUdp, ipFrame } from "../net/frames.js";
import { fillIpv4HeaderChecksum } from "../net/checksum.js";

/** verifyCsum's answer in rxChecksumBits' encoding. */
function bitsOf(r: RxCsum): number {
  let b = r.udp ? RXC_UDP : 0;
  if (r.ipOk !== undefined) b |= RXC_IP_CHECKED | (r.ipOk ? RXC_IP_OK : 0);
  if (r.l4Ok !== undefined) b |= RXC_L4_CHECKED | (r.l4Ok ? RXC_L4_OK : 0);
  return b;
}

const MAC_A = Uint8Array.of(2, 0, 0, 0, 0, 1);
const MAC_B = Uint8Array.of(2, 0, 0, 0, 0, 2);

/** A valid IPv4 TCP or UDP frame, then up to six bytes anywhere overwritten and maybe a cut end. */
const frames = fc
  .record({
    tcp: fc.boolean(),
    v6: fc.integer({ min: 0, max: 7 }),
    payload: fc.integer({ min: 0, max: 1600 }),
    edits: fc.array(fc.record({ at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
    short: fc.integer({ min: 0, max: 3 }),
    udpZero: fc.boolean(),
    // header fields set outright (then the IPv4 header checksum is fixed or not): fragment
    // flags and offset, total length, IHL, TCP data offset
    frag: fc.constantFrom(undefined, 0x4000, 0x2000, 0x2001, 0x0001, 0x8000),
    tot: fc.option(fc.integer({ min: 0, max: 1700 }), { nil: undefined }),
    ihl: fc.option(fc.integer({ min: 0, max: 15 }), { nil: undefined }),
    doff: fc.option(fc.integer({ min: 0, max: 15 }), { nil: undefined }),
    fixIp: fc.boolean(),
  })
  .map(({ tcp, v6: v6Pick, payload, edits, cut, udpZero, frag, tot, ihl, doff, fixIp, short }) => {
    const v6 = v6Pick === 0; // one frame in eight is IPv6, which takes the general path
    const data = new Uint8Array(payload).map((_, i) => (i * 7 + payload) & 0xff);
    const l4 = tcp ? buildTcp({ srcPort: 1000, dstPort: 2000, payload: data }) : buildUdp(1000, 2000, data);
    const src = v6 ? new Uint8Array(16).fill(0xfe, 0, 1) : Uint8Array.of(10, 0, 0, 1);
    const dst = v6 ? new Uint8Array(16).fill(0xfe, 0, 1).fill(2, 15) : Uint8Array.of(10, 0, 0, 2);
    let f = ipFrame({ srcMac: MAC_B, dstMac: MAC_A, src, dst, proto: tcp ? 6 : 17, l4 });
    if (!tcp && !v6 && udpZero) f[14 + 20 + 6] = f[14 + 20 + 7] = 0;
    if (!v6) {
      if (frag !== undefined) f.set([frag >> 8, frag & 0xff], 14 + 6);
      if (tot !== undefined) f.set([tot >> 8, tot & 0xff], 14 + 2);
      if (ihl !== undefined) f[14] = 0x40 | ihl;
      if (fixIp) fillIpv4HeaderChecksum(f, 14);
    }
    if (tcp && doff !== undefined) f[14 + (v6 ? 40 : 20) + 12] = doff << 4;
    // edits aimed at the headers most of the time, so IHL, lengths, flags and offsets all move
    for (const e of edits) f[e.at % Math.min(f.length, e.at % 3 === 0 ? f.length : 64)] = e.v;
    if (cut !== undefined) f = f.subarray(0, cut % (f.length + 1));
    else if (short === 1) f = f.subarray(0, f.length - 1); // a frame one byte shorter than its IP length
    return f;
  });

describe("rxChecksumBits", () => {
  it("gives verifyCsum's verdicts for valid, damaged and cut IPv4 frames", () => {
    fc.assert(
      fc.property(frames, (f) => {
        const info = parseFrame(f);
        if (info.ip === 0) return;
        expect(rxChecksumBits(f, info)).toBe(bitsOf(verifyCsum(f, info)));
        // known good L4: the same checks, only the payload is not summed
        const v = bitsOf(verifyCsum(f, info));
        const known = info.ip === 4 ? (v & RXC_L4_CHECKED ? v | RXC_L4_OK : v) : bitsOf(validCsum(info));
        expect(rxChecksumBits(f, info, true)).toBe(known);
        // RXCSUM.TUOFL clear: the same without any TCP/UDP verdict
        expect(rxChecksumBits(f, info, false, false)).toBe(v & ~(RXC_L4_CHECKED | RXC_L4_OK));
      }),
      { numRuns: 3000 },
    );
  });

  it("reports a good frame good and a flipped payload bit bad", () => {
    const l4 = buildUdp(1000, 2000, new Uint8Array(1000).fill(0x5a));
    const f = ipFrame({ srcMac: MAC_B, dstMac: MAC_A, src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2), proto: 17, l4 });
    const info = parseFrame(f);
    expect(rxChecksumBits(f, info)).toBe(RXC_UDP | RXC_IP_CHECKED | RXC_IP_OK | RXC_L4_CHECKED | RXC_L4_OK);
    f[f.length - 1] = f[f.length - 1]! ^ 1;
    expect(rxChecksumBits(f, info)).toBe(RXC_UDP | RXC_IP_CHECKED | RXC_IP_OK | RXC_L4_CHECKED);
    f[14 + 8] = f[14 + 8]! ^ 1; // TTL: the IPv4 header checksum no longer holds
    expect(rxChecksumBits(f, info)).toBe(RXC_UDP | RXC_IP_CHECKED | RXC_L4_CHECKED);
  });
});
