/**
 * What the 82576's data path may do, and how much: the activity of the whole NIC and of each
 * VMDq pool (the migration states' "running" / "quiesced" / "stopped"), the bounded FIFOs that hold
 * received frames while the NIC or a pool does not run, and the work meter that bounds the work
 * one register write (or one timer task) may do.
 *
 * Platform-neutral.
 * @module
 */
import type { Activity } from "../../state/migration.js";
import { DEFAULT_MAX_SEGMENTS } from "../net/segment.js";
import { IGB_SIZES } from "./regs.js";

/** Frames each hold FIFO (the NIC's, and each pool's) keeps; more are dropped and counted. */
export const IGB_HOLD_FRAMES = 256;

/** Largest frame a hold FIFO keeps (a 64 KiB frame from the uplink plus a VLAN tag and slack). */
export const IGB_HOLD_FRAME_MAX = 0x10000 + 64;

/**
 * Work units one guest register write (or one continuation task) may spend before the rest of
 * its work is moved to a task on the device clock. A unit is one descriptor fetched, one frame
 * handed on, or 4 KiB of data moved by DMA.
 */
export const IGB_WORK_BUDGET = 2048;

/**
 * How far one write can go past {@link IGB_WORK_BUDGET}: the budget is checked before each
 * descriptor, and one descriptor can finish a 256 KiB packet (64 units of data) cut into at most
 * {@link DEFAULT_MAX_SEGMENTS} TSO segments; each segment is one frame, and may loop back into
 * every pool twice (VMDq loopback, then MAC/PHY loopback), each receive taking at most 64
 * descriptors, 16 units of data and one frame.
 */
export const IGB_WORK_OVERSHOOT = 1 + 64 + DEFAULT_MAX_SEGMENTS * (1 + 2 * IGB_SIZES.pools * (64 + 16 + 1));

/** Delay of a continuation task (ns on the device clock). */
export const IGB_CONTINUE_NS = 1000;

/** A frame held for one pool's receive queue. */
export interface HeldRx {
  /** The queue that will receive it. */
  readonly q: number;
  /** The frame. */
  readonly frame: Uint8Array;
  /** RSS hash and type the switch computed for it. */
  readonly rssHash: number;
  readonly rssType: number;
  /** Came from a local pool (loopback). */
  readonly loopback: boolean;
}

/** Counters of the hold FIFOs (not guest visible). */
export interface IgbHoldCounters {
  /** Frames put in a FIFO. */
  held: number;
  /** Frames dropped because their FIFO was full. */
  heldDrops: number;
  /** Frames taken out of a FIFO and delivered on return to running. */
  replayed: number;
}

/** Counters of the work meter, for a fuzzer to check the bound. */
export interface IgbWorkCounters {
  /** Units a write may spend ({@link IGB_WORK_BUDGET}). */
  readonly budget: number;
  /** Units spent by the most recent write or task. */
  lastUnits: number;
  /** Most units any one write or task spent. */
  maxUnits: number;
  /** Units spent in all. */
  totalUnits: number;
  /** Continuation tasks scheduled because a write ran out of budget. */
  continuations: number;
}

/** The activity of the NIC and of its pools, and the held frames. */
export class IgbActivity {
  /** The whole NIC's activity. */
  nic: Activity = "running";
  /** Each pool's own activity (a VF's pool, for the failover switch). */
  readonly pools: Activity[] = new Array<Activity>(IGB_SIZES.pools).fill("running");
  /** Frames from the uplink while the NIC does not run (before the switch saw them). */
  nicFifo: Uint8Array[] = [];
  /** Frames for each pool's queues while the pool does not run (after the switch chose them). */
  poolFifo: HeldRx[][] = Array.from({ length: IGB_SIZES.pools }, () => []);
  /** See {@link IgbHoldCounters}. */
  readonly counters: IgbHoldCounters = { held: 0, heldDrops: 0, replayed: 0 };

  /** Whether pool `p`'s data path may run (NIC and pool both running). */
  poolRuns(p: number): boolean {
    return this.nic === "running" && this.pools[p % IGB_SIZES.pools] === "running";
  }

  /** Holds a frame from the uplink; false (counted) if the FIFO is full. */
  holdNic(frame: Uint8Array): boolean {
    if (this.nicFifo.length >= IGB_HOLD_FRAMES || frame.length > IGB_HOLD_FRAME_MAX) {
      this.counters.heldDrops++;
      return false;
    }
    this.nicFifo.push(frame.slice());
    this.counters.held++;
    return true;
  }

  /** Holds a frame for pool `p`'s queue; false (counted) if the FIFO is full. */
  holdPool(p: number, h: HeldRx): boolean {
    const fifo = this.poolFifo[p];
    if (fifo === undefined || fifo.length >= IGB_HOLD_FRAMES || h.frame.length > IGB_HOLD_FRAME_MAX) {
      this.counters.heldDrops++;
      return false;
    }
    fifo.push({ ...h, frame: h.frame.slice() });
    this.counters.held++;
    return true;
  }

  /** Drops every held frame (device reset). */
  clear(): void {
    this.nicFifo = [];
    this.poolFifo = Array.from({ length: IGB_SIZES.pools }, () => []);
  }
}

/**
 * Meters the work of one guest register write (or one timer task): nested calls (a write made
 * from an interrupt handler the write raised) share the outer call's budget.
 */
export class WorkMeter {
  /** See {@link IgbWorkCounters}. */
  readonly counters: IgbWorkCounters = { budget: IGB_WORK_BUDGET, lastUnits: 0, maxUnits: 0, totalUnits: 0, continuations: 0 };
  private depth = 0;
  private used = 0;

  /** Starts a write or task (the outermost call resets the budget). */
  begin(): void {
    if (this.depth++ === 0) this.used = 0;
  }

  /** Ends a write or task. */
  end(): void {
    if (--this.depth > 0) return;
    this.depth = 0;
    const c = this.counters;
    c.lastUnits = this.used;
    if (this.used > c.maxUnits) c.maxUnits = this.used;
  }

  /** Spends `units`. */
  spend(units: number): void {
    this.used += units;
    this.counters.totalUnits += units;
  }

  /** Whether budget is left for another descriptor. */
  left(): boolean {
    return this.used < this.counters.budget;
  }

  /** Units for `bytes` of data moved. */
  static data(bytes: number): number {
    return Math.ceil(bytes / 4096);
  }
}

/** Bytes from hex digits (already checked by a parser; a bad pair reads 0). */
export function bytesFromHex(h: string): Uint8Array {
  const out = new Uint8Array(h.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16) || 0;
  return out;
}
