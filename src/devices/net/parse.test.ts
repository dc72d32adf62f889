import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { parseFrame, EtherType, IpProto } from "./parse.js";
import { buildEcho, buildEthernet, buildIpv6, buildTcp, buildUdp, ipFrame, parseIpv4, parseIpv6, parseMac } from "./frames.js";

const A = parseMac("02:00:00:00:00:01");
const B = parseMac("02:00:00:00:00:02");
const IP_A = parseIpv4("10.0.2.15");
const IP_B = parseIpv4("10.0.2.2");

describe("parseFrame", () => {
  it("finds the offsets of a TCPv4 frame", () => {
    const f = ipFrame({
      srcMac: A, dstMac: B, src: IP_A, dst: IP_B, proto: IpProto.TCP,
      l4: buildTcp({ srcPort: 1234, dstPort: 80, payload: new Uint8Array(10) }),
    });
    const p = parseFrame(f);
    expect(p).toMatchObject({
      etherType: EtherType.IPv4, vlanCount: 0, l3Offset: 14, ipVersion: 4, l3HeaderLen: 20,
      l4Proto: IpProto.TCP, l4Offset: 34, l4HeaderLen: 20, srcPort: 1234, dstPort: 80,
      payloadOffset: 54, ipEnd: f.length, fragment: false, truncated: false,
    });
  });

  it("skips an 802.1Q tag and reports its TCI", () => {
    const f = ipFrame({
      srcMac: A, dstMac: B, src: IP_A, dst: IP_B, proto: IpProto.UDP, vlanTci: 0x2005,
      l4: buildUdp(53, 5353, new Uint8Array(3)),
    });
    const p = parseFrame(f);
    expect(p.vlanCount).toBe(1);
    expect(p.vlanTci).toBe(0x2005);
    expect(p.l3Offset).toBe(18);
    expect(p.l4Offset).toBe(38);
    expect(p.dstPort).toBe(5353);
  });

  it("walks IPv6 extension headers to the L4 header", () => {
    const hbh = new Uint8Array(8);
    hbh[0] = IpProto.UDP; // next header
    hbh[1] = 0; // 8 bytes
    const udp = buildUdp(1, 2, new Uint8Array(4));
    const payload = new Uint8Array(hbh.length + udp.length);
    payload.set(hbh);
    payload.set(udp, 8);
    const ip = buildIpv6({ src: parseIpv6("fe80::1"), dst: parseIpv6("fe80::2"), next: IpProto.HopByHop, payload });
    const f = buildEthernet({ dst: B, src: A, etherType: EtherType.IPv6, payload: ip });
    const p = parseFrame(f);
    expect(p.ipVersion).toBe(6);
    expect(p.l3HeaderLen).toBe(48);
    expect(p.l4Proto).toBe(IpProto.UDP);
    expect(p.l4Offset).toBe(14 + 48);
    expect(p.srcPort).toBe(1);
  });

  it("does not look for L4 in a later IPv4 fragment", () => {
    const f = ipFrame({
      srcMac: A, dstMac: B, src: IP_A, dst: IP_B, proto: IpProto.ICMP, l4: buildEcho(8, 1, 1, new Uint8Array(8)),
    });
    f[14 + 6] = 0x00;
    f[14 + 7] = 0x10; // offset 128 bytes
    const p = parseFrame(f);
    expect(p.fragment).toBe(true);
    expect(p.laterFragment).toBe(true);
    expect(p.l4Offset).toBe(-1);
  });

  it("reports truncation of every prefix of a valid frame without throwing", () => {
    const f = ipFrame({
      srcMac: A, dstMac: B, src: IP_A, dst: IP_B, proto: IpProto.TCP,
      l4: buildTcp({ srcPort: 1, dstPort: 2, options: new Uint8Array(12) }),
    });
    for (let n = 0; n < f.length; n++) {
      const p = parseFrame(f.subarray(0, n));
      if (n < 14 + 20 + 32) expect(p.truncated || p.l4Offset < 0).toBe(true);
      expect(p.ipEnd).toBeLessThanOrEqual(n);
    }
  });

  it("never throws and keeps offsets inside the frame on arbitrary bytes", () => {
    const header = fc.constantFrom(
      [0x08, 0x00, 0x45], [0x86, 0xdd, 0x60], [0x81, 0x00, 0x00], [0x88, 0xa8, 0x00], [0x08, 0x06, 0x00],
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), header, fc.uint8Array({ maxLength: 120 }), (mac, et, rest) => {
        const f = new Uint8Array([...mac.subarray(0, 12), ...new Uint8Array(Math.max(0, 12 - mac.length)), ...et, ...rest]);
        const p = parseFrame(f);
        expect(p.ipEnd).toBeLessThanOrEqual(f.length);
        if (p.l4Offset >= 0) {
          expect(p.l4Offset + p.l4HeaderLen).toBeLessThanOrEqual(f.length);
          if (p.payloadOffset >= 0) expect(p.payloadOffset).toBeLessThanOrEqual(f.length);
        }
        if (p.srcPort >= 0) expect(p.l4Offset).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 3000 },
    );
  });
});
