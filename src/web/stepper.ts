/**
 * Stepping through a driver trace, forwards and back, with every view following: a position is
 * reached by replaying the trace up to it against a fresh platform (`replayTrace` with `until`),
 * which then holds the state the guest's platform had there; the monitor gets the events up to it,
 * and guest RAM is what the trace's DMA saw (reads and writes), which is all the ring view needs.
 *
 * Going back replays from the start: the shipped traces replay whole in tens of milliseconds.
 *
 * Platform-neutral.
 * @module
 */
import { decodeTrace, isInput, type Trace } from "../trace/format.js";
import { replayTrace, type ReplayDifference } from "../trace/replay.js";
import type { PciPlatform } from "../vmm/pci-platform.js";
import { NicMonitor, type MonitorOptions } from "./monitor.js";

/** Guest RAM as far as a trace's DMA saw it. */
export class RamShadow {
  private readonly pages = new Map<number, Uint8Array>();
  write(addr: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; ) {
      const a = addr + i;
      const page = Math.floor(a / 4096);
      const off = a - page * 4096;
      const n = Math.min(4096 - off, data.length - i);
      let p = this.pages.get(page);
      if (p === undefined) this.pages.set(page, (p = new Uint8Array(4096)));
      p.set(data.subarray(i, i + n), off);
      i += n;
    }
  }
  read = (addr: number, len: number): Uint8Array | undefined => {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; ) {
      const a = addr + i;
      const page = Math.floor(a / 4096);
      const off = a - page * 4096;
      const n = Math.min(4096 - off, len - i);
      const p = this.pages.get(page);
      if (p === undefined) return undefined;
      out.set(p.subarray(off, off + n), i);
      i += n;
    }
    return out;
  };
}

/** Where a step landed. */
export interface StepView {
  /** Events before this position (0: nothing happened yet). */
  position: number;
  /** The platform as the trace left it here. */
  platform: PciPlatform;
  monitor: NicMonitor;
  ram: RamShadow;
  /** Set when the fresh model did not do what the trace says before this position. */
  difference?: ReplayDifference;
}

/** A trace to step through. */
export class TraceStepper {
  readonly trace: Trace;
  /** Positions where a step may stop: before each top-level input event, and the end. */
  readonly stops: number[];

  /** @throws TraceError (a StateError naming the field) on a bad trace */
  constructor(
    bytes: Uint8Array,
    private readonly monitorOptions: Omit<MonitorOptions, "root"> = {},
  ) {
    this.trace = decodeTrace(bytes);
    this.stops = [];
    this.trace.events.forEach((e, i) => {
      if (e.depth === 0 && isInput(e)) this.stops.push(i);
    });
    this.stops.push(this.trace.events.length);
  }

  /** The state at the step stop nearest at or before `position`. */
  seek(position: number): StepView {
    const target = Math.max(0, Math.min(this.trace.events.length, Math.floor(position)));
    let platform: PciPlatform | undefined;
    const r = replayTrace(this.trace, { until: target, onPlatform: (p) => (platform = p) });
    const reached = r.status === "clean" ? r.events : r.difference.index;
    const monitor = new NicMonitor({ ...this.monitorOptions, root: () => platform?.root });
    const ram = new RamShadow();
    for (let i = 0; i < reached; i++) {
      const e = this.trace.events[i]!;
      monitor.onEvent(e);
      if (e.kind === "dma-write" && e.ok) ram.write(e.addr, e.data);
      else if (e.kind === "dma-read" && e.data !== undefined) ram.write(e.addr, e.data);
    }
    const view: StepView = { position: reached, platform: platform!, monitor, ram };
    if (r.status === "differs") view.difference = r.difference;
    return view;
  }

  /** The stop after `position` (the end stays the end). */
  next(position: number): number {
    return this.stops.find((s) => s > position) ?? this.trace.events.length;
  }

  /** The stop before `position` (0 stays 0). */
  previous(position: number): number {
    let best = 0;
    for (const s of this.stops) if (s < position) best = s;
    return best;
  }
}
