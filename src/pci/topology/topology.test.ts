import { describe, expect, it } from "vitest";
import { PCIE, SLTCTL, SLTSTA } from "../caps/pcie.js";
import { SRIOV, SRIOV_CTRL } from "../caps/sriov.js";
import { demoTopology } from "../demo-topology.js";
import { StateError } from "../../state/parse.js";
import { PciFunction } from "../function.js";
import { fromHex, toHex } from "../hex.js";
import { PCI } from "../regs.js";
import { PciTestDevice } from "../test-device.js";
import { PciRoot } from "./root-complex.js";

const RAM = { read: (_a: number, l: number) => new Uint8Array(l), write: () => true };

function rig() {
  const msis: number[] = [];
  const root = new PciRoot({ interrupts: { msi: (_a, d) => void msis.push(d), intx: () => {} }, dma: RAM });
  const port = root.addRootPort(0x08);
  const w = (reg: number, size: 1 | 2 | 4, v: number) => root.configWrite(0, 0x08, reg, size, v);
  const r = (reg: number, size: 1 | 2 | 4) => root.configRead(0, 0x08, reg, size);
  w(PCI.PRIMARY_BUS, 4, 0x00020200);
  w(PCI.COMMAND, 2, 0x6);
  // MSI for the port: address/data, enable.
  const msi = port.fn.config.findCapability(0x05)!;
  w(msi + 4, 4, 0xfee00000);
  w(msi + 0xc, 2, 0x55);
  w(msi + 2, 2, 1);
  const sl = port.pcie.offset;
  return { root, port, w, r, msis, sl };
}

describe("hotplug slot", () => {
  it("runs the pciehp sequence: presence, power on, link up, command completed, interrupts", () => {
    const { root, port, w, r, msis, sl } = rig();
    w(sl + PCIE.SLTCTL, 2, SLTCTL.PDC_EN | SLTCTL.CC_EN | SLTCTL.HPI_EN | SLTCTL.DLLSC_EN | SLTCTL.PCC);
    // The write is a command: Command Completed with an interrupt.
    expect(r(sl + PCIE.SLTSTA, 2) & SLTSTA.CC).toBe(SLTSTA.CC);
    expect(msis).toEqual([0x55]);
    w(sl + PCIE.SLTSTA, 2, SLTSTA.CC);
    const dev = new PciTestDevice();
    port.plug(dev.pf);
    const st = r(sl + PCIE.SLTSTA, 2);
    expect(st & (SLTSTA.PDS | SLTSTA.PDC)).toBe(SLTSTA.PDS | SLTSTA.PDC);
    expect(msis.length).toBe(2);
    expect(root.configRead(2, 0, 0, 2)).toBe(0xffff); // slot not powered yet
    w(sl + PCIE.SLTSTA, 2, SLTSTA.PDC);
    w(sl + PCIE.SLTCTL, 2, SLTCTL.PDC_EN | SLTCTL.CC_EN | SLTCTL.HPI_EN | SLTCTL.DLLSC_EN); // power on
    expect(r(sl + PCIE.LNKSTA, 2) & (1 << 13)).toBe(1 << 13);
    expect(r(sl + PCIE.SLTSTA, 2) & SLTSTA.DLLSC).toBe(SLTSTA.DLLSC);
    expect(root.configRead(2, 0, 0, 4)).toBe(0x00051b36);
    expect(dev.pf.rid).toBe(0x200);
    // Surprise removal: presence and link go down, the function is gone.
    w(sl + PCIE.SLTSTA, 2, 0xffff);
    const n = msis.length;
    expect(port.unplug()).toEqual([dev.pf]);
    expect(r(sl + PCIE.SLTSTA, 2) & (SLTSTA.PDS | SLTSTA.PDC | SLTSTA.DLLSC)).toBe(SLTSTA.PDC | SLTSTA.DLLSC);
    expect(msis.length).toBe(n + 1);
    expect(root.configRead(2, 0, 0, 4)).toBe(0xffffffff);
  });
  it("reports an attention button press only when enabled", () => {
    const { port, w, r, msis, sl } = rig();
    port.pressAttentionButton();
    expect(r(sl + PCIE.SLTSTA, 2) & SLTSTA.ABP).toBe(SLTSTA.ABP);
    expect(msis).toEqual([]);
    w(sl + PCIE.SLTCTL, 2, SLTCTL.ABP_EN | SLTCTL.HPI_EN);
    expect(msis.length).toBe(1);
  });
});

describe("root complex routing", () => {
  it("forwards only device 0 behind a root port unless ARI forwarding is on", () => {
    const { root, device } = demoTopology();
    const sr = device.sriov.offset;
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
    root.configWrite(1, 0, sr + SRIOV.NUM_VFS, 2, 8);
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI | SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
    expect(root.lookup(1, 8)).toBe(device.sriov.vfs[7]); // VF 7 at ARI function 8
    const sl = root.rootPorts[0]!.pcie.offset;
    root.configWrite(0, 0x08, sl + PCIE.DEVCTL2, 2, 0);
    expect(root.lookup(1, 8)).toBeUndefined(); // device 1 is not forwarded
    expect(root.lookup(1, 7)).toBe(device.sriov.vfs[6]); // device 0, function 7 still is
  });
  it("decodes a BAR behind a root port only inside the port's window and while it forwards memory", () => {
    const { root } = demoTopology();
    expect(root.mmioRead(0xc0000000, 4)).toBe(0x4e560001);
    root.configWrite(0, 0x08, PCI.MEM_LIMIT, 2, 0x0000); // close the window (base > limit)
    expect(root.mmioRead(0xc0000000, 4)).toBe(0xffffffff);
    root.configWrite(0, 0x08, PCI.MEM_LIMIT, 2, 0xc000);
    root.configWrite(0, 0x08, PCI.COMMAND, 2, 0);
    expect(root.mmioRead(0xc0000000, 4)).toBe(0xffffffff);
    root.configWrite(0, 0x08, PCI.COMMAND, 2, 2);
    expect(root.mmioRead(0xc0000000, 4)).toBe(0x4e560001);
  });
  it("re-routes a moved BAR and tells listeners", () => {
    const { root } = demoTopology();
    const moves: unknown[] = [];
    root.onEffect((_fn, e) => void moves.push(e));
    root.configWrite(1, 0, PCI.BAR0, 4, 0xc0002000);
    expect(moves).toContainEqual({ kind: "barMoved", bar: 0, from: 0xc0000000, to: 0xc0002000 });
    expect(root.mmioRead(0xc0002000, 4)).toBe(0x4e560001);
    expect(root.mmioRead(0xc0000000, 4)).toBe(0xffffffff);
  });
  it("routes VF BARs by VF MSE and removes VFs on VF Enable = 0", () => {
    const { root, device } = demoTopology();
    expect(root.mmioRead(0xc0011004, 4)).toBe(1); // VF 1's identity register
    const sr = device.sriov.offset;
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI | SRIOV_CTRL.VFE);
    expect(root.mmioRead(0xc0011004, 4)).toBe(0xffffffff);
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
    expect(root.lookup(1, 1)).toBeUndefined();
    expect(root.enumerate().length).toBe(3);
  });
  it("secondary bus reset resets the device below the port", () => {
    const { root } = demoTopology();
    root.mmioWrite(0xc0000010, 4, 0x1234);
    root.configWrite(0, 0x08, PCI.BRIDGE_CONTROL, 2, 0x40);
    root.configWrite(0, 0x08, PCI.BRIDGE_CONTROL, 2, 0);
    expect(root.configRead(1, 0, PCI.BAR0, 4)).toBe(0);
    root.configWrite(1, 0, PCI.BAR0, 4, 0xc0000000);
    root.configWrite(1, 0, PCI.COMMAND, 2, 2);
    expect(root.mmioRead(0xc0000010, 4)).toBe(0);
  });
  it("saves and restores the whole topology, and rejects a mismatched one", () => {
    const a = demoTopology();
    a.root.mmioWrite(0xc0000010, 4, 0x77);
    const s = JSON.parse(JSON.stringify(a.root.save()));
    const b = demoTopology();
    b.root.configWrite(1, 0, PCI.BAR0, 4, 0xc0003000);
    b.root.restore(b.root.stateType.parse(s));
    expect(b.root.save()).toEqual(a.root.save());
    expect(b.root.configRead(1, 0, PCI.BAR0, 4)).toBe(0xc0000000);
    const lone = new PciRoot({ interrupts: { msi: () => {}, intx: () => {} }, dma: RAM });
    expect(() => lone.stateType.parse(s)).toThrow(StateError);
    expect(() => lone.stateType.parse(s)).toThrow(/pci-root\.ports: 1 entries, at most 0/);
    const other = new PciFunction({ vendorId: 0x1234, deviceId: 1, classCode: 0 });
    const c = new PciRoot({ interrupts: { msi: () => {}, intx: () => {} }, dma: RAM });
    c.addFunction(8, other);
    expect(() => c.stateType.parse({ ...s, ports: {} })).toThrow(/pci-root\.functions\.00:01\.0: missing/);
  });
  it("checks a root port's slot against its occupancy, and carries slot functions or leaves them to their devices", () => {
    const a = demoTopology();
    const port = a.root.rootPorts[0]!;
    const s = JSON.parse(JSON.stringify(port.save()));
    const sl = port.pcie.offset;
    const patch = (off: number, set: number, clear: number) => {
      const b = fromHex(s.fn.config);
      const v = ((b[off]! | (b[off + 1]! << 8)) & ~clear) | set;
      b[off] = v & 0xff;
      b[off + 1] = v >>> 8;
      return { ...s, fn: { ...s.fn, config: toHex(b) } };
    };
    const fresh = demoTopology().root.rootPorts[0]!;
    expect(() => fresh.stateType.parse(patch(sl + PCIE.SLTSTA, 0, SLTSTA.PDS), "port")).toThrow(/Slot Status\]: Presence Detect State false for a slot occupied/);
    expect(() => fresh.stateType.parse(patch(sl + PCIE.LNKSTA, 0, 1 << 13), "port")).toThrow(/Link Status\]: Data Link Layer Link Active false for a slot occupied and powered true/);
    expect(() => fresh.stateType.parse(patch(sl + PCIE.SLTCTL, SLTCTL.PCC, 0), "port")).toThrow(/Link Active true for a slot occupied and powered false/);
    expect(() => fresh.stateType.parse({ ...s, occupied: 0 }, "port")).toThrow("port.occupied: 0 functions, but this port's slot holds 1");
    // Slot functions travel with the port, or (slotFunctions: false) with their devices.
    const bare = JSON.parse(JSON.stringify(port.save({ slotFunctions: false })));
    expect(bare.slot).toBeUndefined();
    expect(() => fresh.stateTypeWith({ slotFunctions: true }).parse(bare, "port")).toThrow("port.slot: missing");
    expect(() => fresh.stateTypeWith({ slotFunctions: false }).parse(s, "port")).toThrow(/port\.slot: present/);
    const before = fresh.functions[0]!.save();
    fresh.restore(fresh.stateType.parse(bare, "port"));
    expect(fresh.functions[0]!.save()).toEqual(before);
    fresh.restore(fresh.stateType.parse(s, "port"));
    expect(fresh.save()).toEqual(s);
    // A version 1 port state (no version field) loads too.
    expect(fresh.stateType.parse({ fn: s.fn, irqAsserted: false }, "port")).toMatchObject({ version: 2, occupied: 1 });
  });
});

