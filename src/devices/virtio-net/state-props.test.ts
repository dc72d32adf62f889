/**
 * Properties of the composed virtio-net state (`VirtioNetPci`), on both rings, at full size:
 * - after random legal traffic with the simulated driver (sends, queued-but-unnotified frames,
 *   receives, control commands, link changes, announce, quiesce/resume with FIFO and latched
 *   work), save -> parse -> restore into a fresh instance -> save is identical;
 * - a saved state with random mutations is either rejected with a StateError naming a field (and
 *   the target does not change) or accepted; an accepted one, restored, then takes hostile
 *   register accesses, notifications, ring scribbles and frames without throwing, keeps every
 *   bound (its own save parses again), and does bounded work per run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildEcho, buildEthernet, buildIpv4, finishFrame, parseIpv4 } from "../net/frames.js";
import { ManualClock } from "../net/testing.js";
import type { Activity } from "../../state/migration.js";
import { createVirtioNetTestbed, FlatRam } from "../../guest/virtio-net/testbed.js";
import type { VirtioNetPciState } from "./pci.js";

const QS = 16;
const MEM = 4 << 20;
const ACCEPT = [0, 1, 2, 18, 19, 20, 21, 23]; // CSUM, GUEST_CSUM, CTRL_GUEST_OFFLOADS, CTRL_RX(_EXTRA), CTRL_VLAN, GUEST_ANNOUNCE, CTRL_MAC_ADDR
const ACTIVITIES: Activity[] = ["running", "quiesced", "stopped"];

const make = (packed: boolean, o: { ram?: FlatRam; clock?: ManualClock } = {}) =>
  createVirtioNetTestbed({
    device: { packed, queueSize: QS, maxPairs: 2, ...(o.clock === undefined ? {} : { clock: o.clock }) },
    driver: { packed, ringSize: QS, pairs: 2, accept: ACCEPT },
    memSize: MEM,
    ...(o.ram === undefined ? {} : { ram: o.ram }),
  });

const IP = parseIpv4("10.0.2.15");
const STUB_IP = parseIpv4("10.0.2.2");
const ping = (src: Uint8Array, dst: Uint8Array, seq: number, pad: number): Uint8Array =>
  finishFrame(buildEthernet({ dst, src, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 1, seq, new Uint8Array(pad)) }) }));

type TrafficOp =
  | { k: "send" | "queue" | "flush" | "recv"; pair: number; pad: number }
  | { k: "rxmode"; cmd: number; on: boolean }
  | { k: "vlan"; add: boolean; vid: number }
  | { k: "macs"; uni: number; multi: number; seed: number }
  | { k: "addr"; last: number }
  | { k: "announce" }
  | { k: "offloads"; csum: boolean }
  | { k: "inbound"; n: number; len: number }
  | { k: "link"; up: boolean }
  | { k: "activity"; a: Activity };

const trafficOp: fc.Arbitrary<TrafficOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constantFrom("send" as const, "queue" as const, "flush" as const, "recv" as const), pair: fc.integer({ min: 0, max: 1 }), pad: fc.integer({ min: 0, max: 1400 }) }) },
  fc.record({ k: fc.constant("rxmode" as const), cmd: fc.integer({ min: 0, max: 5 }), on: fc.boolean() }),
  fc.record({ k: fc.constant("vlan" as const), add: fc.boolean(), vid: fc.integer({ min: 0, max: 4095 }) }),
  fc.record({ k: fc.constant("macs" as const), uni: fc.integer({ min: 0, max: 70 }), multi: fc.integer({ min: 0, max: 70 }), seed: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant("addr" as const), last: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant("announce" as const) }),
  fc.record({ k: fc.constant("offloads" as const), csum: fc.boolean() }),
  fc.record({ k: fc.constant("inbound" as const), n: fc.integer({ min: 1, max: 40 }), len: fc.integer({ min: 14, max: 3000 }) }),
  fc.record({ k: fc.constant("link" as const), up: fc.boolean() }),
  fc.record({ k: fc.constant("activity" as const), a: fc.constantFrom(...ACTIVITIES) }),
);

/** Runs legal traffic; returns the number of operations run. */
function traffic(tb: ReturnType<typeof make>, ops: TrafficOp[]): number {
  const d = tb.driver;
  const p = d.probe();
  d.open();
  let seq = 0;
  const stub = tb.stub!.mac;
  for (const op of ops) {
    switch (op.k) {
      case "send": d.send(ping(p.mac, stub, seq++, op.pad), op.pair); break;
      case "queue": d.reclaim(op.pair); d.queue(ping(p.mac, stub, seq++, op.pad), op.pair); break;
      case "flush": d.flush(op.pair); break;
      case "recv": d.receive(op.pair); break;
      case "rxmode": d.ctrl(0, op.cmd, Uint8Array.of(op.on ? 1 : 0)); break;
      case "vlan": d.ctrl(2, op.add ? 0 : 1, Uint8Array.of(op.vid & 0xff, op.vid >>> 8)); break;
      case "macs": {
        const b = new Uint8Array(8 + 6 * (op.uni + op.multi));
        const v = new DataView(b.buffer);
        v.setUint32(0, op.uni, true);
        for (let i = 0; i < op.uni; i++) b.set([0x52, 0x54, 0, op.seed, i >> 8, i & 0xff], 4 + 6 * i);
        const m = 4 + 6 * op.uni;
        v.setUint32(m, op.multi, true);
        for (let i = 0; i < op.multi; i++) b.set([0x01, 0, 0x5e, op.seed, i >> 8, i & 0xff], m + 4 + 6 * i);
        d.ctrl(1, 0, b);
        break;
      }
      case "addr": d.ctrl(1, 1, Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, op.last)); break;
      case "announce": if (tb.nic.announce()) d.ctrl(3, 0, new Uint8Array(0)); break;
      case "offloads": d.ctrl(5, 0, Uint8Array.of(op.csum ? 2 : 0, 0, 0, 0, 0, 0, 0, 0)); break;
      case "inbound": for (let i = 0; i < op.n; i++) tb.nic.receive(new Uint8Array(op.len).fill(0xff, 0, 6)); break;
      case "link": tb.nic.setLink(op.up); break;
      case "activity": tb.dev.setActivity(op.a); break;
    }
  }
  return ops.length;
}

const roundTrip = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

/** Every path (as keys) in a JSON tree, objects and arrays included. */
function paths(x: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(x)) x.forEach((v, i) => paths(v, [...at, i], out));
  else if (typeof x === "object" && x !== null) for (const [k, v] of Object.entries(x)) paths(v, [...at, k], out);
  return out;
}

const DELETE = Symbol("delete");
const junk = fc.oneof(
  fc.integer({ min: -2, max: 70_000 }),
  fc.constantFrom(0, 1, 2, 3, 15, 16, 17, 255, 256, 0xffff, 0x10000, 2 ** 32, 2 ** 53, 2 ** 64, -1, 0.5, Number.NaN),
  fc.boolean(),
  fc.constant(null),
  fc.constant(DELETE),
  fc.constantFrom("", "0", "ff", "8000000530efbba7", "zz", "525400123456", "split", "packed"),
  fc.constant([]),
  fc.constant({}),
  fc.constant([[1, 1]]),
);

function mutate(s: unknown, muts: { pick: number; value: unknown }[]): unknown {
  const out = structuredClone(s) as Record<string, unknown>;
  for (const m of muts) {
    const all = paths(out).filter((p) => p.length > 0);
    const p = all[m.pick % all.length]!;
    let parent = out as Record<string | number, unknown>;
    for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
    const last = p.at(-1)!;
    if (m.value === DELETE) {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else parent[last] = structuredClone(m.value);
  }
  return out;
}

type Hostile =
  | { k: "w"; off: number; size: 1 | 2 | 4; v: number }
  | { k: "r"; off: number; size: 1 | 2 | 4 }
  | { k: "notify"; q: number }
  | { k: "scribble"; q: number; area: number; at: number; bytes: number[] }
  | { k: "rx"; len: number; fill: number }
  | { k: "activity"; a: Activity }
  | { k: "tick" };

const size = fc.constantFrom(1 as const, 2 as const, 4 as const);
const hostile: fc.Arbitrary<Hostile> = fc.oneof(
  fc.record({ k: fc.constant("w" as const), off: fc.oneof(fc.integer({ min: 0, max: 0x40 }), fc.integer({ min: 0, max: 0x3fff })), size, v: fc.oneof(fc.integer({ min: 0, max: 0x20 }), fc.nat()) }),
  fc.record({ k: fc.constant("r" as const), off: fc.integer({ min: 0, max: 0x3fff }), size }),
  { weight: 3, arbitrary: fc.record({ k: fc.constant("notify" as const), q: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("scribble" as const), q: fc.integer({ min: 0, max: 4 }), area: fc.integer({ min: 0, max: 2 }), at: fc.integer({ min: 0, max: 16 * QS }), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("rx" as const), len: fc.integer({ min: 0, max: 4000 }), fill: fc.integer({ min: 0, max: 255 }) }) },
  fc.record({ k: fc.constant("activity" as const), a: fc.constantFrom(...ACTIVITIES) }),
  fc.record({ k: fc.constant("tick" as const) }),
);

for (const packed of [false, true]) {
  describe(`virtio-net state properties, ${packed ? "packed" : "split"} ring`, () => {
    it("random legal traffic: save -> restore into a fresh instance -> save is identical", () => {
      let runs = 0;
      let ops = 0;
      let withFifo = 0;
      let withPending = 0;
      fc.assert(
        fc.property(fc.array(trafficOp, { size: "max", maxLength: 150 }), (list) => {
          const a = make(packed);
          ops += traffic(a, list);
          const s = roundTrip(a.dev.save());
          if (s.net.rxFifo.length > 0) withFifo++;
          if (s.net.pendingQueues.length > 0) withPending++;
          const b = make(packed);
          const parsed = b.dev.stateType.parse(s);
          expect(parsed).toEqual(s);
          b.dev.restore(parsed);
          expect(b.dev.save()).toEqual(s);
          runs++;
        }),
        { numRuns: 60 },
      );
      expect(runs).toBe(60);
      expect(ops).toBeGreaterThan(60 * 40);
      expect(withFifo + withPending).toBeGreaterThan(0);
    });

    it("random mutations: rejected naming the field, or accepted and then safe under hostile accesses", () => {
      // A base state with traffic, some of it latched while quiesced.
      const src = make(packed);
      const script: TrafficOp[] = [
        ...Array.from({ length: 30 }, (_, i): TrafficOp => ({ k: "send", pair: i & 1, pad: 20 * i })),
        { k: "vlan", add: true, vid: 7 }, { k: "rxmode", cmd: 0, on: false }, { k: "activity", a: "quiesced" },
        { k: "send", pair: 0, pad: 8 }, { k: "inbound", n: 3, len: 80 },
      ];
      traffic(src, script);
      const base = roundTrip(src.dev.save());
      const fnState = roundTrip(src.transport.fn.save());
      let rejected = 0;
      let accepted = 0;
      let hostileOps = 0;
      fc.assert(
        fc.property(
          // Zero to three mutations (none: the base state itself, accepted).
          fc.array(fc.record({ pick: fc.nat(), value: junk }), { minLength: 0, maxLength: 3 }),
          fc.array(hostile, { size: "max", maxLength: 120 }),
          (muts, ops) => {
            const m = mutate(base, muts);
            const clock = new ManualClock();
            const ram = new FlatRam(MEM);
            ram.bytes.set(src.ram.bytes);
            const t = make(packed, { ram, clock });
            t.transport.fn.restore(fnState);
            const before = JSON.stringify(t.dev.save());
            let parsed: VirtioNetPciState;
            try {
              parsed = t.dev.stateType.parse(m, "dev");
            } catch (e) {
              expect((e as Error).name).toBe("StateError");
              expect((e as { path: string }).path).toMatch(/^dev(\.|$)/);
              expect(JSON.stringify(t.dev.save())).toBe(before);
              rejected++;
              return;
            }
            accepted++;
            t.dev.restore(parsed);
            const v = new DataView(ram.bytes.buffer);
            for (const op of ops) {
              switch (op.k) {
                case "w": t.transport.fn.barWrite(4, op.off, op.size, op.v); break;
                case "r": t.transport.fn.barRead(4, op.off, op.size); break;
                case "notify": t.transport.fn.barWrite(4, 0x3000 + 4 * op.q, 2, op.q); break;
                case "scribble": {
                  const q = t.transport.queues[op.q]!;
                  const a = [q.desc, q.driver, q.device][op.area]! + op.at;
                  op.bytes.forEach((b, i) => {
                    if (a + i >= 0 && a + i < MEM) v.setUint8(a + i, b);
                  });
                  break;
                }
                case "rx": t.nic.receive(new Uint8Array(op.len).fill(op.fill)); break;
                case "activity": t.dev.setActivity(op.a); break;
                case "tick": clock.advance(50_000); break;
              }
              hostileOps++;
            }
            // Bounds kept: the device's own state still parses.
            t.dev.stateType.parse(roundTrip(t.dev.save()));
            expect(t.nic.work.maxUnits).toBeLessThanOrEqual(t.nic.work.budget + 2 * QS);
          },
        ),
        { numRuns: 400 },
      );
      expect(rejected + accepted).toBe(400);
      expect(rejected).toBeGreaterThan(100);
      expect(accepted).toBeGreaterThan(40);
      expect(hostileOps).toBeGreaterThan(accepted * 30);
    });
  });
}
