import { describe, expect, it } from "vitest";
import { StateError } from "../state/parse.js";
import { demoTopology } from "./demo-topology.js";
import { TESTDEV_MAX_WAITING } from "./test-device.js";

/** The demo PF with INTx as its interrupt path, and the INTx levels the sink saw. */
function rig() {
  const lines: boolean[] = [];
  const t = demoTopology({ interrupts: { msi: () => {}, intx: (_r, _p, l) => void lines.push(l) } });
  const bar0 = t.device.pf.barAddress(0)!;
  return { t, lines, bar0 };
}

describe("PCI test device as a StatefulDevice", () => {
  it("holds interrupt requests while quiesced, saves them, and runs them in order when running", () => {
    const { t, lines, bar0 } = rig();
    t.device.setActivity("quiesced");
    t.root.mmioWrite(bar0 + 0x20, 4, 0x1234); // scratch answers
    t.root.mmioWrite(bar0 + 0x84, 4, 0); // raise: waits
    t.root.mmioWrite(bar0 + 0x80, 4, 1); // INTx: waits
    expect(t.root.mmioRead(bar0 + 0x20, 4)).toBe(0x1234);
    expect(t.root.mmioRead(bar0 + 0x88, 4)).toBe(0);
    expect(lines).toEqual([]);
    const saved = JSON.parse(JSON.stringify(t.device.save()));
    expect(saved.waiting).toEqual([{ fn: -1, reg: "raise", value: 0 }, { fn: -1, reg: "intx", value: 1 }]);
    t.device.setActivity("running");
    expect(t.root.mmioRead(bar0 + 0x88, 4)).toBe(1);
    expect(t.root.mmioRead(bar0 + 0x80, 4)).toBe(1);
    expect(lines).toEqual([true]);
    // The saved requests run on a fresh device once restored while running.
    const b = rig();
    b.t.device.restore(b.t.device.stateType.parse(saved));
    expect(b.t.root.mmioRead(b.bar0 + 0x88, 4)).toBe(1);
    expect(b.lines).toEqual([true]);
  });

  it("bounds the waiting requests and counts what it drops", () => {
    const { t, bar0 } = rig();
    t.device.setActivity("stopped");
    for (let i = 0; i < TESTDEV_MAX_WAITING + 5; i++) t.root.mmioWrite(bar0 + 0x84, 4, 0);
    expect(t.device.save().waiting.length).toBe(TESTDEV_MAX_WAITING);
    expect(t.device.droppedRequests).toBe(5);
  });

  it("loads version 1 and checks register 0x8c, VF INTx and the VF count", () => {
    const { t } = rig();
    const v1 = { version: 1, pf: { scratch: new Array(28).fill(7), intx: true, raised: 3 }, vfs: new Array(8).fill({ scratch: new Array(28).fill(0), intx: false, raised: 0 }) };
    const s = t.device.stateType.parse(v1, "testdev");
    expect(s).toMatchObject({ version: 2, pf: { raised: 3, lastWriteSize: 0 }, waiting: [] });
    const v2 = t.device.save();
    expect(() => t.device.stateType.parse({ ...v2, pf: { ...v2.pf, lastWriteSize: 3 } }, "testdev")).toThrow("testdev.pf.lastWriteSize: 3 is not an access size");
    expect(() => t.device.stateType.parse({ ...v2, vfs: v2.vfs.map((v, i) => (i === 2 ? { ...v, intx: true } : v)) }, "testdev")).toThrow(/testdev\.vfs\[2\]\.intx/);
    expect(() => t.device.stateType.parse({ ...v2, vfs: v2.vfs.slice(1) }, "testdev")).toThrow(StateError);
    expect(() => t.device.stateType.parse({ ...v2, waiting: [{ fn: 8, reg: "raise", value: 0 }] }, "testdev")).toThrow(/testdev\.waiting\[0\]\.fn: 8 is outside \[-1, 7\]/);
    t.root.mmioWrite(t.device.pf.barAddress(0)! + 0x10, 2, 5);
    expect(t.device.save().pf.lastWriteSize).toBe(2);
  });
});
