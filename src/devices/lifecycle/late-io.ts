/**
 * Stand-ins for I/O that is attached after a device is built: a clock whose timers wait for the
 * real clock, and a network backend that holds the device's receiver until the real backend
 * arrives. They let a device that takes its I/O at construction be created and restored first
 * and attached after, as the lifecycle asks (see `device.ts`).
 *
 * Platform-neutral.
 * @module
 */
import type { Clock, TimerHandle } from "../../pci/interfaces.js";
import type { FrameMeta, FrameSink, NetBackend, ReceiverOptions } from "../net/backend.js";

/** A clock that forwards to the clock given to {@link LateClock.bind}; timers set before wait for it, with their delays. */
export class LateClock implements Clock {
  #target: Clock | undefined;
  #pending: { delay: number; cb: () => void; live: boolean; handle?: TimerHandle }[] = [];

  /** Time of the bound clock (0 before it is bound: an unattached device does not run). */
  now(): number {
    return this.#target?.now() ?? 0;
  }

  /** Schedules on the bound clock, or remembers the timer (relative delay) until bind. */
  schedule(delayNs: number, cb: () => void): TimerHandle {
    if (this.#target !== undefined) return this.#target.schedule(delayNs, cb);
    const e: { delay: number; cb: () => void; live: boolean; handle?: TimerHandle } = { delay: Math.max(0, delayNs), cb, live: true };
    this.#pending.push(e);
    return {
      cancel: () => {
        e.live = false;
        e.handle?.cancel();
      },
    };
  }

  /** Binds the real clock and arms the timers set before, relative to its now. */
  bind(clock: Clock): void {
    this.#target = clock;
    for (const e of this.#pending.splice(0)) if (e.live) e.handle = clock.schedule(e.delay, e.cb);
  }

  /** True once bound. */
  get bound(): boolean {
    return this.#target !== undefined;
  }
}

const NO_OFFLOADS = { csum: false, tso4: false, tso6: false } as const;

/** A backend that forwards to the one given to {@link LateBackend.bind}; frames sent before are dropped and counted. */
export class LateBackend implements NetBackend {
  #target: NetBackend | undefined;
  #sink: FrameSink | undefined;
  #options: ReceiverOptions | undefined;
  /** Frames the device sent before a backend was bound (dropped). */
  droppedBeforeBind = 0;

  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    if (this.#target === undefined) {
      this.droppedBeforeBind++;
      return;
    }
    this.#target.transmit(frame, meta);
  }
  setReceiver(sink: FrameSink | undefined, options?: ReceiverOptions): void {
    this.#sink = sink;
    this.#options = options;
    this.#target?.setReceiver(sink, options);
  }
  rxReady(): void {
    this.#target?.rxReady?.();
  }
  /** As the bound backend's (frames sent before one is bound are dropped, so nothing is kept). */
  get copiesOnTransmit(): boolean {
    return this.#target === undefined || this.#target.copiesOnTransmit === true;
  }
  /** The bound backend's offloads (none before a backend is bound). */
  get offloads(): { csum: boolean; tso4: boolean; tso6: boolean } {
    return this.#target?.offloads ?? NO_OFFLOADS;
  }
  close(): void {
    this.#target?.close?.();
  }
  /** Binds the real backend and hands it the device's receiver. */
  bind(backend: NetBackend): void {
    this.#target = backend;
    backend.setReceiver(this.#sink, this.#options);
  }
}
