/**
 * The 82576's PCI layout as Linux igb/igbvf expect it (values as QEMU's igb uses them): BARs,
 * capability placement and parameters, SR-IOV routing; and BAR handlers onto an {@link IgbCore}.
 * The PCI wiring (a `PciFunction` per PF/VF) consumes these; it lives with the PCI core's API.
 * @module
 */
import type { IgbCore } from "./core.js";
import { IGB_IDS, IGB_SIZES } from "./regs.js";
import { IgbVfRegs } from "./vf.js";

/** One BAR of the layout. */
export interface IgbBarLayout {
  /** BAR index. */
  readonly index: number;
  /** Decoding kind. */
  readonly kind: "mem32" | "mem64" | "io";
  /** Size in bytes (a power of two). */
  readonly size: number;
  /** Prefetchable memory. */
  readonly prefetchable: boolean;
}

/** The PF function. */
export const IGB_PF_LAYOUT = {
  vendorId: IGB_IDS.vendor,
  deviceId: IGB_IDS.pf,
  revision: IGB_IDS.revision,
  classCode: IGB_IDS.classCode,
  subsystemVendorId: IGB_IDS.vendor,
  subsystemId: 0x0000,
  interruptPin: 1,
  bars: [
    { index: 0, kind: "mem32", size: IGB_SIZES.pfBar0, prefetchable: false },
    { index: 1, kind: "mem32", size: IGB_SIZES.pfFlash, prefetchable: false },
    { index: 2, kind: "io", size: IGB_SIZES.pfIo, prefetchable: false },
    { index: 3, kind: "mem64", size: IGB_SIZES.pfMsix, prefetchable: false },
  ] as readonly IgbBarLayout[],
  /**
   * Capability offsets in config space, as the PCI core places them when `pci.ts` adds them in
   * this order (each one packed after the last; a test walks the built function's lists).
   */
  caps: { pm: 0x40, msi: 0x48, msix: 0x60, pcie: 0x6c, aer: 0x100, ari: 0x12c, sriov: 0x134 },
  /** PM: version 1.1 with Device Specific Initialization. */
  pm: { dsi: true },
  /** MSI: one vector, 64-bit, per-vector masking. */
  msi: { vectors: 1, addr64: true, perVectorMask: true },
  /** MSI-X: 10 vectors, table at BAR3+0, PBA at BAR3+0x2000. */
  msix: { vectors: IGB_SIZES.pfVectors, tableBar: 3, tableOffset: 0, pbaBar: 3, pbaOffset: 0x2000 },
  /** PCIe endpoint with function-level reset. */
  pcie: { type: "endpoint", flr: true },
  /** SR-IOV. */
  sriov: {
    totalVfs: IGB_SIZES.pools,
    initialVfs: IGB_SIZES.pools,
    vfDeviceId: IGB_IDS.vf,
    firstVfOffset: 0x80,
    vfStride: 2,
    vfBars: [
      { index: 0, kind: "mem64", size: IGB_SIZES.vfBar0, prefetchable: true },
      { index: 3, kind: "mem64", size: IGB_SIZES.vfMsix, prefetchable: true },
    ] as readonly IgbBarLayout[],
  },
} as const;

/** A VF function (its header reads Vendor ID 0xFFFF; the SR-IOV capability supplies identity). */
export const IGB_VF_LAYOUT = {
  deviceId: IGB_IDS.vf,
  revision: IGB_IDS.revision,
  classCode: IGB_IDS.classCode,
  /** Capability offsets of a VF function (MSI-X and PCIe only; a test walks the built function's list). */
  caps: { msix: 0x40, pcie: 0x4c },
  /** MSI-X: exactly the 3 vectors igbvf asks for (RX, TX, mailbox/other). */
  msix: { vectors: IGB_SIZES.vfVectors, tableBar: 3, tableOffset: 0, pbaBar: 3, pbaOffset: 0x2000 },
  pcie: { type: "endpoint", flr: true },
} as const;

/** A BAR access handler (the PCI core's `BarHandler` shape). Never throws. */
export interface IgbBarHandler {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/**
 * BAR handlers of the PF: BAR0 registers, BAR1 flash (reads all-ones, writes dropped: no flash
 * is modelled), BAR2 IOADDR/IODATA. BAR3 holds only the MSI-X table/PBA, which the PCI core serves.
 */
export function igbPfBars(core: IgbCore): { bar0: IgbBarHandler; bar1: IgbBarHandler; bar2: IgbBarHandler } {
  return {
    bar0: { read: (o, s) => core.mmioRead(o, s), write: (o, s, v) => core.mmioWrite(o, s, v) },
    bar1: { read: (_o, s) => (s === 4 ? 0xffffffff : s === 2 ? 0xffff : 0xff), write: () => undefined },
    bar2: { read: (o, s) => core.ioRead(o, s), write: (o, s, v) => core.ioWrite(o, s, v) },
  };
}

/** BAR0 handler of VF `vf` (VF BAR3 holds only MSI-X, served by the PCI core). */
export function igbVfBar0(core: IgbCore, vf: number): IgbBarHandler {
  return new IgbVfRegs(core, vf);
}
