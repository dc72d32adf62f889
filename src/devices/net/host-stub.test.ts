import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { HostStub } from "./host-stub.js";
import { createLink } from "./link.js";
import { L2Switch } from "./switch.js";
import { FrameRecorder, ManualClock, guestFrames } from "./testing.js";
import { formatIpv4, formatMac, parseIpv4, parseIpv6, parseMac } from "./frames.js";
import { EtherType, IpProto, parseFrame } from "./parse.js";
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from "./checksum.js";

const GUEST_MAC = parseMac("52:54:00:12:34:56");
const GUEST_IP = parseIpv4("10.0.2.15");
const GUEST_IP6 = parseIpv6("fe80::5054:ff:fe12:3456");
const HOST_IP = parseIpv4("10.0.2.2");
const HOST_IP6 = parseIpv6("fe80::2");

function rig() {
  const [guest, host] = createLink();
  const stub = new HostStub({ backend: host });
  const rec = new FrameRecorder().attach(guest);
  return { guest, stub, rec };
}

describe("HostStub", () => {
  it("answers ARP for its address and ICMP echo, with valid checksums", () => {
    const { guest, stub, rec } = rig();
    guest.transmit(guestFrames.arpRequest(GUEST_MAC, GUEST_IP, HOST_IP));
    expect(rec.frames.length).toBe(1);
    const arp = rec.frames[0]!.frame;
    const a = parseFrame(arp);
    expect(a.etherType).toBe(EtherType.ARP);
    expect(arp[a.l3Offset + 7]).toBe(2);
    expect(formatMac(arp, 0)).toBe("52:54:00:12:34:56");
    expect(formatIpv4(arp, a.l3Offset + 14)).toBe("10.0.2.2");
    const hostMac = arp.slice(a.l3Offset + 8, a.l3Offset + 14);
    expect(formatMac(hostMac)).toBe("52:55:0a:00:02:02");

    for (let seq = 1; seq <= 3; seq++) guest.transmit(guestFrames.echoRequest(GUEST_MAC, hostMac, GUEST_IP, HOST_IP, 0x77, seq));
    expect(rec.frames.length).toBe(4);
    rec.frames.slice(1).forEach(({ frame }, i) => {
      const p = parseFrame(frame);
      expect(p.l4Proto).toBe(IpProto.ICMP);
      expect(frame[p.l4Offset]).toBe(0);
      expect((frame[p.l4Offset + 6]! << 8) | frame[p.l4Offset + 7]!).toBe(i + 1);
      expect(formatIpv4(frame, p.l3Offset + 16)).toBe("10.0.2.15");
      expect(p.ipEnd - p.l4Offset).toBe(64);
      expect(verifyIpv4HeaderChecksum(frame, p.l3Offset)).toBe(true);
      expect(verifyL4Checksum(frame, p)).toBe(true);
    });
    expect(stub.counters).toMatchObject({ arpRequests: 1, arpReplies: 1, echoRequests: 3, echoReplies: 3, malformed: 0 });
  });

  it("answers neighbour solicitation to the solicited-node group and ICMPv6 echo", () => {
    const { guest, stub, rec } = rig();
    guest.transmit(guestFrames.neighborSolicitation(GUEST_MAC, GUEST_IP6, HOST_IP6));
    expect(rec.frames.length).toBe(1);
    const na = rec.frames[0]!.frame;
    const p = parseFrame(na);
    expect(p.l4Proto).toBe(IpProto.ICMPv6);
    expect(na[p.l4Offset]).toBe(136);
    expect(na[p.l4Offset + 4]! & 0x60).toBe(0x60); // solicited + override
    expect(na[p.l3Offset + 7]).toBe(255);
    expect(verifyL4Checksum(na, p)).toBe(true);
    expect(formatMac(na, p.l4Offset + 26)).toBe("52:55:0a:00:02:02");
    guest.transmit(guestFrames.echo6Request(GUEST_MAC, stub.mac, GUEST_IP6, HOST_IP6, 9, 1));
    const r = rec.frames[1]!.frame;
    const q = parseFrame(r);
    expect(r[q.l4Offset]).toBe(129);
    expect(verifyL4Checksum(r, q)).toBe(true);
    expect(stub.counters).toMatchObject({ neighborSolicitations: 1, neighborAdvertisements: 1, echo6Requests: 1, echo6Replies: 1 });
  });

  it("ignores what is not for it and counts corrupted requests as malformed", () => {
    const { guest, stub, rec } = rig();
    guest.transmit(guestFrames.arpRequest(GUEST_MAC, GUEST_IP, parseIpv4("10.0.2.3")));
    const bad = guestFrames.echoRequest(GUEST_MAC, stub.mac, GUEST_IP, HOST_IP, 1, 1);
    bad[bad.length - 1]! ^= 1;
    guest.transmit(bad);
    guest.transmit(guestFrames.echoRequest(GUEST_MAC, stub.mac, GUEST_IP, parseIpv4("10.0.2.9"), 1, 1));
    expect(rec.frames.length).toBe(0);
    expect(stub.counters).toMatchObject({ ignored: 2, malformed: 1, echoReplies: 0 });
  });

  it("works through a switch, answering tagged requests with the same tag", () => {
    const clock = new ManualClock();
    const sw = new L2Switch({ clock });
    const stub = new HostStub({ backend: sw.port({ name: "host" }) });
    const vm = sw.port({ name: "vm" });
    const rec = new FrameRecorder().attach(vm);
    const arp = guestFrames.arpRequest(GUEST_MAC, GUEST_IP, HOST_IP);
    const tagged = new Uint8Array(arp.length + 4);
    tagged.set(arp.subarray(0, 12));
    tagged.set([0x81, 0, 0, 7], 12);
    tagged.set(arp.subarray(12), 16);
    vm.transmit(tagged);
    expect(rec.frames.length).toBe(1);
    expect(parseFrame(rec.frames[0]!.frame).vlanTci).toBe(7);
    expect(stub.counters.arpReplies).toBe(1);
  });

  it("never throws on arbitrary frames", () => {
    const { guest, stub } = rig();
    const seeds = [
      guestFrames.arpRequest(GUEST_MAC, GUEST_IP, HOST_IP),
      guestFrames.echoRequest(GUEST_MAC, stub.mac, GUEST_IP, HOST_IP, 1, 1),
      guestFrames.neighborSolicitation(GUEST_MAC, GUEST_IP6, HOST_IP6),
      guestFrames.echo6Request(GUEST_MAC, stub.mac, GUEST_IP6, HOST_IP6, 1, 1),
    ];
    fc.assert(
      fc.property(fc.nat({ max: 3 }), fc.nat({ max: 120 }), fc.array(fc.tuple(fc.nat({ max: 119 }), fc.nat({ max: 255 })), { maxLength: 6 }), (i, cut, flips) => {
        const f = seeds[i]!.slice(0, cut);
        for (const [o, v] of flips) if (o < f.length) f[o] = v;
        guest.transmit(f);
      }),
      { numRuns: 2000 },
    );
    const c = stub.counters;
    expect(c.arpReplies + c.echoReplies + c.neighborAdvertisements + c.echo6Replies + c.ignored + c.malformed).toBeGreaterThan(0);
  });

  it("saves and restores counters and rejects bad state", () => {
    const { guest, stub } = rig();
    guest.transmit(guestFrames.arpRequest(GUEST_MAC, GUEST_IP, HOST_IP));
    const other = rig().stub;
    other.restore(other.stateType.parse(JSON.parse(JSON.stringify(stub.save()))));
    expect(other.counters).toEqual(stub.counters);
    const rejects = (u: unknown, path: string) => expect(() => other.stateType.parse(u)).toThrowError(expect.objectContaining({ name: "StateError", path }));
    rejects({ version: 1, counters: { ...stub.save().counters, ignored: -1 } }, "host-stub.counters.ignored");
    rejects({ version: 2, counters: { ...stub.save().counters, dhcpAcks: undefined } }, "host-stub.counters.dhcpAcks");
    rejects({ version: 2, counters: { ...stub.save().counters, extra: 1 } }, "host-stub.counters.extra");
    rejects({ version: 3 }, "host-stub.version");
    expect(other.counters).toEqual(stub.counters);
  });
});
