/**
 * Replaying a driver trace against a fresh platform, without a guest: the platform the trace names
 * is built again on a replay environment whose clock is set to each event's time before it, whose
 * timers fire when the trace says they fired (by the order they were set), whose DMA and
 * interrupts, and whose NIC backend, check what the fresh model does against the trace. Then every
 * guest access and every frame the backend delivered is driven in order.
 *
 * Everything the device does is compared, in order, with the trace: each read's answer, each DMA
 * read (its address and length; the answer is the recorded bytes, so a read the fresh model makes
 * that was not recorded, or makes elsewhere or in another order, is itself a difference), each DMA
 * write's bytes, each interrupt, each transmitted frame. The first difference ends the replay and
 * is reported with the event's index, time and kind, the register (function, BAR, offset and,
 * where known, its name), and expected against got.
 *
 * Platform-neutral.
 * @module
 */
import type { Clock, DmaSpace, InterruptSink, TimerHandle } from "../pci/interfaces.js";
import type { FrameMeta, FrameSink, NetBackend } from "../devices/net/backend.js";
import { defaultLayout, type PlatformAccess, type PlatformEnv } from "../vmm/machine-platform.js";
import type { PciPlatform } from "../vmm/pci-platform.js";
import { decodeTrace, isInput, type Trace, type TraceEvent } from "./format.js";
import { buildTracePlatform } from "./platform.js";
import { barRegisterName, configRegisterName, functionId } from "./names.js";

/** The first place where the fresh model did not do what the trace says. */
export interface ReplayDifference {
  /** Index of the trace event (or, for something the model did beyond the trace, `events.length`). */
  index: number;
  /** Its guest virtual time (ns). */
  t: number;
  /** Its kind (`mmio-read`, `dma-write`, `msi`, ...). */
  kind: string;
  /** Where: `bb:dd.f BAR0+0x0008 (STATUS)`, `cfg bb:dd.f 0x04 (COMMAND)`, a DMA address, a frame. */
  where: string;
  /** What the trace holds. */
  expected: string;
  /** What the fresh model did. */
  got: string;
}

/** What {@link replayTrace} found. */
export type ReplayResult =
  | { status: "clean"; /** Events replayed (all of them, unless `until` stopped it earlier). */ events: number; counts: Partial<Record<TraceEvent["kind"], number>>; cut: boolean }
  | { status: "differs"; events: number; difference: ReplayDifference };

/** Options of {@link replayTrace}. */
export interface ReplayOptions {
  /**
   * Changes the fresh platform before the replay starts (a test's deliberate change of a model's
   * behaviour): may return the access half to drive instead of the platform's own.
   */
  tamper?: (platform: PciPlatform) => PlatformAccess | void;
  /**
   * Stop before the first top-level input event at or past this index (a stepper's position: the
   * fresh platform then holds the state the guest's platform had there). Default: the whole trace.
   */
  until?: number;
  /** Receives the fresh platform once it is built (to look at its state after the replay). */
  onPlatform?: (platform: PciPlatform) => void;
}

const hex = (v: number, w = 8): string => `0x${(v >>> 0).toString(16).padStart(w, "0")}`;
const hexBytes = (b: Uint8Array, max = 32): string =>
  [...b.subarray(0, max)].map((x) => x.toString(16).padStart(2, "0")).join("") + (b.length > max ? `... (${b.length} bytes)` : ` (${b.length} bytes)`);
const bdf = (rid: number): string => `${(rid >>> 8).toString(16).padStart(2, "0")}:${((rid >>> 3) & 0x1f).toString(16).padStart(2, "0")}.${rid & 7}`;
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sameMeta = (a: FrameMeta | undefined, b: FrameMeta | undefined): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Describes an event for a report. */
export function describeEvent(e: TraceEvent | undefined): string {
  if (e === undefined) return "nothing (the trace ends)";
  switch (e.kind) {
    case "cfg-read":
    case "cfg-write":
      return `${e.kind} ${bdf((e.bus << 8) | e.devfn)} ${hex(e.reg, 3)}/${e.size} = ${hex(e.value)}`;
    case "mmio-read":
    case "mmio-write":
      return `${e.kind} ${hex(e.addr)}/${e.size} = ${hex(e.value)}`;
    case "io-read":
    case "io-write":
      return `${e.kind} ${hex(e.port, 4)}/${e.size} = ${hex(e.value)}`;
    case "rx":
      return `rx frame ${hexBytes(e.frame)}, accepted ${e.accepted}`;
    case "timer":
      return `timer #${e.id} fires`;
    case "dma-read":
      return `dma-read ${hex(e.addr)} +${e.len}${e.data === undefined ? " (fault)" : ""}`;
    case "dma-write":
      return `dma-write ${hex(e.addr)} ${hexBytes(e.data)}${e.ok ? "" : " (fault)"}`;
    case "msi":
      return `msi address ${hex(e.address)} data ${hex(e.data)}`;
    case "intx":
      return `intx ${bdf(e.rid)} pin ${e.pin} ${e.level ? "asserted" : "deasserted"}`;
    case "tx":
      return `tx frame ${hexBytes(e.frame)}${e.meta !== undefined ? ` meta ${JSON.stringify(e.meta)}` : ""}`;
    case "rx-ready":
      return "rx-ready";
  }
}

/** A difference was found: unwinds the replay (caught in {@link replayTrace}). */
class Stop extends Error {
  override readonly name = "ReplayStop";
}

/** The replay's clock: time set from the trace, timers fired by id when the trace says. */
class ReplayClock implements Clock {
  t = 0;
  private next = 0;
  readonly timers = new Map<number, () => void>();
  now(): number {
    return this.t;
  }
  schedule(_delayNs: number, cb: () => void): TimerHandle {
    const id = this.next++;
    this.timers.set(id, cb);
    return { cancel: () => void this.timers.delete(id) };
  }
}

/**
 * Replays a trace (its bytes, or a decoded {@link Trace}) against a fresh platform of the recorded
 * kind and reports the first difference, or "clean" with counts of each kind of event.
 * @throws TraceError on a bad trace (naming the field)
 * @example
 * ```ts
 * const r = replayTrace(readFileSync("test/traces/virtio-net.nvtrace"));
 * if (r.status === "differs") console.log(formatReplayResult(r));
 * ```
 */
export function replayTrace(input: Uint8Array | Trace, opts: ReplayOptions = {}): ReplayResult {
  const trace = input instanceof Uint8Array ? decodeTrace(input) : input;
  const ev = trace.events;
  let i = 0;
  let diff: ReplayDifference | undefined;
  const clock = new ReplayClock();
  let platform: PciPlatform | undefined;

  const where = (e: TraceEvent): string => {
    if (e.kind === "cfg-read" || e.kind === "cfg-write") {
      const name = configRegisterName(e.reg);
      return `cfg ${bdf((e.bus << 8) | e.devfn)} ${hex(e.reg, 3)}${name !== undefined ? ` (${name})` : ""}`;
    }
    if (e.kind === "mmio-read" || e.kind === "mmio-write") {
      const r = platform?.root.memoryMap().find((m) => e.addr >= m.base && e.addr < m.base + m.size);
      if (r === undefined) return `${hex(e.addr)} (no BAR decodes it)`;
      const off = e.addr - r.base;
      const name = barRegisterName(functionId(platform!.root.lookup(r.rid >>> 8, r.rid & 0xff)), r.bar, off);
      return `${bdf(r.rid)} BAR${r.bar}+${hex(off, 4)}${name !== undefined ? ` (${name})` : ""}`;
    }
    if (e.kind === "io-read" || e.kind === "io-write") return `port ${hex(e.port, 4)}`;
    if (e.kind === "dma-read" || e.kind === "dma-write") return `guest memory ${hex(e.addr)}`;
    return e.kind;
  };
  const differ = (index: number, e: TraceEvent | undefined, expected: string, got: string, kind?: string): never => {
    diff ??= { index, t: e?.t ?? clock.t, kind: kind ?? e?.kind ?? "end", where: e !== undefined ? where(e) : "after the last event", expected, got };
    throw new Stop();
  };

  /** The device did `got`: it must be the trace's next event. */
  const expect = <K extends TraceEvent["kind"]>(kind: K, got: string, same: (e: TraceEvent & { kind: K }) => boolean): TraceEvent & { kind: K } => {
    if (diff !== undefined) throw new Stop();
    const e = ev[i];
    if (e === undefined || e.kind !== kind || isInput(e) || !same(e as TraceEvent & { kind: K })) {
      differ(i, e, describeEvent(e), got, e === undefined || e.kind !== kind ? `${kind} (unexpected)` : kind);
    }
    i++;
    return e as TraceEvent & { kind: K };
  };

  /** Drives the inputs the trace nested inside the output `e` (frames a backend delivered inside `transmit`). */
  const drainNested = (e: TraceEvent): void => {
    while (diff === undefined && ev[i] !== undefined && ev[i]!.depth === e.depth + 1 && isInput(ev[i]!)) drive(ev[i++]!, i - 1);
  };

  let access: PlatformAccess;
  let receiver: FrameSink | undefined;

  const drive = (e: TraceEvent, index: number): void => {
    clock.t = e.t;
    const read = (got: number): void => {
      if ("value" in e && got >>> 0 !== e.value) differ(index, e, hex(e.value), hex(got));
    };
    switch (e.kind) {
      case "cfg-read":
        read(access.configRead(e.bus, e.devfn, e.reg, e.size));
        break;
      case "cfg-write":
        access.configWrite(e.bus, e.devfn, e.reg, e.size, e.value);
        break;
      case "mmio-read":
        read(access.mmioRead(e.addr, e.size));
        break;
      case "mmio-write":
        access.mmioWrite(e.addr, e.size, e.value);
        break;
      case "io-read":
        read(access.ioRead(e.port, e.size));
        break;
      case "io-write":
        access.ioWrite(e.port, e.size, e.value);
        break;
      case "rx": {
        if (receiver === undefined) differ(index, e, "a receiver to take the frame", "the device has no receiver installed");
        const ok = receiver!(e.frame.slice(), e.meta);
        if (ok !== e.accepted) differ(index, e, `frame ${e.accepted ? "accepted" : "refused"}`, `frame ${ok ? "accepted" : "refused"}`);
        break;
      }
      case "timer": {
        const cb = clock.timers.get(e.id);
        if (cb === undefined) differ(index, e, `timer #${e.id} pending`, `the fresh model has no timer #${e.id} pending`);
        clock.timers.delete(e.id);
        cb!();
        break;
      }
      default:
        differ(index, e, "an input event", `a device event (${e.kind}) where an input belongs`);
    }
    // Whatever the trace nested in this input and the model did not do is a difference.
    const next = ev[i];
    if (diff === undefined && next !== undefined && next.depth > e.depth) differ(i, next, describeEvent(next), "nothing (the fresh model did not do it)");
  };

  const dma: DmaSpace = {
    read: (addr, len) => {
      const e = expect("dma-read", `dma-read ${hex(addr)} +${len}`, (x) => x.addr === addr && x.len === len);
      return e.data?.slice();
    },
    write: (addr, data) => expect("dma-write", `dma-write ${hex(addr)} ${hexBytes(data)}`, (x) => x.addr === addr && sameBytes(x.data, data)).ok,
  };
  const interrupts: InterruptSink = {
    msi: (address, data) => void expect("msi", `msi address ${hex(address)} data ${hex(data)}`, (x) => x.address === address && x.data === data >>> 0),
    intx: (rid, pin, level) => void expect("intx", `intx ${bdf(rid)} pin ${pin} ${level ? "asserted" : "deasserted"}`, (x) => x.rid === rid && x.pin === pin && x.level === level),
  };
  const backend: NetBackend = {
    transmit: (frame, meta) => drainNested(expect("tx", `tx frame ${hexBytes(frame)}`, (x) => sameBytes(x.frame, frame) && sameMeta(x.meta, meta))),
    setReceiver: (sink) => void (receiver = sink),
    rxReady: () => drainNested(expect("rx-ready", "rx-ready", () => true)),
    ...(trace.header.offloads !== undefined ? { offloads: trace.header.offloads } : {}),
  };
  const env: PlatformEnv = { dma, interrupts, clock, layout: defaultLayout(trace.header.ramBytes, trace.header.ecamDiscovery) };

  const counts: Partial<Record<TraceEvent["kind"], number>> = {};
  try {
    platform = buildTracePlatform(trace.header.platform, env, { backend });
    opts.onPlatform?.(platform);
    access = opts.tamper?.(platform) ?? platform;
    const until = Math.min(ev.length, opts.until ?? ev.length);
    while (i < until) {
      const e = ev[i]!;
      if (e.depth !== 0 || !isInput(e)) differ(i, e, describeEvent(e), "nothing (the fresh model did not do it)");
      i++;
      drive(e, i - 1);
      // A device that caught the replay's unwinding still stops here.
      if (diff !== undefined) break;
    }
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
  }
  if (diff !== undefined) return { status: "differs", events: ev.length, difference: diff };
  for (let k = 0; k < i; k++) counts[ev[k]!.kind] = (counts[ev[k]!.kind] ?? 0) + 1;
  return { status: "clean", events: i, counts, cut: trace.cut };
}

/** A replay result as a few lines of text (what `nicvisor replay` prints). */
export function formatReplayResult(r: ReplayResult): string {
  if (r.status === "clean") {
    const counts = Object.entries(r.counts)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    return `clean: ${r.events} events replayed (${counts})${r.cut ? "; the trace was cut at its size bound" : ""}\n`;
  }
  const d = r.difference;
  return [
    `differs at event ${d.index} of ${r.events} (t=${d.t} ns, ${d.kind}) at ${d.where}`,
    `  expected: ${d.expected}`,
    `  got:      ${d.got}`,
    "",
  ].join("\n");
}
