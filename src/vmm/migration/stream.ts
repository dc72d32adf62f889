/**
 * The live-migration stream: what a source sends a destination, and what comes back.
 *
 * ```
 * stream header (source → destination, once), 12 bytes:
 *   0  8  magic "NVMIGRAT"
 *   8  2  stream version (2; a destination also reads 1), u16 LE
 *  10  2  reserved, 0
 * then records in both directions, each a 16-byte header and a payload:
 *   0  1  type (see RecordType)
 *   1  3  reserved, 0
 *   4  4  sequence number, u32 LE (the source numbers its records 0, 1, 2, ...; the destination's
 *         ACK and ERROR carry the number of the record they answer)
 *   8  4  payload length, u32 LE (capped per type, see MAX_PAYLOAD)
 *  12  4  CRC-32 (IEEE) over header bytes 0-11 and the payload, u32 LE
 * ```
 *
 * Payloads: HELLO is JSON naming the engine, the RAM size and every device's state type and
 * version; RAM_PAGES is a page count, the page numbers, then the pages; RAM_ZERO is a list of runs
 * of zero pages; ENGINE is the CPU engine's state without RAM, its zero 4 KiB chunks left out;
 * DEVICES is a state container (`state/container.ts`). Version 2 lets the last pass's RAM records
 * follow ENGINE and DEVICES (the source sends those first at the stop, so the destination loads
 * them while the source makes its last pass); version 1 sent all RAM first. LATE (after DEVICES and the last RAM, before COMMIT) is a state
 * container of what reached stopped devices after their state was saved (the failover VF's held
 * frames), one record per device, applied ahead of what reached the destination since; COMMIT is empty; ACK is empty; ERROR is
 * JSON `{ message }`.
 *
 * Decoding treats every byte as hostile: the header must match, every length is capped and checked
 * against what arrived, the checksum must match, and a corrupt record is refused with a
 * {@link MigrationStreamError} naming it. Platform-neutral.
 * @module
 */
import { crc32 } from "../../state/container.js";
import { MAX_CONTAINER_BYTES } from "../../state/container.js";
import { StateError, arr, bool, field, int, obj, onlyKeys, str } from "../../state/parse.js";
import { PAGE_SIZE } from "./dma-log.js";

/** The stream format's version this build writes. */
export const STREAM_VERSION = 2;
/** The oldest stream version this build reads. */
export const STREAM_VERSION_OLDEST = 1;
const MAGIC = [0x4e, 0x56, 0x4d, 0x49, 0x47, 0x52, 0x41, 0x54] as const; // "NVMIGRAT"
/** Bytes of the stream header. */
export const STREAM_HEADER_BYTES = 12;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 16;
/** Most pages one RAM_PAGES record carries. */
export const MAX_PAGES_PER_RECORD = 256;
/** Most zero-page runs one RAM_ZERO record carries. */
export const MAX_ZERO_RUNS = 65536;
/** Largest engine state (without RAM) accepted. */
export const MAX_ENGINE_BYTES = 64 << 20;
/** Largest LATE payload accepted (a device's held frames are bounded: 256 frames of up to 64 KiB, as hex). */
export const MAX_LATE_BYTES = 64 << 20;

/** Record types. */
export const RecordType = {
  HELLO: 1,
  RAM_PAGES: 2,
  RAM_ZERO: 3,
  ENGINE: 5,
  DEVICES: 6,
  COMMIT: 7,
  LATE: 9,
  ERROR: 8,
  ACK: 0x81,
} as const;
/** A record type's number. */
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

const TYPE_NAMES = new Map<number, string>(Object.entries(RecordType).map(([k, v]) => [v, k.toLowerCase().replace("_", "-")]));

/** The largest payload each record type may have. */
export const MAX_PAYLOAD: Readonly<Record<RecordType, number>> = {
  [RecordType.HELLO]: 64 << 10,
  [RecordType.RAM_PAGES]: 4 + MAX_PAGES_PER_RECORD * (4 + PAGE_SIZE),
  [RecordType.RAM_ZERO]: 4 + MAX_ZERO_RUNS * 8,
  [RecordType.ENGINE]: MAX_ENGINE_BYTES,
  [RecordType.DEVICES]: MAX_CONTAINER_BYTES,
  [RecordType.COMMIT]: 0,
  [RecordType.LATE]: MAX_LATE_BYTES,
  [RecordType.ERROR]: 64 << 10,
  [RecordType.ACK]: 0,
};

/** One record. */
export interface MigrationRecord {
  type: RecordType;
  seq: number;
  payload: Uint8Array;
}

/** The stream or a record in it is malformed. `record` names it (`record #12 (ram-pages)`, `stream header`). */
export class MigrationStreamError extends Error {
  override readonly name = "MigrationStreamError";
  constructor(
    /** Which record (or the stream header). */
    readonly record: string,
    /** What is wrong. */
    readonly detail: string,
  ) {
    super(`${record}: ${detail}`);
  }
}

/** A record's name for messages: `record #3 (hello)`. */
export function recordName(type: number, seq: number): string {
  return `record #${seq} (${TYPE_NAMES.get(type) ?? `type 0x${type.toString(16)}`})`;
}

/** The 12-byte stream header. */
export function encodeStreamHeader(): Uint8Array {
  const h = new Uint8Array(STREAM_HEADER_BYTES);
  h.set(MAGIC, 0);
  new DataView(h.buffer).setUint16(8, STREAM_VERSION, true);
  return h;
}

/**
 * Encodes one record (header and payload in one buffer).
 * @throws MigrationStreamError when the payload is longer than its type allows
 */
export function encodeRecord(type: RecordType, seq: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const cap = MAX_PAYLOAD[type];
  if (payload.length > cap) throw new MigrationStreamError(recordName(type, seq), `payload of ${payload.length} bytes, at most ${cap}`);
  const out = new Uint8Array(RECORD_HEADER_BYTES + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setUint32(4, seq >>> 0, true);
  dv.setUint32(8, payload.length, true);
  out.set(payload, RECORD_HEADER_BYTES);
  dv.setUint32(12, crc32(payload, crc32(out.subarray(0, 12))), true);
  return out;
}

/** Bytes waiting to be decoded, kept as the chunks they arrived in. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0;
  length = 0;
  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }
  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      this.length -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - o, c.length - this.head);
      out.set(c.subarray(this.head, this.head + k), o);
      o += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= n;
    return out;
  }
  /** A copy of the first `n` bytes, left in place. */
  peek(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    let h = this.head;
    for (const c of this.chunks) {
      const k = Math.min(n - o, c.length - h);
      out.set(c.subarray(h, h + k), o);
      o += k;
      h = 0;
      if (o === n) break;
    }
    return out;
  }
}

/**
 * Turns received bytes into records. Feed it chunks in order with {@link RecordDecoder.push}; call
 * {@link RecordDecoder.end} when the channel ends. After the first error every call throws it again.
 */
export class RecordDecoder {
  private readonly q = new ByteQueue();
  private headerSeen: boolean;
  private failed: MigrationStreamError | undefined;
  private readonly allowed: ReadonlySet<number>;
  /** Records decoded so far. */
  count = 0;

  /**
   * @param opts.streamHeader expect the stream header first (the destination's side)
   * @param opts.allowed record types this side may receive
   */
  constructor(opts: { streamHeader: boolean; allowed: readonly RecordType[] }) {
    this.headerSeen = !opts.streamHeader;
    this.allowed = new Set(opts.allowed);
  }

  /**
   * Adds bytes; returns every record they complete.
   * @throws MigrationStreamError on a malformed stream header or record
   */
  push(chunk: Uint8Array): MigrationRecord[] {
    if (this.failed !== undefined) throw this.failed;
    this.q.push(chunk);
    const out: MigrationRecord[] = [];
    try {
      if (!this.headerSeen) {
        if (this.q.length < STREAM_HEADER_BYTES) return out;
        const h = this.q.take(STREAM_HEADER_BYTES);
        if (MAGIC.some((b, i) => h[i] !== b)) throw new MigrationStreamError("stream header", "not a nicvisor migration stream (bad magic)");
        const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
        const v = dv.getUint16(8, true);
        if (v < STREAM_VERSION_OLDEST || v > STREAM_VERSION) throw new MigrationStreamError("stream header", `stream version ${v}, this build reads ${STREAM_VERSION_OLDEST} to ${STREAM_VERSION}`);
        if (dv.getUint16(10, true) !== 0) throw new MigrationStreamError("stream header", "reserved bits set");
        this.headerSeen = true;
      }
      for (;;) {
        if (this.q.length < RECORD_HEADER_BYTES) return out;
        const h = this.q.peek(RECORD_HEADER_BYTES);
        const dv = new DataView(h.buffer);
        const type = dv.getUint8(0);
        const seq = dv.getUint32(4, true);
        const len = dv.getUint32(8, true);
        const name = recordName(type, seq);
        if (!this.allowed.has(type)) throw new MigrationStreamError(name, "record type not expected here");
        if (h[1] !== 0 || h[2] !== 0 || h[3] !== 0) throw new MigrationStreamError(name, "reserved bits set");
        const cap = MAX_PAYLOAD[type as RecordType];
        if (len > cap) throw new MigrationStreamError(name, `payload length ${len}, at most ${cap}`);
        if (this.q.length < RECORD_HEADER_BYTES + len) return out;
        this.q.take(RECORD_HEADER_BYTES);
        const payload = this.q.take(len);
        if (crc32(payload, crc32(h.subarray(0, 12))) !== dv.getUint32(12, true)) throw new MigrationStreamError(name, "CRC-32 mismatch");
        this.count++;
        out.push({ type: type as RecordType, seq, payload });
      }
    } catch (e) {
      this.failed = e instanceof MigrationStreamError ? e : new MigrationStreamError("stream", String(e));
      throw this.failed;
    }
  }

  /**
   * The channel ended: throws if a record (or the stream header) was cut short.
   * @throws MigrationStreamError naming the truncated record
   */
  end(): void {
    if (this.failed !== undefined) throw this.failed;
    if (!this.headerSeen && this.q.length > 0) throw (this.failed = new MigrationStreamError("stream header", "truncated"));
    if (this.q.length > 0) {
      const h = this.q.peek(Math.min(this.q.length, RECORD_HEADER_BYTES));
      const what = h.length >= 8 ? recordName(h[0]!, new DataView(h.buffer).getUint32(4, true)) : "record header";
      throw (this.failed = new MigrationStreamError(what, `truncated (${this.q.length} bytes of it arrived)`));
    }
  }
}

/** One device's (or the machine's) state type in a HELLO. */
export interface StateDescriptor {
  /** The record's name in the state container. */
  name: string;
  /** Its state type. */
  kind: string;
  /** The state type's version the source saves. */
  version: number;
}

/** The HELLO: what the source runs. */
export interface Hello {
  /** The CPU engine and its version (`v86 0.5.462+g5f9a90f`): engine states load only into the same. */
  engine: string;
  /** Guest RAM in bytes. */
  memBytes: number;
  /** The page size RAM travels in (4096). */
  pageSize: number;
  /** Every record of the machine's state container. */
  devices: StateDescriptor[];
  /** Transparent failover: the source switched pass-through devices to emulation before the stop, and the destination switches them back after the resume (absent: false). */
  transparent?: boolean;
}

function parsed<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof StateError) throw new MigrationStreamError(name, e.message);
    if (e instanceof MigrationStreamError) throw e;
    throw new MigrationStreamError(name, String(e));
  }
}

function json(name: string, payload: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new MigrationStreamError(name, "payload is not UTF-8 JSON");
  }
}

/** Encodes a HELLO payload. */
export function encodeHello(h: Hello): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(h));
}

/**
 * Decodes a HELLO payload (untrusted).
 * @throws MigrationStreamError naming the field
 */
export function decodeHello(payload: Uint8Array, seq = 0): Hello {
  const name = recordName(RecordType.HELLO, seq);
  const u = json(name, payload);
  return parsed(name, () => {
    const o = obj(u, "hello");
    onlyKeys(o, "hello", ["engine", "memBytes", "pageSize", "devices", "transparent"]);
    const devices = field(o, "devices", "hello", (v, p) =>
      arr(v, p, 1024, (d, dp) => {
        const r = obj(d, dp);
        onlyKeys(r, dp, ["name", "kind", "version"]);
        return { name: field(r, "name", dp, (x, xp) => str(x, xp, 256)), kind: field(r, "kind", dp, (x, xp) => str(x, xp, 256)), version: field(r, "version", dp, (x, xp) => int(x, xp, 0, 0xffffffff)) };
      }),
    );
    const names = new Set<string>();
    devices.forEach((d, i) => {
      if (names.has(d.name)) throw new StateError(`hello.devices[${i}].name`, `${d.name} appears twice`);
      names.add(d.name);
    });
    return {
      engine: field(o, "engine", "hello", (x, p) => str(x, p, 256)),
      memBytes: field(o, "memBytes", "hello", (x, p) => int(x, p, 1 << 20, 2 ** 32)),
      pageSize: field(o, "pageSize", "hello", (x, p) => int(x, p, PAGE_SIZE, PAGE_SIZE)),
      devices,
      ...(o.transparent !== undefined ? { transparent: field(o, "transparent", "hello", bool) } : {}),
    };
  });
}

/**
 * Encodes up to {@link MAX_PAGES_PER_RECORD} pages: `u32 count`, `count` u32 page numbers, then the
 * pages' bytes in that order.
 */
export function encodePages(pages: readonly number[], data: Uint8Array): Uint8Array {
  if (pages.length === 0 || pages.length > MAX_PAGES_PER_RECORD || data.length !== pages.length * PAGE_SIZE) throw new RangeError("bad page batch");
  const out = new Uint8Array(4 + pages.length * (4 + PAGE_SIZE));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, pages.length, true);
  pages.forEach((p, i) => dv.setUint32(4 + i * 4, p, true));
  out.set(data, 4 + pages.length * 4);
  return out;
}

/** A decoded RAM_PAGES record: page numbers and their bytes (page `pages[i]` at `data[i * 4096]`). */
export interface PageBatch {
  pages: Uint32Array;
  data: Uint8Array;
}

/**
 * Decodes a RAM_PAGES payload (untrusted): count in range, exact length, every page inside RAM.
 * @throws MigrationStreamError naming the record
 */
export function decodePages(payload: Uint8Array, pageCount: number, seq = 0): PageBatch {
  const name = recordName(RecordType.RAM_PAGES, seq);
  if (payload.length < 4) throw new MigrationStreamError(name, "shorter than its count");
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const n = dv.getUint32(0, true);
  if (n === 0 || n > MAX_PAGES_PER_RECORD) throw new MigrationStreamError(name, `page count ${n} outside [1, ${MAX_PAGES_PER_RECORD}]`);
  if (payload.length !== 4 + n * (4 + PAGE_SIZE)) throw new MigrationStreamError(name, `length ${payload.length} does not fit ${n} pages`);
  const pages = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const p = dv.getUint32(4 + i * 4, true);
    if (p >= pageCount) throw new MigrationStreamError(name, `page ${p} outside RAM (${pageCount} pages)`);
    pages[i] = p;
  }
  return { pages, data: payload.subarray(4 + n * 4) };
}

/** Encodes runs of zero pages, each `[first, count]`. */
export function encodeZeroRuns(runs: ReadonlyArray<readonly [number, number]>): Uint8Array {
  if (runs.length === 0 || runs.length > MAX_ZERO_RUNS) throw new RangeError("bad run list");
  const out = new Uint8Array(4 + runs.length * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, runs.length, true);
  runs.forEach(([f, n], i) => {
    dv.setUint32(4 + i * 8, f, true);
    dv.setUint32(8 + i * 8, n, true);
  });
  return out;
}

/**
 * Decodes a RAM_ZERO payload (untrusted): every run non-empty and inside RAM.
 * @throws MigrationStreamError naming the record
 */
export function decodeZeroRuns(payload: Uint8Array, pageCount: number, seq = 0): Array<[number, number]> {
  const name = recordName(RecordType.RAM_ZERO, seq);
  if (payload.length < 4) throw new MigrationStreamError(name, "shorter than its count");
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const n = dv.getUint32(0, true);
  if (n === 0 || n > MAX_ZERO_RUNS || payload.length !== 4 + n * 8) throw new MigrationStreamError(name, `run count ${n} does not fit a length of ${payload.length}`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) {
    const f = dv.getUint32(4 + i * 8, true);
    const c = dv.getUint32(8 + i * 8, true);
    if (c === 0 || f + c > pageCount) throw new MigrationStreamError(name, `run ${i} (${f}+${c}) outside RAM (${pageCount} pages)`);
    out.push([f, c]);
  }
  return out;
}

/**
 * Packs bytes with their all-zero 4 KiB chunks left out (v86's state holds 8 MiB of mostly blank
 * SVGA memory): `u32 length`, a bitmap of non-zero chunks, then those chunks (the last one short
 * when `length` is not a multiple of 4096).
 */
export function packSparse(b: Uint8Array): Uint8Array {
  const chunks = Math.ceil(b.length / PAGE_SIZE);
  const bitmap = new Uint8Array(Math.ceil(chunks / 8));
  let size = 4 + bitmap.length;
  // Word-wise where the bytes are aligned (a saved state is), bytewise for the rest.
  const words = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2) : new Uint32Array(0);
  for (let c = 0; c < chunks; c++) {
    const end = Math.min(b.length, (c + 1) * PAGE_SIZE);
    let nz = false;
    let i = c * PAGE_SIZE;
    for (const wEnd = Math.min(end, words.length * 4) >>> 2; i >>> 2 < wEnd; i += 4) {
      if (words[i >>> 2] !== 0) {
        nz = true;
        break;
      }
    }
    for (; !nz && i < end; i++) if (b[i] !== 0) nz = true;
    if (nz) {
      bitmap[c >> 3]! |= 1 << (c & 7);
      size += end - c * PAGE_SIZE;
    }
  }
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, b.length, true);
  out.set(bitmap, 4);
  let o = 4 + bitmap.length;
  for (let c = 0; c < chunks; c++) {
    if ((bitmap[c >> 3]! & (1 << (c & 7))) === 0) continue;
    const part = b.subarray(c * PAGE_SIZE, Math.min(b.length, (c + 1) * PAGE_SIZE));
    out.set(part, o);
    o += part.length;
  }
  return out;
}

/**
 * Unpacks {@link packSparse}'s output (untrusted): the length is capped, the bitmap's spare bits
 * are clear and the chunks fill the payload exactly.
 * @throws MigrationStreamError naming `name`
 */
export function unpackSparse(p: Uint8Array, maxLength: number, name: string): Uint8Array {
  if (p.length < 4) throw new MigrationStreamError(name, "shorter than its length field");
  const len = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0, true);
  if (len > maxLength) throw new MigrationStreamError(name, `unpacked length ${len}, at most ${maxLength}`);
  const chunks = Math.ceil(len / PAGE_SIZE);
  const bm = Math.ceil(chunks / 8);
  if (p.length < 4 + bm) throw new MigrationStreamError(name, "bitmap truncated");
  const bitmap = p.subarray(4, 4 + bm);
  if (chunks % 8 !== 0 && bm > 0 && (bitmap[bm - 1]! >> (chunks % 8)) !== 0) throw new MigrationStreamError(name, "bitmap marks chunks past the end");
  let need = 4 + bm;
  for (let c = 0; c < chunks; c++) if ((bitmap[c >> 3]! & (1 << (c & 7))) !== 0) need += Math.min(len, (c + 1) * PAGE_SIZE) - c * PAGE_SIZE;
  if (need !== p.length) throw new MigrationStreamError(name, `payload is ${p.length} bytes, its bitmap says ${need}`);
  const out = new Uint8Array(len);
  let o = 4 + bm;
  for (let c = 0; c < chunks; c++) {
    if ((bitmap[c >> 3]! & (1 << (c & 7))) === 0) continue;
    const n = Math.min(len, (c + 1) * PAGE_SIZE) - c * PAGE_SIZE;
    out.set(p.subarray(o, o + n), c * PAGE_SIZE);
    o += n;
  }
  return out;
}

/** Encodes an ERROR payload. */
export function encodeError(message: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ message: message.slice(0, 8000) }));
}

/** Decodes an ERROR payload (untrusted); a malformed one still yields a message. */
export function decodeError(payload: Uint8Array): string {
  try {
    const u = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload)) as unknown;
    return str(obj(u, "error").message, "error.message", 8000);
  } catch {
    return "(the peer sent a malformed error record)";
  }
}
