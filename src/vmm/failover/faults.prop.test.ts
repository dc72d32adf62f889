/**
 * Fault injection at every step of the switch, chosen by fast-check, with frames arriving at the
 * steps before the fault and transmit descriptors queued across it: the source keeps running, no
 * frame is lost, duplicated or reordered, and a later switch still works.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { VR } from "../../devices/igb/regs.js";
import { FAILOVER_STEPS, type FailoverBackingName, type FailoverStep } from "./switch.js";
import { GUEST_MAC, PEER, createFailoverTestbed, seqFrame, serviceGuest, wireSeqs } from "./testbed.js";

const other = (n: FailoverBackingName): FailoverBackingName => (n === "passthrough" ? "emulated" : "passthrough");

describe("fault injection at every step of the switch", () => {
  it("the source keeps running and no frame is lost (fast-check)", () => {
    let hook: ((s: FailoverStep) => void) | undefined;
    const tb = createFailoverTestbed({ adminMac: GUEST_MAC, stepHook: (s) => hook?.(s), driver: { ringSize: 512 } });
    const d = tb.driver;
    expect(d.reset()).toBe(true);
    d.open();
    tb.write(VR.EIMS, 7);
    expect(d.setLpe(1522)).toBe(true);
    const fo = tb.model.failover;
    let rxSeq = 0;
    let txSeq = 0;
    const got: number[] = [];
    let runs = 0;
    const failedAt = new Set<FailoverStep>();
    fc.assert(
      fc.property(
        fc.constantFrom(...FAILOVER_STEPS),
        fc.array(fc.nat(3), { minLength: FAILOVER_STEPS.length, maxLength: FAILOVER_STEPS.length }),
        fc.nat(4),
        fc.boolean(),
        fc.boolean(),
        (failAt, perStep, txN, flushBefore, thenSwitch) => {
          runs++;
          const from = fo.active;
          for (let k = 0; k < txN; k++) expect(d.queue(seqFrame(PEER, GUEST_MAC, 1, txSeq++))).toBe(true);
          if (flushBefore) d.flush();
          hook = (s) => {
            const i = FAILOVER_STEPS.indexOf(s);
            for (let k = 0; k < (perStep[i] ?? 0); k++) tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rxSeq++));
            if (s === failAt) throw new Error(`injected at ${s}`);
          };
          const r = fo.switchTo(other(from));
          hook = undefined;
          expect(r.ok).toBe(false);
          if (r.ok) return;
          expect(r.error.step).toBe(failAt);
          expect(r.error.reason).toContain(`injected at ${failAt}`);
          failedAt.add(r.error.step as FailoverStep);
          expect(fo.active).toBe(from);
          expect(tb.model.devices[from].migration.state).toBe("RUNNING");
          expect(tb.model.devices[other(from)].migration.state).toBe("STOP");
          d.flush();
          tb.clock.advance(5_000);
          got.push(...serviceGuest(tb));
          if (thenSwitch) {
            // a switch that succeeds, with frames arriving at every step
            hook = (s) => {
              const i = FAILOVER_STEPS.indexOf(s);
              for (let k = 0; k < (perStep[i] ?? 0); k++) tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rxSeq++));
            };
            const ok = fo.switchTo(other(from));
            hook = undefined;
            expect(ok.ok).toBe(true);
            tb.clock.advance(5_000);
            got.push(...serviceGuest(tb));
          }
          // the guest's traffic still flows both ways
          tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rxSeq++));
          expect(d.send(seqFrame(PEER, GUEST_MAC, 1, txSeq++))).toBe(true);
          tb.clock.advance(5_000);
          got.push(...serviceGuest(tb));
          expect(got).toEqual(Array.from({ length: rxSeq }, (_, i) => i));
          expect(wireSeqs(tb)).toEqual(Array.from({ length: txSeq }, (_, i) => i));
        },
      ),
      { numRuns: 300 },
    );
    expect(runs).toBe(300);
    expect([...failedAt].sort()).toEqual([...FAILOVER_STEPS].sort());
    expect(d.nacks).toBe(0);
    expect(d.checkLink()).toBe("up");
    expect(fo.stats().framesDropped).toBe(0);
    expect(fo.stats().failures).toBe(300);
  });
});
