/**
 * What `nicvisor web`'s page shows of a running platform, built from the events of a
 * {@link TraceRecorder} (its `onEvent` tap): the register access log with register names and
 * decoded bits, interrupts per vector over guest time, and the frames with a one-line summary each
 * and a pcap of them. Bounded: the log and the frame list keep their newest entries, the pcap its
 * first {@link MonitorOptions.maxPcapBytes}.
 *
 * The same monitor follows a live guest and a trace being stepped through (see `src/web/stepper.ts`).
 *
 * Platform-neutral.
 * @module
 */
import type { PciRoot } from "../pci/topology/root-complex.js";
import type { PciFunction } from "../pci/function.js";
import { CAP_ID } from "../pci/regs.js";
import type { TraceEvent } from "../trace/format.js";
import { barRegisterName, configRegisterName, decodeBits, functionId } from "../trace/names.js";
import { PcapBuffer, PcapEncoder } from "../devices/net/pcap.js";
import { summarizeFrame } from "./frame-summary.js";

/** One guest access in the log. */
export interface AccessEntry {
  /** Index of the event in the monitor's stream. */
  index: number;
  /** Guest virtual time (ns). */
  t: number;
  kind: "cfg-read" | "cfg-write" | "mmio-read" | "mmio-write" | "io-read" | "io-write";
  /** The function (`bb:dd.f`), or "" for an access no function decodes. */
  fn: string;
  /** `cfg 0x004`, `BAR0+0x0008`, `port 0xc000`. */
  where: string;
  /** The register's name, where known. */
  name?: string;
  size: number;
  value: number;
  /** The set bits by name, for registers with a bit table. */
  bits?: string;
}

/** One frame. */
export interface FrameEntry {
  index: number;
  t: number;
  /** `tx`: from the guest's NIC to the network; `rx`: to the guest's NIC. */
  dir: "tx" | "rx";
  length: number;
  summary: string;
  /** For `rx`: whether the device took it (false: dropped, no buffer or filtered). */
  accepted?: boolean;
}

/** Interrupts of one vector (an MSI message or an INTx pin). */
export interface VectorStats {
  /** `02:00.0 MSI-X 3`, or `vector 0x41` when no function's table holds the message. */
  label: string;
  total: number;
  /** Counts per bucket of guest time, the newest last (see {@link MonitorOptions.bucketNs}). */
  buckets: number[];
}

/** Options of {@link NicMonitor}. */
export interface MonitorOptions {
  /** The platform's root complex, to name functions and BARs (undefined: addresses only). */
  root?: () => PciRoot | undefined;
  /** Accesses kept (default 5000). */
  maxAccesses?: number;
  /** Frames kept in the list (default 2000). */
  maxFrames?: number;
  /** Bytes of pcap kept (default 16 MiB). */
  maxPcapBytes?: number;
  /** Width of an interrupt bucket in guest ns (default 1 s). */
  bucketNs?: number;
  /** Buckets kept per vector (default 60). */
  buckets?: number;
}

const hex = (v: number, w: number): string => `0x${(v >>> 0).toString(16).padStart(w, "0")}`;
const bdf = (rid: number): string => `${(rid >>> 8).toString(16).padStart(2, "0")}:${((rid >>> 3) & 0x1f).toString(16).padStart(2, "0")}.${rid & 7}`;

/** The address and data an enabled MSI capability (PCI 3.0 6.8.1) of `fn` sends, read from config. */
function msiMessage(fn: PciFunction): { address: number; data: number; vectors: number } | undefined {
  const p = fn.config.findCapability(CAP_ID.MSI);
  if (p === undefined) return undefined;
  const ctl = fn.configRead(p + 2, 2);
  if ((ctl & 1) === 0) return undefined;
  const is64 = (ctl & 0x80) !== 0;
  // Multiple Message Enable: the function may set the low log2(vectors) bits of the data.
  return { address: fn.configRead(p + 4, 4) >>> 0, data: fn.configRead(p + (is64 ? 0x0c : 0x08), 2), vectors: 1 << ((ctl >>> 4) & 7) };
}

/** A bounded list that keeps its newest entries. */
export class NewestList<T> {
  private items: T[] = [];
  /** Entries dropped from the front so far. */
  dropped = 0;
  constructor(readonly max: number) {}
  push(v: T): void {
    this.items.push(v);
    if (this.items.length > this.max * 1.25) {
      const cut = this.items.length - this.max;
      this.items = this.items.slice(cut);
      this.dropped += cut;
    }
  }
  /** The newest `n` (all by default), oldest first. */
  newest(n = this.max): T[] {
    return this.items.slice(Math.max(0, this.items.length - Math.min(n, this.max)));
  }
  get length(): number {
    return Math.min(this.items.length, this.max);
  }
}

/** The page's model of what the platform did. */
export class NicMonitor {
  readonly accesses: NewestList<AccessEntry>;
  readonly frames: NewestList<FrameEntry>;
  /** Counts by event kind. */
  readonly counts = new Map<TraceEvent["kind"], number>();
  private readonly vectors = new Map<string, VectorStats & { last: number }>();
  private readonly pcapEncoder = new PcapEncoder();
  private readonly pcapBuf: PcapBuffer;
  private memMap: Array<{ base: number; size: number; rid: number; bar: number }> | undefined;
  private index = 0;
  private now = 0;
  private readonly bucketNs: number;
  private readonly nBuckets: number;

  constructor(private readonly opts: MonitorOptions = {}) {
    this.accesses = new NewestList(opts.maxAccesses ?? 5000);
    this.frames = new NewestList(opts.maxFrames ?? 2000);
    this.pcapBuf = new PcapBuffer(opts.maxPcapBytes ?? 16 << 20);
    this.pcapBuf.write(this.pcapEncoder.header());
    this.bucketNs = opts.bucketNs ?? 1e9;
    this.nBuckets = opts.buckets ?? 60;
  }

  /** Events seen. */
  get events(): number {
    return this.index;
  }
  /** Guest time of the newest event (ns). */
  get time(): number {
    return this.now;
  }

  /** Takes one event (the recorder's `onEvent`). */
  onEvent = (e: TraceEvent): void => {
    const i = this.index++;
    this.now = e.t;
    this.counts.set(e.kind, (this.counts.get(e.kind) ?? 0) + 1);
    switch (e.kind) {
      case "cfg-read":
      case "cfg-write": {
        const name = configRegisterName(e.reg);
        const a: AccessEntry = { index: i, t: e.t, kind: e.kind, fn: bdf((e.bus << 8) | e.devfn), where: `cfg ${hex(e.reg, 3)}`, size: e.size, value: e.value };
        this.named(a, name);
        this.accesses.push(a);
        // A config write may move a BAR or enable VFs: the memory map is read again when needed.
        if (e.kind === "cfg-write") this.memMap = undefined;
        break;
      }
      case "mmio-read":
      case "mmio-write": {
        const r = this.region(e.addr);
        const a: AccessEntry = { index: i, t: e.t, kind: e.kind, fn: "", where: hex(e.addr, 8), size: e.size, value: e.value };
        if (r !== undefined) {
          const off = e.addr - r.base;
          a.fn = bdf(r.rid);
          a.where = `BAR${r.bar}+${hex(off, 4)}`;
          this.named(a, barRegisterName(functionId(this.opts.root?.()?.lookup(r.rid >>> 8, r.rid & 0xff)), r.bar, off));
        }
        this.accesses.push(a);
        break;
      }
      case "io-read":
      case "io-write":
        this.accesses.push({ index: i, t: e.t, kind: e.kind, fn: "", where: `port ${hex(e.port, 4)}`, size: e.size, value: e.value });
        break;
      case "tx":
      case "rx": {
        const f: FrameEntry = { index: i, t: e.t, dir: e.kind, length: e.frame.length, summary: summarizeFrame(e.frame) };
        if (e.kind === "rx") f.accepted = e.accepted;
        this.frames.push(f);
        this.pcapBuf.write(this.pcapEncoder.record(e.frame, e.t));
        break;
      }
      case "msi":
        this.interrupt(`msi:${e.address}:${e.data}`, e.t, () => this.msiLabel(e.address, e.data));
        break;
      case "intx":
        if (e.level) this.interrupt(`intx:${e.rid}:${e.pin}`, e.t, () => `${bdf(e.rid)} INT${"ABCD"[e.pin - 1] ?? "?"}#`);
        break;
      default:
        break;
    }
  };

  private named(a: AccessEntry, name: string | undefined): void {
    if (name === undefined) return;
    a.name = name;
    const b = decodeBits(name, a.value);
    if (b !== undefined) a.bits = b;
  }

  private region(addr: number): { base: number; size: number; rid: number; bar: number } | undefined {
    this.memMap ??= this.opts.root?.()?.memoryMap();
    return this.memMap?.find((m) => addr >= m.base && addr < m.base + m.size);
  }

  /**
   * The function and MSI-X entry whose table holds this message, or the function whose MSI
   * capability sends it; found when the vector is first seen.
   */
  private msiLabel(address: number, data: number): string {
    const vector = `vector ${hex(data & 0xff, 2)}`;
    for (const r of this.opts.root?.()?.enumerate() ?? []) {
      const where = bdf((r.bus << 8) | r.devfn);
      const cap = r.fn.statefulCaps.find((c) => c.stateKey === "msix");
      const table = (cap?.save() as { table?: Array<{ addr: number; data: number }> } | undefined)?.table;
      const n = table?.findIndex((x) => x.addr >>> 0 === address >>> 0 && x.data >>> 0 === data >>> 0) ?? -1;
      if (n >= 0) return `${where} MSI-X ${n} (${vector})`;
      const msi = msiMessage(r.fn);
      const low = (msi?.vectors ?? 1) - 1;
      if (msi !== undefined && msi.address === address >>> 0 && (msi.data & ~low & 0xffff) === (data & ~low & 0xffff)) return `${where} MSI${low > 0 ? ` ${data & low}` : ""} (${vector})`;
    }
    return vector;
  }

  private interrupt(key: string, t: number, label: () => string): void {
    let v = this.vectors.get(key);
    const bucket = Math.floor(t / this.bucketNs);
    if (v === undefined) {
      v = { label: label(), total: 0, buckets: [0], last: bucket };
      this.vectors.set(key, v);
    }
    // Empty buckets for the guest time that passed since this vector's last interrupt.
    for (let b = v.last; b < bucket && v.buckets.length <= this.nBuckets * 2; b++) v.buckets.push(0);
    v.last = Math.max(v.last, bucket);
    v.buckets[v.buckets.length - 1]!++;
    if (v.buckets.length > this.nBuckets) v.buckets.splice(0, v.buckets.length - this.nBuckets);
    v.total++;
  }

  /** Interrupts per vector, with buckets brought up to the newest event's time. */
  interrupts(): VectorStats[] {
    const nowBucket = Math.floor(this.now / this.bucketNs);
    return [...this.vectors.values()].map((v) => {
      const pad = Math.min(this.nBuckets, Math.max(0, nowBucket - v.last));
      const buckets = [...v.buckets, ...new Array<number>(pad).fill(0)].slice(-this.nBuckets);
      return { label: v.label, total: v.total, buckets };
    });
  }

  /** The frames so far as a pcap file (timestamps: guest virtual time). */
  pcap(): Uint8Array {
    return this.pcapBuf.bytes();
  }
}
