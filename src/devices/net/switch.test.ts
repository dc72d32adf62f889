import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { L2Switch } from "./switch.js";
import { StateError } from "../../state/parse.js";
import { ManualClock, FrameRecorder } from "./testing.js";
import { buildEthernet, buildTcp, ipFrame, parseIpv4, parseMac, BROADCAST_MAC } from "./frames.js";
import { IpProto, parseFrame } from "./parse.js";
import { verifyL4Checksum, csumFold, pseudoHeaderSum } from "./checksum.js";
import { createLink } from "./link.js";
import { HostStub } from "./host-stub.js";
import { guestFrames } from "./testing.js";

const mac = (n: number) => parseMac(`02:00:00:00:00:${n.toString(16).padStart(2, "0")}`);
const eth = (dst: Uint8Array, src: Uint8Array, len = 60, vlanTci?: number) =>
  buildEthernet({ dst, src, etherType: 0x88b5, payload: new Uint8Array(len - 14), ...(vlanTci === undefined ? {} : { vlanTci }) });

function setup(n: number, opts: Partial<ConstructorParameters<typeof L2Switch>[0]> = {}) {
  const clock = new ManualClock();
  const sw = new L2Switch({ clock, ...opts });
  const ports = Array.from({ length: n }, (_, i) => sw.port({ name: `p${i}` }));
  const recs = ports.map((p) => new FrameRecorder().attach(p));
  return { clock, sw, ports, recs };
}

describe("L2Switch", () => {
  it("floods unknown unicast and broadcast, then forwards learned unicast to one port", () => {
    const { sw, ports, recs } = setup(3);
    ports[0]!.transmit(eth(mac(2), mac(1)));
    expect(recs.map((r) => r.frames.length)).toEqual([0, 1, 1]);
    ports[1]!.transmit(eth(mac(1), mac(2))); // mac1 known on port 0
    expect(recs.map((r) => r.frames.length)).toEqual([1, 1, 1]);
    ports[0]!.transmit(eth(mac(2), mac(1))); // mac2 now known on port 1
    expect(recs.map((r) => r.frames.length)).toEqual([1, 2, 1]);
    ports[2]!.transmit(eth(BROADCAST_MAC, mac(3)));
    expect(recs.map((r) => r.frames.length)).toEqual([2, 3, 1]);
    expect(sw.counters).toMatchObject({ unicast: 2, flooded: 2 });
    expect(ports[0]!.counters).toMatchObject({ rxFrames: 2, txFrames: 2, rxBytes: 120 });
    expect(sw.macTable().map((e) => e.mac).sort()).toEqual(["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"]);
  });

  it("follows a MAC that moves to another port (e.g. a failover to another function) on its first frame", () => {
    const { sw, ports, recs } = setup(3);
    ports[1]!.transmit(eth(BROADCAST_MAC, mac(7)));
    ports[0]!.transmit(eth(mac(7), mac(1)));
    expect(recs[1]!.frames.length).toBe(1);
    ports[2]!.transmit(eth(BROADCAST_MAC, mac(7))); // e.g. a gratuitous ARP from the new port
    ports[0]!.transmit(eth(mac(7), mac(1)));
    expect(recs[2]!.frames.length).toBe(2); // the first broadcast, then the unicast
    expect(recs[1]!.frames.length).toBe(2); // the unicast before the move, the broadcast; not the unicast after
    expect(sw.macTable().find((e) => e.mac === "02:00:00:00:00:07")?.port).toBe(ports[2]!.id);
  });

  it("ages out learned addresses and floods again", () => {
    const { clock, sw, ports, recs } = setup(3, { agingNs: 1000 });
    ports[1]!.transmit(eth(BROADCAST_MAC, mac(2)));
    ports[0]!.transmit(eth(mac(2), mac(1)));
    expect(recs[2]!.frames.length).toBe(1); // only the broadcast
    clock.advance(1001);
    ports[0]!.transmit(eth(mac(2), mac(1)));
    expect(recs[2]!.frames.length).toBe(2); // flooded after aging
    expect(sw.macTable().find((e) => e.mac === "02:00:00:00:00:02")).toBeUndefined();
  });

  it("bounds the MAC table and counts what it could not learn", () => {
    const { sw, ports } = setup(2, { maxMacEntries: 8 });
    for (let i = 0; i < 20; i++) ports[0]!.transmit(eth(BROADCAST_MAC, mac(i + 1)));
    expect(sw.macTable().length).toBe(8);
    expect(sw.counters.learnFull).toBe(12);
  });

  it("drops runts and frames to the port they came from", () => {
    const { sw, ports, recs } = setup(2);
    ports[0]!.transmit(new Uint8Array(10));
    expect(ports[0]!.counters.rxDropped).toBe(1);
    ports[0]!.transmit(eth(BROADCAST_MAC, mac(1)));
    ports[0]!.transmit(eth(mac(1), mac(5)));
    expect(sw.counters.filtered).toBe(1);
    expect(recs[1]!.frames.length).toBe(1);
  });

  it("keeps a bounded backlog while a receiver has no buffers and delivers it on rxReady", () => {
    const { sw, ports, recs } = setup(2, { rxBacklog: 4 });
    recs[1]!.accept = false;
    for (let i = 0; i < 6; i++) ports[0]!.transmit(eth(BROADCAST_MAC, mac(1), 60 + i));
    expect(ports[1]!.backlog).toBe(4);
    expect(ports[1]!.counters.txDropped).toBe(2);
    recs[1]!.accept = true;
    ports[1]!.rxReady();
    expect(recs[1]!.frames.map((f) => f.frame.length)).toEqual([60, 61, 62, 63]);
    expect(ports[1]!.counters.txFrames).toBe(4);
    expect(sw.counters.flooded).toBe(6);
  });

  it("detaches a port: forgets its addresses, stops delivering, counts its transmits as dropped", () => {
    const { sw, ports, recs } = setup(3);
    ports[1]!.transmit(eth(BROADCAST_MAC, mac(2)));
    ports[1]!.detach();
    ports[1]!.detach();
    expect(ports[1]!.attached).toBe(false);
    expect(sw.macTable().length).toBe(0);
    ports[0]!.transmit(eth(mac(2), mac(1)));
    expect(recs[1]!.frames.length).toBe(0);
    expect(recs[2]!.frames.length).toBe(2);
    ports[1]!.transmit(eth(mac(1), mac(2)));
    expect(ports[1]!.counters.rxDropped).toBe(1);
  });

  it("does not re-enter a receiver: replies sent from inside a receiver are delivered afterwards", () => {
    const { ports } = setup(2);
    const order: string[] = [];
    let depth = 0;
    ports[1]!.setReceiver((f) => {
      depth++;
      expect(depth).toBe(1);
      order.push(`p1 got ${f.length}`);
      if (f.length === 60) ports[1]!.transmit(eth(mac(1), mac(2), 61));
      depth--;
      return true;
    });
    ports[0]!.setReceiver((f) => {
      order.push(`p0 got ${f.length}`);
      return true;
    });
    ports[0]!.transmit(eth(BROADCAST_MAC, mac(1)));
    expect(order).toEqual(["p1 got 60", "p0 got 61"]);
  });

  it("completes offloads for receivers that do not accept them, and passes them to those that do", () => {
    const clock = new ManualClock();
    const sw = new L2Switch({ clock });
    const tx = sw.port();
    const plain = new FrameRecorder().attach(sw.port());
    const gsoCapable = new FrameRecorder().attach(sw.port({ acceptOffloads: true }));
    const f = ipFrame({ srcMac: mac(1), dstMac: BROADCAST_MAC, src: parseIpv4("10.0.0.1"), dst: parseIpv4("10.0.0.2"), proto: IpProto.TCP, l4: buildTcp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(4000).fill(9) }) });
    const p = parseFrame(f);
    const seed = csumFold(pseudoHeaderSum(f, p, 0));
    f[p.l4Offset + 16] = seed >> 8;
    f[p.l4Offset + 17] = seed & 0xff;
    tx.transmit(f, { gso: { type: "tcpv4", size: 1448, hdrLen: 54 }, needsCsum: { start: 34, offset: 16 } });
    expect(plain.frames.length).toBe(3);
    for (const { frame } of plain.frames) expect(verifyL4Checksum(frame, parseFrame(frame))).toBe(true);
    expect(gsoCapable.frames.length).toBe(1);
    expect(gsoCapable.frames[0]!.meta?.gso?.size).toBe(1448);
  });

  it("VLAN-aware: isolates VLANs, strips and inserts tags, shifts offload offsets", () => {
    const clock = new ManualClock();
    const sw = new L2Switch({ clock, vlanAware: true });
    const a10 = sw.port({ pvid: 10 });
    const b10 = sw.port({ pvid: 10 });
    const c20 = sw.port({ pvid: 20 });
    const trunk = sw.port({ pvid: 0, taggedVlans: [10, 20] });
    const [ra, rb, rc, rt] = [a10, b10, c20, trunk].map((p) => new FrameRecorder().attach(p));
    a10.transmit(eth(BROADCAST_MAC, mac(1)), { needsCsum: { start: 34, offset: 16 } });
    expect(rb!.frames.length).toBe(1);
    expect(rc!.frames.length).toBe(0);
    expect(rt!.frames.length).toBe(1);
    const tagged = rt!.frames[0]!.frame;
    expect(parseFrame(tagged).vlanTci & 0xfff).toBe(10);
    // The trunk receiver does not accept offloads, so the csum was completed (on a copy) and meta is plain.
    trunk.transmit(eth(BROADCAST_MAC, mac(9), 64, 20));
    expect(rc!.frames.length).toBe(1);
    expect(rc!.frames[0]!.frame.length).toBe(64);
    expect(parseFrame(rc!.frames[0]!.frame).vlanCount).toBe(0);
    expect(ra!.frames.length).toBe(0);
    trunk.transmit(eth(BROADCAST_MAC, mac(9), 64, 30)); // VLAN not carried
    expect(trunk.counters.rxDropped).toBe(1);
  });

  it("connect() joins an external backend: frames flow both ways and detaching unhooks it", () => {
    const clock = new ManualClock();
    const sw = new L2Switch({ clock });
    const [outside, far] = createLink({ passOffloads: true });
    const uplink = sw.connect(outside, { name: "uplink" });
    const stub = new HostStub({ backend: far });
    const vm = sw.port({ name: "vm" });
    const rec = new FrameRecorder().attach(vm);
    const g = parseMac("52:54:00:00:00:09");
    vm.transmit(guestFrames.arpRequest(g, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2")));
    expect(rec.frames.length).toBe(1);
    expect(stub.counters.arpReplies).toBe(1);
    expect(uplink.counters).toMatchObject({ rxFrames: 1, txFrames: 1 });
    uplink.detach();
    vm.transmit(guestFrames.arpRequest(g, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2")));
    expect(stub.counters.arpRequests).toBe(1);
    expect(rec.frames.length).toBe(1);
  });

  it("saves and restores the MAC table and counters, rejecting bad states", () => {
    const { sw, ports } = setup(2);
    ports[0]!.transmit(eth(BROADCAST_MAC, mac(1)));
    const saved = JSON.parse(JSON.stringify(sw.save()));
    const other = setup(2);
    other.sw.restore(other.sw.stateType.parse(saved));
    expect(other.sw.macTable()).toEqual(sw.macTable());
    expect(other.ports[0]!.counters).toEqual(ports[0]!.counters);
    const rejects = (u: unknown, path: string) => expect(() => other.sw.stateType.parse(u)).toThrowError(expect.objectContaining({ name: "StateError", path }));
    rejects({ ...saved, version: 3 }, "l2-switch.version");
    rejects({ ...saved, entries: [{ vlan: 0, mac: "zz", port: 0, ageNs: 0 }] }, "l2-switch.entries[0].mac");
    rejects({ ...saved, entries: [{ vlan: 0, mac: "02:00:00:00:00:01", port: 99, ageNs: 0 }] }, "l2-switch.entries[0].port");
    rejects({ ...saved, entries: [{ vlan: 0, mac: "01:00:00:00:00:01", port: 0, ageNs: 0 }] }, "l2-switch.entries[0].mac");
    rejects({ ...saved, entries: [{ vlan: 0, mac: "02:00:00:00:00:01", port: 0, ageNs: 1e15 }] }, "l2-switch.entries[0].ageNs");
    rejects({ ...saved, entries: [{ vlan: 3, mac: "02:00:00:00:00:01", port: 0, ageNs: 0 }] }, "l2-switch.entries[0].vlan");
    const e = { vlan: 0, mac: "02:00:00:00:00:01", port: 0, ageNs: 0 };
    rejects({ ...saved, entries: [e, { ...e, port: 1 }] }, "l2-switch.entries[1].mac");
    rejects({ ...saved, counters: { ...saved.counters, unicast: -1 } }, "l2-switch.counters.unicast");
    rejects({ ...saved, ports: [saved.ports[0], saved.ports[0]] }, "l2-switch.ports[1].id");
    rejects(null, "l2-switch");
    // version 1 (backlog could be absent) still loads
    const v1 = { ...saved, version: 1, ports: saved.ports.map((p: { backlog?: unknown }) => ({ ...p, backlog: undefined })) };
    expect(other.sw.stateType.parse(JSON.parse(JSON.stringify(v1))).ports.every((p) => p.backlog.length === 0)).toBe(true);
    expect(() => other.sw.stateType.parse(saved)).not.toThrow(StateError);
  });

  it("saves frames waiting in a backlog and delivers them after restore", () => {
    const build = (rxBacklog: number) => {
      const sw = new L2Switch({ clock: new ManualClock(), rxBacklog });
      const ports = [sw.port(), sw.port({ acceptOffloads: true })];
      return { sw, ports, recs: ports.map((p) => new FrameRecorder().attach(p)) };
    };
    const { sw, ports, recs } = build(4);
    recs[1]!.accept = false;
    const meta = { needsCsum: { start: 20, offset: 6 } };
    ports[0]!.transmit(eth(BROADCAST_MAC, mac(1), 61));
    ports[0]!.transmit(eth(BROADCAST_MAC, mac(1), 62), meta);
    const saved = JSON.parse(JSON.stringify(sw.save()));
    const other = build(8);
    other.sw.restore(other.sw.stateType.parse(saved));
    expect(other.ports[1]!.backlog).toBe(2);
    other.ports[1]!.rxReady();
    expect(other.recs[1]!.frames).toEqual([
      { frame: eth(BROADCAST_MAC, mac(1), 61), meta: undefined },
      { frame: eth(BROADCAST_MAC, mac(1), 62), meta },
    ]);
    const bad = (backlog: unknown) => ({ ...saved, ports: saved.ports.map((p: { id: number }) => (p.id === 1 ? { ...p, backlog } : p)) });
    const rejects = (u: unknown, path: string) => expect(() => other.sw.stateType.parse(u)).toThrowError(expect.objectContaining({ name: "StateError", path }));
    rejects(bad([{ frame: "***" }]), "l2-switch.ports[1].backlog[0].frame");
    rejects(bad([{ frame: "AAAA" }]), "l2-switch.ports[1].backlog[0].frame"); // 3 bytes: a runt
    rejects(bad([{ frame: saved.ports[1].backlog[0].frame, meta: { gso: { type: "sctp", size: 1, hdrLen: 1 } } }]), "l2-switch.ports[1].backlog[0].meta.gso.type");
    rejects(bad(new Array(9).fill(saved.ports[1].backlog[0])), "l2-switch.ports[1].backlog");
    rejects(bad("x"), "l2-switch.ports[1].backlog");
    // offloads pending for a receiver that completes them in software cannot be
    const p0 = (backlog: unknown) => ({ ...saved, ports: saved.ports.map((p: { id: number }) => (p.id === 0 ? { ...p, backlog } : p)) });
    rejects(p0([saved.ports[1].backlog[1]]), "l2-switch.ports[0].backlog[0].meta");
  });

  it("survives arbitrary frames and port operations (only bounded state, counters consistent)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            port: fc.nat({ max: 3 }),
            op: fc.constantFrom("tx", "tx", "tx", "block", "unblock", "ready", "detach", "tick"),
            dst: fc.nat({ max: 6 }),
            src: fc.nat({ max: 6 }),
            len: fc.nat({ max: 100 }),
            tag: fc.option(fc.nat({ max: 4095 }), { nil: undefined }),
          }),
          { maxLength: 80 },
        ),
        fc.boolean(),
        (ops, vlanAware) => {
          const clock = new ManualClock();
          const sw = new L2Switch({ clock, vlanAware, maxMacEntries: 4, rxBacklog: 3, agingNs: 50 });
          const ports = [0, 1, 2, 3].map((i) => sw.port(i === 3 ? { pvid: 0, taggedVlans: [1, 5] } : { pvid: i === 2 ? 5 : 1 }));
          const recs = ports.map((p) => new FrameRecorder().attach(p));
          for (const o of ops) {
            const p = ports[o.port]!;
            if (o.op === "tx") {
              const f = new Uint8Array(o.len);
              if (o.len >= 14) f.set(eth(o.dst === 6 ? BROADCAST_MAC : mac(o.dst), mac(o.src), Math.max(o.len, 14), o.tag).subarray(0, o.len));
              p.transmit(f);
            } else if (o.op === "block") recs[o.port]!.accept = false;
            else if (o.op === "unblock") recs[o.port]!.accept = true;
            else if (o.op === "ready") p.rxReady();
            else if (o.op === "detach") p.detach();
            else clock.advance(20);
            expect(sw.macTable().length).toBeLessThanOrEqual(4);
            for (const q of ports) expect(q.backlog).toBeLessThanOrEqual(3);
          }
          for (let i = 0; i < 4; i++) expect(recs[i]!.frames.length).toBe(ports[i]!.counters.txFrames);
        },
      ),
      { numRuns: 300 },
    );
  });
});
