/**
 * What firmware and a driver do before a guest can reach a device, as fuzz macro operations:
 * bus numbers and windows on the root ports, BARs sized and placed, decode and bus mastering on,
 * SR-IOV with VF BARs and VF Enable. Random operations interleave with these legal sequences.
 * Also the config offsets worth aiming random writes at (header, every capability's registers).
 * @module
 */
import { CMD, EXT_CAP_ID, PCI } from "../pci/regs.js";
import { PCIE } from "../pci/caps/pcie.js";
import { SRIOV, SRIOV_CTRL } from "../pci/caps/sriov.js";
import type { PciFunction } from "../pci/function.js";
import type { PciRoot } from "../pci/topology/root-complex.js";

/** Base of the MMIO window firmware gives root port `i`; each port gets 16 MiB. */
export const MMIO_BASE = 0xc000_0000;
/** Size of each port's window. */
export const PORT_WINDOW = 0x100_0000;

/** Options of {@link firmwareSetup}. */
export interface SetupOptions {
  /** VFs to enable on every SR-IOV PF (0 = leave VF Enable off). */
  numVfs: number;
  /** Enable ARI forwarding on the ports and ARI Capable Hierarchy on the PFs. */
  ari: boolean;
}

/** Sizes memory BAR `i` of `fn` through config space (all ones, read back, restore). */
function sizeBar(root: PciRoot, bus: number, devfn: number, reg: number): { size: number; is64: boolean; io: boolean } {
  const old = root.configRead(bus, devfn, reg, 4);
  root.configWrite(bus, devfn, reg, 4, 0xffffffff);
  const v = root.configRead(bus, devfn, reg, 4);
  root.configWrite(bus, devfn, reg, 4, old);
  if (v === 0 || v === 0xffffffff) return { size: 0, is64: false, io: false };
  if ((v & 1) !== 0) return { size: ((~(v & ~3) >>> 0) & 0xffff) + 1, is64: false, io: true };
  return { size: (~(v & ~0xf) >>> 0) + 1, is64: (v & 6) === 4, io: false };
}

/**
 * Programs the topology the way SeaBIOS and Linux would: port `i` gets bus `i + 1` and a 16 MiB
 * window at `MMIO_BASE + i * 16 MiB`; every function in its slot gets its BARs placed, memory
 * decode and bus mastering enabled; every SR-IOV PF gets NumVFs, VF BARs, VF Enable and VF MSE.
 */
export function firmwareSetup(root: PciRoot, o: SetupOptions): void {
  const ports = root.rootPorts;
  ports.forEach((port, i) => {
    const rid = port.fn.rid;
    const bus = rid >>> 8;
    const devfn = rid & 0xff;
    const sec = i + 1;
    const base = MMIO_BASE + i * PORT_WINDOW;
    const limit = base + PORT_WINDOW - 1;
    root.configWrite(bus, devfn, PCI.PRIMARY_BUS, 4, (sec << 16) | (sec << 8));
    root.configWrite(bus, devfn, PCI.MEM_BASE, 4, (((limit >>> 16) & 0xfff0) << 16) | ((base >>> 16) & 0xfff0));
    root.configWrite(bus, devfn, PCI.PREF_BASE, 4, 0x0000fff0); // prefetchable window closed
    root.configWrite(bus, devfn, PCI.COMMAND, 2, CMD.MEMORY | CMD.BUS_MASTER);
    const pcie = port.fn.config.findCapability(0x10);
    if (pcie !== undefined) {
      const c2 = root.configRead(bus, devfn, pcie + PCIE.DEVCTL2, 2);
      root.configWrite(bus, devfn, pcie + PCIE.DEVCTL2, 2, o.ari ? c2 | 0x20 : c2 & ~0x20);
    }
    let next = base;
    const place = (size: number): number => {
      const a = Math.ceil(next / size) * size;
      next = a + size;
      return a;
    };
    port.functions.forEach((fn, f) => {
      if (f > 7 && !o.ari) return;
      for (let b = 0; b < 6; b++) {
        const reg = PCI.BAR0 + 4 * b;
        const s = sizeBar(root, sec, f, reg);
        if (s.size === 0 || s.io) continue;
        const a = place(s.size);
        root.configWrite(sec, f, reg, 4, a);
        if (s.is64) root.configWrite(sec, f, reg + 4, 4, 0), b++;
      }
      root.configWrite(sec, f, PCI.COMMAND, 2, CMD.MEMORY | CMD.BUS_MASTER);
      const sr = fn.config.findExtCapability(EXT_CAP_ID.SRIOV);
      if (sr === undefined) return;
      root.configWrite(sec, f, sr + SRIOV.CTRL, 2, 0);
      root.configWrite(sec, f, sr + SRIOV.CTRL, 2, o.ari ? SRIOV_CTRL.ARI : 0);
      const total = root.configRead(sec, f, sr + SRIOV.TOTAL_VFS, 2);
      const n = Math.min(o.numVfs, total);
      root.configWrite(sec, f, sr + SRIOV.NUM_VFS, 2, n);
      for (let b = 0; b < 6; b++) {
        const reg = sr + SRIOV.VF_BAR0 + 4 * b;
        const s = sizeBar(root, sec, f, reg);
        if (s.size === 0 || s.io) continue;
        const a = place(s.size * Math.max(1, total));
        root.configWrite(sec, f, reg, 4, a);
        if (s.is64) root.configWrite(sec, f, reg + 4, 4, 0), b++;
      }
      if (n > 0) root.configWrite(sec, f, sr + SRIOV.CTRL, 2, (o.ari ? SRIOV_CTRL.ARI : 0) | SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
    });
  });
  // bus mastering for every VF that now exists
  for (const r of root.enumerate()) if (r.fn.isVf) root.configWrite(r.bus, r.devfn, PCI.COMMAND, 2, CMD.BUS_MASTER);
}

const offsetCache = new WeakMap<PciFunction, number[]>();

/**
 * Config offsets worth aiming at in `fn`: the header's registers and every register of every
 * capability it has (PM, MSI, PCIe, MSI-X, vendor; AER, ARI, SR-IOV).
 */
export function interestingOffsets(fn: PciFunction): readonly number[] {
  let out = offsetCache.get(fn);
  if (out !== undefined) return out;
  out = [];
  for (let o = 0; o < 0x40; o += 2) out.push(o);
  const cs = fn.config;
  for (const id of [0x01, 0x05, 0x09, 0x10, 0x11]) {
    const at = cs.findCapability(id);
    if (at !== undefined) for (let o = 0; o < 0x40; o += 2) out.push(at + o);
  }
  if (cs.size > 256) {
    for (const id of [EXT_CAP_ID.AER, EXT_CAP_ID.ARI, EXT_CAP_ID.SRIOV]) {
      const at = cs.findExtCapability(id);
      if (at !== undefined) for (let o = 0; o < 0x40; o += 2) out.push(at + o);
    }
  }
  offsetCache.set(fn, out);
  return out;
}
