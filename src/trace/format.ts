/**
 * The driver trace format (version 1): what crossed the boundary of a PCI platform while a guest
 * drove it, in order, with the guest's virtual time, so that the guest's side can be replayed
 * against a fresh device model without any guest (see `replay.ts`).
 *
 * Layout (all integers little-endian; see docs/trace.md):
 *
 * ```
 * magic    8 bytes  "NVTRACE\0"
 * version  u32      1
 * hlen     u32      header length (at most 64 KiB)
 * header   hlen     UTF-8 JSON: {platform, ramBytes, ecamDiscovery, nicvisor, offloads?}
 * events   ...      one record per event (below)
 * end      0x00, varint event count, u8 flags (bit 0: recording stopped at its size bound)
 * ```
 *
 * An event record is a tag byte, then its fields:
 * - tag bits 0-5: the kind ({@link EVENT_CODES}); bit 7: a new time follows (f64 ns, the platform
 *   clock's `now()`; otherwise the previous event's time); bit 6: a nesting depth follows (varint;
 *   otherwise 0). Depth counts the recorded calls open when the event happened: a frame the
 *   backend delivered while the device was inside `transmit` has depth 2 under a guest access.
 * - integers as unsigned LEB128 varints (up to 2^53); byte strings as a varint length and the bytes;
 *   frame metadata as a varint length and UTF-8 JSON (length 0: none).
 *
 * DMA data is stored in full (reads and writes), so a trace of heavy traffic is large; recording
 * stops at a size bound and marks the trace as cut (the replay then ends there).
 *
 * Parsing is for untrusted input: every field is checked, and an error is a {@link StateError}
 * whose path names the event and its field (`events[12].size`).
 *
 * Platform-neutral.
 * @module
 */
import { StateError, arr, bool, field, int, obj, oneOf, onlyKeys, str } from "../state/parse.js";
import type { FrameMeta } from "../devices/net/backend.js";
import { parseMeta } from "../devices/net/switch-state.js";

/** The format version this code writes and reads. */
export const TRACE_VERSION = 1;
/** The first 8 bytes of a trace. */
export const TRACE_MAGIC = new Uint8Array([0x4e, 0x56, 0x54, 0x52, 0x41, 0x43, 0x45, 0x00]); // "NVTRACE\0"
/** Largest header. */
export const MAX_HEADER_BYTES = 64 << 10;
/** Largest byte string in one event (a DMA access or a frame). */
export const MAX_PAYLOAD_BYTES = 1 << 24;
/** Largest trace this code reads. */
export const MAX_TRACE_BYTES = 1 << 30;
/** Most events a trace may hold. */
export const MAX_EVENTS = 1 << 26;

/** The platform a trace was recorded on (what `replay` builds again). */
export type TracePlatform =
  | { kind: "virtio"; mac?: string; maxPairs: number; mtu?: number; standby: boolean; packed: boolean; withhold: number[] }
  | { kind: "igb"; mac?: string }
  | { kind: "vf"; mac?: string; trust: boolean; spoofchk: boolean };

/** A trace's header. */
export interface TraceHeader {
  /** The platform and its options. */
  platform: TracePlatform;
  /** Guest RAM in bytes (the layout's). */
  ramBytes: number;
  /** How the guest found ECAM (selects the host bridge). */
  ecamDiscovery: "acpi" | "pciexbar";
  /** The nicvisor version that recorded it. */
  nicvisor: string;
  /** The offloads the NIC's backend announced (a device's transmit path depends on them). */
  offloads?: { csum: boolean; tso4: boolean; tso6: boolean };
}

/** Guest accesses (inputs whose answers the replay compares). */
export type AccessEvent =
  | { kind: "cfg-read"; bus: number; devfn: number; reg: number; size: 1 | 2 | 4; value: number }
  | { kind: "cfg-write"; bus: number; devfn: number; reg: number; size: 1 | 2 | 4; value: number }
  | { kind: "mmio-read"; addr: number; size: 1 | 2 | 4; value: number }
  | { kind: "mmio-write"; addr: number; size: 1 | 2 | 4; value: number }
  | { kind: "io-read"; port: number; size: 1 | 2 | 4; value: number }
  | { kind: "io-write"; port: number; size: 1 | 2 | 4; value: number };

/** Events from outside the platform other than guest accesses. */
export type WorldEvent =
  /** The backend delivered a frame; `accepted` is what the device's receiver returned. */
  | { kind: "rx"; frame: Uint8Array; meta?: FrameMeta; accepted: boolean }
  /** Timer `id` (the platform's id-th `clock.schedule` call, from 0) fired. */
  | { kind: "timer"; id: number };

/** What the platform did to the world (the replay compares each). */
export type DeviceEvent =
  /** A DMA read; `data` undefined: it faulted. */
  | { kind: "dma-read"; addr: number; len: number; data?: Uint8Array }
  | { kind: "dma-write"; addr: number; data: Uint8Array; ok: boolean }
  | { kind: "msi"; address: number; data: number }
  | { kind: "intx"; rid: number; pin: number; level: boolean }
  | { kind: "tx"; frame: Uint8Array; meta?: FrameMeta }
  /** The device told the backend it has new receive buffers. */
  | { kind: "rx-ready" };

/** One event with its time (ns) and nesting depth. */
export type TraceEvent = (AccessEvent | WorldEvent | DeviceEvent) & { t: number; depth: number };

/** A decoded trace. */
export interface Trace {
  header: TraceHeader;
  events: TraceEvent[];
  /** Recording stopped at its size bound; the events are a prefix of what happened. */
  cut: boolean;
}

/** Kinds and their tag codes. */
export const EVENT_CODES = {
  "cfg-read": 1, "cfg-write": 2, "mmio-read": 3, "mmio-write": 4, "io-read": 5, "io-write": 6,
  rx: 7, timer: 8, "dma-read": 9, "dma-write": 10, msi: 11, intx: 12, tx: 13, "rx-ready": 14,
} as const satisfies Record<TraceEvent["kind"], number>;
const KIND_OF = new Map<number, TraceEvent["kind"]>(Object.entries(EVENT_CODES).map(([k, c]) => [c, k as TraceEvent["kind"]]));

/** Kinds that come from outside the platform (the replay drives them). */
export function isInput(e: TraceEvent): e is TraceEvent & (AccessEvent | WorldEvent) {
  return EVENT_CODES[e.kind] <= 8;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Appends bytes to growing chunks. */
class ByteSink {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private pos = 0;
  length = 0;
  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.pos = 0;
  }
  u8(v: number): void {
    this.room(1);
    this.cur[this.pos++] = v;
    this.length++;
  }
  varint(v: number): void {
    this.room(8);
    let x = v;
    while (x >= 0x80) {
      this.cur[this.pos++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
      this.length++;
    }
    this.cur[this.pos++] = x;
    this.length++;
  }
  f64(v: number): void {
    this.room(8);
    new DataView(this.cur.buffer, this.cur.byteOffset + this.pos, 8).setFloat64(0, v, true);
    this.pos += 8;
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.room(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
    this.length += b.length;
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of [...this.chunks, this.cur.subarray(0, this.pos)]) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Writes a trace event by event. {@link TraceWriter.finish} adds the end record and returns the
 * bytes; past `maxBytes` the writer drops further events and marks the trace as cut.
 */
export class TraceWriter {
  private readonly out = new ByteSink();
  private lastT = Number.NaN;
  /** Events written. */
  count = 0;
  /** The size bound was reached. */
  cut = false;

  constructor(
    header: TraceHeader,
    private readonly maxBytes = 256 << 20,
  ) {
    const h = utf8.encode(JSON.stringify(header));
    for (const b of TRACE_MAGIC) this.out.u8(b);
    const v = new Uint8Array(8);
    new DataView(v.buffer).setUint32(0, TRACE_VERSION, true);
    new DataView(v.buffer).setUint32(4, h.length, true);
    for (const b of v) this.out.u8(b);
    for (const b of h) this.out.u8(b);
  }

  /** Bytes so far. */
  get size(): number {
    return this.out.length;
  }

  /** Appends one event. */
  write(e: TraceEvent): void {
    if (this.cut) return;
    if (this.out.length >= this.maxBytes) {
      this.cut = true;
      return;
    }
    const o = this.out;
    const newT = !Object.is(e.t, this.lastT);
    o.u8(EVENT_CODES[e.kind] | (newT ? 0x80 : 0) | (e.depth !== 0 ? 0x40 : 0));
    if (newT) o.f64(e.t);
    if (e.depth !== 0) o.varint(e.depth);
    this.lastT = e.t;
    switch (e.kind) {
      case "cfg-read":
      case "cfg-write":
        o.varint(e.bus), o.varint(e.devfn), o.varint(e.reg), o.u8(e.size), o.varint(e.value >>> 0);
        break;
      case "mmio-read":
      case "mmio-write":
        o.varint(e.addr), o.u8(e.size), o.varint(e.value >>> 0);
        break;
      case "io-read":
      case "io-write":
        o.varint(e.port), o.u8(e.size), o.varint(e.value >>> 0);
        break;
      case "rx":
        o.bytes(e.frame), this.meta(e.meta), o.u8(e.accepted ? 1 : 0);
        break;
      case "timer":
        o.varint(e.id);
        break;
      case "dma-read":
        o.varint(e.addr), o.varint(e.len), o.u8(e.data !== undefined ? 1 : 0);
        if (e.data !== undefined) o.bytes(e.data);
        break;
      case "dma-write":
        o.varint(e.addr), o.bytes(e.data), o.u8(e.ok ? 1 : 0);
        break;
      case "msi":
        o.varint(e.address), o.varint(e.data >>> 0);
        break;
      case "intx":
        o.varint(e.rid), o.u8(e.pin), o.u8(e.level ? 1 : 0);
        break;
      case "tx":
        o.bytes(e.frame), this.meta(e.meta);
        break;
      case "rx-ready":
        break;
    }
    this.count++;
  }

  private meta(m: FrameMeta | undefined): void {
    if (m === undefined) this.out.varint(0);
    else this.out.bytes(utf8.encode(JSON.stringify(m)));
  }

  /** Adds the end record and returns the whole trace. */
  finish(): Uint8Array {
    this.out.u8(0);
    this.out.varint(this.count);
    this.out.u8(this.cut ? 1 : 0);
    return this.out.finish();
  }

  /** The trace so far, ended as {@link TraceWriter.finish} would end it; writing goes on. */
  snapshot(): Uint8Array {
    const end = new ByteSink();
    end.u8(0);
    end.varint(this.count);
    end.u8(this.cut ? 1 : 0);
    const head = this.out.finish();
    const tail = end.finish();
    const out = new Uint8Array(head.length + tail.length);
    out.set(head);
    out.set(tail, head.length);
    return out;
  }
}

/** Encodes a whole trace. */
export function encodeTrace(t: Trace): Uint8Array {
  const w = new TraceWriter(t.header, Number.MAX_SAFE_INTEGER);
  for (const e of t.events) w.write(e);
  w.cut = t.cut;
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Decoding (untrusted)

/** Reads fields off the bytes, naming the field in every error. */
class Reader {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}
  private need(n: number, path: string): void {
    if (this.pos + n > this.b.length) throw new StateError(path, `truncated: ${n} more bytes needed at offset ${this.pos}, the trace has ${this.b.length}`);
  }
  u8(path: string): number {
    this.need(1, path);
    return this.b[this.pos++]!;
  }
  varint(path: string, max = Number.MAX_SAFE_INTEGER): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw new StateError(path, "varint longer than 8 bytes");
      const b = this.u8(path);
      v += (b & 0x7f) * scale;
      scale *= 0x80;
      if ((b & 0x80) === 0) break;
    }
    if (v > max) throw new StateError(path, `${v} is above ${max}`);
    return v;
  }
  f64(path: string): number {
    this.need(8, path);
    const v = new DataView(this.b.buffer, this.b.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }
  bytes(path: string, max = MAX_PAYLOAD_BYTES): Uint8Array {
    const n = this.varint(`${path}.length`, max);
    this.need(n, path);
    const out = this.b.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  flag(path: string): boolean {
    const v = this.u8(path);
    if (v > 1) throw new StateError(path, `expected 0 or 1, got ${v}`);
    return v === 1;
  }
  size(path: string): 1 | 2 | 4 {
    const v = this.u8(path);
    if (v !== 1 && v !== 2 && v !== 4) throw new StateError(path, `access size ${v} is not 1, 2 or 4`);
    return v;
  }
  get done(): boolean {
    return this.pos >= this.b.length;
  }
}

/** A trace was refused: bad magic, version, header or event. `path` names the field. */
export class TraceError extends Error {
  override readonly name = "TraceError";
  /**
   * @param path - the field (`version`, `header.platform.kind`, `events[7].size`, `end.count`)
   * @param detail - what is wrong with it
   */
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

const macStr = (v: unknown, p: string): string => {
  const s = str(v, p, 17);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(s)) throw new StateError(p, `not a MAC address: ${JSON.stringify(s)}`);
  return s;
};

/** Parses a trace header (untrusted JSON). @throws StateError naming the field */
export function parseTraceHeader(u: unknown, path = "header"): TraceHeader {
  const o = obj(u, path);
  onlyKeys(o, path, ["platform", "ramBytes", "ecamDiscovery", "nicvisor", "offloads"]);
  const p = obj(o.platform, `${path}.platform`);
  const pp = `${path}.platform`;
  const kind = field(p, "kind", pp, (v, vp) => oneOf(v, vp, ["virtio", "igb", "vf"] as const));
  const mac = p.mac === undefined ? {} : { mac: macStr(p.mac, `${pp}.mac`) };
  let platform: TracePlatform;
  if (kind === "virtio") {
    onlyKeys(p, pp, ["kind", "mac", "maxPairs", "mtu", "standby", "packed", "withhold"]);
    platform = {
      kind,
      ...mac,
      maxPairs: field(p, "maxPairs", pp, (v, vp) => int(v, vp, 1, 16)),
      ...(p.mtu !== undefined ? { mtu: int(p.mtu, `${pp}.mtu`, 68, 65535) } : {}),
      standby: field(p, "standby", pp, bool),
      packed: field(p, "packed", pp, bool),
      withhold: field(p, "withhold", pp, (v, vp) => arr(v, vp, 64, (x, xp) => int(x, xp, 0, 63))),
    };
  } else if (kind === "igb") {
    onlyKeys(p, pp, ["kind", "mac"]);
    platform = { kind, ...mac };
  } else {
    onlyKeys(p, pp, ["kind", "mac", "trust", "spoofchk"]);
    platform = { kind, ...mac, trust: field(p, "trust", pp, bool), spoofchk: field(p, "spoofchk", pp, bool) };
  }
  const h: TraceHeader = {
    platform,
    ramBytes: field(o, "ramBytes", path, (v, vp) => int(v, vp, 32 * 2 ** 20, 2048 * 2 ** 20)),
    ecamDiscovery: field(o, "ecamDiscovery", path, (v, vp) => oneOf(v, vp, ["acpi", "pciexbar"] as const)),
    nicvisor: field(o, "nicvisor", path, (v, vp) => str(v, vp, 64)),
  };
  if (o.offloads !== undefined) {
    const f = obj(o.offloads, `${path}.offloads`);
    onlyKeys(f, `${path}.offloads`, ["csum", "tso4", "tso6"]);
    h.offloads = { csum: field(f, "csum", `${path}.offloads`, bool), tso4: field(f, "tso4", `${path}.offloads`, bool), tso6: field(f, "tso6", `${path}.offloads`, bool) };
  }
  return h;
}


/**
 * Decodes a trace (untrusted bytes): magic, version, header, every event, the end record.
 * @throws TraceError whose `path` names the field (`version`, `header.platform.kind`, `events[7].size`, `end`)
 */
export function decodeTrace(bytes: Uint8Array): Trace {
  try {
    return decode(bytes);
  } catch (e) {
    if (e instanceof StateError) throw new TraceError(e.path, e.detail);
    throw e;
  }
}

function decode(bytes: Uint8Array): Trace {
  if (bytes.length > MAX_TRACE_BYTES) throw new StateError("trace", `${bytes.length} bytes is above the ${MAX_TRACE_BYTES}-byte bound`);
  const r = new Reader(bytes);
  for (let i = 0; i < TRACE_MAGIC.length; i++) {
    if (r.u8("magic") !== TRACE_MAGIC[i]) throw new StateError("magic", "not a nicvisor trace (magic is not NVTRACE)");
  }
  const vb = new Uint8Array(8);
  for (let i = 0; i < 8; i++) vb[i] = r.u8(i < 4 ? "version" : "headerLength");
  const version = new DataView(vb.buffer).getUint32(0, true);
  if (version !== TRACE_VERSION) throw new StateError("version", `trace format version ${version}; this nicvisor reads version ${TRACE_VERSION}`);
  const hlen = new DataView(vb.buffer).getUint32(4, true);
  if (hlen > MAX_HEADER_BYTES) throw new StateError("headerLength", `${hlen} is above ${MAX_HEADER_BYTES}`);
  if (r.pos + hlen > bytes.length) throw new StateError("header", "truncated");
  let json: unknown;
  try {
    json = JSON.parse(fromUtf8.decode(bytes.subarray(r.pos, r.pos + hlen)));
  } catch {
    throw new StateError("header", "not UTF-8 JSON");
  }
  r.pos += hlen;
  const header = parseTraceHeader(json);
  const events: TraceEvent[] = [];
  let t = Number.NaN;
  for (;;) {
    const i = events.length;
    const p = `events[${i}]`;
    if (r.done) throw new StateError(p, "truncated: the trace ends without its end record");
    if (i >= MAX_EVENTS) throw new StateError(p, `more than ${MAX_EVENTS} events`);
    const tag = r.u8(`${p}.kind`);
    if (tag === 0) {
      const n = r.varint("end.count");
      if (n !== i) throw new StateError("end.count", `says ${n} events, the trace holds ${i}`);
      const flags = r.u8("end.flags");
      if (flags > 1) throw new StateError("end.flags", `unknown flags 0x${flags.toString(16)}`);
      if (!r.done) throw new StateError("end", `${bytes.length - r.pos} bytes after the end record`);
      return { header, events, cut: flags === 1 };
    }
    const kind = KIND_OF.get(tag & 0x3f);
    if (kind === undefined || (tag & 0x3f) === 0) throw new StateError(`${p}.kind`, `unknown event code ${tag & 0x3f}`);
    if (tag & 0x80) {
      const nt = r.f64(`${p}.t`);
      if (!Number.isFinite(nt) || nt < 0) throw new StateError(`${p}.t`, `time ${nt} is not a finite non-negative number`);
      if (nt < t) throw new StateError(`${p}.t`, `time ${nt} goes back from ${t}`);
      t = nt;
    } else if (Number.isNaN(t)) throw new StateError(`${p}.t`, "the first event must carry a time");
    const depth = tag & 0x40 ? r.varint(`${p}.depth`, 64) : 0;
    events.push({ t, depth, ...readBody(r, kind, p) } as TraceEvent);
  }
}

function readBody(r: Reader, kind: TraceEvent["kind"], p: string): AccessEvent | WorldEvent | DeviceEvent {
  const meta = (path: string): { meta?: FrameMeta } => {
    const b = r.bytes(path, MAX_HEADER_BYTES);
    if (b.length === 0) return {};
    let u: unknown;
    try {
      u = JSON.parse(fromUtf8.decode(b));
    } catch {
      throw new StateError(path, "not UTF-8 JSON");
    }
    return { meta: parseMeta(u, path) };
  };
  const u32 = (path: string): number => r.varint(path, 0xffffffff);
  switch (kind) {
    case "cfg-read":
    case "cfg-write": {
      const bus = r.varint(`${p}.bus`, 255), devfn = r.varint(`${p}.devfn`, 255), reg = r.varint(`${p}.reg`, 0xfff), size = r.size(`${p}.size`);
      if (reg + size > 0x1000) throw new StateError(`${p}.reg`, `0x${reg.toString(16)} + ${size} leaves config space`);
      return { kind, bus, devfn, reg, size, value: u32(`${p}.value`) };
    }
    case "mmio-read":
    case "mmio-write":
      return { kind, addr: r.varint(`${p}.addr`), size: r.size(`${p}.size`), value: u32(`${p}.value`) };
    case "io-read":
    case "io-write":
      return { kind, port: r.varint(`${p}.port`, 0xffff), size: r.size(`${p}.size`), value: u32(`${p}.value`) };
    case "rx":
      return { kind, frame: r.bytes(`${p}.frame`, 1 << 17), ...meta(`${p}.meta`), accepted: r.flag(`${p}.accepted`) };
    case "timer":
      return { kind, id: r.varint(`${p}.id`) };
    case "dma-read": {
      const addr = r.varint(`${p}.addr`), len = r.varint(`${p}.len`, MAX_PAYLOAD_BYTES);
      if (!r.flag(`${p}.ok`)) return { kind, addr, len };
      const data = r.bytes(`${p}.data`);
      if (data.length !== len) throw new StateError(`${p}.data`, `${data.length} bytes for a read of ${len}`);
      return { kind, addr, len, data };
    }
    case "dma-write":
      return { kind, addr: r.varint(`${p}.addr`), data: r.bytes(`${p}.data`), ok: r.flag(`${p}.ok`) };
    case "msi":
      return { kind, address: r.varint(`${p}.address`), data: u32(`${p}.data`) };
    case "intx": {
      const rid = r.varint(`${p}.rid`, 0xffff), pin = r.u8(`${p}.pin`);
      if (pin < 1 || pin > 4) throw new StateError(`${p}.pin`, `INTx pin ${pin} is not 1-4`);
      return { kind, rid, pin, level: r.flag(`${p}.level`) };
    }
    case "tx":
      return { kind, frame: r.bytes(`${p}.frame`, 1 << 17), ...meta(`${p}.meta`) };
    case "rx-ready":
      return { kind };
  }
}
