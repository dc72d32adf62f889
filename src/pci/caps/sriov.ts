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
import type { BarDecl, PciEffect, PciFunction, PciFunctionState, StatefulCap } from "../function.js";
import { initBarRegister } from "../function.js";
import { PciConfigError } from "../errors.js";
import { StateError, arr, field, obj, onlyKeys } from "../../state/parse.js";
import { configPath, differsFromReset, le16, le32, resetStateOf } from "../function-state.js";
import { CMD, EXT_CAP_ID, PCI } from "../regs.js";

/** Saved SR-IOV state: every VF's function state, by VF number (all TotalVFs of them). */
export interface SriovState {
  vfs: PciFunctionState[];
}

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
export class SriovCap implements StatefulCap<SriovState> {
  readonly stateKey = "sriov";
  /** Every VF, enabled or not, by VF number. */
  readonly vfs: readonly PciFunction[];
  private readonly barSizes: number[] = [0, 0, 0, 0, 0, 0];
  /** VF Enable as the device model was last told (through `onVfEnable`) or restored. */
  vfEnableSeen = false;

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

  /** First VF Offset and VF Stride for a NumVFs and ARI Capable Hierarchy. */
  routingFor(numVfs: number, ari: boolean): { offset: number; stride: number } {
    return this.opts.routing?.(numVfs, ari) ?? { offset: this.opts.firstVfOffset, stride: this.opts.vfStride };
  }

  /** Recomputes First VF Offset and VF Stride from NumVFs and ARI Capable Hierarchy. */
  recomputeRouting(): void {
    const r = this.routingFor(this.numVfs, this.ariCapableHierarchy);
    this.pf.config.set16(this.offset + SRIOV.VF_OFFSET, r.offset);
    this.pf.config.set16(this.offset + SRIOV.VF_STRIDE, r.stride);
  }

  /**
   * Tells the device model that VF Enable changed, if it did since it was last told: the one path
   * for a guest write of VF Enable and for a reset (FLR, bus reset) that clears it.
   */
  notifyVfEnable(): void {
    const now = this.vfEnabled;
    if (now === this.vfEnableSeen) return;
    this.vfEnableSeen = now;
    try {
      this.opts.onVfEnable?.(now, this.numVfs);
    } catch {
      // a device bug must not escape the guest's config write
    }
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

  /** Every VF's function state. */
  save(): SriovState {
    return { vfs: this.vfs.map((vf) => vf.save()) };
  }

  /**
   * Checks a saved SR-IOV state with the PF's parsed config bytes: NumVFs at most TotalVFs; First
   * VF Offset and VF Stride what this capability computes for the saved NumVFs and ARI Capable
   * Hierarchy; only the defined Control bits; a System Page Size of one supported size; VF BARs
   * aligned to their size; one state per VF, each parsed against its VF, and every VF that does
   * not exist (VF Enable clear, or at or above NumVFs) in its reset state.
   */
  parse(u: unknown, path: string, config: Uint8Array): SriovState {
    const fnPath = path.replace(/\.caps\.sriov$/, "");
    const at = (r: number): number => this.offset + r;
    const numVfs = le16(config, at(SRIOV.NUM_VFS));
    if (numVfs > this.opts.totalVfs) throw new StateError(configPath(fnPath, at(SRIOV.NUM_VFS), "SR-IOV NumVFs"), `${numVfs} is above TotalVFs ${this.opts.totalVfs}`);
    const ctl = le16(config, at(SRIOV.CTRL));
    const defined = SRIOV_CTRL.VFE | SRIOV_CTRL.MSE | SRIOV_CTRL.ARI;
    if ((ctl & ~defined) !== 0) throw new StateError(configPath(fnPath, at(SRIOV.CTRL), "SR-IOV Control"), `0x${ctl.toString(16)} sets bits outside VF Enable, VF MSE and ARI Capable Hierarchy`);
    const want = this.routingFor(numVfs, (ctl & SRIOV_CTRL.ARI) !== 0);
    for (const [r, name, v] of [[SRIOV.VF_OFFSET, "SR-IOV First VF Offset", want.offset], [SRIOV.VF_STRIDE, "SR-IOV VF Stride", want.stride]] as const) {
      const got = le16(config, at(r));
      if (got !== v) throw new StateError(configPath(fnPath, at(r), name), `${got}, but NumVFs ${numVfs} and ARI Capable Hierarchy ${(ctl & SRIOV_CTRL.ARI) !== 0} give ${v}`);
    }
    const page = le32(config, at(SRIOV.SYSTEM_PGSIZE));
    const supported = this.opts.supportedPageSizes ?? 0x553;
    if (page === 0 || (page & (page - 1)) !== 0 || (page & ~supported) !== 0) {
      throw new StateError(configPath(fnPath, at(SRIOV.SYSTEM_PGSIZE), "SR-IOV System Page Size"), `0x${page.toString(16)} is not one of the supported sizes 0x${supported.toString(16)}`);
    }
    const cs = this.pf.config;
    for (const b of this.opts.vfBars) {
      const off = at(SRIOV.VF_BAR0 + 4 * b.index);
      const stray = le32(config, off) & ~le32(cs.wmask, off) & ~le32(cs.cmask, off);
      if (stray !== 0) throw new StateError(configPath(fnPath, off, `SR-IOV VF BAR${b.index}`), `0x${le32(config, off).toString(16)} is not aligned to the VF BAR size 0x${b.size.toString(16)}`);
    }
    const o = obj(u, path);
    onlyKeys(o, path, ["vfs"]);
    const live = (ctl & SRIOV_CTRL.VFE) !== 0 ? numVfs : 0;
    let i = -1;
    const vfs = field(o, "vfs", path, (x, p) =>
      arr(x, p, this.vfs.length, (v, vp) => {
        i++;
        const vf = this.vfs[i]!;
        const st = vf.stateType.parse(v, vp);
        if (i >= live) {
          const why = differsFromReset(vf, st);
          if (why !== undefined) throw new StateError(vp, `VF ${i} does not exist (VF Enable ${(ctl & SRIOV_CTRL.VFE) !== 0}, NumVFs ${numVfs}) but is not in its reset state: ${why}`);
        }
        return st;
      }, true),
    );
    return { vfs };
  }

  /** Applies a parsed state (the VFs' states and the write masks that follow VF Enable). */
  apply(s: SriovState): void {
    s.vfs.forEach((v, i) => this.vfs[i]?.restore(v));
    this.updateMasks();
    this.vfEnableSeen = this.vfEnabled;
  }

  /** The state after the PF's reset: every VF reset. */
  resetState(): SriovState {
    return { vfs: this.vfs.map((vf) => resetStateOf(vf)) };
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
  // NumVFs and ARI Capable Hierarchy are writable only while VF Enable is 0; First VF Offset and
  // VF Stride follow them. The parser checks all four against each other.
  cs.markDynamic(off + SRIOV.NUM_VFS, 2, 0xffff);
  cs.markDynamic(off + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
  cs.markDynamic(off + SRIOV.VF_OFFSET, 2, 0xffff);
  cs.markDynamic(off + SRIOV.VF_STRIDE, 2, 0xffff);
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
        cap.notifyVfEnable();
      }
      effects.push({ kind: "decodeChanged" });
    },
    reset: () => {
      cap.recomputeRouting();
      cap.updateMasks();
      cap.resetVfs();
      // A reset that cleared VF Enable takes the same VF-disable path as a guest write.
      cap.notifyVfEnable();
    },
  });
  return cap;
}
