/**
 * The 82576 as PCI functions: the PF (8086:10C9) with PM, MSI, MSI-X (10 vectors in BAR3), PCIe,
 * AER, ARI and SR-IOV (TotalVFs 8, First VF Offset 0x80, VF Stride 2, VF Device ID 0x10CA), and
 * its eight VFs (BAR0 register slice, BAR3 with exactly the 3 MSI-X vectors igbvf uses), all over
 * one {@link IgbCore}.
 * @module
 */
import { addAer } from "../../pci/caps/aer.js";
import { addAri } from "../../pci/caps/ari.js";
import { addMsi } from "../../pci/caps/msi.js";
import { addMsix } from "../../pci/caps/msix.js";
import { addPcie } from "../../pci/caps/pcie.js";
import { addPm } from "../../pci/caps/pm.js";
import { addSriov, type SriovCap } from "../../pci/caps/sriov.js";
import { PciFunction } from "../../pci/function.js";
import type { Clock } from "../../pci/interfaces.js";
import type { DeviceIo, StatefulDevice } from "../lifecycle/device.js";
import type { Activity } from "../../state/migration.js";
import type { NetBackend } from "../net/backend.js";
import type { StateType } from "../../state/versioned.js";
import { IgbCore, type IgbCoreState } from "./core.js";
import { IGB_PF_LAYOUT, IGB_VF_LAYOUT, igbPfBars, igbVfBar0 } from "./layout.js";

/** Options of {@link IgbPciDevice}. */
export interface IgbPciOptions {
  /** The PF's permanent MAC (its NVM). */
  mac: Uint8Array;
  /** Device time. Given here (with `backend`), the device is attached at once: a shorthand for {@link IgbPciDevice.attach}. */
  clock?: Clock;
  /** The uplink. */
  backend?: NetBackend;
  /** One line per dropped guest access or frame. */
  trace?: (msg: string) => void;
}

/**
 * The PCI function of VF `vf` over `core`: BAR0 the VF's register slice, BAR3 its MSI-X table
 * with exactly the 3 vectors igbvf uses, PCIe with FLR (which resets the VF in the core). The
 * SR-IOV capability creates these as VFs; a pass-through shim puts one in a slot of its own.
 * The caller routes the core's VF interrupts and DMA to the function it returns.
 */
export function createIgbVfFunction(core: IgbCore, vf: number): PciFunction {
  const L = IGB_PF_LAYOUT;
  const V = IGB_VF_LAYOUT;
  const fn = new PciFunction({
    vendorId: L.vendorId,
    deviceId: V.deviceId,
    revision: V.revision,
    classCode: V.classCode,
    express: true,
    bars: [
      { index: 0, kind: "mem64", size: L.sriov.vfBars[0]!.size, prefetchable: true, handler: igbVfBar0(core, vf) },
      { index: 3, kind: "mem64", size: L.sriov.vfBars[1]!.size, prefetchable: true },
    ],
  });
  addMsix(fn, { ...V.msix });
  addPcie(fn, { type: "endpoint", flr: true });
  fn.onReset = () => core.vfFlr(vf);
  return fn;
}

/**
 * The 82576 with its PCI functions.
 * @example
 * ```ts
 * const nic = new IgbPciDevice({ mac, clock, backend });       // created and attached
 * const dst = new IgbPciDevice({ mac });                        // or: create, restore, attach
 * dst.restore(dst.stateType.parse(saved));
 * dst.attach({ clock, backend });
 * ```
 */
export class IgbPciDevice implements StatefulDevice<IgbCoreState> {
  /** The PF function. */
  readonly pf: PciFunction;
  /** The VF functions (created up front, enabled by the SR-IOV capability). */
  readonly vfs: PciFunction[] = [];
  /** The PF's SR-IOV capability. */
  readonly sriov: SriovCap;
  /** The NIC core. */
  readonly core: IgbCore;

  constructor(opts: IgbPciOptions) {
    const vfs = this.vfs;
    let pfRef: PciFunction | undefined;
    const coreOpts: ConstructorParameters<typeof IgbCore>[0] = {
      mac: opts.mac,
      maxVfs: IGB_PF_LAYOUT.sriov.totalVfs,
      dma: (fn) => (fn < 0 ? pfRef!.dma : vfs[fn]!.dma),
      irq: {
        pf: (v) => pfRef?.notify(v),
        pfIntx: (level) => pfRef?.setIntx(level),
        vf: (n, v) => vfs[n]?.notify(v),
      },
      ...(opts.trace !== undefined ? { trace: opts.trace } : {}),
    };
    const core = new IgbCore(coreOpts);
    this.core = core;
    const L = IGB_PF_LAYOUT;
    const h = igbPfBars(core);
    const handlers = [h.bar0, h.bar1, h.bar2, undefined];
    const pf = new PciFunction({
      vendorId: L.vendorId,
      deviceId: L.deviceId,
      revision: L.revision,
      classCode: L.classCode,
      subsystemVendorId: L.subsystemVendorId,
      subsystemId: L.subsystemId,
      interruptPin: 1,
      express: true,
      bars: L.bars.map((b, i) => ({ index: b.index, kind: b.kind, size: b.size, prefetchable: b.prefetchable, ...(handlers[i] ? { handler: handlers[i] } : {}) })),
    });
    pfRef = pf;
    addPm(pf);
    addMsi(pf, { ...L.msi });
    addMsix(pf, { ...L.msix });
    addPcie(pf, { type: "endpoint", flr: true });
    addAer(pf);
    addAri(pf);
    this.sriov = addSriov(pf, {
      totalVfs: L.sriov.totalVfs,
      initialVfs: L.sriov.initialVfs,
      vfDeviceId: L.sriov.vfDeviceId,
      firstVfOffset: L.sriov.firstVfOffset,
      vfStride: L.sriov.vfStride,
      vfBars: L.sriov.vfBars.map((b) => ({ index: b.index, kind: b.kind as "mem64", size: b.size, prefetchable: b.prefetchable })),
      createVf: (n) => {
        const vf = createIgbVfFunction(core, n);
        vfs[n] = vf;
        return vf;
      },
      onVfEnable: (enabled, numVfs) => core.setNumVfs(enabled ? numVfs : 0),
    });
    // A PF FLR clears VF Enable in the SR-IOV capability without an onVfEnable call (its reset
    // hook runs before this): pfFlr takes the core to no VFs with it.
    pf.onReset = () => core.pfFlr();
    pf.realize();
    this.pf = pf;
    if (opts.clock !== undefined) this.attach({ clock: opts.clock, ...(opts.backend !== undefined ? { backend: opts.backend } : {}) });
  }

  /** {@inheritDoc IgbCore.stateType} */
  get stateType(): StateType<IgbCoreState> {
    return this.core.stateType;
  }

  /** Binds the clock and the uplink (DMA and interrupts come through the PCI functions once plugged). */
  attach(io: DeviceIo): void {
    this.core.attach(io);
  }

  /** {@inheritDoc IgbCore.setActivity} */
  setActivity(a: Activity): void {
    this.core.setActivity(a);
  }

  /** {@inheritDoc IgbCore.setVfActivity} */
  setVfActivity(vf: number, a: Activity): void {
    this.core.setVfActivity(vf, a);
  }

  /** Saves the NIC's own state (PCI state is saved by the topology). */
  save(): IgbCoreState {
    return this.core.save();
  }

  /** Applies a state parsed by {@link stateType} (cannot fail). */
  restore(s: IgbCoreState): void {
    this.core.restore(s);
  }
}
