/**
 * An IOMMU domain in front of guest memory: the only view of guest memory a device behind it gets.
 *
 * - `map(iova, size, phys?)` / `unmap(iova, size)` at 4 KiB granularity, as VFIO's type1 IOMMU
 *   (`VFIO_IOMMU_MAP_DMA` / `VFIO_IOMMU_UNMAP_DMA`) does; the number of mappings is bounded
 *   (VFIO's default `dma_entry_limit` is 65535).
 * - A DMA read or write succeeds only when every page of the range is mapped. Otherwise it is an
 *   IOMMU fault: counted, with the faulting address, and nothing is read or written (no partial
 *   write: the check of the whole range comes before the access).
 * - A DMA write log: the guest pages device DMA wrote since the last {@link IommuDomain.takeDirty}
 *   (live migration adds them to the pages it sends again).
 *
 * The domain offers no `linear()` fast path: a device must not bypass the checks or the log.
 *
 * Platform-neutral.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";

/** Page size of the domain (bytes). */
export const IOMMU_PAGE = 4096;

/** Default bound of the number of mappings (VFIO type1's default `dma_entry_limit`). */
export const IOMMU_MAX_MAPPINGS = 65535;

/** Faults kept in {@link IommuDomain.recentFaults}. */
export const IOMMU_FAULT_LOG = 64;

/** Highest IOVA + 1 (and guest address + 1) a mapping may reach: 2^52, well inside a JS number. */
export const IOMMU_ADDR_LIMIT = 2 ** 52;

/** A map or unmap request that cannot be carried out (misaligned, overlapping, too many mappings). */
export class IommuError extends Error {
  override readonly name = "IommuError";
}

/** One IOMMU fault: the access that was refused. */
export interface IommuFault {
  /** First byte the device asked for (IOVA). */
  readonly iova: number;
  /** Length of the access. */
  readonly len: number;
  /** A write (true) or a read. */
  readonly write: boolean;
  /** First IOVA of the range that is not mapped. */
  readonly unmapped: number;
}

/** One mapping: `[iova, iova + size)` reaches guest addresses `[phys, phys + size)`. */
export interface IommuMapping {
  readonly iova: number;
  readonly size: number;
  readonly phys: number;
}

/** Options of an {@link IommuDomain}. */
export interface IommuDomainOptions {
  /** Most mappings at once (default {@link IOMMU_MAX_MAPPINGS}). */
  readonly maxMappings?: number;
}

interface Entry {
  iova: number;
  end: number;
  phys: number;
}

const aligned = (v: number): boolean => Number.isSafeInteger(v) && v >= 0 && v % IOMMU_PAGE === 0;

/**
 * An IOMMU domain over `memory` (guest memory as the platform sees it).
 * @example
 * const dom = new IommuDomain(guestRam);
 * dom.map(0, 32 << 20);            // the guest's RAM, IOVA = guest address
 * core = new IgbCore({ dma: () => dom, ... });
 * dom.takeDirty();                 // guest pages DMA wrote since last time
 */
export class IommuDomain implements DmaSpace {
  /** Faults so far. */
  faults = 0;
  /** The most recent faults (at most {@link IOMMU_FAULT_LOG}), oldest first. */
  readonly recentFaults: IommuFault[] = [];
  /** Accesses that passed (reads + writes). */
  accesses = 0;
  private readonly entries: Entry[] = [];
  private readonly maxMappings: number;
  private dirty = new Set<number>();
  /** The entry that served the last access (most accesses hit the same one). */
  private last: Entry | undefined;

  constructor(
    private readonly memory: DmaSpace,
    opts: IommuDomainOptions = {},
  ) {
    this.maxMappings = Math.max(1, Math.floor(opts.maxMappings ?? IOMMU_MAX_MAPPINGS));
  }

  /** The faulting access most recently refused, if any. */
  get lastFault(): IommuFault | undefined {
    return this.recentFaults[this.recentFaults.length - 1];
  }

  /** Number of mappings now. */
  get mappingCount(): number {
    return this.entries.length;
  }

  /** The mappings, in IOVA order. */
  mappings(): IommuMapping[] {
    return this.entries.map((e) => ({ iova: e.iova, size: e.end - e.iova, phys: e.phys }));
  }

  /**
   * Maps `[iova, iova + size)` onto guest addresses from `phys` (default: the same, as VFIO users
   * map guest RAM at IOVA = guest physical address). All three are multiples of 4 KiB; the range
   * must not overlap an existing mapping. Returns an error (and changes nothing) if it cannot.
   */
  map(iova: number, size: number, phys = iova): IommuError | undefined {
    if (!aligned(iova) || !aligned(size) || !aligned(phys) || size === 0) return new IommuError(`map 0x${iova.toString(16)}+0x${size.toString(16)} -> 0x${phys.toString(16)}: not page-aligned, or empty`);
    if (iova + size > IOMMU_ADDR_LIMIT || phys + size > IOMMU_ADDR_LIMIT) return new IommuError(`map 0x${iova.toString(16)}+0x${size.toString(16)}: beyond the address limit`);
    if (this.entries.length >= this.maxMappings) return new IommuError(`map: ${this.maxMappings} mappings already`);
    const i = this.firstEndingAfter(iova);
    const next = this.entries[i];
    if (next !== undefined && next.iova < iova + size) return new IommuError(`map 0x${iova.toString(16)}+0x${size.toString(16)}: overlaps the mapping at 0x${next.iova.toString(16)}`);
    this.entries.splice(i, 0, { iova, end: iova + size, phys });
    return undefined;
  }

  /**
   * Unmaps every page of `[iova, iova + size)` that is mapped (a mapping partly inside is cut at
   * the range's edges). Returns the bytes unmapped, or an error (nothing changed) if the range is
   * misaligned or cutting would exceed the mapping bound.
   */
  unmap(iova: number, size: number): number | IommuError {
    if (!aligned(iova) || !aligned(size)) return new IommuError(`unmap 0x${iova.toString(16)}+0x${size.toString(16)}: not page-aligned`);
    const end = iova + size;
    const i = this.firstEndingAfter(iova);
    const e = this.entries[i];
    // one mapping that strictly contains the range becomes two
    if (e !== undefined && e.iova < iova && e.end > end && this.entries.length >= this.maxMappings) {
      return new IommuError(`unmap: cutting a mapping would exceed ${this.maxMappings} mappings`);
    }
    let removed = 0;
    const keep: Entry[] = [];
    let j = i;
    for (; j < this.entries.length; j++) {
      const m = this.entries[j]!;
      if (m.iova >= end) break;
      const lo = Math.max(m.iova, iova);
      const hi = Math.min(m.end, end);
      removed += hi - lo;
      if (m.iova < lo) keep.push({ iova: m.iova, end: lo, phys: m.phys });
      if (m.end > hi) keep.push({ iova: hi, end: m.end, phys: m.phys + (hi - m.iova) });
    }
    this.entries.splice(i, j - i, ...keep);
    this.last = undefined;
    return removed;
  }

  /** Whether every page of `[iova, iova + len)` is mapped. */
  mapped(iova: number, len: number): boolean {
    return this.check(iova, len) === undefined;
  }

  /**
   * The guest pages (their first guest address, increasing) that device DMA wrote since the last
   * call; the log starts empty again.
   */
  takeDirty(): number[] {
    const out = [...this.dirty].sort((a, b) => a - b).map((p) => p * IOMMU_PAGE);
    this.dirty = new Set();
    return out;
  }

  /** DMA read through the domain: undefined (a counted fault, nothing read) unless every page is mapped. */
  read(addr: number, len: number): Uint8Array | undefined {
    if (len === 0 && Number.isSafeInteger(addr) && addr >= 0) return new Uint8Array(0);
    const phys = this.translate(addr, len, false);
    if (phys === undefined) return undefined;
    if (phys >= 0) return this.memory.read(phys, len);
    // the range spans mappings that are not contiguous in guest memory: gather it
    const out = new Uint8Array(len);
    let off = 0;
    while (off < len) {
      const e = this.entryAt(addr + off)!;
      const n = Math.min(len - off, e.end - (addr + off));
      const part = this.memory.read(e.phys + (addr + off - e.iova), n);
      if (part === undefined) return undefined;
      out.set(part, off);
      off += n;
    }
    return out;
  }

  /** DMA write through the domain: false (a counted fault, nothing written) unless every page is mapped. */
  write(addr: number, data: Uint8Array): boolean {
    const len = data.length;
    if (len === 0 && Number.isSafeInteger(addr) && addr >= 0) return true;
    const phys = this.translate(addr, len, true);
    if (phys === undefined) return false;
    if (phys >= 0) {
      if (!this.memory.write(phys, data)) return false;
      this.logPages(phys, len);
      return true;
    }
    // scattered: every piece's target was checked; the memory itself may still refuse a piece, so
    // check them all first by reading, then write
    let off = 0;
    const pieces: [number, number, number][] = [];
    while (off < len) {
      const e = this.entryAt(addr + off)!;
      const n = Math.min(len - off, e.end - (addr + off));
      const p = e.phys + (addr + off - e.iova);
      if (this.memory.read(p, n) === undefined) return false;
      pieces.push([p, off, n]);
      off += n;
    }
    for (const [p, o, n] of pieces) {
      this.memory.write(p, data.subarray(o, o + n));
      this.logPages(p, n);
    }
    return true;
  }

  /**
   * The guest address of a mapped, contiguous range; -1 if mapped but scattered over mappings
   * that are not contiguous in guest memory; undefined (fault counted) if not mapped.
   */
  private translate(addr: number, len: number, write: boolean): number | undefined {
    const bad = this.check(addr, len);
    if (bad !== undefined) {
      this.fault(addr, len, write, bad);
      return undefined;
    }
    this.accesses++;
    const e = this.entryAt(addr)!;
    if (addr + len <= e.end) return e.phys + (addr - e.iova);
    let cur = e;
    while (cur.end < addr + len) {
      const n = this.entryAt(cur.end)!;
      if (n.phys !== cur.phys + (cur.end - cur.iova)) return -1;
      cur = n;
    }
    return e.phys + (addr - e.iova);
  }

  /** The first IOVA of `[addr, addr + len)` that is not mapped, or undefined if all are. */
  private check(addr: number, len: number): number | undefined {
    if (!(Number.isSafeInteger(addr) && Number.isSafeInteger(len) && addr >= 0 && len > 0 && addr + len <= IOMMU_ADDR_LIMIT)) return Number.isSafeInteger(addr) ? addr : 0;
    let at = addr;
    const end = addr + len;
    while (at < end) {
      const e = this.entryAt(at);
      if (e === undefined) return at;
      at = e.end;
    }
    return undefined;
  }

  private entryAt(a: number): Entry | undefined {
    const l = this.last;
    if (l !== undefined && a >= l.iova && a < l.end) return l;
    const e = this.entries[this.firstEndingAfter(a)];
    if (e === undefined || e.iova > a) return undefined;
    this.last = e;
    return e;
  }

  /** Index of the first entry whose end is above `a` (binary search). */
  private firstEndingAfter(a: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.end <= a) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private fault(iova: number, len: number, write: boolean, unmapped: number): void {
    this.faults++;
    if (this.recentFaults.length >= IOMMU_FAULT_LOG) this.recentFaults.shift();
    this.recentFaults.push({ iova, len, write, unmapped });
  }

  private logPages(phys: number, len: number): void {
    const last = Math.floor((phys + len - 1) / IOMMU_PAGE);
    for (let p = Math.floor(phys / IOMMU_PAGE); p <= last; p++) this.dirty.add(p);
  }
}
