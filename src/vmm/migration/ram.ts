/**
 * Finding the guest pages that changed, without a dirty log from the CPU engine: a 64-bit hash
 * of every 4 KiB page (`page-hash.ts`: WebAssembly over the engine's memory in place where it can,
 * else TypeScript), compared with the hash of what was last sent, plus the pages device DMA
 * wrote ({@link DmaWriteLog}), sent whatever their hash says. The source hashes a page and copies
 * it in the same synchronous step, so the hash it keeps is always the hash of what it sent.
 *
 * Platform-neutral.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import { PAGE_SIZE } from "./dma-log.js";
import { createPageHasher, hashPageTs, type PageHasher } from "./page-hash.js";

const WORDS = PAGE_SIZE / 4;

/** The hash of an all-zero page (the two implementations agree). */
const ZERO_HASH = (() => {
  const h = new Uint32Array(2);
  hashPageTs(new Uint32Array(WORDS), 0, h);
  return h;
})();

function isZero(words: Uint32Array, at: number): boolean {
  for (let i = at; i < at + WORDS; i++) if (words[i] !== 0) return false;
  return true;
}

/** What {@link RamScanner.scan} found in a range of pages. */
export interface ScanResult {
  /** Changed pages with content, in ascending order. */
  pages: number[];
  /** Their content, `pages[i]` at `data[i * 4096]`. */
  data: Uint8Array;
  /** Changed pages that are now all zeros, in ascending order. */
  zero: number[];
  /** Pages sent because device DMA wrote them although their hash had not changed. */
  dmaOnly: number;
}

/**
 * Per-page hashes of what the source sent last. A page never sent counts as changed. Read RAM
 * through `ram.read` one chunk at a time, so the caller can let the guest run between chunks.
 */
export class RamScanner {
  /** Pages in RAM. */
  readonly pageCount: number;
  private readonly h = new Uint32Array(2);
  private readonly lo: Uint32Array;
  private readonly hi: Uint32Array;
  private readonly known: Uint8Array;

  /** How pages are hashed. */
  readonly hasher: PageHasher;

  /** `hasher` defaults to the TypeScript hash; pass `createPageHasher(engineMemory)` for WebAssembly. */
  constructor(
    private readonly ram: DmaSpace,
    ramBytes: number,
    hasher?: PageHasher,
  ) {
    this.hasher = hasher ?? createPageHasher(undefined, "ts");
    this.pageCount = Math.ceil(ramBytes / PAGE_SIZE);
    this.lo = new Uint32Array(this.pageCount);
    this.hi = new Uint32Array(this.pageCount);
    this.known = new Uint8Array(this.pageCount);
  }

  /**
   * Hashes pages `[from, to)` and returns those that changed since they were last returned, or
   * that `dma` marks (one byte per page; may be undefined), with a copy of their content taken in
   * the same step; remembers their new hashes. Synchronous.
   * @throws RangeError when RAM cannot be read
   */
  scan(from: number, to: number, dma?: Uint8Array): ScanResult {
    const view = this.ram.read(from * PAGE_SIZE, (to - from) * PAGE_SIZE);
    if (view === undefined) throw new RangeError(`guest RAM pages ${from}..${to} cannot be read`);
    const src = view.byteOffset % 4 === 0 ? view : view.slice();
    const words = new Uint32Array(src.buffer, src.byteOffset, src.byteLength >>> 2);
    const hasher = this.hasher;
    const pages: number[] = [];
    const zero: number[] = [];
    let dmaOnly = 0;
    const h = this.h;
    for (let p = from; p < to; p++) {
      const at = (p - from) * WORDS;
      hasher.hash(src, words, (p - from) * PAGE_SIZE, h);
      const changed = this.known[p] === 0 || this.lo[p] !== h[0] || this.hi[p] !== h[1];
      const marked = dma !== undefined && dma[p] === 1;
      if (!changed && !marked) continue;
      if (!changed) dmaOnly++;
      this.known[p] = 1;
      this.lo[p] = h[0]!;
      this.hi[p] = h[1]!;
      if (h[0] === ZERO_HASH[0] && h[1] === ZERO_HASH[1] && isZero(words, at)) zero.push(p);
      else pages.push(p);
    }
    const data = new Uint8Array(pages.length * PAGE_SIZE);
    pages.forEach((p, i) => data.set(src.subarray((p - from) * PAGE_SIZE, (p - from + 1) * PAGE_SIZE), i * PAGE_SIZE));
    return { pages, data, zero, dmaOnly };
  }
}

/** Sorted page numbers as runs `[first, count]`. */
export function toRuns(pages: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const p of pages) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === p) last[1]++;
    else out.push([p, 1]);
  }
  return out;
}
