/**
 * Small in-memory stand-ins for the device's injected interfaces, for tests, benchmarks and the
 * simulated drivers: flat guest memory, a manual clock, and an interrupt recorder.
 * @module
 */
import type { Clock, DmaSpace, TimerHandle } from "../../pci/interfaces.js";
import type { IgbIrqPort } from "./irq.js";

/** Flat guest memory of `size` bytes starting at guest address 0. */
export class FlatMemory implements DmaSpace {
  /** The bytes. */
  readonly bytes: Uint8Array;
  /** Accesses refused (out of range). */
  faults = 0;
  /** Reads and writes asked for, refused or not. */
  accesses = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
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

/** A clock that moves only when told to; timers fire in order from {@link ManualClock.advance}. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: { at: number; seq: number; cb: () => void; live: boolean }[] = [];
  /** The current time in ns (moves only with {@link ManualClock.advance}). */
  now(): number {
    return this.t;
  }
  /** Runs `cb` once the clock has been advanced by `delayNs`; the handle cancels it. */
  schedule(delayNs: number, cb: () => void): TimerHandle {
    const e = { at: this.t + Math.max(0, delayNs), seq: this.seq++, cb, live: true };
    this.timers.push(e);
    return { cancel: () => void (e.live = false) };
  }
  /** Moves time forward by `ns`, firing due timers (at most 10000 per call). */
  advance(ns: number): void {
    const end = this.t + ns;
    for (let i = 0; i < 10000; i++) {
      this.timers = this.timers.filter((x) => x.live);
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (next === undefined || next.at > end) break;
      this.t = next.at;
      next.live = false;
      next.cb();
    }
    this.t = end;
  }
  /** Timers still pending. */
  get pending(): number {
    return this.timers.filter((x) => x.live).length;
  }
}

/** Most interrupts an {@link IrqRecorder} keeps in its lists. */
const RECORD_CAP = 4096;

/** Records interrupts (the most recent 2048 to 4096 of each kind) and optionally forwards them. */
export class IrqRecorder implements IgbIrqPort {
  /** PF vectors raised, in order. */
  readonly pfVectors: number[] = [];
  /** VF vectors raised, in order, as [vf, vector]. */
  readonly vfVectors: [number, number][] = [];
  /** Interrupts raised in total (the vector lists keep only the most recent ones). */
  pfCount = 0;
  vfCount = 0;
  /** Current INTx level. */
  intx = false;
  /** Called on every VF interrupt (after recording). */
  onVf?: (vf: number, vector: number) => void;
  /** Called on every PF interrupt (after recording). */
  onPf?: (vector: number) => void;
  /** {@inheritDoc IgbIrqPort.pf} */
  pf(vector: number): void {
    this.pfCount++;
    if (this.pfVectors.length >= RECORD_CAP) this.pfVectors.splice(0, RECORD_CAP / 2);
    this.pfVectors.push(vector);
    this.intx = true;
    this.onPf?.(vector);
  }
  /** {@inheritDoc IgbIrqPort.pfIntx} */
  pfIntx(level: boolean): void {
    this.intx = level;
  }
  /** {@inheritDoc IgbIrqPort.vf} */
  vf(vf: number, vector: number): void {
    this.vfCount++;
    if (this.vfVectors.length >= RECORD_CAP) this.vfVectors.splice(0, RECORD_CAP / 2);
    this.vfVectors.push([vf, vector]);
    this.onVf?.(vf, vector);
  }
}
