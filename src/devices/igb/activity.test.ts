import { describe, it, expect } from "vitest";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { IGB_HOLD_FRAMES } from "./activity.js";
import { VR } from "./regs.js";
import { restoreVf, saveVf } from "./vf.js";
import { RecordingBackend } from "../net/testing.js";

const PEER = [0x02, 0x99, 0, 0, 0, 1];
const vfMac = (vf: number) => [0x02, 0, 0, 0, 0x01, vf];
function frame(dst: number[], src: number[], seq: number): Uint8Array {
  const f = new Uint8Array(80);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[14] = seq;
  return f;
}

function bed(numVfs = 2) {
  const up = new RecordingBackend();
  const tb = createIgbTestbed({ numVfs, backend: up });
  for (const d of tb.vfs) {
    d.reset();
    d.open();
  }
  return { tb, up };
}

const vfIrqs = (tb: ReturnType<typeof bed>["tb"], vf: number) => tb.irq.vfVectors.filter(([v]) => v === vf).length;

describe("activity of one VF's pool (the failover switch's freeze)", () => {
  it("holds the pool's frames, TX work and interrupts while the rest of the NIC runs; all arrive whole, once, in order after", () => {
    const { tb, up } = bed();
    const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
    tb.core.setVfActivity(0, "quiesced");
    const irq0 = vfIrqs(tb, 0);
    const rx0 = [1, 2, 3, 4, 5].map((i) => frame(vfMac(0), PEER, i));
    for (const f of rx0) expect(up.sink?.(f)).toBe(true);
    up.sink?.(frame(vfMac(1), PEER, 9));
    expect(d1.receive().map((r) => r.frame[14])).toEqual([9]); // the other VF runs
    expect(d0.receive()).toEqual([]);
    const sentBefore = up.sent.length;
    for (const i of [11, 12, 13]) expect(d0.send(frame(PEER, vfMac(0), i))).toBe(true); // TDT latched
    expect(up.sent.length).toBe(sentBefore);
    d1.send(frame(PEER, vfMac(1), 20));
    expect(up.sent.length).toBe(sentBefore + 1);
    tb.vfRegs[0]!.write(VR.EICS, 4, 1); // a cause during the freeze: latched, no message
    expect(tb.vfRegs[0]!.read(VR.EICR, 4) & 1).toBe(1);
    tb.vfRegs[0]!.write(VR.EICS, 4, 1);
    tb.clock.advance(10_000_000);
    expect(vfIrqs(tb, 0)).toBe(irq0);
    expect(tb.core.activity.counters.held).toBe(5);

    tb.core.setVfActivity(0, "running");
    expect(up.sent.slice(sentBefore + 1).map((f) => f[14])).toEqual([11, 12, 13]);
    const got = d0.receive();
    expect(got.map((r) => Array.from(r.frame))).toEqual(rx0.map((f) => Array.from(f)));
    expect(vfIrqs(tb, 0)).toBeGreaterThan(irq0);
    expect(tb.core.activity.counters.replayed).toBe(5);
    // once: nothing more arrives later
    tb.clock.advance(10_000_000);
    expect(d0.receive()).toEqual([]);
    expect(up.sent.length).toBe(sentBefore + 4);
  });
});

describe("activity of the whole NIC", () => {
  it("quiesced: frames wait in a bounded FIFO (overflow counted), TX and interrupts wait; running delivers in order", () => {
    const { tb, up } = bed(1);
    const d = tb.vfs[0]!;
    tb.core.setActivity("quiesced");
    const irq0 = vfIrqs(tb, 0);
    for (let i = 0; i < 20; i++) up.sink?.(frame(vfMac(0), PEER, i));
    d.send(frame(PEER, vfMac(0), 100));
    const before = up.sent.length;
    tb.clock.advance(10_000_000);
    expect(up.sent.length).toBe(before);
    expect(d.receive()).toEqual([]);
    expect(vfIrqs(tb, 0)).toBe(irq0);
    tb.core.setActivity("running");
    expect(up.sent.length).toBe(before + 1);
    expect(d.receive().map((r) => r.frame[14])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(vfIrqs(tb, 0)).toBeGreaterThan(irq0);

    tb.core.setActivity("stopped");
    for (let i = 0; i < IGB_HOLD_FRAMES + 3; i++) up.sink?.(frame(vfMac(0), PEER, i & 0xff));
    expect(tb.core.activity.counters.heldDrops).toBe(3);
    expect(tb.core.activity.nicFifo.length).toBe(IGB_HOLD_FRAMES);
  });

  it("stopped: moderation time stands still; the held message goes after running again", () => {
    const { tb } = bed(1);
    const bar = tb.vfRegs[0]!;
    bar.write(VR.EITR(0), 4, 100 << 2); // 100 us
    bar.write(VR.EIMS, 4, 7);
    bar.write(VR.EIAC, 4, 0);
    bar.write(VR.EIAM, 4, 0);
    bar.write(VR.EICS, 4, 1);
    const n0 = vfIrqs(tb, 0);
    bar.write(VR.EICR, 4, 1);
    bar.write(VR.EICS, 4, 1); // held back by moderation
    expect(vfIrqs(tb, 0)).toBe(n0);
    tb.core.setActivity("stopped");
    const dueBefore = tb.core.save().irq.dueInNs;
    tb.clock.advance(1_000_000);
    expect(vfIrqs(tb, 0)).toBe(n0);
    expect(tb.core.save().irq.dueInNs).toEqual(dueBefore);
    tb.core.setActivity("running");
    tb.clock.advance(200_000);
    expect(vfIrqs(tb, 0)).toBe(n0 + 1);
  });
});

describe("a frozen VF's capture (the failover switch's STOP_COPY)", () => {
  it("saveVf carries the pool's held frames, owed interrupts and moderation; restoreVf installs them in another VF, delivered when it runs", () => {
    const { tb, up } = bed(3);
    const d0 = tb.vfs[0]!;
    tb.core.setVfActivity(2, "stopped"); // the target stays frozen until the state is in
    tb.core.setVfActivity(0, "quiesced");
    tb.vfRegs[0]!.write(VR.EITR(0), 4, 500 << 2);
    const rx = [1, 2, 3].map((i) => frame(vfMac(0), PEER, i));
    for (const f of rx) up.sink?.(f);
    tb.vfRegs[0]!.write(VR.EICS, 4, 1); // owed while frozen
    const s = JSON.parse(JSON.stringify(saveVf(tb.core, 0)));
    expect(s.held.length).toBe(3);
    expect(s.irq.owed & 1).toBe(1);
    restoreVf(tb.core, 2, s);
    const s2 = JSON.parse(JSON.stringify(saveVf(tb.core, 2)));
    expect({ ...s2, macs: undefined }).toEqual({ ...s, macs: undefined });
    const irq2 = vfIrqs(tb, 2);
    tb.core.resendVfInterrupts(2); // frozen: owed, nothing sent yet
    expect(vfIrqs(tb, 2)).toBe(irq2);
    tb.core.setVfActivity(2, "running");
    // VF 2 now owns VF 0's rings (same guest memory here): the frames land there, in order
    expect(d0.receive().map((r) => Array.from(r.frame))).toEqual(rx.map((f) => Array.from(f)));
    expect(vfIrqs(tb, 2)).toBeGreaterThan(irq2);
    expect(() => restoreVf(tb.core, 1, { ...s, held: [{ ...s.held[0], q: 2 }] })).toThrowError(expect.objectContaining({ name: "IgbVfStateError" }));
  });
});
