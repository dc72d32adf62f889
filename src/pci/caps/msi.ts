/**
 * MSI capability: 32- or 64-bit message address, multiple messages, optional per-vector masking
 * with pending bits (a masked vector raised goes pending and is sent when unmasked).
 * @module
 */
import type { PciFunction, VectorSource } from "../function.js";
import { PciConfigError } from "../errors.js";
import { StateError } from "../../state/parse.js";
import { configPath, le16, le32 } from "../function-state.js";
import { CAP_ID } from "../regs.js";

/** Options of {@link addMsi}. */
export interface MsiOptions {
  /** Number of vectors: 1, 2, 4, 8, 16 or 32. */
  vectors: number;
  /** 64-bit address capable (default true). */
  addr64?: boolean;
  /** Per-vector masking (default true). */
  perVectorMask?: boolean;
}

/** The MSI capability's runtime. */
export class MsiCap implements VectorSource {
  private readonly dataOff: number;
  private readonly maskOff: number;
  private readonly pendOff: number;

  constructor(
    private readonly fn: PciFunction,
    readonly offset: number,
    private readonly opts: Required<MsiOptions>,
  ) {
    this.dataOff = offset + (opts.addr64 ? 0x0c : 0x08);
    this.maskOff = opts.addr64 ? offset + 0x10 : offset + 0x0c;
    this.pendOff = this.maskOff + 4;
  }

  private get control(): number {
    return this.fn.config.get16(this.offset + 2);
  }

  /** MSI Enable. */
  get enabled(): boolean {
    return (this.control & 1) !== 0;
  }

  /** Number of vectors the guest enabled (Multiple Message Enable). */
  get enabledVectors(): number {
    return 1 << Math.min((this.control >>> 4) & 7, 5);
  }

  /** Raises vector `v`. Out-of-range vectors are dropped. */
  notify(v: number): void {
    if (!this.enabled || !Number.isInteger(v) || v < 0 || v >= Math.min(this.enabledVectors, this.opts.vectors)) return;
    const cs = this.fn.config;
    if (this.opts.perVectorMask && (cs.get32(this.maskOff) & (1 << v)) !== 0) {
      cs.set32(this.pendOff, cs.get32(this.pendOff) | (1 << v));
      return;
    }
    this.send(v);
  }

  private send(v: number): void {
    const cs = this.fn.config;
    const lo = cs.get32(this.offset + 4);
    const hi = this.opts.addr64 ? cs.get32(this.offset + 8) : 0;
    const data = cs.get16(this.dataOff);
    const n = this.enabledVectors;
    this.fn.sendMsi(hi * 0x1_0000_0000 + lo, (data & ~(n - 1)) | v);
  }

  /** Sends vectors that were pending and are now unmasked. */
  flushPending(): void {
    if (!this.opts.perVectorMask || !this.enabled) return;
    const cs = this.fn.config;
    const ready = cs.get32(this.pendOff) & ~cs.get32(this.maskOff);
    if (ready === 0) return;
    cs.set32(this.pendOff, cs.get32(this.pendOff) & ~ready);
    for (let v = 0; v < 32; v++) if ((ready & (1 << v)) !== 0) this.send(v);
  }

  /**
   * Checks the MSI registers of parsed config bytes: Multiple Message Enable at most Multiple
   * Message Capable (a larger write reads back clamped), mask and pending bits only for vectors
   * that exist.
   */
  checkConfig(config: Uint8Array, path: string): void {
    const ctl = le16(config, this.offset + 2);
    const mmc = Math.log2(this.opts.vectors);
    if (((ctl >>> 4) & 7) > mmc) throw new StateError(configPath(path, this.offset + 2, "MSI Message Control"), `Multiple Message Enable ${(ctl >>> 4) & 7} is above Multiple Message Capable ${mmc}`);
    if (!this.opts.perVectorMask) return;
    const exist = this.opts.vectors === 32 ? 0xffffffff : (1 << this.opts.vectors) - 1;
    for (const [off, name] of [[this.maskOff, "MSI Mask Bits"], [this.pendOff, "MSI Pending Bits"]] as const) {
      const v = le32(config, off);
      if ((v & ~exist) !== 0) throw new StateError(configPath(path, off, name), `0x${v.toString(16)} has bits for vectors at or above the count ${this.opts.vectors}`);
    }
  }
}

/** Adds an MSI capability. Returns the runtime object (also set as `fn.msi`). */
export function addMsi(fn: PciFunction, options: MsiOptions): MsiCap {
  const opts: Required<MsiOptions> = { addr64: true, perVectorMask: true, ...options };
  const mmc = Math.log2(opts.vectors);
  if (!Number.isInteger(mmc) || mmc < 0 || mmc > 5) throw new PciConfigError("MSI vectors must be 1, 2, 4, 8, 16 or 32");
  const len = (opts.addr64 ? 0x0e : 0x0a) + (opts.perVectorMask ? 0x0a : 0);
  const cs = fn.config;
  const off = cs.addCapability(CAP_ID.MSI, len);
  cs.set16(off + 2, (mmc << 1) | (opts.addr64 ? 0x80 : 0) | (opts.perVectorMask ? 0x100 : 0));
  cs.setMasks(off + 2, 2, { w: 0x0071, check: 0x018e });
  cs.setMasks(off + 4, 4, { w: 0xfffffffc });
  if (opts.addr64) cs.setMasks(off + 8, 4, { w: 0xffffffff });
  const cap = new MsiCap(fn, off, opts);
  const dataOff = off + (opts.addr64 ? 0x0c : 0x08);
  cs.setMasks(dataOff, 2, { w: 0xffff });
  if (opts.perVectorMask) {
    const maskOff = opts.addr64 ? off + 0x10 : off + 0x0c;
    cs.setMasks(maskOff, 4, { w: opts.vectors === 32 ? 0xffffffff : (1 << opts.vectors) - 1 });
    cs.markDynamic(maskOff + 4, 4, opts.vectors === 32 ? 0xffffffff : (1 << opts.vectors) - 1); // Pending Bits
  }
  fn.msi = cap;
  fn.addConfigCheck((config, path) => cap.checkConfig(config, path));
  fn.addHook({
    start: off + 2,
    end: off + len,
    after: () => {
      // Multiple Message Enable above the capability reads back clamped to MMC.
      const ctl = cs.get16(off + 2);
      if (((ctl >>> 4) & 7) > mmc) cs.set16(off + 2, (ctl & ~0x70) | (mmc << 4));
      cap.flushPending();
    },
  });
  return cap;
}
