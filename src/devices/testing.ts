/**
 * In-memory stand-ins for a device's injected interfaces, shared by every device's tests, the
 * simulated drivers, the benches and `nicvisor/testing`: flat guest memory and a manual clock.
 * Platform-neutral.
 * @module
 */
import type { Clock, DmaSpace, TimerHandle } from "../pci/interfaces.js";

/** Flat guest memory of `size` bytes starting at guest address 0. */
export class FlatMemory implements DmaSpace {
  /** The bytes. */
  readonly bytes: Uint8Array;
  /** Accesses refused (out of range). */
  faults = 0;
  /** Reads and writes asked for, refused or not. */
  accesses = 0;
  /**
   * @param size - bytes of memory
   * @param opts - `linear`: offer {@link DmaSpace.linear} (as the virtio test bed's flat RAM does),
   *   so devices that use it access memory directly; such accesses are not counted in
   *   `accesses` (faults still are: an access out of range goes through `read`/`write`).
   */
  constructor(size: number, opts: { readonly linear?: boolean } = {}) {
    this.bytes = new Uint8Array(size);
    if (opts.linear === true) this.linear = () => this.bytes;
  }
  /** Present only with the `linear` option: all of memory as one array. */
  linear?: () => Uint8Array;
  /** The `len` bytes at `addr` (a view), or undefined (counted as a fault) outside the memory. */
  read(addr: number, len: number): Uint8Array | undefined {
    this.accesses++;
    if (!(addr >= 0 && len >= 0 && addr + len <= this.bytes.length)) {
      this.faults++;
      return undefined;
    }
    return this.bytes.subarray(addr, addr + len);
  }
  /** Copies `data` to `addr`; false (counted as a fault) when it would leave the memory. */
  write(addr: number, data: Uint8Array): boolean {
    this.accesses++;
    if (!(addr >= 0 && addr + data.length <= this.bytes.length)) {
      this.faults++;
      return false;
    }
    this.bytes.set(data, addr);
    return true;
  }
}

/** More timers than this firing in one {@link ManualClock.advance} is a timer storm. */
export const MANUAL_CLOCK_STORM = 1_000_000;

/** A timer storm: a callback keeps re-arming itself within the advanced window. */
export class ClockStormError extends Error {
  override readonly name = "ClockStormError";
}

/**
 * A clock that moves only when told to; timers fire in time order (then in the order they were
 * set) during {@link ManualClock.advance}, including timers set by timers within the window.
 */
export class ManualClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers: { at: number; seq: number; cb: () => void; live: boolean }[] = [];

  /** The current time in ns (moves only with {@link ManualClock.advance}). */
  now(): number {
    return this.#now;
  }
  /** Runs `cb` once the clock has been advanced by `delayNs`; the handle cancels it. */
  schedule(delayNs: number, cb: () => void): TimerHandle {
    const t = { at: this.#now + Math.max(0, delayNs), seq: this.#seq++, cb, live: true };
    this.#timers.push(t);
    return { cancel: () => void (t.live = false) };
  }
  /**
   * Moves time forward by `ns`, firing due timers in order.
   * @throws ClockStormError after {@link MANUAL_CLOCK_STORM} timers in one call
   */
  advance(ns: number): void {
    const end = this.#now + ns;
    for (let fired = 0; ; fired++) {
      if (fired >= MANUAL_CLOCK_STORM) throw new ClockStormError(`more than ${MANUAL_CLOCK_STORM} timers fired in one advance of ${ns} ns`);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const i = this.#timers.findIndex((t) => t.live && t.at <= end);
      if (i < 0) break;
      const t = this.#timers.splice(i, 1)[0]!;
      this.#now = Math.max(this.#now, t.at);
      t.cb();
    }
    this.#now = end;
    for (let i = this.#timers.length - 1; i >= 0; i--) if (!this.#timers[i]!.live) this.#timers.splice(i, 1);
  }
  /** Timers still pending. */
  get pending(): number {
    return this.#timers.filter((x) => x.live).length;
  }
}
