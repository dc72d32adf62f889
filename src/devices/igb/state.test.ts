import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { StateError } from "../../state/parse.js";
import { IgbCore } from "./core.js";
import { IgbPciDevice } from "./pci.js";
import { IGB_REG_NAMES } from "./regnames.js";
import { R } from "./regs.js";
import { IGB_V1_SLOTS, IGB_V1_SLOT_LAYOUT } from "./state-v1-layout.js";
import { igbRegisterTable } from "./table.js";
import { FlatMemory, IrqRecorder, ManualClock } from "./testing.js";
import { MAX_MODERATION_NS } from "./irq.js";
import { IgbHostNic } from "../../vmm/pf-agent/host-nic.js";

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../../test/fixtures/state-v1/${name}`, import.meta.url), "utf8")) as {
  platform: { devices: Record<string, Record<string, unknown>> };
};
const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]);

/** The v1 slot of register `name`[i] in the frozen layout. */
function v1Slot(name: string, i = 0): number {
  let n = 0;
  for (const [r, c] of IGB_V1_SLOT_LAYOUT) {
    if (r === name) return n + i;
    n += c;
  }
  throw new Error(name);
}

describe("register names", () => {
  it("IGB_REG_NAMES is the table's rows, and the frozen v1 layout names registers the table has", () => {
    const owned = igbRegisterTable().filter((r) => r.alias === undefined).map((r) => r.name);
    expect(owned).toEqual([...IGB_REG_NAMES]);
    expect(IGB_V1_SLOT_LAYOUT.reduce((a, [, c]) => a + c, 0)).toBe(IGB_V1_SLOTS);
    for (const [name] of IGB_V1_SLOT_LAYOUT) expect(IGB_REG_NAMES as readonly string[]).toContain(name);
  });
});

describe("v1 fixtures from real guests", () => {
  const cases: [string, (f: ReturnType<typeof fixture>) => unknown][] = [
    ["igb-platform.json", (f) => f.platform.devices.igb],
    ["failover-platform.json", (f) => f.platform.devices["igb-host"]!.core],
  ];
  for (const [file, pick] of cases) {
    it(`${file}: parses through the v1 upgrade, applies to a fresh device, saves v2 that parses again`, () => {
      const v1 = pick(fixture(file)) as { regs: { slots: number[] }; numVfs: number; irq: { held: number } };
      const dev = new IgbPciDevice({ mac: MAC }); // no clock, no backend: restore first, attach after
      const parsed = dev.stateType.parse(v1);
      expect(parsed.version).toBe(2);
      dev.restore(parsed);
      // registers land by name where the v1 slot order put them
      for (const [name, i] of [["RAL", 0], ["RAH", 0], ["RDBAL", 0], ["TDLEN", 1], ["VMBMEM", 3], ["EITR", 22], ["MTA", 7], ["VTIVAR", 1]] as const) {
        expect(dev.core.regs.get(name, i), `${name}[${i}]`).toBe(v1.regs.slots[v1Slot(name, i)]);
      }
      expect(dev.core.numVfs).toBe(v1.numVfs);
      const saved = JSON.parse(JSON.stringify(dev.save()));
      expect(saved.version).toBe(2);
      expect(Object.keys(saved.regs)).toEqual([...IGB_REG_NAMES]);
      const again = dev.stateType.parse(saved);
      expect(again).toEqual(parsed);
      // attach afterwards; the device answers and saves the same registers
      const clock = new ManualClock();
      dev.attach({ clock });
      expect(dev.core.mmioRead(R.RAL(0), 4)).toBe(v1.regs.slots[v1Slot("RAL", 0)]);
    });
  }

  it("failover-platform.json: the whole host NIC (core v1 and agent) loads into a fresh IgbHostNic and saves v2", () => {
    const host = structuredClone(fixture("failover-platform.json").platform.devices["igb-host"]!);
    const nic = new IgbHostNic({ pfMac: MAC, numVfs: 2, clock: new ManualClock() });
    nic.restore(nic.stateType.parse(host));
    const s = JSON.parse(JSON.stringify(nic.save()));
    expect(s.core.version).toBe(2);
    expect(nic.core.stateType.parse(s.core).regs).toEqual(nic.core.stateType.parse(host.core).regs);
  });

  it("a v1 state with a wrong slot count or a bad value is rejected naming the field", () => {
    const v1 = structuredClone(fixture("igb-platform.json").platform.devices.igb) as { regs: { slots: number[] } };
    const core = new IgbCore({ mac: MAC, dma: () => new FlatMemory(16), irq: new IrqRecorder() });
    expect(() => core.stateType.parse({ ...v1, regs: { version: 1, slots: v1.regs.slots.slice(1) } })).toThrowError(expect.objectContaining({ path: "igb.regs.slots" }));
    v1.regs.slots[v1Slot("TDLEN", 2)] = 0xfffffff0;
    expect(() => core.stateType.parse(v1)).toThrowError(expect.objectContaining({ path: "igb.regs.TDLEN[2]" }));
  });
});

describe("restore checks (issue 15)", () => {
  const core = () => new IgbCore({ mac: MAC, dma: () => new FlatMemory(16), irq: new IrqRecorder(), clock: new ManualClock() });
  it("rejects ring lengths outside the register's bits, indexes beyond 16 bits, moderation beyond EITR's longest interval", () => {
    const c = core();
    const s = JSON.parse(JSON.stringify(c.save()));
    const withReg = (name: string, i: number, v: number) => ({ ...s, regs: { ...s.regs, [name]: s.regs[name].map((x: number, j: number) => (j === i ? v : x)) } });
    const err = (u: unknown) => {
      try {
        c.stateType.parse(u);
      } catch (e) {
        expect(e).toBeInstanceOf(StateError);
        return (e as StateError).path;
      }
      return "accepted";
    };
    expect(err(withReg("TDLEN", 3, 0xfffffff0))).toBe("igb.regs.TDLEN[3]");
    expect(err(withReg("RDLEN", 0, 0x100008))).toBe("igb.regs.RDLEN[0]");
    // A head or tail holds 16 bits whatever the ring (the hardware's register does; igb's
    // self-test writes 0xFFFF with no ring): outside the ring it is legal, and the data path
    // refuses to walk it.
    expect(err(withReg("TDT", 0, 5))).toBe("accepted");
    expect(err(withReg("TDT", 0, 0xffff))).toBe("accepted");
    expect(err(withReg("TDT", 0, 0x10000))).toBe("igb.regs.TDT[0]");
    expect(err({ ...s, irq: { ...s.irq, dueInNs: s.irq.dueInNs.map((_: number, j: number) => (j === 4 ? MAX_MODERATION_NS + 1 : 0)) } })).toBe("igb.irq.dueInNs[4]");
    expect(err({ ...s, irq: { ...s.irq, dueInNs: s.irq.dueInNs.map((_: number, j: number) => (j === 4 ? 1e15 : 0)) } })).toBe("igb.irq.dueInNs[4]");
    expect(err({ ...s, regs: { ...s.regs, EICR: 0x8000_0000 } })).toBe("igb.regs.EICR");
    expect(err({ ...s, numVfs: 9 })).toBe("igb.numVfs");
    expect(err({ ...s, extra: 1 })).toBe("igb.extra");
  });

  it("ring registers keep what the guest wrote (as igb's register self-test expects), and a ring with an index outside it is not walked", () => {
    const c = core();
    c.mmioWrite(R.RDT(0), 4, 0xffff);
    expect(c.mmioRead(R.RDT(0), 4)).toBe(0xffff); // igb_reg_test's pattern on RDT, no ring set up
    c.mmioWrite(R.TDLEN(0), 4, 0x80); // 8 descriptors
    c.mmioWrite(R.TDH(0), 4, 100);
    c.mmioWrite(R.TDT(0), 4, 3);
    // TDH outside the ring: the queue is not walked, nothing is fetched, and the state still saves.
    expect(c.regs.get("TDH", 0)).toBe(100);
    expect(() => c.stateType.parse(JSON.parse(JSON.stringify(c.save())))).not.toThrow();
  });

});
