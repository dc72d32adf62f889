/**
 * PCI configuration space as four parallel byte arrays, in the style of QEMU's hw/pci/pci.c:
 *
 * - `config`: the current bytes;
 * - `wmask`: bits a guest write may change;
 * - `w1cmask`: bits a guest clears by writing 1 (RW1C);
 * - `cmask`: bits that must match when a saved state is restored (the read-only identity);
 * - `dynamic`: bits the device model changes that a guest cannot write (Status.Interrupt, Presence
 *   Detect State...). A restored state may differ from the live function only under
 *   `wmask | w1cmask | dynamic`; every other bit is fixed.
 *
 * One generic routine serves every guest write:
 * `cfg = (cfg & ~wmask) | (v & wmask); cfg &= ~(v & w1cmask)`.
 * Capabilities only declare their masks (plus, where a register has side effects, a hook on the
 * owning function).
 * @module
 */
import { PciConfigError } from "./errors.js";

/** Size of a conventional (256 B) or PCI Express (4 KiB) configuration space. */
export type ConfigSize = 256 | 4096;

/** All-ones for an access of 1, 2 or 4 bytes. */
export const ALL_ONES: Readonly<Record<number, number>> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

/** Offset of the first extended capability. */
export const EXT_CAP_START = 0x100;

/** The config-space byte arrays and the generic masked read/write. */
export class ConfigSpace {
  /** Current contents. */
  readonly config: Uint8Array;
  /** Guest-writable bits. */
  readonly wmask: Uint8Array;
  /** Write-1-to-clear bits. */
  readonly w1cmask: Uint8Array;
  /** Bits checked on restore. */
  readonly cmask: Uint8Array;
  /** Bits the device model sets at run time (not guest-writable, not fixed). */
  readonly dynamic: Uint8Array;
  /** Where the next standard capability goes (0x40 upwards). */
  private nextStd = 0x40;
  /** Offset of the last standard capability (to chain the next one), 0 if none. */
  private lastStd = 0;
  /** Where the next extended capability goes. */
  private nextExt = EXT_CAP_START;
  /** Offset of the last extended capability, 0 if none. */
  private lastExt = 0;

  constructor(readonly size: ConfigSize) {
    this.config = new Uint8Array(size);
    this.wmask = new Uint8Array(size);
    this.w1cmask = new Uint8Array(size);
    this.cmask = new Uint8Array(size);
    this.dynamic = new Uint8Array(size);
  }

  /** Declares bits of a `width`-byte register the device model changes at run time. */
  markDynamic(off: number, width: 1 | 2 | 4, mask: number): void {
    if (off < 0 || off + width > this.size) throw new PciConfigError(`register 0x${off.toString(16)} out of range`);
    for (let i = 0; i < width; i++) this.dynamic[off + i]! |= (mask >>> (8 * i)) & 0xff;
  }

  /**
   * Reads `size` bytes at `off`, little-endian. An access that does not fit (or an unsupported
   * size) reads all ones. Never throws.
   */
  read(off: number, size: number): number {
    const c = this.config;
    if (!(off >= 0 && off + size <= c.length) || (size !== 1 && size !== 2 && size !== 4)) {
      return ALL_ONES[size] ?? 0xffffffff;
    }
    if (size === 1) return c[off]!;
    if (size === 2) return c[off]! | (c[off + 1]! << 8);
    return (c[off]! | (c[off + 1]! << 8) | (c[off + 2]! << 16) | (c[off + 3]! << 24)) >>> 0;
  }

  /**
   * The generic guest write through the masks. Out-of-range or odd-sized writes are dropped.
   * Never throws.
   */
  write(off: number, size: number, value: number): void {
    if (!(off >= 0 && off + size <= this.config.length) || (size !== 1 && size !== 2 && size !== 4)) return;
    const c = this.config;
    const w = this.wmask;
    const w1c = this.w1cmask;
    for (let i = 0; i < size; i++) {
      const b = (value >>> (8 * i)) & 0xff;
      const o = off + i;
      c[o] = ((c[o]! & ~w[o]!) | (b & w[o]!)) & ~(b & w1c[o]!);
    }
  }

  // --- device-side (not guest) accessors ---

  /** Device-side read of a byte. */
  get8(off: number): number {
    return this.config[off] ?? 0xff;
  }
  /** Device-side read of a 16-bit value. */
  get16(off: number): number {
    return this.read(off, 2);
  }
  /** Device-side read of a 32-bit value. */
  get32(off: number): number {
    return this.read(off, 4);
  }
  /** Device-side write that ignores the masks. */
  set8(off: number, v: number): void {
    this.config[off] = v & 0xff;
  }
  /** Device-side write that ignores the masks. */
  set16(off: number, v: number): void {
    this.config[off] = v & 0xff;
    this.config[off + 1] = (v >>> 8) & 0xff;
  }
  /** Device-side write that ignores the masks. */
  set32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.config[off + i] = (v >>> (8 * i)) & 0xff;
  }

  /** Declares the masks of a `width`-byte register at `off` (little-endian values). */
  setMasks(off: number, width: 1 | 2 | 4, masks: { w?: number; w1c?: number; check?: number }): void {
    if (off < 0 || off + width > this.size) throw new PciConfigError(`register 0x${off.toString(16)} out of range`);
    const w = masks.w ?? 0;
    const w1c = masks.w1c ?? 0;
    if ((w & w1c) !== 0) throw new PciConfigError(`wmask and w1cmask overlap at 0x${off.toString(16)}`);
    for (let i = 0; i < width; i++) {
      this.wmask[off + i] = (w >>> (8 * i)) & 0xff;
      this.w1cmask[off + i] = (w1c >>> (8 * i)) & 0xff;
      if (masks.check !== undefined) this.cmask[off + i] = (masks.check >>> (8 * i)) & 0xff;
    }
  }

  /** Marks `len` bytes at `off` as identity (checked on restore). */
  checkBytes(off: number, len: number): void {
    this.cmask.fill(0xff, off, off + len);
  }

  /**
   * Allocates a standard capability of `len` bytes (dword aligned, 0x40-0xFF), writes its ID, and
   * chains it into the list at 0x34. Returns its offset.
   */
  addCapability(id: number, len: number): number {
    const off = this.nextStd;
    if (off + len > 0x100) throw new PciConfigError(`no room for capability 0x${id.toString(16)}`);
    this.config[off] = id;
    this.config[off + 1] = 0;
    this.checkBytes(off, 2);
    if (this.lastStd === 0) {
      this.config[0x34] = off;
      this.config[0x06] = (this.config[0x06] ?? 0) | 0x10; // Status.Capabilities List
    } else {
      this.config[this.lastStd + 1] = off;
    }
    this.lastStd = off;
    this.nextStd = (off + len + 3) & ~3;
    return off;
  }

  /**
   * Allocates an extended capability (0x100+, 4 KiB spaces only) of `len` bytes with the given ID
   * and version, chaining it through the 12-bit next pointers. Returns its offset.
   */
  addExtCapability(id: number, version: number, len: number): number {
    if (this.size !== 4096) throw new PciConfigError("extended capabilities need a 4 KiB config space");
    const off = this.nextExt;
    if (off + len > this.size) throw new PciConfigError(`no room for extended capability 0x${id.toString(16)}`);
    this.set32(off, (id & 0xffff) | ((version & 0xf) << 16));
    this.checkBytes(off, 4);
    if (this.lastExt !== 0) {
      const prev = this.get32(this.lastExt);
      this.set32(this.lastExt, (prev & 0x000fffff) | (off << 20));
    }
    this.lastExt = off;
    this.nextExt = (off + len + 3) & ~3;
    return off;
  }

  /** Finds a standard capability by ID (device-side; bounded walk). */
  findCapability(id: number): number | undefined {
    let off = this.config[0x34]! & 0xfc;
    for (let n = 0; off !== 0 && n < 48; n++) {
      if (this.config[off] === id) return off;
      off = this.config[off + 1]! & 0xfc;
    }
    return undefined;
  }

  /** Finds an extended capability by ID (device-side; bounded walk). */
  findExtCapability(id: number): number | undefined {
    if (this.size !== 4096) return undefined;
    let off = EXT_CAP_START;
    for (let n = 0; off >= EXT_CAP_START && n < 960; n++) {
      const hdr = this.get32(off);
      if (hdr === 0 || hdr === 0xffffffff) return undefined;
      if ((hdr & 0xffff) === id) return off;
      off = (hdr >>> 20) & 0xffc;
    }
    return undefined;
  }
}
