/**
 * Recording a driver trace at a platform's boundary: the guest's accesses (the access half of a
 * {@link PlatformBus}), and what the platform does through the {@link PlatformEnv} it is built with
 * (DMA, interrupts, timers) and through its NIC's {@link NetBackend} (frames out, frames in).
 *
 * Events are written in the order their calls began; an access's answer (and a delivered frame's
 * acceptance) is filled in when the call returns, and the events nested in it follow it. The clock
 * gives each event's time.
 *
 * Platform-neutral.
 * @module
 */
import type { Clock, DmaSpace, InterruptSink, TimerHandle } from "../pci/interfaces.js";
import type { FrameSink, NetBackend } from "../devices/net/backend.js";
import type { PlatformBus, PlatformEnv } from "../vmm/machine-platform.js";
import { TraceWriter, type TraceEvent, type TraceHeader } from "./format.js";

type Body = TraceEvent extends infer E ? (E extends TraceEvent ? Omit<E, "t" | "depth"> : never) : never;

const ACCESS = new Set(["configRead", "configWrite", "mmioRead", "mmioWrite", "ioRead", "ioWrite"]);

/** Options of {@link TraceRecorder}. */
export interface TraceRecorderOptions {
  /** Size bound of the written trace: events beyond it are dropped (the trace says it was cut). */
  maxBytes?: number;
  /**
   * Sees every event once it is complete (an access with its answer), in trace order: a live view
   * of the platform (`nicvisor web`). Events are the recorder's own objects: keep, do not change.
   */
  onEvent?: (e: TraceEvent) => void;
  /** Write the trace (default true); false makes the recorder a live tap for `onEvent` only. */
  write?: boolean;
}

/**
 * Records one platform's trace. Wrap the platform factory with {@link recordPlatform} (or the
 * pieces with {@link TraceRecorder.wrapEnv}, {@link TraceRecorder.wrapAccess},
 * {@link TraceRecorder.wrapBackend}), run the guest, then {@link TraceRecorder.finish}.
 * @example
 * ```ts
 * const rec = new TraceRecorder({ platform: { kind: "igb" }, ramBytes, ecamDiscovery: "acpi", nicvisor: "0.1.0" });
 * const make = recordPlatform(rec, (env) => buildTracePlatform(rec.header.platform, env, { wrapBackend: (b) => rec.wrapBackend(b) }));
 * // ... Machine.create({ platform: make, ... }), run the guest ...
 * writeFileSync("igb.trace", rec.finish());
 * ```
 */
export class TraceRecorder {
  private w: TraceWriter | undefined;
  private clock: Clock | undefined;
  private depth = 0;
  private nextTimer = 0;
  /** Events of the current outermost call, written when it returns (answers are filled in late). */
  private pending: TraceEvent[] = [];

  constructor(
    readonly header: TraceHeader,
    private readonly opts: TraceRecorderOptions = {},
  ) {}

  /** Events seen by a recorder that does not write (see {@link TraceRecorderOptions.write}). */
  private seen = 0;

  /** The writer, made at the first event (the header is complete by then: see {@link TraceRecorder.wrapBackend}). */
  private get writer(): TraceWriter {
    return (this.w ??= new TraceWriter(this.header, this.opts.maxBytes));
  }

  /** Events recorded so far (written or waiting for their outermost call to return). */
  get count(): number {
    return (this.w?.count ?? 0) + this.seen + this.pending.length;
  }
  /** The size bound was reached: later events were dropped. */
  get cut(): boolean {
    return this.w?.cut ?? false;
  }

  private emit(b: Body): TraceEvent {
    const e = { ...b, t: this.clock?.now() ?? 0, depth: this.depth } as TraceEvent;
    this.pending.push(e);
    return e;
  }

  private flush(): void {
    if (this.depth !== 0) return;
    this.deliver();
  }

  /** Hands the pending events, complete now, to the listener and the writer. */
  private deliver(): void {
    const listener = this.opts.onEvent;
    const write = this.opts.write ?? true;
    for (const e of this.pending) {
      if (listener !== undefined) {
        try {
          listener(e);
        } catch {
          // A listener's failure must not reach the guest access that produced the event.
        }
      }
      if (write) this.writer.write(e);
      else this.seen++;
    }
    this.pending = [];
  }

  /** Runs `f` one level deeper, then writes the events if that was the outermost call. */
  private nested<T>(f: () => T): T {
    this.depth++;
    try {
      return f();
    } finally {
      this.depth--;
      this.flush();
    }
  }

  /** An input event, its nested events, and its answer filled in by `done`. */
  private input<T>(b: Body, f: () => T, done?: (e: TraceEvent, r: T) => void): T {
    const e = this.emit(b);
    return this.nested(() => {
      const r = f();
      done?.(e, r);
      return r;
    });
  }

  /** An output event, and the call into the world (which may call back in, one level deeper). */
  private output<T>(b: Body, f: () => T): T {
    this.emit(b);
    return this.nested(f);
  }

  /** The environment to build the platform with: DMA, interrupts and timers recorded. */
  wrapEnv(env: PlatformEnv): PlatformEnv {
    this.clock = env.clock;
    // The header describes the layout the platform is really built with.
    this.header.ramBytes = env.layout.ramBytes;
    this.header.ecamDiscovery = env.layout.ecamDiscovery;
    const dma: DmaSpace = {
      read: (addr, len) => {
        const e = this.emit({ kind: "dma-read", addr, len });
        return this.nested(() => {
          const d = env.dma.read(addr, len);
          if (d !== undefined && e.kind === "dma-read") e.data = d.slice();
          return d;
        });
      },
      write: (addr, data) => {
        const e = this.emit({ kind: "dma-write", addr, data: data.slice(), ok: false });
        return this.nested(() => {
          const ok = env.dma.write(addr, data);
          if (e.kind === "dma-write") e.ok = ok;
          return ok;
        });
      },
    };
    const interrupts: InterruptSink = {
      msi: (address, data) => this.output({ kind: "msi", address, data: data >>> 0 }, () => env.interrupts.msi(address, data)),
      intx: (rid, pin, level) => this.output({ kind: "intx", rid, pin, level }, () => env.interrupts.intx(rid, pin, level)),
    };
    const clock: Clock = {
      now: () => env.clock.now(),
      schedule: (delayNs: number, cb: () => void): TimerHandle => {
        const id = this.nextTimer++;
        return env.clock.schedule(delayNs, () => this.input({ kind: "timer", id }, cb));
      },
    };
    return { ...env, dma, interrupts, clock };
  }

  /**
   * The platform with its access half recorded (a proxy: everything else, `instanceof` included,
   * is the platform's own).
   */
  wrapAccess<P extends PlatformBus>(p: P): P {
    const rec = (name: string, args: number[], call: () => number | void): number | void => {
      const [a, b, c, d, v] = args as [number, number, number, number, number];
      switch (name) {
        case "configRead":
          return this.input({ kind: "cfg-read", bus: a, devfn: b, reg: c, size: d as 1 | 2 | 4, value: 0 }, call, (e, r) => ("value" in e ? (e.value = (r as number) >>> 0) : undefined));
        case "configWrite":
          return this.input({ kind: "cfg-write", bus: a, devfn: b, reg: c, size: d as 1 | 2 | 4, value: v >>> 0 }, call);
        case "mmioRead":
          return this.input({ kind: "mmio-read", addr: a, size: b as 1 | 2 | 4, value: 0 }, call, (e, r) => ("value" in e ? (e.value = (r as number) >>> 0) : undefined));
        case "mmioWrite":
          return this.input({ kind: "mmio-write", addr: a, size: b as 1 | 2 | 4, value: c >>> 0 }, call);
        case "ioRead":
          return this.input({ kind: "io-read", port: a, size: b as 1 | 2 | 4, value: 0 }, call, (e, r) => ("value" in e ? (e.value = (r as number) >>> 0) : undefined));
        default:
          return this.input({ kind: "io-write", port: a, size: b as 1 | 2 | 4, value: c >>> 0 }, call);
      }
    };
    return new Proxy(p, {
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop, target);
        if (typeof v !== "function") return v;
        const fn = v as (...a: unknown[]) => unknown;
        if (typeof prop === "string" && ACCESS.has(prop)) return (...args: number[]) => rec(prop, args, () => fn.apply(target, args) as number | void);
        return fn.bind(target);
      },
    });
  }

  /** The NIC's backend with frames out, frames in and receive-buffer notices recorded. */
  wrapBackend(b: NetBackend): NetBackend {
    const w: NetBackend = {
      transmit: (frame, meta) => this.output({ kind: "tx", frame: frame.slice(), ...(meta !== undefined ? { meta: structuredClone(meta) } : {}) }, () => b.transmit(frame, meta)),
      setReceiver: (sink: FrameSink | undefined) =>
        b.setReceiver(
          sink === undefined
            ? undefined
            : (frame, meta) =>
                this.input(
                  { kind: "rx", frame: frame.slice(), ...(meta !== undefined ? { meta: structuredClone(meta) } : {}), accepted: false },
                  () => sink(frame, meta),
                  (e, r) => (e.kind === "rx" ? (e.accepted = r) : undefined),
                ),
        ),
      // Always offered (the replay's backend offers it too), recorded, and passed on where the
      // backend has it.
      rxReady: () => this.output({ kind: "rx-ready" }, () => b.rxReady?.()),
      close: () => b.close?.(),
    };
    if (b.offloads !== undefined) {
      Object.defineProperty(w, "offloads", { get: () => b.offloads, enumerable: true });
      this.header.offloads = { ...b.offloads };
    }
    return w;
  }

  /**
   * The trace of what happened so far (events of a call still running are not in it yet), while
   * recording goes on: `nicvisor web`'s download. Empty when not writing.
   */
  snapshot(): Uint8Array {
    if (!(this.opts.write ?? true)) return new Uint8Array(0);
    return this.writer.snapshot();
  }

  /** Writes what is still pending, the end record, and returns the trace's bytes (none when not writing). */
  finish(): Uint8Array {
    this.deliver();
    return (this.opts.write ?? true) ? this.writer.finish() : new Uint8Array(0);
  }
}

/** A platform factory whose platform is recorded by `rec`. */
export function recordPlatform<P extends PlatformBus>(rec: TraceRecorder, factory: (env: PlatformEnv) => P): (env: PlatformEnv) => P {
  return (env) => rec.wrapAccess(factory(rec.wrapEnv(env)));
}
