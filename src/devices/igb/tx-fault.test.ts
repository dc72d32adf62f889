/**
 * Regression (found by the fuzzer's igb-pf target, whose runs spent most of their time in
 * continuation tasks): a transmit descriptor fetch that faults (ring base outside guest memory)
 * stopped the walk but reported the queue as "left for later", so the core rescheduled a
 * continuation every `IGB_CONTINUE_NS` forever, each retrying the same faulting fetch: a guest
 * could keep the host busy with a million tasks per second of device time. A fault now stops the
 * queue until the guest kicks it again (a TDT, TXDCTL or TCTL write), as the budget contract says.
 */
import { describe, expect, it } from "vitest";
import { IgbCore } from "./core.js";
import { B, R } from "./regs.js";
import { FlatMemory, IrqRecorder, ManualClock } from "./testing.js";

const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

describe("transmit descriptor fetch fault", () => {
  it("stops the queue: no continuation task keeps retrying it, and the next kick retries once", () => {
    const mem = new FlatMemory(1 << 20);
    const clock = new ManualClock();
    const core = new IgbCore({ mac: MAC, dma: () => mem, irq: new IrqRecorder(), clock });
    core.mmioWrite(R.TDBAL(0), 4, 0x4000_0000); // 1 GiB: outside the 1 MiB of memory
    core.mmioWrite(R.TDLEN(0), 4, 64 * 16);
    core.mmioWrite(R.TXDCTL(0), 4, B.TXDCTL_ENABLE);
    core.mmioWrite(R.TCTL, 4, B.TCTL_EN);
    const errors0 = core.counters.txErrors;
    core.mmioWrite(R.TDT(0), 4, 5);
    expect(core.counters.txErrors).toBe(errors0 + 1);
    clock.advance(1_000_000); // 1 ms of device time: a thousand continuations before the fix
    const c = core.work.counters;
    expect(c.continuations).toBe(0);
    expect(core.counters.txErrors).toBe(errors0 + 1);
    expect(core.mmioRead(R.TDH(0), 4)).toBe(0);
    // the guest kicks again: one more attempt, still no task left behind
    core.mmioWrite(R.TDT(0), 4, 6);
    clock.advance(1_000_000);
    expect(core.counters.txErrors).toBe(errors0 + 2);
    expect(c.continuations).toBe(0);
  });
});
