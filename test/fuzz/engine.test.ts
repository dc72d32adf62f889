/**
 * The fuzz engine on a toy target with a planted defect: the run finds it, the minimizer shrinks
 * the sequence to the two operations that matter, the replay is deterministic; and the DMA
 * recorder reports an access outside what a function may reach.
 */
import { describe, expect, it } from "vitest";
import { findingKey, minimize, opsOf, replay, runFuzz, step, type FuzzInstance, type FuzzOp, type FuzzTarget } from "../../src/fuzz/engine.js";
import { DmaRecorder } from "../../src/fuzz/probes.js";
import { FlatMemory } from "../../src/devices/igb/testing.js";

/** A "device" that throws a TypeError when a write of 7 follows an arming write of 3. */
const toy: FuzzTarget = {
  name: "toy",
  description: "planted defect",
  budget: "budget: not exposed",
  create(): FuzzInstance {
    let armed = false;
    return {
      budgets: [],
      next: (rng) => ["w", rng.below(10)],
      apply(op: FuzzOp) {
        if (op[1] === 3) armed = true;
        else if (op[1] === 7 && armed) throw new TypeError("planted");
      },
    };
  },
};

describe("fuzz engine", () => {
  it("finds a planted escape, replays it deterministically and minimizes it to the two operations that matter", () => {
    const r = runFuzz(toy, { seed: "t", ops: 200 });
    expect(r.ops).toBe(200);
    expect(r.counts.escape).toBeGreaterThan(0);
    const f = r.findings[0]!;
    expect(f.detail).toBe("w: TypeError: planted");
    const ops = opsOf(toy, "t", f.op);
    expect(ops).toEqual(opsOf(toy, "t", f.op));
    expect(replay(toy, ops).some((x) => x.op === f.op)).toBe(true);
    const min = minimize(toy, ops, findingKey(f));
    expect(min).toEqual([["w", 3], ["w", 7]]);
  });

  it("the DMA recorder reports a carried-out access outside the allowed ranges, and only that", () => {
    const rec = new DmaRecorder(new FlatMemory(0x1000), "memory");
    rec.write(0x100, new Uint8Array(16));
    rec.read(0x2000, 4); // refused by the memory: not an access that happened
    const found: string[] = [];
    rec.checkWithin([[0x100, 0x110]], "why", { report: (_k, d) => void found.push(d) });
    expect(found).toEqual([]);
    rec.write(0x200, new Uint8Array(4));
    rec.checkWithin([[0x100, 0x110]], "why", { report: (_k, d) => void found.push(d) });
    expect(found).toEqual(["why: write of 4 bytes at 0x200 in memory"]);
  });

  it("a peak probe is reset before each operation and reported when one operation takes it past its limit", () => {
    const meter = { maxUnits: 0, resets: 0 };
    const inst: FuzzInstance = {
      budgets: [{ name: "units per write", read: () => meter.maxUnits, limit: () => 10, reset: () => void ((meter.maxUnits = 0), meter.resets++) }],
      next: () => ["w", 0],
      apply: (op) => void (meter.maxUnits = Math.max(meter.maxUnits, op[1] ?? 0)),
    };
    expect(step(inst, ["w", 10])).toEqual([]);
    // the earlier 10 does not count against the next operation
    expect(step(inst, ["w", 4])).toEqual([]);
    expect(step(inst, ["w", 11])).toEqual([{ kind: "budget", detail: "units per write: reached 11 in one w, limit 10" }]);
    expect(meter.resets).toBe(3);
  });
});
