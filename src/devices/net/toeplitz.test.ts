import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { ALL_RSS_TYPES, MICROSOFT_RSS_KEY, ToeplitzHasher, rssHash, rssTuple, toeplitzHash } from "./toeplitz.js";
import { buildTcp, buildUdp, ipFrame, parseIpv4, parseIpv6, parseMac } from "./frames.js";
import { IpProto, parseFrame } from "./parse.js";
import { toeplitzTs } from "./kernels.js";

// "Verifying the RSS Hash Calculation" (Microsoft RSS specification): destination, source,
// hash over (src, dst) and over (src, dst, src port, dst port).
const V4_SUITE: [string, number, string, number, number, number][] = [
  ["161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178],
  ["65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea],
  ["12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a],
  ["209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f],
  ["202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2],
];
const V6_SUITE: [string, number, string, number, number, number][] = [
  ["3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d],
  ["ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf],
  ["fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61e985, 0x02d1feef],
];
const MAC = parseMac("02:00:00:00:00:01");

describe("Toeplitz hash: Microsoft verification suite", () => {
  const hasher = new ToeplitzHasher(MICROSOFT_RSS_KEY);
  for (const [six, suite] of [[false, V4_SUITE], [true, V6_SUITE]] as const) {
    for (const [dst, dport, src, sport, h2, h4] of suite) {
      it(`${src}:${sport} -> ${dst}:${dport}`, () => {
        const s = six ? parseIpv6(src) : parseIpv4(src);
        const d = six ? parseIpv6(dst) : parseIpv4(dst);
        const two = new Uint8Array([...s, ...d]);
        const four = new Uint8Array([...two, sport >> 8, sport & 0xff, dport >> 8, dport & 0xff]);
        expect(toeplitzHash(MICROSOFT_RSS_KEY, two)).toBe(h2);
        expect(toeplitzHash(MICROSOFT_RSS_KEY, four)).toBe(h4);
        expect(toeplitzTs(MICROSOFT_RSS_KEY, four)).toBe(h4);
        expect(hasher.hash(two)).toBe(h2);
        expect(hasher.hash(four)).toBe(h4);
        // Through frame parsing and tuple extraction.
        const tcp = ipFrame({ srcMac: MAC, dstMac: MAC, src: s, dst: d, proto: IpProto.TCP, l4: buildTcp({ srcPort: sport, dstPort: dport }) });
        expect(rssHash(hasher, tcp, ALL_RSS_TYPES)).toEqual({ type: six ? "tcp-ipv6" : "tcp-ipv4", hash: h4 });
        expect(rssHash(hasher, tcp, { ipv4: true, ipv6: true })).toEqual({ type: six ? "ipv6" : "ipv4", hash: h2 });
        const udp = ipFrame({ srcMac: MAC, dstMac: MAC, src: s, dst: d, proto: IpProto.UDP, l4: buildUdp(sport, dport, new Uint8Array(4)) });
        expect(rssHash(hasher, udp, ALL_RSS_TYPES)?.hash).toBe(h4);
        expect(rssHash(hasher, udp, { "tcp-ipv4": true, "tcp-ipv6": true })).toBeUndefined();
      });
    }
  }
});

describe("Toeplitz hash: implementations agree", () => {
  it("table hasher equals the bit-serial hash for random keys and inputs", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 52 }), fc.uint8Array({ maxLength: 40 }), (key, input) => {
        expect(new ToeplitzHasher(key, 40).hash(input)).toBe(toeplitzTs(key, input));
        expect(toeplitzHash(key, input)).toBe(toeplitzTs(key, input));
      }),
      { numRuns: 300 },
    );
  });

  it("uses only the 2-tuple for IPv4 fragments and gives nothing for non-IP", () => {
    const f = ipFrame({ srcMac: MAC, dstMac: MAC, src: parseIpv4("1.2.3.4"), dst: parseIpv4("5.6.7.8"), proto: IpProto.TCP, l4: buildTcp({ srcPort: 1, dstPort: 2 }) });
    f[14 + 6] = 0x20; // MF: first fragment
    expect(rssTuple(f, parseFrame(f), ALL_RSS_TYPES)?.type).toBe("ipv4");
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(rssTuple(arp, parseFrame(arp), ALL_RSS_TYPES)).toBeUndefined();
  });
});
