import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { buildDhcpClientMessage } from "./dhcp.js";
import { HostStub } from "./host-stub.js";
import { createLink } from "./link.js";
import { FrameRecorder } from "./testing.js";
import { formatIpv4, parseIpv4, parseMac } from "./frames.js";
import { parseFrame } from "./parse.js";
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from "./checksum.js";

const MAC = parseMac("52:54:00:12:34:56");
const SERVER = parseIpv4("10.0.2.2");

function rig(dhcp: ConstructorParameters<typeof HostStub>[0]["dhcp"] = true) {
  const [guest, host] = createLink();
  const stub = new HostStub({ backend: host, dhcp });
  const rec = new FrameRecorder().attach(guest);
  return { guest, stub, rec };
}

/** Decodes a DHCP reply: yiaddr, xid and options by code. */
function decode(f: Uint8Array) {
  const p = parseFrame(f);
  expect(verifyIpv4HeaderChecksum(f, p.l3Offset)).toBe(true);
  expect(verifyL4Checksum(f, p)).toBe(true);
  expect([p.srcPort, p.dstPort]).toEqual([67, 68]);
  const o = p.payloadOffset;
  const opts = new Map<number, number[]>();
  for (let i = o + 240; i < p.ipEnd && f[i] !== 255; ) {
    opts.set(f[i]!, Array.from(f.subarray(i + 2, i + 2 + f[i + 1]!)));
    i += 2 + f[i + 1]!;
  }
  return { op: f[o], xid: (f[o + 4]! << 24 | f[o + 5]! << 16 | f[o + 6]! << 8 | f[o + 7]!) >>> 0, yiaddr: formatIpv4(f, o + 16), opts };
}

describe("HostStub DHCP", () => {
  it("offers, then acknowledges, the configured address with mask, router, DNS and lease", () => {
    const { guest, stub, rec } = rig({ clientIp: "10.0.2.15", dns: "10.0.2.3", leaseSeconds: 3600 });
    guest.transmit(buildDhcpClientMessage(1, MAC, 0xdeadbeef));
    const offer = decode(rec.frames[0]!.frame);
    expect(offer).toMatchObject({ op: 2, xid: 0xdeadbeef, yiaddr: "10.0.2.15" });
    expect(offer.opts.get(53)).toEqual([2]);
    expect(offer.opts.get(54)).toEqual([10, 0, 2, 2]);
    expect(offer.opts.get(1)).toEqual([255, 255, 255, 0]);
    expect(offer.opts.get(3)).toEqual([10, 0, 2, 2]);
    expect(offer.opts.get(6)).toEqual([10, 0, 2, 3]);
    expect(offer.opts.get(51)).toEqual([0, 0, 0x0e, 0x10]);
    guest.transmit(buildDhcpClientMessage(3, MAC, 0xdeadbeef, parseIpv4("10.0.2.15"), SERVER));
    const ack = decode(rec.frames[1]!.frame);
    expect(ack.opts.get(53)).toEqual([5]);
    expect(ack.yiaddr).toBe("10.0.2.15");
    expect(stub.counters).toMatchObject({ dhcpOffers: 1, dhcpAcks: 1, dhcpNaks: 0 });
  });

  it("NAKs a request for another address and ignores requests to another server", () => {
    const { guest, stub, rec } = rig();
    guest.transmit(buildDhcpClientMessage(3, MAC, 1, parseIpv4("10.0.2.99")));
    expect(decode(rec.frames[0]!.frame).opts.get(53)).toEqual([6]);
    guest.transmit(buildDhcpClientMessage(3, MAC, 2, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.77")));
    expect(rec.frames.length).toBe(1);
    expect(stub.counters).toMatchObject({ dhcpNaks: 1, ignored: 1 });
  });

  it("is off unless asked for, and counts malformed messages without throwing", () => {
    const off = rig(false);
    off.guest.transmit(buildDhcpClientMessage(1, MAC, 1));
    expect(off.rec.frames.length).toBe(0);
    const { guest, stub } = rig();
    const seed = buildDhcpClientMessage(1, MAC, 1);
    fc.assert(
      fc.property(fc.nat({ max: seed.length }), fc.array(fc.tuple(fc.nat({ max: seed.length - 1 }), fc.nat({ max: 255 })), { maxLength: 6 }), (cut, flips) => {
        const f = seed.slice(0, cut);
        for (const [o, v] of flips) if (o < f.length) f[o] = v;
        guest.transmit(f);
      }),
      { numRuns: 1500 },
    );
    expect(stub.counters.malformed + stub.counters.ignored + stub.counters.dhcpOffers).toBeGreaterThan(0);
  });

  it("restores a state saved before the DHCP counters existed", () => {
    const { stub } = rig();
    const old = { version: 1, counters: { ...stub.save().counters } as Record<string, number> };
    delete old.counters["dhcpOffers"];
    delete old.counters["dhcpAcks"];
    delete old.counters["dhcpNaks"];
    stub.restore(stub.stateType.parse(old));
    expect(stub.counters.dhcpOffers).toBe(0);
  });
});
