import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  completeChecksum, csumFold, csumPartial, fillL4Checksum, internetChecksum, pseudoHeaderSum,
  verifyIpv4HeaderChecksum, verifyL4Checksum,
} from "./checksum.js";
import { buildEcho, buildTcp, buildUdp, ipFrame, parseIpv4, parseIpv6, parseMac } from "./frames.js";
import { IpProto, parseFrame } from "./parse.js";

/** Straightforward reference: 16-bit words, folded at every step. */
function refSum(d: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < d.length; i += 2) {
    s += (d[i]! << 8) | (d[i + 1] ?? 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return s;
}

const A = parseMac("02:00:00:00:00:01");
const B = parseMac("02:00:00:00:00:02");

describe("Internet checksum", () => {
  it("matches the worked example of RFC 1071 section 3", () => {
    const d = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(csumPartial(d)).toBe(0xddf2);
    expect(internetChecksum(d)).toBe(0x220d);
  });

  it("equals a word-by-word reference on random data and ranges", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (d, a, b) => {
        const s = d.length === 0 ? 0 : a % d.length;
        const e = s + (d.length === 0 ? 0 : b % (d.length - s + 1));
        expect(csumPartial(d, s, e)).toBe(refSum(d.subarray(s, e)));
      }),
      { numRuns: 500 },
    );
  });

  it("clamps hostile bounds instead of throwing", () => {
    const d = Uint8Array.of(1, 2, 3);
    expect(csumPartial(d, -5, 1e9)).toBe(refSum(d));
    expect(csumPartial(d, 10, 2)).toBe(0);
    expect(csumPartial(d, NaN, NaN)).toBe(0);
  });

  it("fills checksums that verify, for TCP/UDP over IPv4 and IPv6 and for ICMP", () => {
    const v4 = { src: parseIpv4("10.0.0.1"), dst: parseIpv4("10.0.0.2") };
    const v6 = { src: parseIpv6("2001:db8::1"), dst: parseIpv6("2001:db8::2") };
    const frames = [
      ipFrame({ srcMac: A, dstMac: B, ...v4, proto: IpProto.TCP, l4: buildTcp({ srcPort: 1, dstPort: 2, payload: Uint8Array.of(1, 2, 3) }) }),
      ipFrame({ srcMac: A, dstMac: B, ...v4, proto: IpProto.UDP, l4: buildUdp(1, 2, Uint8Array.of(9)) }),
      ipFrame({ srcMac: A, dstMac: B, ...v4, proto: IpProto.ICMP, l4: buildEcho(8, 7, 1, new Uint8Array(56)) }),
      ipFrame({ srcMac: A, dstMac: B, ...v6, proto: IpProto.TCP, l4: buildTcp({ srcPort: 1, dstPort: 2 }) }),
      ipFrame({ srcMac: A, dstMac: B, ...v6, proto: IpProto.UDP, l4: buildUdp(1, 2, new Uint8Array(11)) }),
      ipFrame({ srcMac: A, dstMac: B, ...v6, proto: IpProto.ICMPv6, l4: buildEcho(128, 7, 1, new Uint8Array(8)) }),
    ];
    for (const f of frames) {
      const p = parseFrame(f);
      if (p.ipVersion === 4) expect(verifyIpv4HeaderChecksum(f, p.l3Offset)).toBe(true);
      expect(verifyL4Checksum(f, p)).toBe(true);
      f[f.length - 1]! ^= 0x40;
      expect(verifyL4Checksum(f, p)).toBe(false);
    }
  });

  it("completeChecksum from a pseudo-header seed gives the full checksum (NEEDS_CSUM)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.boolean(), fc.boolean(), (payload, tcp, six) => {
        const addrs = six
          ? { src: parseIpv6("fe80::1"), dst: parseIpv6("fe80::abcd") }
          : { src: parseIpv4("192.168.1.1"), dst: parseIpv4("192.168.1.77") };
        const l4 = tcp ? buildTcp({ srcPort: 4000, dstPort: 443, seq: 77, payload }) : buildUdp(4000, 443, payload);
        const full = ipFrame({ srcMac: A, dstMac: B, ...addrs, proto: tcp ? IpProto.TCP : IpProto.UDP, l4 });
        const p = parseFrame(full);
        const field = p.l4Offset + (tcp ? 16 : 6);
        const partial = full.slice();
        const seed = csumFold(pseudoHeaderSum(partial, p, p.ipEnd - p.l4Offset));
        partial[field] = seed >> 8;
        partial[field + 1] = seed & 0xff;
        expect(completeChecksum(partial, p.l4Offset, tcp ? 16 : 6)).toBe(true);
        expect(verifyL4Checksum(partial, p)).toBe(true);
        expect(Array.from(partial)).toEqual(Array.from(full));
      }),
      { numRuns: 200 },
    );
  });

  it("completeChecksum refuses offsets outside the frame and writes nothing", () => {
    const f = new Uint8Array(20).fill(7);
    const copy = f.slice();
    expect(completeChecksum(f, 19, 0)).toBe(false);
    expect(completeChecksum(f, 4, 15)).toBe(false);
    expect(completeChecksum(f, -1, 0)).toBe(false);
    expect(completeChecksum(f, 1.5, 0)).toBe(false);
    expect(f).toEqual(copy);
  });

  it("fillL4Checksum refuses fragments", () => {
    const f = ipFrame({ srcMac: A, dstMac: B, src: parseIpv4("1.1.1.1"), dst: parseIpv4("2.2.2.2"), proto: IpProto.UDP, l4: buildUdp(1, 2, new Uint8Array(4)) });
    f[14 + 6] = 0x20; // MF
    expect(fillL4Checksum(f, parseFrame(f))).toBe(false);
  });
});
