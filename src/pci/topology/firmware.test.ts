import { describe, expect, it } from "vitest";
import { PCIE } from "../caps/pcie.js";
import { SRIOV, SRIOV_CTRL } from "../caps/sriov.js";
import { PciResourceError } from "../errors.js";
import { PciFunction, type AccessSize, type BarHandler } from "../function.js";
import { PCI } from "../regs.js";
import { PciTestDevice, TESTDEV } from "../test-device.js";
import { assignResources } from "./firmware.js";
import { PciRoot } from "./root-complex.js";

const RAM = { read: (_a: number, l: number) => new Uint8Array(l), write: () => true };

/** A handler that answers `tag + offset` and records writes. */
function tagged(tag: number): BarHandler & { writes: Array<[number, number]> } {
  const writes: Array<[number, number]> = [];
  return { writes, read: (o: number, _s: AccessSize) => (tag + o) >>> 0, write: (o, _s, v) => void writes.push([o, v]) };
}

/**
 * Root bus: a plain endpoint at 00:02.0 (I/O + memory BARs); ports at 00:08.0 (the test device:
 * SR-IOV with 8 VFs, 64-bit BAR2, VF BARs), 00:10.0 (a two-function device, prefetchable 64-bit
 * BAR above 4 GiB-capable), 00:18.0 (empty).
 */
function build() {
  const root = new PciRoot({ interrupts: { msi: () => {}, intx: () => {} }, dma: RAM });
  const plain = new PciFunction({
    vendorId: 0x1234, deviceId: 0x11, classCode: 0xff0000,
    bars: [{ index: 0, kind: "io", size: 32, handler: tagged(0x1000) }, { index: 1, kind: "mem32", size: 0x2000, handler: tagged(0x2000) }],
  });
  root.addFunction(0x10, plain);
  const dev = new PciTestDevice();
  root.addRootPort(0x40).plug(dev.pf, { coldplug: true });
  const mf = [0, 1].map((f) => new PciFunction({
    vendorId: 0x1234, deviceId: 0x20 + f, classCode: 0xff0000, multiFunction: true, express: true,
    bars: [
      { index: 0, kind: "mem64", size: 0x10_0000, prefetchable: true, handler: tagged(0x3000 + f * 0x100) },
      { index: 2, kind: "mem32", size: 0x1000, handler: tagged(0x4000 + f * 0x100) },
      { index: 4, kind: "io", size: 256, handler: tagged(0x5000 + f * 0x100) },
    ],
  }));
  root.addRootPort(0x80).plug(mf, { coldplug: true });
  root.addRootPort(0xc0);
  return { root, plain, dev, mf };
}

const RANGES = { mmio: [0xc000_0000, 0xdfff_ffff], prefetchable: [0x8_0000_0000, 0x8_ffff_ffff], io: [0xc000, 0xffff] } as const;

describe("assignResources (firmware-style)", () => {
  it("numbers buses, assigns every BAR without overlap inside its port's windows, and enables decode", () => {
    const { root, plain, dev, mf } = build();
    const a = assignResources(root, RANGES);
    expect(a.ports.map((p) => [p.devfn, p.secondaryBus, p.subordinateBus])).toEqual([[0x40, 1, 1], [0x80, 2, 2], [0xc0, 3, 3]]);
    // Every function answers config reads where it now lives.
    expect(root.lookup(0, 0x10)).toBe(plain);
    expect(root.lookup(1, 0)).toBe(dev.pf);
    expect(root.lookup(2, 0)).toBe(mf[0]);
    expect(root.lookup(2, 1)).toBe(mf[1]);
    expect(root.configRead(1, 0, PCI.VENDOR_ID, 2)).toBe(TESTDEV.VENDOR);
    // 2 (plain) + 2 (PF) + 2 (VF regions) + 3 + 3 (the two functions).
    expect(a.bars.length).toBe(12);
    const sorted = [...a.bars].sort((x, y) => (x.kind === "io" ? 1 : 0) - (y.kind === "io" ? 1 : 0) || x.base - y.base);
    for (let i = 1; i < sorted.length; i++) {
      const [p, q] = [sorted[i - 1]!, sorted[i]!];
      if ((p.kind === "io") === (q.kind === "io")) expect(p.base + p.size, `${p.bus}:${p.devfn} BAR${p.bar} / ${q.bus}:${q.devfn} BAR${q.bar}`).toBeLessThanOrEqual(q.base);
    }
    for (const b of a.bars) {
      const align = b.vf?.vfSize ?? b.size;
      expect(b.base % align).toBe(0);
      const range = b.kind === "io" ? RANGES.io : b.prefetchable ? RANGES.prefetchable : RANGES.mmio;
      expect(b.base >= range[0] && b.base + b.size - 1 <= range[1]).toBe(true);
      if (b.bus === 0) continue;
      const port = a.ports.find((p) => p.secondaryBus === b.bus)!;
      const w = b.kind === "io" ? port.io : b.prefetchable ? port.pref : port.mem;
      expect(w, `window for ${b.bus}:${b.devfn} BAR${b.bar}`).toBeDefined();
      expect(b.base >= w![0] && b.base + b.size - 1 <= w![1]).toBe(true);
      // The root port decodes the same windows.
      const rp = root.rootPorts.find((r) => r.secondaryBus === b.bus)!;
      expect(b.kind === "io" ? rp.ioWindow() : b.prefetchable ? rp.prefWindow() : rp.memWindow()).toEqual(w);
    }
    expect(a.ports[2]).toMatchObject({ mem: undefined, pref: undefined, io: undefined });
    expect(root.rootPorts[2]!.memWindow()).toBeUndefined();
    // BAR accesses reach each function at its assigned address.
    const at = (bus: number, devfn: number, bar: number) => a.bars.find((b) => b.bus === bus && b.devfn === devfn && b.bar === bar && b.vf === undefined)!.base;
    expect(root.ioRead(at(0, 0x10, 0) + 4, 4)).toBe(0x1004);
    expect(root.mmioRead(at(0, 0x10, 1) + 8, 4)).toBe(0x2008);
    expect(root.mmioRead(at(1, 0, 0), 4)).toBe(TESTDEV.ID);
    expect(root.mmioRead(at(1, 0, 0) + 4, 4)).toBe(0xffff);
    expect(at(2, 0, 0)).toBeGreaterThanOrEqual(0x8_0000_0000);
    expect(root.mmioRead(at(2, 0, 0) + 0x10, 4)).toBe(0x3010);
    expect(root.mmioRead(at(2, 1, 0) + 0x10, 4)).toBe(0x3110);
    expect(root.mmioRead(at(2, 1, 2), 4)).toBe(0x4100);
    expect(root.ioRead(at(2, 1, 4) + 2, 2)).toBe(0x5102);
    for (const f of [plain, dev.pf, ...mf]) expect(f.busMaster()).toBe(true);
    expect(root.unclaimed).toBe(0);
  });

  it("places VF BAR regions so that every VF decodes once the OS enables them", () => {
    const { root, dev } = build();
    const a = assignResources(root, RANGES);
    const vf0 = a.bars.find((b) => b.vf !== undefined && b.bar === 0)!;
    expect(vf0.vf).toEqual({ vfSize: 4096, totalVfs: 8 });
    expect(vf0.size).toBe(8 * 4096);
    // What Linux does: ARI forwarding on the port, ARI Capable Hierarchy, NumVFs, VF Enable + MSE.
    root.configWrite(0, 0x40, root.rootPorts[0]!.pcie.offset + PCIE.DEVCTL2, 2, 1 << 5);
    const sr = dev.sriov.offset;
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
    root.configWrite(1, 0, sr + SRIOV.NUM_VFS, 2, 8);
    root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI | SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
    for (let n = 0; n < 8; n++) {
      expect(root.mmioRead(vf0.base + n * 4096 + 4, 4)).toBe(n); // the VF's identity register
      expect(root.lookup(1, 1 + n)).toBe(dev.sriov.vfs[n]);
    }
    const maps = root.memoryMap();
    for (let i = 1; i < maps.length; i++) expect(maps[i - 1]!.base + maps[i - 1]!.size).toBeLessThanOrEqual(maps[i]!.base);
  });

  it("fails with a typed error when a range is too small or missing", () => {
    expect(() => assignResources(build().root, { mmio: [0xc000_0000, 0xc00f_ffff], io: [0xc000, 0xffff] })).toThrow(PciResourceError);
    expect(() => assignResources(build().root, { mmio: [0xc000_0000, 0xdfff_ffff] })).toThrow(/no I\/O range/);
  });
});
