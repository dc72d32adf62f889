import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createIgbTestbed, type IgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { StateError } from "../../state/parse.js";
import type { Activity } from "../../state/migration.js";
import { IGB_WORK_BUDGET, IGB_WORK_OVERSHOOT } from "./activity.js";
import { IgbCore } from "./core.js";
import { R, VR } from "./regs.js";
import { FlatMemory, IrqRecorder, ManualClock } from "./testing.js";
import { IgbVfRegs } from "./vf.js";
import { RecordingBackend } from "../net/testing.js";

/** An uplink that keeps what the NIC sends and lets a test inject frames. */
const PEER = [0x02, 0x99, 0, 0, 0, 1];
const vfMac = (vf: number) => [0x02, 0, 0, 0, 0x01, vf];
function frame(dst: number[], src: number[], len: number, seq: number): Uint8Array {
  const f = new Uint8Array(Math.max(60, len));
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  f[14] = seq & 0xff;
  f[15] = (seq >>> 8) & 0xff;
  return f;
}

const activity = fc.constantFrom<Activity>("running", "quiesced", "stopped", "running", "running");
const op = fc.oneof(
  fc.record({ k: fc.constant("tx" as const), vf: fc.nat(2), len: fc.integer({ min: 60, max: 1500 }) }),
  fc.record({ k: fc.constant("rx" as const), vf: fc.nat(2), len: fc.integer({ min: 60, max: 1500 }) }),
  fc.record({ k: fc.constant("recv" as const), vf: fc.nat(2) }),
  fc.record({ k: fc.constant("reclaim" as const), vf: fc.nat(2) }),
  fc.record({ k: fc.constant("time" as const), ns: fc.integer({ min: 0, max: 2_000_000 }) }),
  fc.record({ k: fc.constant("eitr" as const), vf: fc.nat(2), vec: fc.nat(2), us: fc.integer({ min: 0, max: 8191 }) }),
  fc.record({ k: fc.constant("pool" as const), vf: fc.nat(2), a: activity }),
  fc.record({ k: fc.constant("nic" as const), a: activity }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** A test bed with 3 VFs brought up by the simulated igbvf drivers. */
function bed(): { tb: IgbTestbed; up: RecordingBackend } {
  const up = new RecordingBackend();
  const tb = createIgbTestbed({ numVfs: 3, backend: up });
  for (const d of tb.vfs) {
    d.reset();
    d.open();
  }
  return { tb, up };
}

/** Runs `ops` as legal guest and wire traffic; returns how many ran. */
function drive(tb: IgbTestbed, up: RecordingBackend, ops: readonly Op[]): number {
  let n = 0;
  let seq = 0;
  for (const o of ops) {
    switch (o.k) {
      case "tx":
        tb.vfs[o.vf]!.send(frame(PEER, vfMac(o.vf), o.len, seq++));
        break;
      case "rx":
        up.sink?.(frame(vfMac(o.vf), PEER, o.len, seq++));
        break;
      case "recv":
        tb.vfs[o.vf]!.receive();
        break;
      case "reclaim":
        tb.vfs[o.vf]!.reclaim();
        break;
      case "time":
        tb.clock.advance(o.ns);
        break;
      case "eitr":
        tb.vfRegs[o.vf]!.write(VR.EITR(o.vec), 4, o.us << 2);
        break;
      case "pool":
        tb.core.setVfActivity(o.vf, o.a);
        break;
      case "nic":
        tb.core.setActivity(o.a);
        break;
    }
    n++;
  }
  return n;
}

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

describe("igb state properties (full size)", () => {
  it("save -> restore into a fresh instance -> save is identical, after random legal traffic", () => {
    let ran = 0;
    let runs = 0;
    let withHeld = 0;
    let withModeration = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 400, size: "max" }), (ops) => {
        const { tb, up } = bed();
        ran += drive(tb, up, ops);
        runs++;
        const s1 = JSON.parse(JSON.stringify(tb.core.save()));
        if (s1.held.nic.length + s1.held.pools.flat().length > 0) withHeld++;
        if (s1.irq.dueInNs.some((x: number) => x > 0)) withModeration++;
        // a fresh instance: no clock yet, restored, saved; then attached (stopped) and saved again
        const fresh = new IgbCore({ mac: MAC, dma: () => new FlatMemory(1 << 20), irq: new IrqRecorder() });
        fresh.restore(fresh.stateType.parse(s1));
        expect(JSON.parse(JSON.stringify(fresh.save()))).toEqual(s1);
        fresh.setActivity("stopped");
        const clock = new ManualClock();
        clock.advance(123_456_789);
        fresh.attach({ clock });
        clock.advance(5_000_000); // stopped: moderation time stands still
        expect(JSON.parse(JSON.stringify(fresh.save()))).toEqual(s1);
      }),
      { numRuns: 30 },
    );
    expect(runs).toBe(30);
    expect(ran).toBeGreaterThanOrEqual(30 * 50);
    // the generator reached the interesting states
    expect(withHeld).toBeGreaterThan(0);
    expect(withModeration).toBeGreaterThan(0);
  });

  it("mutated states are rejected naming the field, or accepted and then survive hostile register access within the work bound", () => {
    const { tb, up } = bed();
    const ops: Op[] = [];
    for (let i = 0; i < 60; i++) ops.push({ k: "tx", vf: i % 3, len: 100 + i }, { k: "rx", vf: i % 3, len: 200 + i }, { k: "time", ns: 30_000 });
    ops.push({ k: "eitr", vf: 1, vec: 0, us: 4000 }, { k: "rx", vf: 1, len: 100 }, { k: "pool", vf: 2, a: "quiesced" }, { k: "rx", vf: 2, len: 300 }, { k: "tx", vf: 2, len: 90 });
    drive(tb, up, ops);
    const base = JSON.parse(JSON.stringify(tb.core.save()));
    expect(base.held.pools[2].length).toBeGreaterThan(0);
    // every leaf (and every object, for added keys) of the saved state
    const leaves: (string | number)[][] = [];
    const objects: (string | number)[][] = [];
    const walk = (v: unknown, p: (string | number)[]) => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
      else if (typeof v === "object" && v !== null) {
        objects.push(p);
        for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
      } else leaves.push(p);
    };
    walk(base, []);
    expect(leaves.length).toBeGreaterThan(1500);
    const value = fc.oneof(
      fc.integer({ min: -2, max: 2 ** 32 + 2 }),
      fc.nat(0xffff),
      fc.constantFrom<unknown>(0xfffffff0, 0x1_0000_0000, 2 ** 53, -1, 1.5, Number.NaN, "zz", "", null, true, [], {}, 1e15, 0x7ffc, 0x80),
    );
    const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom("set", "set", "set", "delete", "add"), value });
    const access = fc.record({ off: fc.oneof(fc.integer({ min: 0, max: 0x1ffff }), fc.constantFrom(R.TDT(0), R.TDT(1), R.TDT(9), R.RDT(2), R.TXDCTL(1), R.TCTL, R.EICS, R.ICS, R.CTRL_EXT)), value: fc.integer({ min: 0, max: 0xffffffff }), vf: fc.integer({ min: -1, max: 2 }), read: fc.boolean() });
    let rejected = 0;
    let accepted = 0;
    let accesses = 0;
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(access, { minLength: 100, maxLength: 300, size: "max" }), (muts, acc) => {
        const m = structuredClone(base);
        for (const mu of muts) {
          const target = mu.kind === "add" ? objects[mu.at % objects.length]! : leaves[mu.at % leaves.length]!;
          let o = m;
          for (const k of target.slice(0, -1)) o = o[k];
          const last = target[target.length - 1];
          if (mu.kind === "add") (last === undefined ? m : o[last]).bogus = mu.value;
          else if (last === undefined) continue;
          else if (mu.kind === "delete") delete o[last];
          else o[last] = mu.value;
        }
        const clock = new ManualClock();
        const mem = new FlatMemory(1 << 20);
        const uplink = new RecordingBackend();
        const dev = new IgbCore({ mac: MAC, dma: () => mem, irq: new IrqRecorder(), clock, backend: uplink });
        const before = JSON.stringify(dev.save());
        let parsed;
        try {
          parsed = dev.stateType.parse(m);
        } catch (e) {
          expect(e).toBeInstanceOf(StateError);
          expect((e as StateError).path.startsWith("igb")).toBe(true);
          expect(JSON.stringify(dev.save())).toBe(before);
          rejected++;
          return;
        }
        accepted++;
        dev.restore(parsed);
        const vfRegs = [0, 1, 2].map((v) => new IgbVfRegs(dev, v));
        for (const a of acc) {
          if (a.vf < 0) {
            if (a.read) dev.mmioRead(a.off, 4);
            else dev.mmioWrite(a.off & ~3, 4, a.value);
          } else {
            const b = vfRegs[a.vf]!;
            if (a.read) b.read(a.off & 0x3fff, 4);
            else b.write(a.off & 0x3ffc, 4, a.value);
          }
          uplink.sink?.(frame(vfMac(a.vf & 3), PEER, 60 + (a.value & 0x3ff), 1));
          clock.advance(a.value & 0xffff);
          accesses++;
        }
        expect(dev.work.counters.maxUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + IGB_WORK_OVERSHOOT);
        expect(() => dev.stateType.parse(JSON.parse(JSON.stringify(dev.save())))).not.toThrow();
      }),
      { numRuns: 300 },
    );
    expect(rejected + accepted).toBe(300);
    expect(rejected).toBeGreaterThan(50);
    expect(accepted).toBeGreaterThan(20);
    expect(accesses).toBeGreaterThanOrEqual(accepted * 100);
  });
});
