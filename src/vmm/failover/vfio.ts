/**
 * A VFIO-shaped device boundary, and its implementation over one VF of an 82576 model kept by a
 * PF agent ({@link IgbHostNic}).
 *
 * The shape follows Linux's VFIO device interface (`include/uapi/linux/vfio.h`), so that a real
 * VFIO device on a Linux host with an SR-IOV NIC can later stand behind the same interface:
 * - device info (`VFIO_DEVICE_GET_INFO`): flags, number of regions and of IRQ indexes;
 * - regions (`VFIO_DEVICE_GET_REGION_INFO`, then pread/pwrite on the device fd) by index: BAR0..5,
 *   ROM, config space, with a size and READ/WRITE/MMAP flags;
 * - IRQs (`VFIO_DEVICE_GET_IRQ_INFO`, `VFIO_DEVICE_SET_IRQS` with DATA_EVENTFD | ACTION_TRIGGER):
 *   per index (INTx, MSI, MSI-X...), one eventfd per vector; here an eventfd is a callback, called
 *   when the device signals the vector;
 * - DMA (`VFIO_IOMMU_MAP_DMA` / `UNMAP_DMA` on the container): into the device's IOMMU domain;
 * - migration (`VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`, v2): a {@link MigrationControl} whose arcs
 *   drive the device's activity; the device state is read in STOP_COPY and written in RESUMING
 *   (the data fd), here as a parsed, versioned JSON value;
 * - reset (`VFIO_DEVICE_RESET`): a function-level reset.
 *
 * Platform-neutral.
 * @module
 */
import type { AccessSize, PciFunction } from "../../pci/function.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { createIgbVfFunction } from "../../devices/igb/pci.js";
import { IGB_SIZES } from "../../devices/igb/regs.js";
import { IGB_VF_STATE, IgbVfRegs, applyVf, saveVf, type IgbVfState } from "../../devices/igb/vf.js";
import type { IgbCore } from "../../devices/igb/core.js";
import { MigrationControl, type Activity } from "../../state/migration.js";
import { field, onlyKeys } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import type { IgbHostNic } from "../pf-agent/host-nic.js";
import type { PfAgentVfState } from "../pf-agent/agent-state.js";
import { IommuDomain, type IommuDomainOptions } from "../iommu/domain.js";

/** `VFIO_DEVICE_FLAGS_RESET`: the device supports VFIO_DEVICE_RESET. */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** `VFIO_DEVICE_FLAGS_PCI`: a PCI device. */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;

/** Region flags (`VFIO_REGION_INFO_FLAG_*`). */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;

/** PCI region indexes (`VFIO_PCI_*_REGION_INDEX`). */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_NUM_REGIONS = 9;

/** PCI IRQ indexes (`VFIO_PCI_*_IRQ_INDEX`). */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_NUM_IRQS = 5;

/** IRQ info flags (`VFIO_IRQ_INFO_*`). */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** `VFIO_DEVICE_GET_INFO`. */
export interface VfioDeviceInfo {
  readonly flags: number;
  readonly numRegions: number;
  readonly numIrqs: number;
}

/** `VFIO_DEVICE_GET_REGION_INFO` (a region that does not exist has size 0 and no flags). */
export interface VfioRegionInfo {
  readonly index: number;
  readonly size: number;
  readonly flags: number;
}

/** `VFIO_DEVICE_GET_IRQ_INFO`. */
export interface VfioIrqInfo {
  readonly index: number;
  readonly count: number;
  readonly flags: number;
}

/** An eventfd as VFIO signals it: called once per interrupt of its vector. */
export type VfioEventfd = () => void;

/** A VFIO request the device refuses (the ioctl's errno, as an error value). */
export class VfioError extends Error {
  override readonly name = "VfioError";
}

/**
 * A device behind a VFIO-shaped boundary, with its device state of type `S`.
 * Guest-facing calls (region accesses) never throw.
 */
export interface VfioDevice<S> {
  /** Device flags and counts. */
  readonly info: VfioDeviceInfo;
  /** Region `index`'s size and flags. */
  regionInfo(index: number): VfioRegionInfo;
  /** Reads `size` bytes at `offset` of region `index`; all-ones where nothing answers. Never throws. */
  regionRead(index: number, offset: number, size: AccessSize): number;
  /** Writes region `index`; dropped where nothing answers. Never throws. */
  regionWrite(index: number, offset: number, size: AccessSize, value: number): void;
  /** IRQ index `index`'s vector count and flags. */
  irqInfo(index: number): VfioIrqInfo;
  /**
   * `VFIO_DEVICE_SET_IRQS` with DATA_EVENTFD | ACTION_TRIGGER: vectors `start ..` of IRQ index
   * `index` signal `fds[i]` (undefined: no eventfd, the vector's interrupts are dropped).
   */
  setIrqs(index: number, start: number, fds: readonly (VfioEventfd | undefined)[]): VfioError | undefined;
  /** `VFIO_IOMMU_MAP_DMA`: the device may DMA to `[iova, iova + size)` (guest address = IOVA). */
  dmaMap(iova: number, size: number): VfioError | undefined;
  /** `VFIO_IOMMU_UNMAP_DMA`: returns the bytes unmapped. */
  dmaUnmap(iova: number, size: number): number | VfioError;
  /** The IOMMU domain the device's DMA goes through. */
  readonly iommu: IommuDomain;
  /** The migration state (VFIO v2); its arcs set the device's activity. */
  readonly migration: MigrationControl;
  /** Reads the device state out: only in STOP_COPY. */
  saveState(): S | VfioError;
  /** Checks an untrusted device state for this device; throws `StateError` naming the field. Changes nothing. */
  parseState(u: unknown, path?: string): S;
  /** Loads a state from {@link parseState}: only in RESUMING. Cannot fail otherwise. */
  loadState(s: S): VfioError | undefined;
  /** `VFIO_DEVICE_RESET`: a function-level reset. */
  reset(): void;
}

/** The device state of an {@link IgbVfioDevice}: the VF's registers and in-flight work, and the PF agent's policy for it. */
export interface IgbVfioState {
  readonly version: 1;
  /** The VF's architectural state (see `saveVf`). */
  readonly vf: IgbVfState;
  /** The PF agent's per-VF state (see `PfAgent.saveVf`). */
  readonly agent: PfAgentVfState;
}

/** What the last {@link IgbVfioDevice.loadState} could not place (full RAR or VLVF tables). */
export interface IgbVfioLoadReport {
  skippedMacs: number;
  skippedVlans: number;
  droppedMacs: number;
  droppedVlans: number;
}

/** Options of an {@link IgbVfioDevice} (its IOMMU domain's). */
export type IgbVfioOptions = IommuDomainOptions;

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/**
 * VF `vf` of `nic` behind the VFIO-shaped boundary. The VF's DMA goes through {@link iommu}
 * (over `memory`: the guest memory its user gives, e.g. the guest-visible function's bus-master
 * gated DMA); its interrupts come out as the MSI-X eventfds set with {@link setIrqs}; BAR0 is
 * region 0 (the VF's register slice); config space is region 7 (the VF's own, as the host sees it).
 * @example
 * const dev = new IgbVfioDevice(hostNic, 1, guestFn.dma);
 * dev.dmaMap(0, ramSize);
 * dev.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, [() => fn.notify(0), () => fn.notify(1), () => fn.notify(2)]);
 * dev.regionWrite(VFIO_PCI_BAR0_REGION_INDEX, 0x0, 4, 0x0400_0000); // the VF's CTRL.RST
 */
export class IgbVfioDevice implements VfioDevice<IgbVfioState> {
  readonly info: VfioDeviceInfo = { flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, numRegions: VFIO_PCI_NUM_REGIONS, numIrqs: VFIO_PCI_NUM_IRQS };
  readonly iommu: IommuDomain;
  readonly migration: MigrationControl;
  /** The VF's BAR0 (register translation onto its pool). */
  readonly regs: IgbVfRegs;
  /** The VF's own PCI function as the host sees it (config space region). */
  readonly hostFunction: PciFunction;
  /** Interrupts signalled, per MSI-X vector. */
  readonly irqCounts = [0, 0, 0];
  /** Interrupts with no eventfd set (dropped). */
  irqsDropped = 0;
  /** What the last load could not place. */
  lastLoad: IgbVfioLoadReport = { skippedMacs: 0, skippedVlans: 0, droppedMacs: 0, droppedVlans: 0 };
  /** The device state type (parsing also checks the PF agent's rules for this VF). */
  readonly stateType: StateType<IgbVfioState>;
  private readonly fds: (VfioEventfd | undefined)[] = [undefined, undefined, undefined];
  private loaded = false;

  constructor(
    readonly nic: IgbHostNic,
    readonly vf: number,
    memory: DmaSpace,
    opts: IgbVfioOptions = {},
  ) {
    this.iommu = new IommuDomain(memory, opts);
    this.regs = new IgbVfRegs(nic.core, vf);
    this.hostFunction = createIgbVfFunction(nic.core, vf).realize();
    nic.bindVf(vf, { dma: this.iommu, irq: (v) => this.signal(v) });
    this.migration = new MigrationControl({ setActivity: (a) => this.setActivity(a) });
    this.stateType = defineState<IgbVfioState>("igb-vfio", 1, {}, (o, path) => {
      onlyKeys(o, path, ["version", "vf", "agent"]);
      return {
        version: 1,
        vf: field(o, "vf", path, (v, p) => IGB_VF_STATE.parse(v, p)),
        agent: field(o, "agent", path, (v, p) => nic.agent.parseVfState(vf, v, p)),
      };
    });
  }

  /** The 82576 core the VF lives in. */
  get core(): IgbCore {
    return this.nic.core;
  }

  regionInfo(index: number): VfioRegionInfo {
    const rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    switch (index) {
      case VFIO_PCI_BAR0_REGION_INDEX:
        return { index, size: IGB_SIZES.vfBar0, flags: rw | VFIO_REGION_INFO_FLAG_MMAP };
      case VFIO_PCI_BAR3_REGION_INDEX:
        // the MSI-X table and PBA: its user virtualizes them and takes interrupts as eventfds
        return { index, size: IGB_SIZES.vfMsix, flags: rw };
      case VFIO_PCI_CONFIG_REGION_INDEX:
        return { index, size: 4096, flags: rw };
      default:
        return { index, size: 0, flags: 0 };
    }
  }

  regionRead(index: number, offset: number, size: AccessSize): number {
    const info = this.regionInfo(index);
    if (!(Number.isInteger(offset) && offset >= 0 && offset + size <= info.size)) return ALL_ONES[size] ?? 0xffffffff;
    if (index === VFIO_PCI_BAR0_REGION_INDEX) return this.regs.read(offset, size);
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return this.hostFunction.configRead(offset, size);
    return 0;
  }

  regionWrite(index: number, offset: number, size: AccessSize, value: number): void {
    const info = this.regionInfo(index);
    if (!(Number.isInteger(offset) && offset >= 0 && offset + size <= info.size)) return;
    if (index === VFIO_PCI_BAR0_REGION_INDEX) this.regs.write(offset, size, value);
    else if (index === VFIO_PCI_CONFIG_REGION_INDEX) this.hostFunction.configWrite(offset, size, value);
  }

  irqInfo(index: number): VfioIrqInfo {
    if (index === VFIO_PCI_MSIX_IRQ_INDEX) return { index, count: IGB_SIZES.vfVectors, flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE };
    return { index, count: 0, flags: 0 };
  }

  setIrqs(index: number, start: number, fds: readonly (VfioEventfd | undefined)[]): VfioError | undefined {
    const count = this.irqInfo(index).count;
    if (!(Number.isInteger(start) && start >= 0 && start + fds.length <= count)) return new VfioError(`SET_IRQS index ${index}: vectors ${start}..${start + fds.length - 1} outside 0..${count - 1}`);
    fds.forEach((fd, i) => (this.fds[start + i] = fd));
    return undefined;
  }

  dmaMap(iova: number, size: number): VfioError | undefined {
    const e = this.iommu.map(iova, size);
    return e === undefined ? undefined : new VfioError(e.message);
  }

  dmaUnmap(iova: number, size: number): number | VfioError {
    const r = this.iommu.unmap(iova, size);
    return typeof r === "number" ? r : new VfioError(r.message);
  }

  saveState(): IgbVfioState | VfioError {
    if (this.migration.state !== "STOP_COPY") return new VfioError(`device state is read in STOP_COPY, not ${this.migration.state}`);
    return this.captureState();
  }

  /** The device state now, whatever the migration state (for a whole-platform snapshot taken while quiesced). */
  captureState(): IgbVfioState {
    return { version: 1, vf: saveVf(this.core, this.vf), agent: this.nic.agent.saveVf(this.vf) };
  }

  parseState(u: unknown, path = "igb-vfio"): IgbVfioState {
    return this.stateType.parse(u, path);
  }

  loadState(s: IgbVfioState): VfioError | undefined {
    if (this.migration.state !== "RESUMING") return new VfioError(`device state is written in RESUMING, not ${this.migration.state}`);
    this.install(s);
    return undefined;
  }

  /** Applies a parsed state whatever the migration state (a snapshot restore). Cannot fail. */
  install(s: IgbVfioState): void {
    const a = applyVf(this.core, this.vf, s.vf);
    const b = this.nic.agent.restoreVf(this.vf, s.agent);
    this.lastLoad = { ...a, ...b };
    this.loaded = true;
  }

  reset(): void {
    this.core.vfFlr(this.vf);
  }

  /** A state was loaded and the device has not run since (see {@link kick}). */
  get awaitingKick(): boolean {
    return this.loaded;
  }

  private setActivity(a: Activity): void {
    this.core.setVfActivity(this.vf, a);
    if (a === "running" && this.loaded) this.kick();
  }

  /**
   * After a load: a mailbox message pending at capture is answered by this side's agent (1 us
   * later, as the host driver's interrupt handler would), and causes pending and unmasked at
   * capture are signalled again (their MSI-X pending bits are the user's). Runs by itself when a
   * loaded device goes RUNNING.
   */
  kick(): void {
    this.loaded = false;
    this.nic.serviceSoon();
    this.core.resendVfInterrupts(this.vf);
  }

  private signal(v: number): void {
    const fd = this.fds[v];
    if (fd === undefined) {
      this.irqsDropped++;
      return;
    }
    this.irqCounts[v] = (this.irqCounts[v] ?? 0) + 1;
    fd();
  }
}
