/**
 * Property tests of the portable states owned here (the PF agent, one VF's agent state, the L2
 * switch, the host stub), at full size: save -> parse -> restore -> save is identical; a mutated
 * state is either refused with a `StateError` naming a field under the state's root (and nothing
 * changes), or accepted, after which the simulated drivers' mailbox traffic (or frames, for the
 * switch) never throws.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B, MBX, VR } from "../../devices/igb/regs.js";
import { ManualClock } from "../../devices/igb/testing.js";
import { HostStub } from "../../devices/net/host-stub.js";
import { L2Switch } from "../../devices/net/switch.js";
import { StateError } from "../../state/parse.js";
import { PfAgent, PfAgentError } from "./agent.js";
import { createIgbTestbed, type IgbTestbed } from "./testbed.js";

// ---- mutation of a saved state ----

type Path = (string | number)[];

function allPaths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => allPaths(x, [...prefix, i], out));
  else if (typeof v === "object" && v !== null) for (const k of Object.keys(v)) allPaths((v as Record<string, unknown>)[k], [...prefix, k], out);
  return out;
}

function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = JSON.parse(JSON.stringify(root)) as Record<string | number, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === DELETE) delete o[last];
  else if (value === TWEAK) o[last] = tweak(o[last]);
  else o[last] = value;
  return copy;
}

const DELETE = Symbol("delete");
/** A small change of the value in place: a flipped boolean, a number one up, a hex string's last digit changed. */
const TWEAK = Symbol("tweak");
function tweak(v: unknown): unknown {
  if (typeof v === "boolean") return !v;
  if (typeof v === "number") return v + 1;
  if (typeof v === "string" && v.length > 0) return v.slice(0, -1) + (v.endsWith("2") ? "4" : "2");
  if (Array.isArray(v)) return v.slice(1);
  return v;
}
const WEIRD: unknown[] = [
  TWEAK, TWEAK, TWEAK, TWEAK, TWEAK, TWEAK, DELETE, null, -1, 0, 1, 2, 3, 7, 8, 15, 16, 23, 1.5, 64, 4094, 4095, 4096, 9728, 0xffffffff, 2 ** 53, Number.NaN, "x", "",
  "020000000101", "020000000100", "525400123456", "000000000000", "ffffffffffff", "01005e0000fb", "AAAA", "02:00:00:00:00:01",
  true, false, [], [0], [1, 1], new Array(40).fill(1), {}, { version: 1 },
];

/** A mutation: which path (index modulo the path count) gets which value. */
const mutation = fc.tuple(fc.nat(), fc.nat({ max: WEIRD.length - 1 }));

function mutate(state: unknown, [p, w]: [number, number]): unknown {
  const paths = allPaths(state);
  const path = paths[p % paths.length]!;
  return setAt(state, path, path.length === 0 && WEIRD[w] === TWEAK ? DELETE : WEIRD[w]);
}

/** Parses `u`; a refusal must be a StateError naming a field under `root`. Returns the parsed state or undefined. */
function parseOrRefuse<S>(parse: () => S, root: string): S | undefined {
  try {
    return parse();
  } catch (e) {
    expect(e).toBeInstanceOf(StateError);
    expect((e as StateError).path.startsWith(root)).toBe(true);
    return undefined;
  }
}

// ---- mailbox traffic from the simulated igbvf drivers and the administrator ----

const MACS = [
  [0x02, 0, 0, 0, 0x01, 0], [0x02, 0, 0, 0, 0x01, 1], [0x02, 0, 0, 0, 0x01, 2], [0x52, 0x54, 0, 0x12, 0x34, 0x56],
  [0x52, 0x55, 0x0a, 0, 2, 2], [0x02, 0xaa, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [0x01, 0, 0x5e, 0, 0, 1],
].map((m) => Uint8Array.from(m));

const op = fc.oneof(
  fc.record({ k: fc.constant("reset" as const), vf: fc.nat(6) }),
  fc.record({ k: fc.constant("mac" as const), vf: fc.nat(6), m: fc.nat(MACS.length - 1) }),
  fc.record({ k: fc.constant("filter" as const), vf: fc.nat(6), m: fc.nat(MACS.length - 1), clr: fc.boolean() }),
  fc.record({ k: fc.constant("vlan" as const), vf: fc.nat(6), vid: fc.nat(40), add: fc.boolean() }),
  fc.record({ k: fc.constant("mc" as const), vf: fc.nat(6), n: fc.nat(35) }),
  fc.record({ k: fc.constant("lpe" as const), vf: fc.nat(6), size: fc.nat(12000) }),
  fc.record({ k: fc.constant("raw" as const), vf: fc.nat(6), words: fc.array(fc.nat(0xffffffff), { minLength: 1, maxLength: 16 }) }),
  fc.record({ k: fc.constant("flr" as const), vf: fc.nat(6) }),
  fc.record({ k: fc.constant("adminMac" as const), vf: fc.nat(6), m: fc.nat(MACS.length - 1) }),
  fc.record({ k: fc.constant("adminVlan" as const), vf: fc.nat(6), vid: fc.nat(4094), qos: fc.nat(7) }),
  fc.record({ k: fc.constant("spoof" as const), vf: fc.nat(6), on: fc.boolean() }),
  fc.record({ k: fc.constant("trust" as const), vf: fc.nat(6), on: fc.boolean() }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

const macWords = (m: Uint8Array) => [(m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0, m[4]! | (m[5]! << 8)];

/** Runs one operation; only the administrator's typed refusal may escape, and it is caught here. */
function run(tb: IgbTestbed, o: Op): void {
  const vf = o.vf % tb.vfs.length;
  const d = tb.vfs[vf]!;
  try {
    switch (o.k) {
      case "reset": d.reset(); break;
      case "mac": d.setMac(MACS[o.m]!); break;
      case "filter": d.request([MBX.VF_SET_MAC_ADDR | (o.clr ? MBX.MAC_FILTER_CLR : MBX.MAC_FILTER_ADD), ...macWords(MACS[o.m]!)]); break;
      case "vlan": d.setVlan(o.vid, o.add); break;
      case "mc": d.setMulticast(Array.from({ length: o.n }, (_, i) => Uint8Array.of(1, 0, 0x5e, 0, i, i * 7))); break;
      case "lpe": d.setLpe(o.size); break;
      case "raw": d.request(o.words); break;
      case "flr": tb.vfRegs[vf]!.write(VR.CTRL, 4, B.CTRL_RST); tb.clock.advance(10_000); break;
      case "adminMac": tb.agent.setVfMac(vf, MACS[o.m]!); break;
      case "adminVlan": tb.agent.setVfVlan(vf, o.vid, o.qos); break;
      case "spoof": tb.agent.setVfSpoofchk(vf, o.on); break;
      case "trust": tb.agent.setVfTrust(vf, o.on); break;
    }
  } catch (e) {
    if (!(e instanceof PfAgentError)) throw e;
  }
}

const ops = (max: number) => fc.array(op, { maxLength: max, size: "max" });
const bed = (numVfs: number) => createIgbTestbed({ numVfs, memSize: 1 << 20, driver: { ringSize: 8 } });

describe("PF agent state (fast-check, full size)", () => {
  it("save -> parse -> restore into a fresh agent -> save is identical; each VF's state round-trips on its own", () => {
    let ran = 0;
    let acked = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), ops(80), (numVfs, list) => {
        const tb = bed(numVfs);
        for (const o of list) run(tb, o);
        ran += list.length;
        acked += tb.agent.vfs.filter((p) => p.cts).length + tb.agent.vfs.reduce((n, p) => n + p.vlans.length + p.extraMacs.length + p.mcHashes.length, 0);
        const saved = tb.agent.save();
        const fresh = new PfAgent({ bar: { read: (a) => tb.core.mmioRead(a, 4), write: (a, _s, v) => tb.core.mmioWrite(a, 4, v) }, enableVfs: () => {} });
        fresh.restore(fresh.stateType.parse(JSON.parse(JSON.stringify(saved))));
        expect(fresh.save()).toEqual(saved);
        for (let vf = 0; vf < numVfs; vf++) {
          const one = tb.agent.saveVf(vf);
          tb.agent.restoreVf(vf, tb.agent.parseVfState(vf, JSON.parse(JSON.stringify(one))));
          expect(tb.agent.saveVf(vf)).toEqual(one);
        }
      }),
      { numRuns: 40 },
    );
    console.log(`pf-agent round trip: ${ran} operations, ${acked} granted handshakes and filters`);
    expect(ran).toBeGreaterThan(40 * 20);
    expect(acked).toBeGreaterThan(100);
  });

  it("a mutated whole-agent or one-VF state is refused naming a field (nothing changes) or accepted, and mailbox traffic never throws after", () => {
    let refused = 0;
    let accepted = 0;
    let after = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), ops(30), mutation, fc.boolean(), ops(30), (numVfs, before, mut, oneVf, later) => {
        const tb = bed(numVfs);
        for (const o of before) run(tb, o);
        const keep = JSON.stringify(tb.agent.save());
        if (oneVf) {
          const vf = mut[0] % numVfs;
          const parsed = parseOrRefuse(() => tb.agent.parseVfState(vf, mutate(tb.agent.saveVf(vf), mut)), "pf-agent-vf");
          if (parsed === undefined) {
            refused++;
            expect(JSON.stringify(tb.agent.save())).toBe(keep);
          } else {
            accepted++;
            tb.agent.restoreVf(vf, parsed);
          }
        } else {
          const parsed = parseOrRefuse(() => tb.agent.stateType.parse(mutate(tb.agent.save(), mut)), "pf-agent");
          if (parsed === undefined) {
            refused++;
            expect(JSON.stringify(tb.agent.save())).toBe(keep);
          } else {
            accepted++;
            tb.agent.restore(parsed);
          }
        }
        for (const o of later) run(tb, o);
        tb.agent.service();
        after += later.length;
      }),
      { numRuns: 150 },
    );
    console.log(`pf-agent mutations: ${refused} refused, ${accepted} accepted, ${after} operations after`);
    expect(refused).toBeGreaterThan(20);
    expect(accepted).toBeGreaterThan(10);
    expect(after).toBeGreaterThan(150 * 5);
  });
});

// ---- the L2 switch and the host stub ----

const mac = (n: number) => Uint8Array.of(0x02, 0, 0, 0, 0, n);
function eth(dst: Uint8Array, src: Uint8Array, len: number, vlan?: number): Uint8Array {
  const f = new Uint8Array(Math.max(len, 18));
  f.set(dst, 0);
  f.set(src, 6);
  if (vlan !== undefined) f.set([0x81, 0, vlan >> 8, vlan & 0xff, 0x08, 0], 12);
  else f.set([0x08, 0], 12);
  return f;
}

const swOp = fc.record({
  port: fc.nat({ max: 3 }),
  op: fc.constantFrom("tx", "tx", "tx", "txOffload", "block", "unblock", "ready", "detach", "tick"),
  dst: fc.nat({ max: 6 }),
  src: fc.nat({ max: 6 }),
  len: fc.nat({ max: 100 }),
  tag: fc.option(fc.nat({ max: 4095 }), { nil: undefined }),
});
type SwOp = typeof swOp extends fc.Arbitrary<infer T> ? T : never;

function switchRig(vlanAware: boolean) {
  const clock = new ManualClock();
  const sw = new L2Switch({ clock, vlanAware, maxMacEntries: 6, rxBacklog: 4, agingNs: 100 });
  const ports = [0, 1, 2, 3].map((i) => sw.port(i === 3 ? { pvid: 0, taggedVlans: [1, 5], acceptOffloads: true } : { pvid: i === 2 ? 5 : 1 }));
  const accept = [true, true, true, true];
  ports.forEach((p, i) => p.setReceiver(() => accept[i]!));
  const exec = (o: SwOp) => {
    const p = ports[o.port]!;
    if (o.op === "tx" || o.op === "txOffload") {
      const f = eth(o.dst === 6 ? Uint8Array.of(255, 255, 255, 255, 255, 255) : mac(o.dst), mac(o.src), o.len, o.tag);
      p.transmit(f, o.op === "txOffload" ? { csumValid: true } : undefined);
    } else if (o.op === "block") accept[o.port] = false;
    else if (o.op === "unblock") accept[o.port] = true;
    else if (o.op === "ready") p.rxReady();
    else if (o.op === "detach") p.detach();
    else clock.advance(30);
  };
  return { clock, sw, ports, exec };
}

describe("L2 switch and host stub state (fast-check, full size)", () => {
  it("switch: save -> parse -> restore into a fresh switch with the same ports -> save is identical", () => {
    let ran = 0;
    fc.assert(
      fc.property(fc.array(swOp, { maxLength: 200, size: "max" }), fc.boolean(), (list, vlanAware) => {
        const a = switchRig(vlanAware);
        for (const o of list) a.exec(o);
        ran += list.length;
        const saved = a.sw.save();
        const b = switchRig(vlanAware);
        b.clock.advance(a.clock.now());
        for (const p of a.ports) if (!p.attached) b.ports[p.id]!.detach();
        b.sw.restore(b.sw.stateType.parse(JSON.parse(JSON.stringify(saved))));
        expect(b.sw.save()).toEqual(saved);
      }),
      { numRuns: 200 },
    );
    console.log(`switch round trip: ${ran} operations`);
    expect(ran).toBeGreaterThan(200 * 50);
  });

  it("switch: a mutated state is refused naming a field (nothing changes) or accepted, and frames never throw after", () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(swOp, { maxLength: 60, size: "max" }), mutation, fc.array(swOp, { maxLength: 60, size: "max" }), (before, mut, later) => {
        const r = switchRig(mut[1] % 2 === 0);
        for (const o of before) r.exec(o);
        const keep = JSON.stringify(r.sw.save());
        const parsed = parseOrRefuse(() => r.sw.stateType.parse(mutate(r.sw.save(), mut)), "l2-switch");
        if (parsed === undefined) {
          refused++;
          expect(JSON.stringify(r.sw.save())).toBe(keep);
        } else {
          accepted++;
          r.sw.restore(parsed);
        }
        for (const o of later) r.exec(o);
        for (const p of r.ports) p.rxReady();
        expect(r.sw.macTable().length).toBeLessThanOrEqual(6);
        for (const p of r.ports) expect(p.backlog).toBeLessThanOrEqual(4);
      }),
      { numRuns: 400 },
    );
    console.log(`switch mutations: ${refused} refused, ${accepted} accepted`);
    expect(refused).toBeGreaterThan(50);
    expect(accepted).toBeGreaterThan(20);
  });

  it("host stub: counters round-trip; a mutated state is refused naming a field or accepted", () => {
    const counters = fc.array(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { minLength: 13, maxLength: 13 });
    let refused = 0;
    fc.assert(
      fc.property(counters, mutation, (vals, mut) => {
        const stub = new HostStub({ backend: { transmit: () => {}, setReceiver: () => {} } });
        const keys = Object.keys(stub.save().counters);
        const saved = { version: 2 as const, counters: Object.fromEntries(keys.map((k, i) => [k, vals[i]!])) };
        stub.restore(stub.stateType.parse(saved));
        expect(stub.save()).toEqual(saved);
        const parsed = parseOrRefuse(() => stub.stateType.parse(mutate(saved, mut)), "host-stub");
        if (parsed === undefined) {
          refused++;
          expect(stub.save()).toEqual(saved);
        } else stub.restore(parsed);
      }),
      { numRuns: 300 },
    );
    expect(refused).toBeGreaterThan(50);
  });
});
