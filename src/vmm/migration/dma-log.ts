/**
 * A DMA write log: wraps the {@link DmaSpace} a machine hands its devices and marks every 4 KiB
 * page a device writes, so that live migration re-sends those pages even where the page hash
 * alone might miss the change. v86 keeps no dirty log of its own; the CPU's writes are found by
 * hashing (see `ram.ts`), the devices' writes by this log.
 *
 * Platform-neutral.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";

/** The page size migration works in. */
export const PAGE_SIZE = 4096;
/** log2 of {@link PAGE_SIZE}. */
export const PAGE_SHIFT = 12;

/**
 * Marks the pages devices write through {@link DmaWriteLog.space}. Logging is on from
 * construction; {@link DmaWriteLog.take} returns the marked pages and clears them.
 * @example
 * ```ts
 * const log = new DmaWriteLog(cpu.memory, cpu.memBytes);
 * platform = makePlatform({ dma: log.space, ... });
 * const written = log.take(); // pages device DMA wrote since the last take
 * ```
 */
export class DmaWriteLog {
  /** The logged view of guest memory: reads pass through, writes mark their pages. */
  readonly space: DmaSpace;
  /** Pages in guest RAM. */
  readonly pageCount: number;
  private bits: Uint8Array;
  /** Pages marked since the last take (a page written twice counts once). */
  private marked = 0;
  /** Device writes seen since construction (counted, whatever their size). */
  writes = 0;
  /** Device reads seen since construction (counted, whatever their size; a per-frame figure for benches). */
  reads = 0;

  constructor(inner: DmaSpace, ramBytes: number) {
    this.pageCount = Math.ceil(ramBytes / PAGE_SIZE);
    this.bits = new Uint8Array(this.pageCount);
    const mark = (addr: number, len: number): void => {
      if (len <= 0) return;
      const first = Math.floor(addr / PAGE_SIZE);
      const last = Math.min(Math.floor((addr + len - 1) / PAGE_SIZE), this.pageCount - 1);
      for (let p = first; p <= last; p++) {
        if (this.bits[p] === 0) {
          this.bits[p] = 1;
          this.marked++;
        }
      }
    };
    // No `linear()`: a device writing through a raw view would bypass the log.
    this.space = {
      read: (addr, len) => {
        this.reads++;
        return inner.read(addr, len);
      },
      write: (addr, data) => {
        const ok = inner.write(addr, data);
        if (ok) {
          this.writes++;
          mark(addr, data.length);
        }
        return ok;
      },
    };
  }

  /** How many pages are marked now. */
  get pending(): number {
    return this.marked;
  }

  /** Returns the marked pages (one byte per page, 1 = written) and starts a fresh log. */
  take(): Uint8Array {
    const out = this.bits;
    this.bits = new Uint8Array(this.pageCount);
    this.marked = 0;
    return out;
  }
}
