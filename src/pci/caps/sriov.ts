/**
 * Single Root I/O Virtualization extended capability (PCIe Base 4.0 section 9.3.3) and the VF
 * functions it owns.
 *
 * - All TotalVFs VF functions exist from the start; VF Enable switches the first NumVFs on.
 * - VF n's routing ID is PF + First VF Offset + n × VF Stride. Offset and stride are read-only and
 *   recomputed whenever NumVFs or ARI Capable Hierarchy changes (through `routing`).
 * - NumVFs and ARI Capable Hierarchy are writable only while VF Enable is 0; a NumVFs above
 *   TotalVFs is ignored.
 * - A VF's own header reads Vendor/Device ID 0xFFFF and BARs 0. VF n's BAR i decodes at the PF's
 *   VF BAR i + n × size while VF Enable and VF MSE are set.
 * @module
 */
import type { BarDecl, PciEffect, PciFunction, StatefulCap } from "../function.js";
import { initBarRegister } from "../function.js";
import { PciConfigError, PciStateError } from "../errors.js";
import { CMD, EXT_CAP_ID, PCI } from "../regs.js";

/** Register offsets inside the SR-IOV capability. */
export const SRIOV = {
  CAP: 0x04,
  CTRL: 0x08,
  STATUS: 0x0a,
  INITIAL_VFS: 0x0c,
  TOTAL_VFS: 0x0e,
  NUM_VFS: 0x10,
  FDL: 0x12,
  VF_OFFSET: 0x14,
  VF_STRIDE: 0x16,
  VF_DID: 0x1a,
  SUPPORTED_PGSIZE: 0x1c,
  SYSTEM_PGSIZE: 0x20,
  VF_BAR0: 0x24,
  MIGRATION: 0x3c,
  SIZE: 0x40,
} as const;

/** SR-IOV Control bits. */
export const SRIOV_CTRL = { VFE: 1 << 0, VFM: 1 << 1, VFMIE: 1 << 2, MSE: 1 << 3, ARI: 1 << 4 } as const;

/** A VF BAR declaration (memory only, per the spec). */
export type VfBarDecl = Omit<BarDecl, "handler"> & { kind: "mem32" | "mem64" };

/** Options of {@link addSriov}. */
export interface SriovOptions {
  totalVfs: number;
  /** Default: totalVfs. */
  initialVfs?: number;
  vfDeviceId: number;
  /** First VF Offset and VF Stride; use `routing` when they depend on NumVFs or ARI. */
  firstVfOffset: number;
  vfStride: number;
  routing?: (numVfs: number, ariCapableHierarchy: boolean) => { offset: number; stride: number };
  /** Supported Page Sizes (default 0x553: 4K, 8K, 64K, 256K, 1M, 4M, as QEMU). */
  supportedPageSizes?: number;
  functionDependencyLink?: number;
  /** VF BARs (their sizes; the handlers come with each VF function). */
  vfBars: VfBarDecl[];
  /**
   * Creates VF `n`. The VF is built like any function (its BARs with handlers, MSI-X, PCIe...);
   * `addSriov` then turns its header into a VF header.
   */
  createVf: (n: number) => PciFunction;
  /** Told when VF Enable changes (the device starts or stops its VF pools). */
  onVfEnable?: (enabled: boolean, numVfs: number) => void;
}

/** The SR-IOV capability's runtime. */
export class SriovCap implements StatefulCap {
  readonly stateKey = "sriov";
  /** Every VF, enabled or not, by VF number. */
  readonly vfs: readonly PciFunction[];
  private readonly barSizes: number[] = [0, 0, 0, 0, 0, 0];

  constructor(
    private readonly pf: PciFunction,
    readonly offset: number,
    private readonly opts: SriovOptions,
  ) {
    const vfs: PciFunction[] = [];
    for (const b of opts.vfBars) this.barSizes[b.index] = b.size;
    for (let n = 0; n < opts.totalVfs; n++) {
      const vf = opts.createVf(n);
      makeVfHeader(vf);
      vf.pf = pf;
      vf.vfIndex = n;
      vf.vfBarAddress = (bar) => this.vfBarAddress(n, bar);
      vf.realize();
      vfs.push(vf);
    }
    this.vfs = vfs;
  }

  private reg16(r: number): number {
    return this.pf.config.get16(this.offset + r);
  }

  /** SR-IOV Control. */
  get control(): number {
    return this.reg16(SRIOV.CTRL);
  }
  /** VF Enable. */
  get vfEnabled(): boolean {
    return (this.control & SRIOV_CTRL.VFE) !== 0;
  }
  /** VF Memory Space Enable. */
  get vfMse(): boolean {
    return (this.control & SRIOV_CTRL.MSE) !== 0;
  }
  /** ARI Capable Hierarchy. */
  get ariCapableHierarchy(): boolean {
    return (this.control & SRIOV_CTRL.ARI) !== 0;
  }
  /** NumVFs. */
  get numVfs(): number {
    return this.reg16(SRIOV.NUM_VFS);
  }
  /** TotalVFs. */
  get totalVfs(): number {
    return this.opts.totalVfs;
  }
  /** First VF Offset. */
  get firstVfOffset(): number {
    return this.reg16(SRIOV.VF_OFFSET);
  }
  /** VF Stride. */
  get vfStride(): number {
    return this.reg16(SRIOV.VF_STRIDE);
  }

  /** Routing ID of VF `n` (may exceed 0xFFFF if the guest programmed nonsense; the bus ignores such VFs). */
  vfRid(n: number): number {
    return this.pf.rid + this.firstVfOffset + n * this.vfStride;
  }

  /** The VFs that currently exist (VF Enable set, n < NumVFs), with their routing IDs. */
  liveVfs(): Array<{ vf: PciFunction; rid: number }> {
    if (!this.vfEnabled) return [];
    const out: Array<{ vf: PciFunction; rid: number }> = [];
    const n = Math.min(this.numVfs, this.vfs.length);
    for (let i = 0; i < n; i++) out.push({ vf: this.vfs[i]!, rid: this.vfRid(i) });
    return out;
  }

  /** The PF's VF BAR `bar` base as programmed (not gated), or `undefined` if unprogrammed. */
  vfBarBase(bar: number): number | undefined {
    const decl = this.opts.vfBars.find((b) => b.index === bar);
    if (decl === undefined) return undefined;
    const off = this.offset + SRIOV.VF_BAR0 + 4 * bar;
    let a = (this.pf.config.get32(off) & 0xfffffff0) >>> 0;
    if (decl.kind === "mem64") a += this.pf.config.get32(off + 4) * 0x1_0000_0000;
    return a === 0 ? undefined : a;
  }

  /** Size of VF BAR `bar` (0 if not declared). */
  vfBarSize(bar: number): number {
    return this.barSizes[bar] ?? 0;
  }

  /** Where VF `n`'s BAR `bar` decodes, or `undefined` while it does not. */
  vfBarAddress(n: number, bar: number): number | undefined {
    if (!this.vfEnabled || !this.vfMse || n >= this.numVfs) return undefined;
    const base = this.vfBarBase(bar);
    return base === undefined ? undefined : base + n * this.barSizes[bar]!;
  }

  /** Recomputes First VF Offset and VF Stride from NumVFs and ARI Capable Hierarchy. */
  recomputeRouting(): void {
    const r = this.opts.routing?.(this.numVfs, this.ariCapableHierarchy) ?? {
      offset: this.opts.firstVfOffset,
      stride: this.opts.vfStride,
    };
    this.pf.config.set16(this.offset + SRIOV.VF_OFFSET, r.offset);
    this.pf.config.set16(this.offset + SRIOV.VF_STRIDE, r.stride);
  }

  /** Sets the guest write masks that depend on VF Enable. */
  updateMasks(): void {
    const cs = this.pf.config;
    const on = this.vfEnabled;
    cs.setMasks(this.offset + SRIOV.NUM_VFS, 2, { w: on ? 0 : 0xffff });
    const ctlMask = SRIOV_CTRL.VFE | SRIOV_CTRL.MSE | (on ? 0 : SRIOV_CTRL.ARI);
    cs.setMasks(this.offset + SRIOV.CTRL, 2, { w: ctlMask });
  }

  /** Resets every VF (VF Enable changed or the PF was reset). */
  resetVfs(): void {
    for (const vf of this.vfs) vf.reset("flr");
  }

  save(): unknown {
    return { vfs: this.vfs.map((vf) => vf.save()) };
  }

  restore(s: unknown): void {
    const st = s as { vfs?: unknown } | null;
    if (typeof st !== "object" || st === null || !Array.isArray(st.vfs) || st.vfs.length !== this.vfs.length) {
      throw new PciStateError(`SR-IOV state must hold ${this.vfs.length} VFs`);
    }
    st.vfs.forEach((v, i) => this.vfs[i]!.restore(v as Parameters<PciFunction["restore"]>[0]));
    this.updateMasks();
  }
}

/** Turns a function into a VF header: IDs 0xFFFF, BAR registers 0 and read-only, no memory/IO enable. */
function makeVfHeader(vf: PciFunction): void {
  const cs = vf.config;
  cs.set16(PCI.VENDOR_ID, 0xffff);
  cs.set16(PCI.DEVICE_ID, 0xffff);
  for (let off = PCI.BAR0; off < PCI.BAR0 + 24; off += 4) {
    cs.set32(off, 0);
    cs.setMasks(off, 4, { check: 0xffffffff });
  }
  cs.setMasks(PCI.COMMAND, 2, { w: CMD.BUS_MASTER | CMD.PARITY | CMD.SERR });
  cs.set8(PCI.INT_PIN, 0);
}

/** Adds an SR-IOV capability to a PF (4 KiB config space required). */
export function addSriov(pf: PciFunction, opts: SriovOptions): SriovCap {
  if (!Number.isInteger(opts.totalVfs) || opts.totalVfs < 1 || opts.totalVfs > 0xffff) throw new PciConfigError("TotalVFs out of range");
  const cs = pf.config;
  const off = cs.addExtCapability(EXT_CAP_ID.SRIOV, 1, SRIOV.SIZE);
  cs.set32(off + SRIOV.CAP, 0); // no VF Migration
  cs.set16(off + SRIOV.INITIAL_VFS, opts.initialVfs ?? opts.totalVfs);
  cs.set16(off + SRIOV.TOTAL_VFS, opts.totalVfs);
  cs.set8(off + SRIOV.FDL, opts.functionDependencyLink ?? (pf.rid & 0xff));
  cs.set16(off + SRIOV.VF_DID, opts.vfDeviceId);
  const supported = opts.supportedPageSizes ?? 0x553;
  cs.set32(off + SRIOV.SUPPORTED_PGSIZE, supported);
  cs.set32(off + SRIOV.SYSTEM_PGSIZE, 0x1);
  cs.setMasks(off + SRIOV.SYSTEM_PGSIZE, 4, { w: supported });
  cs.checkBytes(off + SRIOV.CAP, 4);
  cs.checkBytes(off + SRIOV.INITIAL_VFS, 4);
  cs.checkBytes(off + SRIOV.VF_DID, 6);
  for (const b of opts.vfBars) {
    if (b.size < 4096 || (b.size & (b.size - 1)) !== 0) throw new PciConfigError(`VF BAR ${b.index} size must be a power of two >= 4 KiB`);
    if (b.index < 0 || b.index + (b.kind === "mem64" ? 1 : 0) > 5) throw new PciConfigError(`bad VF BAR index ${b.index}`);
    initBarRegister(cs, off + SRIOV.VF_BAR0 + 4 * b.index, b);
  }
  const cap = new SriovCap(pf, off, opts);
  pf.sriov = cap;
  cap.recomputeRouting();
  cap.updateMasks();
  pf.addStateful(cap);
  let before = { ctl: 0, num: 0, page: 1 };
  pf.addHook({
    start: off + SRIOV.CTRL,
    end: off + SRIOV.SIZE,
    before: () => {
      before = { ctl: cap.control, num: cap.numVfs, page: cs.get32(off + SRIOV.SYSTEM_PGSIZE) };
    },
    after: (_reg, _size, _value, effects: PciEffect[]) => {
      if (cap.numVfs > opts.totalVfs) cs.set16(off + SRIOV.NUM_VFS, before.num);
      const page = cs.get32(off + SRIOV.SYSTEM_PGSIZE);
      if (page === 0 || (page & (page - 1)) !== 0) cs.set32(off + SRIOV.SYSTEM_PGSIZE, before.page);
      const ctl = cap.control;
      if (cap.numVfs !== before.num || ((ctl ^ before.ctl) & SRIOV_CTRL.ARI) !== 0) cap.recomputeRouting();
      const vfeChanged = ((ctl ^ before.ctl) & SRIOV_CTRL.VFE) !== 0;
      if (vfeChanged) {
        cap.resetVfs();
        cap.updateMasks();
        effects.push({ kind: "vfEnable", enabled: cap.vfEnabled, numVfs: cap.numVfs });
        try {
          opts.onVfEnable?.(cap.vfEnabled, cap.numVfs);
        } catch {
          // a device bug must not escape the guest's config write
        }
      }
      effects.push({ kind: "decodeChanged" });
    },
    reset: () => {
      cap.recomputeRouting();
      cap.updateMasks();
      cap.resetVfs();
    },
  });
  return cap;
}
