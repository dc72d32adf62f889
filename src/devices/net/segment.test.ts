import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { segmentTso } from "./segment.js";
import { verifyIpv4HeaderChecksum, verifyL4Checksum, csumFold, pseudoHeaderSum } from "./checksum.js";
import { buildTcp, buildUdp, ipFrame, parseIpv4, parseIpv6, parseMac } from "./frames.js";
import { IpProto, parseFrame } from "./parse.js";

const A = parseMac("52:54:00:12:34:56");
const B = parseMac("52:54:00:65:43:21");
const V4 = { src: parseIpv4("10.1.0.1"), dst: parseIpv4("10.1.0.2") };
const V6 = { src: parseIpv6("2001:db8::10"), dst: parseIpv6("2001:db8::20") };

const be16 = (f: Uint8Array, o: number) => (f[o]! << 8) | f[o + 1]!;
const be32 = (f: Uint8Array, o: number) => ((f[o]! << 24) | (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!) >>> 0;

/** A large TCP frame as a guest hands it over with GSO: checksum field holds the pseudo-header seed. */
function gsoTcpFrame(six: boolean, payload: Uint8Array, seq: number, flags: number, id: number, vlan?: number): Uint8Array {
  const f = ipFrame({
    srcMac: A, dstMac: B, ...(six ? V6 : V4), proto: IpProto.TCP, id,
    l4: buildTcp({ srcPort: 40000, dstPort: 5201, seq, ack: 99, flags, payload, options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2) }),
    ...(vlan === undefined ? {} : { vlanTci: vlan }),
  });
  const p = parseFrame(f);
  const seed = csumFold(pseudoHeaderSum(f, p, 0)); // Linux seeds with length 0 for GSO
  f[p.l4Offset + 16] = seed >> 8;
  f[p.l4Offset + 17] = seed & 0xff;
  return f;
}

describe("segmentTso (TCP)", () => {
  it("splits into MSS-sized segments with fixed ids, lengths, seqs, flags and checksums", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.uint8Array({ minLength: 0, maxLength: 9000 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xff }),
        fc.nat({ max: 0xffff }),
        fc.option(fc.nat({ max: 0xfff }), { nil: undefined }),
        (six, payload, mss, seq, flags, id, vlan) => {
          const f = gsoTcpFrame(six, payload, seq, flags, id, vlan);
          const orig = f.slice();
          const r = segmentTso(f, { gso: { type: six ? "tcpv6" : "tcpv4", size: mss, hdrLen: 0 } });
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(f).toEqual(orig); // input untouched
          const n = Math.max(1, Math.ceil(payload.length / mss));
          expect(r.frames.length).toBe(n);
          const joined: number[] = [];
          r.frames.forEach((s, i) => {
            const p = parseFrame(s);
            expect(p.ipVersion).toBe(six ? 6 : 4);
            expect(p.ipEnd).toBe(s.length);
            expect(p.ipLengthTruncated).toBe(false);
            const data = s.subarray(p.payloadOffset);
            expect(data.length).toBeLessThanOrEqual(mss);
            joined.push(...data);
            if (!six) {
              expect(verifyIpv4HeaderChecksum(s, p.l3Offset)).toBe(true);
              expect(be16(s, p.l3Offset + 4)).toBe((id + i) & 0xffff);
            }
            expect(verifyL4Checksum(s, p)).toBe(true);
            expect(be32(s, p.l4Offset + 4)).toBe((seq + i * mss) >>> 0);
            const fl = s[p.l4Offset + 13]!;
            const last = i === n - 1;
            expect(fl & 0x01).toBe(last ? flags & 0x01 : 0);
            expect(fl & 0x08).toBe(last ? flags & 0x08 : 0);
            expect(fl & 0x80).toBe(i === 0 ? flags & 0x80 : 0);
            expect(fl & 0x76).toBe(flags & 0x76);
          });
          expect(joined).toEqual(Array.from(payload));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("rejects hostile metadata with a reason instead of throwing", () => {
    const f = gsoTcpFrame(false, new Uint8Array(3000), 1, 0x18, 1);
    expect(segmentTso(f, { gso: { type: "tcpv4", size: 0, hdrLen: 0 } })).toEqual({ ok: false, error: "bad-gso-size" });
    expect(segmentTso(f, { gso: { type: "tcpv4", size: 1.5, hdrLen: 0 } })).toEqual({ ok: false, error: "bad-gso-size" });
    expect(segmentTso(f, { gso: { type: "tcpv6", size: 1000, hdrLen: 0 } })).toEqual({ ok: false, error: "wrong-ip-version" });
    expect(segmentTso(f, { gso: { type: "tcpv4", size: 1, hdrLen: 0 } })).toEqual({ ok: false, error: "too-many-segments" });
    expect(segmentTso(f.subarray(0, 40), { gso: { type: "tcpv4", size: 100, hdrLen: 0 } })).toEqual({ ok: false, error: "truncated" });
    expect(segmentTso(new Uint8Array(5), { gso: { type: "tcpv4", size: 100, hdrLen: 0 } }).ok).toBe(false);
    expect(segmentTso(f, { needsCsum: { start: 10, offset: 5000 } })).toEqual({ ok: false, error: "bad-csum-offsets" });
  });

  it("without gso completes a NEEDS_CSUM checksum in place", () => {
    const f = gsoTcpFrame(false, new Uint8Array(100).fill(3), 5, 0x18, 1);
    const p = parseFrame(f);
    const seed = csumFold(pseudoHeaderSum(f, p, f.length - p.l4Offset));
    f[p.l4Offset + 16] = seed >> 8;
    f[p.l4Offset + 17] = seed & 0xff;
    const r = segmentTso(f, { needsCsum: { start: p.l4Offset, offset: 16 } });
    expect(r.ok && r.frames[0] === f).toBe(true);
    expect(verifyL4Checksum(f, p)).toBe(true);
  });
});

describe("segmentTso (UDP fragmentation)", () => {
  it("fragments IPv4 and IPv6 datagrams that reassemble to a valid datagram", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 6000 }), fc.integer({ min: 8, max: 1480 }), (six, payload, size) => {
        const f = ipFrame({ srcMac: A, dstMac: B, ...(six ? V6 : V4), proto: IpProto.UDP, id: 0x1234, l4: buildUdp(7, 9, payload) });
        const r = segmentTso(f, { gso: { type: "udp", size, hdrLen: 0 } }, { ipv6FragmentId: 0xabcdef });
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const chunk = Math.floor(size / 8) * 8;
        const datagram: number[] = [];
        r.frames.forEach((s, i) => {
          const last = i === r.frames.length - 1;
          const p = parseFrame(s);
          expect(p.ipEnd).toBe(s.length);
          if (r.frames.length === 1) {
            expect(verifyL4Checksum(s, p)).toBe(true);
            datagram.push(...s.subarray(p.l4Offset));
            return;
          }
          expect(p.fragment).toBe(true);
          if (six) {
            const fh = p.l3Offset + 40;
            expect(s[fh]).toBe(IpProto.UDP);
            expect(be16(s, fh + 2) & 0xfff8).toBe(i * chunk);
            expect(be16(s, fh + 2) & 1).toBe(last ? 0 : 1);
            expect(be32(s, fh + 4)).toBe(0xabcdef);
            datagram.push(...s.subarray(fh + 8));
          } else {
            expect(verifyIpv4HeaderChecksum(s, p.l3Offset)).toBe(true);
            expect(be16(s, p.l3Offset + 4)).toBe(0x1234);
            const ff = be16(s, p.l3Offset + 6);
            expect((ff & 0x1fff) * 8).toBe(i * chunk);
            expect(ff & 0x2000).toBe(last ? 0 : 0x2000);
            datagram.push(...s.subarray(p.l3Offset + 20));
          }
        });
        // Rebuild one unfragmented frame from the pieces and check the UDP checksum over it.
        const whole = ipFrame({ srcMac: A, dstMac: B, ...(six ? V6 : V4), proto: IpProto.UDP, l4: buildUdp(7, 9, payload) });
        const wp = parseFrame(whole);
        const re = whole.slice();
        re.set(datagram, wp.l4Offset);
        expect(datagram.length).toBe(whole.length - wp.l4Offset);
        expect(verifyL4Checksum(re, wp)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});

describe("segmentTso on hostile input", () => {
  it("never throws on mutated frames and arbitrary metadata, and output stays bounded", () => {
    const seeds = [
      gsoTcpFrame(false, new Uint8Array(3000), 1, 0x19, 5),
      gsoTcpFrame(true, new Uint8Array(3000), 1, 0x19, 5, 3),
      ipFrame({ srcMac: A, dstMac: B, ...V4, proto: IpProto.UDP, l4: buildUdp(1, 2, new Uint8Array(2000)) }),
    ];
    fc.assert(
      fc.property(
        fc.nat({ max: 2 }),
        fc.nat({ max: 3100 }),
        fc.array(fc.tuple(fc.nat({ max: 120 }), fc.nat({ max: 255 })), { maxLength: 8 }),
        fc.constantFrom("tcpv4", "tcpv6", "udp"),
        fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.double()),
        fc.option(fc.tuple(fc.integer({ min: -10, max: 4000 }), fc.integer({ min: -10, max: 4000 })), { nil: undefined }),
        (i, cut, flips, type, size, csum) => {
          const f = seeds[i]!.slice(0, cut);
          for (const [o, v] of flips) if (o < f.length) f[o] = v;
          const meta = csum === undefined
            ? { gso: { type, size, hdrLen: 0 } }
            : { gso: { type, size, hdrLen: 0 }, needsCsum: { start: csum[0], offset: csum[1] } };
          const r = segmentTso(f, meta, { maxSegments: 64 });
          if (r.ok) {
            expect(r.frames.length).toBeLessThanOrEqual(64);
            for (const s of r.frames) expect(s.length).toBeLessThanOrEqual(f.length + 8 * 64 + 8);
          }
          const c = segmentTso(f, csum === undefined ? undefined : { needsCsum: { start: csum[0], offset: csum[1] } });
          expect(c.ok || c.error === "bad-csum-offsets").toBe(true);
        },
      ),
      { numRuns: 1500 },
    );
  });
});
