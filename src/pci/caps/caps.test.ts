import { describe, expect, it } from "vitest";
import { PciFunction } from "../function.js";
import type { InterruptSink } from "../interfaces.js";
import { PCI } from "../regs.js";
import { PciTestDevice } from "../test-device.js";
import { addMsi } from "./msi.js";
import { addMsix } from "./msix.js";
import { addPm } from "./pm.js";
import { addPcie, PCIE } from "./pcie.js";
import { SRIOV, SRIOV_CTRL } from "./sriov.js";

function sink(): InterruptSink & { msis: Array<[number, number]>; lines: boolean[] } {
  const msis: Array<[number, number]> = [];
  const lines: boolean[] = [];
  return { msis, lines, msi: (a, d) => void msis.push([a, d]), intx: (_r, _p, l) => void lines.push(l) };
}
const RAM = { read: (_a: number, l: number) => new Uint8Array(l), write: () => true };

function fnWithMsix(): { fn: PciFunction; s: ReturnType<typeof sink> } {
  const fn = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0x020000, express: true, interruptPin: 1, bars: [{ index: 0, kind: "mem32", size: 0x4000 }] });
  addMsix(fn, { vectors: 3, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 });
  addPcie(fn, { type: "endpoint" });
  const s = sink();
  fn.attach(0x10, s, RAM);
  fn.configWrite(PCI.COMMAND, 2, 0x6);
  return { fn, s };
}

describe("MSI-X", () => {
  it("holds a masked vector pending and sends it on unmask; function mask defers everything", () => {
    const { fn, s } = fnWithMsix();
    const cap = fn.config.findCapability(0x11)!;
    fn.barWrite(0, 0x2010, 4, 0xfee00000);
    fn.barWrite(0, 0x2018, 4, 0x41);
    fn.configWrite(cap + 2, 2, 0x8000); // enable
    fn.notify(1); // still masked (entries reset masked)
    expect(s.msis).toEqual([]);
    expect(fn.barRead(0, 0x3000, 4)).toBe(0b10);
    fn.barWrite(0, 0x201c, 4, 0); // unmask vector 1
    expect(s.msis).toEqual([[0xfee00000, 0x41]]);
    expect(fn.barRead(0, 0x3000, 4)).toBe(0);
    fn.configWrite(cap + 2, 2, 0xc000); // function mask
    fn.notify(1);
    expect(s.msis.length).toBe(1);
    fn.configWrite(cap + 2, 2, 0x8000);
    expect(s.msis.length).toBe(2);
    fn.notify(7); // out of range: dropped
    expect(s.msis.length).toBe(2);
    expect(fn.barRead(0, 0x201c, 4)).toBe(0); // vector control reserved bits read 0
    fn.barWrite(0, 0x201c, 4, 0xfffffffe);
    expect(fn.barRead(0, 0x201c, 4)).toBe(0);
  });
  it("falls back to INTx when neither MSI-X nor MSI is enabled, gated by INTx disable", () => {
    const { fn, s } = fnWithMsix();
    fn.notify(0);
    expect(s.lines).toEqual([true]);
    expect(fn.configRead(PCI.STATUS, 2) & 8).toBe(8);
    fn.configWrite(PCI.COMMAND, 2, 0x406);
    expect(s.lines).toEqual([true, false]);
    fn.setIntx(false);
    expect(fn.configRead(PCI.STATUS, 2) & 8).toBe(0);
  });
  it("needs Bus Master Enable to send messages and to DMA", () => {
    const { fn, s } = fnWithMsix();
    const cap = fn.config.findCapability(0x11)!;
    fn.barWrite(0, 0x2000, 4, 0xfee00000);
    fn.barWrite(0, 0x200c, 4, 0);
    fn.configWrite(cap + 2, 2, 0x8000);
    fn.configWrite(PCI.COMMAND, 2, 0x2);
    fn.notify(0);
    expect(s.msis).toEqual([]);
    expect(fn.dma.read(0, 4)).toBeUndefined();
    fn.configWrite(PCI.COMMAND, 2, 0x6);
    expect(fn.dma.read(0, 4)).toBeDefined();
  });
});

describe("MSI", () => {
  it("puts the vector number in the low data bits and keeps masked vectors pending", () => {
    const fn = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0 });
    const msi = addMsi(fn, { vectors: 4 });
    const s = sink();
    fn.attach(8, s, RAM);
    fn.configWrite(PCI.COMMAND, 2, 0x4);
    const off = msi.offset;
    fn.configWrite(off + 4, 4, 0xfee00000);
    fn.configWrite(off + 0xc, 2, 0x30);
    fn.configWrite(off + 2, 2, 0x0071); // enable, 128 vectors requested -> clamped to 4
    expect((fn.configRead(off + 2, 2) >>> 4) & 7).toBe(2);
    fn.configWrite(off + 0x10, 4, 0b100); // mask vector 2
    msi.notify(3);
    msi.notify(2);
    expect(s.msis).toEqual([[0xfee00000, 0x33]]);
    fn.configWrite(off + 0x10, 4, 0);
    expect(s.msis).toEqual([[0xfee00000, 0x33], [0xfee00000, 0x32]]);
  });
});

describe("PM and FLR", () => {
  it("stops decoding in D3hot and ignores D1/D2", () => {
    const fn = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, bars: [{ index: 0, kind: "mem32", size: 4096 }] });
    const pm = addPm(fn);
    fn.configWrite(0x10, 4, 0xc0000000);
    fn.configWrite(PCI.COMMAND, 2, 2);
    expect(fn.barAddress(0)).toBe(0xc0000000);
    fn.configWrite(pm + 4, 2, 1);
    expect(fn.configRead(pm + 4, 2) & 3).toBe(0);
    const fx = fn.configWrite(pm + 4, 2, 3);
    expect(fx).toContainEqual({ kind: "decodeChanged" });
    expect(fn.barAddress(0)).toBeUndefined();
    fn.configWrite(pm + 4, 2, 0);
    expect(fn.barAddress(0)).toBe(0xc0000000);
  });
  it("Initiate FLR resets config space, MSI-X and the device", () => {
    const { fn } = fnWithMsix();
    let resets = 0;
    fn.onReset = () => void resets++;
    fn.configWrite(0x10, 4, 0xc0000000);
    fn.barWrite(0, 0x2000, 4, 0x1234);
    const pcie = fn.config.findCapability(0x10)!;
    const fx = fn.configWrite(pcie + PCIE.DEVCTL, 2, 0x8000);
    expect(fx).toContainEqual({ kind: "flr" });
    expect(resets).toBe(1);
    expect(fn.configRead(0x10, 4)).toBe(0);
    expect(fn.configRead(PCI.COMMAND, 2)).toBe(0);
    expect(fn.barRead(0, 0x2000, 4)).toBe(0);
    expect(fn.configRead(pcie + PCIE.DEVCTL, 2) & 0x8000).toBe(0);
  });
});

describe("SR-IOV", () => {
  function pf(): { dev: PciTestDevice; w: (r: number, s: 1 | 2 | 4, v: number) => void; r: (r: number, s: 1 | 2 | 4) => number } {
    const dev = new PciTestDevice();
    dev.pf.attach(0x100, sink(), RAM);
    const o = dev.sriov.offset;
    return { dev, w: (r, s, v) => void dev.pf.configWrite(o + r, s, v), r: (r, s) => dev.pf.configRead(o + r, s) };
  }
  it("locks NumVFs while VF Enable is set and ignores NumVFs above TotalVFs", () => {
    const { dev, w, r } = pf();
    w(SRIOV.NUM_VFS, 2, 9);
    expect(r(SRIOV.NUM_VFS, 2)).toBe(0);
    w(SRIOV.NUM_VFS, 2, 3);
    w(SRIOV.CTRL, 2, SRIOV_CTRL.VFE);
    w(SRIOV.NUM_VFS, 2, 5);
    expect(r(SRIOV.NUM_VFS, 2)).toBe(3);
    expect(dev.sriov.liveVfs().map((v) => v.rid)).toEqual([0x108, 0x110, 0x118]);
    w(SRIOV.CTRL, 2, 0);
    expect(dev.sriov.liveVfs()).toEqual([]);
    w(SRIOV.NUM_VFS, 2, 5);
    expect(r(SRIOV.NUM_VFS, 2)).toBe(5);
  });
  it("recomputes First VF Offset and VF Stride when ARI Capable Hierarchy changes", () => {
    const { w, r } = pf();
    expect([r(SRIOV.VF_OFFSET, 2), r(SRIOV.VF_STRIDE, 2)]).toEqual([8, 8]);
    w(SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
    expect([r(SRIOV.VF_OFFSET, 2), r(SRIOV.VF_STRIDE, 2)]).toEqual([1, 1]);
    expect(r(SRIOV.VF_DID, 2)).toBe(0x0105);
    expect(r(SRIOV.TOTAL_VFS, 2)).toBe(8);
  });
  it("gives VF n its BAR at VF BAR + n * size while VF MSE is set; VF headers read 0xFFFF and BARs 0", () => {
    const { dev, w } = pf();
    w(SRIOV.VF_BAR0, 4, 0xffffffff);
    expect(dev.pf.configRead(dev.sriov.offset + SRIOV.VF_BAR0, 4)).toBe(0xfffff000);
    w(SRIOV.VF_BAR0, 4, 0xc0100000);
    w(SRIOV.NUM_VFS, 2, 4);
    w(SRIOV.CTRL, 2, SRIOV_CTRL.VFE);
    const vf3 = dev.sriov.vfs[3]!;
    expect(vf3.barAddress(0)).toBeUndefined();
    w(SRIOV.CTRL, 2, SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
    expect(vf3.barAddress(0)).toBe(0xc0103000);
    expect(dev.sriov.vfs[5]!.barAddress(0)).toBeUndefined(); // beyond NumVFs
    expect(vf3.configRead(0, 4)).toBe(0xffffffff);
    vf3.configWrite(0x10, 4, 0xffffffff);
    expect(vf3.configRead(0x10, 4)).toBe(0);
    expect(vf3.configRead(8, 4)).toBe(dev.pf.configRead(8, 4));
  });
  it("resets exactly the VF whose FLR is initiated", () => {
    const { dev, w } = pf();
    w(SRIOV.VF_BAR0, 4, 0xc0100000);
    w(SRIOV.NUM_VFS, 2, 2);
    w(SRIOV.CTRL, 2, SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
    const [a, b] = [dev.sriov.vfs[0]!, dev.sriov.vfs[1]!];
    a.barWrite(0, 0x10, 4, 0xaaaa);
    b.barWrite(0, 0x10, 4, 0xbbbb);
    a.configWrite(PCI.COMMAND, 2, 4);
    b.configWrite(PCI.COMMAND, 2, 4);
    const pcie = b.config.findCapability(0x10)!;
    b.configWrite(pcie + PCIE.DEVCTL, 2, 0x8000);
    expect(b.barRead(0, 0x10, 4)).toBe(0);
    expect(b.configRead(PCI.COMMAND, 2)).toBe(0);
    expect(a.barRead(0, 0x10, 4)).toBe(0xaaaa);
    expect(a.configRead(PCI.COMMAND, 2)).toBe(4);
  });
});
