/**
 * Probes the targets share: a DMA recorder that wraps the `DmaSpace` given to a function, a cheap
 * fingerprint of config space and registers, and a wrapper that catches what a device's BAR
 * handler throws (which `PciFunction` would otherwise swallow and hide).
 * @module
 */
import type { DmaSpace } from "../pci/interfaces.js";
import type { AccessSize, BarHandler, PciFunction } from "../pci/function.js";
import { describeError, type Reporter } from "./engine.js";

/** One DMA access a device asked for. */
export interface DmaAccess {
  readonly write: boolean;
  readonly addr: number;
  readonly len: number;
  /** Whether the memory carried it out. */
  readonly ok: boolean;
}

/** A half-open byte range [start, end). */
export type Range = readonly [number, number];

/**
 * Wraps a `DmaSpace` and records every access since the last {@link DmaRecorder.clear}. It offers
 * no `linear()` fast path, so every access a device makes passes through here.
 */
export class DmaRecorder implements DmaSpace {
  /** Accesses since the last clear (at most `cap`; `dropped` counts the rest). */
  readonly log: DmaAccess[] = [];
  dropped = 0;
  /** Accesses in total. */
  total = 0;

  constructor(
    private readonly inner: DmaSpace,
    /** Which memory this is, for reports ("VF 3 memory"). */
    readonly label: string,
    private readonly cap = 4096,
  ) {}

  read(addr: number, len: number): Uint8Array | undefined {
    const r = this.inner.read(addr, len);
    this.note(false, addr, len, r !== undefined);
    return r;
  }

  write(addr: number, data: Uint8Array): boolean {
    const ok = this.inner.write(addr, data);
    this.note(true, addr, data.length, ok);
    return ok;
  }

  private note(write: boolean, addr: number, len: number, ok: boolean): void {
    this.total++;
    if (this.log.length < this.cap) this.log.push({ write, addr, len, ok });
    else this.dropped++;
  }

  /** Forgets the log. */
  clear(): void {
    this.log.length = 0;
    this.dropped = 0;
  }

  /**
   * Reports the first carried-out access of the log not inside one of `allowed` (an empty list
   * allows nothing), as an isolation break naming `why`; with `anyRead`, only writes are checked.
   */
  checkWithin(allowed: readonly Range[], why: string, r: Reporter, anyRead = false): void {
    for (const a of this.log) {
      if (!a.ok || (anyRead && !a.write)) continue;
      const end = a.addr + a.len;
      if (!allowed.some(([s, e]) => a.addr >= s && end <= e)) {
        r.report("break", `${why}: ${a.write ? "write" : "read"} of ${a.len} bytes at 0x${a.addr.toString(16)} in ${this.label}`);
        return;
      }
    }
  }
}

/** FNV-1a-style hash of 32-bit words (fast enough to run over every config space per operation). */
export function hashWords(words: Int32Array | Uint32Array, h = 0x811c9dc5): number {
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193);
  return h >>> 0;
}

const wordViews = new WeakMap<Uint8Array, Int32Array>();

/**
 * Hash of a function's config space bytes, up to the last byte that is non-zero or writable when
 * first hashed (the rest is zero and read-only: nothing a guest does can change it). Status bit 3
 * (Interrupt Status) is left out: it follows the device's INTx level, which another function's
 * action may legitimately raise (a VF's FLR interrupts its PF).
 */
export function configHash(fn: PciFunction): number {
  const cs = fn.config;
  const b = cs.config;
  let w = wordViews.get(b);
  if (w === undefined) {
    let last = 0;
    for (let i = 0; i < b.length; i++) if (b[i] !== 0 || cs.wmask[i] !== 0 || cs.w1cmask[i] !== 0) last = i;
    w = new Int32Array(b.buffer, b.byteOffset, Math.min(b.byteLength, (last + 4) & ~3) >>> 2);
    wordViews.set(b, w);
  }
  const dw1 = w[1]!;
  w[1] = dw1 & ~(1 << 19);
  const h = hashWords(w);
  w[1] = dw1;
  return h;
}

/** Hash of an array of numbers. */
export function hashNumbers(xs: ArrayLike<number>, h = 0x811c9dc5): number {
  for (let i = 0; i < xs.length; i++) h = Math.imul(h ^ (xs[i]! | 0), 0x01000193);
  return h >>> 0;
}

/**
 * Replaces each BAR handler of `fn` with one that reports (as an escape) what the device's handler
 * throws, then rethrows it so the PCI layer's own containment still runs.
 */
export function watchBarHandlers(fn: PciFunction, label: string, reporter: () => Reporter | undefined): void {
  for (const decl of fn.bars) {
    const h = decl?.handler;
    if (decl === undefined || h === undefined) continue;
    const wrapped: BarHandler = {
      read(off: number, size: AccessSize): number {
        try {
          return h.read(off, size);
        } catch (e) {
          reporter()?.report("escape", `${label} BAR${decl.index} read 0x${off.toString(16)}/${size}: ${describeError(e)}`);
          throw e;
        }
      },
      write(off: number, size: AccessSize, v: number): void {
        try {
          h.write(off, size, v);
        } catch (e) {
          reporter()?.report("escape", `${label} BAR${decl.index} write 0x${off.toString(16)}/${size}: ${describeError(e)}`);
          throw e;
        }
      },
    };
    decl.handler = wrapped;
  }
}

/** Runs `f`, reporting an exception it throws as an escape from `what`. */
export function guarded(r: Reporter, what: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    r.report("escape", `${what}: ${describeError(e)}`);
  }
}
