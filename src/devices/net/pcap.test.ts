import { describe, it, expect } from "vitest";
import { PcapBuffer, PcapEncoder, PcapTap } from "./pcap.js";
import { L2Switch } from "./switch.js";
import { HostStub } from "./host-stub.js";
import { createLink } from "./link.js";
import { FrameRecorder, ManualClock, guestFrames } from "./testing.js";
import { parseIpv4, parseMac } from "./frames.js";

/** Minimal reader for the test: returns the header fields and records. */
function readPcap(b: Uint8Array) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const head = { magic: v.getUint32(0, true), major: v.getUint16(4, true), minor: v.getUint16(6, true), snaplen: v.getUint32(16, true), linktype: v.getUint32(20, true) };
  const recs: { sec: number; frac: number; caplen: number; len: number; data: Uint8Array }[] = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const caplen = v.getUint32(o + 8, true);
    recs.push({ sec: v.getUint32(o, true), frac: v.getUint32(o + 4, true), caplen, len: v.getUint32(o + 12, true), data: b.subarray(o + 16, o + 16 + caplen) });
    o += 16 + caplen;
  }
  return { head, recs };
}

describe("pcap", () => {
  it("encodes the libpcap global header and records with timestamps and snaplen", () => {
    const e = new PcapEncoder({ snaplen: 100 });
    const frame = Uint8Array.from({ length: 150 }, (_, i) => i);
    const file = new Uint8Array([...e.header(), ...e.record(frame, 3_000_250_999), ...e.record(frame.subarray(0, 60), 4e9)]);
    const { head, recs } = readPcap(file);
    expect(head).toEqual({ magic: 0xa1b2c3d4, major: 2, minor: 4, snaplen: 100, linktype: 1 });
    expect(recs.map((r) => [r.sec, r.frac, r.caplen, r.len])).toEqual([[3, 250, 100, 150], [4, 0, 60, 60]]);
    expect(Array.from(recs[0]!.data)).toEqual(Array.from(frame.subarray(0, 100)));
    const ns = new PcapEncoder({ nanosecond: true });
    expect(readPcap(new Uint8Array([...ns.header(), ...ns.record(frame, 1_000_000_007)])).recs[0]!.frac).toBe(7);
  });

  it("captures a ping through a switch, with the clock's time, and respects maxBytes", () => {
    const clock = new ManualClock();
    const sw = new L2Switch({ clock });
    const stub = new HostStub({ backend: sw.port() });
    const vm = sw.port();
    new FrameRecorder().attach(vm);
    const buf = new PcapBuffer();
    const tap = new PcapTap({ clock, write: buf.write, maxBytes: 24 + 3 * (16 + 98) });
    const stop = tap.attachTo(sw);
    const g = parseMac("52:54:00:00:00:01");
    clock.advance(1_500_000_000);
    vm.transmit(guestFrames.arpRequest(g, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2")));
    clock.advance(1_000_000);
    vm.transmit(guestFrames.echoRequest(g, stub.mac, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2"), 1, 1));
    const { recs } = readPcap(buf.bytes());
    expect(recs.length).toBe(3); // ARP request + reply, echo request; the echo reply exceeds maxBytes
    expect(tap.counters.dropped).toBe(1);
    expect(recs.map((r) => [r.sec, r.frac])).toEqual([[1, 500000], [1, 500000], [1, 501000]]);
    stop();
    vm.transmit(guestFrames.echoRequest(g, stub.mac, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2"), 1, 2));
    expect(tap.counters.packets + tap.counters.dropped).toBe(4);
  });

  it("wraps a backend and captures both directions", () => {
    const clock = new ManualClock();
    const [dev, host] = createLink();
    new HostStub({ backend: host });
    const buf = new PcapBuffer();
    const tap = new PcapTap({ clock, write: buf.write });
    const wrapped = tap.wrap(dev);
    const rec = new FrameRecorder().attach(wrapped);
    wrapped.transmit(guestFrames.arpRequest(parseMac("52:54:00:00:00:01"), parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2")));
    expect(rec.frames.length).toBe(1);
    expect(readPcap(buf.bytes()).recs.length).toBe(2);
  });
});
