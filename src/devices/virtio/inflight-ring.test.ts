import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InflightRing } from "./inflight-ring.js";

type Op = { kind: "push"; id: number; count: number; pos: number; wrap: boolean } | { kind: "pop" } | { kind: "use"; id: number } | { kind: "clear" };

const op = (cap: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant("push" as const), id: fc.integer({ min: 0, max: 2 * cap }), count: fc.integer({ min: 1, max: 0xffff }), pos: fc.integer({ min: 0, max: 0x7fff }), wrap: fc.boolean() }) },
    { weight: 2, arbitrary: fc.constant({ kind: "pop" as const }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("use" as const), id: fc.integer({ min: 0, max: 2 * cap }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: "clear" as const }) },
  );

describe("InflightRing", () => {
  it("behaves as an array of entries (push, pop from the newest, use the oldest with an ID) through wrap-around", () => {
    let ran = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.array(op(9), { minLength: 200, maxLength: 2000, size: "max" }), (cap, ops) => {
        const r = new InflightRing(cap);
        const model: { id: number; count: number; pos: number; wrap: boolean }[] = [];
        for (const o of ops) {
          ran++;
          if (o.kind === "push") {
            const ok = r.push(o.id, o.count, o.pos, o.wrap);
            expect(ok).toBe(model.length < cap);
            if (ok) model.push({ id: o.id, count: o.count, pos: o.pos, wrap: o.wrap });
          } else if (o.kind === "pop") {
            const last = model.pop();
            expect(r.pop()).toBe(last !== undefined);
            if (last !== undefined) expect([r.poppedPos, r.poppedWrap]).toEqual([last.pos, last.wrap]);
          } else if (o.kind === "use") {
            const k = model.findIndex((e) => e.id === o.id);
            expect(r.indexOf(o.id)).toBe(k);
            if (k >= 0) expect(r.countAt(k)).toBe(model[k]!.count);
            r.removeAt(k);
            if (k >= 0) model.splice(k, 1);
          } else {
            r.clear();
            model.length = 0;
          }
          expect(r.length).toBe(model.length);
          for (let k = 0; k < model.length; k++) expect([r.idAt(k), r.countAt(k)]).toEqual([model[k]!.id, model[k]!.count]);
        }
      }),
      { numRuns: 60 },
    );
    expect(ran).toBeGreaterThanOrEqual(60 * 200);
  });
});
