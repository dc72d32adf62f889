/**
 * The byte encoding of a set of saved device states, for files and for other processes: a header
 * with magic and format version, then one record per device (its name, its state type and that
 * type's version, the state as JSON), then a CRC-32 over everything before it.
 *
 * ```
 * 0   8  magic "NVSTATE\0"
 * 8   2  format version (1), u16 LE
 * 10  2  record count, u16 LE
 * 12  .. records, each:
 *        2  name length n, u16 LE;   n bytes  name (UTF-8)
 *        2  kind length k, u16 LE;   k bytes  state type (UTF-8)
 *        4  state version, u32 LE
 *        4  payload length p, u32 LE; p bytes  JSON (UTF-8)
 *        4  CRC-32 of the payload, u32 LE
 * end-4  4  CRC-32 (IEEE) of every byte before it, u32 LE
 * ```
 *
 * Decoding treats the bytes as hostile: sizes are capped, every length is checked against what
 * is left, both checksums are checked, names are unique, and the JSON must parse. It returns the
 * records' payloads as `unknown`; each device's own parser checks them next. Platform-neutral.
 * @module
 */
import { StateError } from "./parse.js";

const MAGIC = [0x4e, 0x56, 0x53, 0x54, 0x41, 0x54, 0x45, 0x00] as const; // "NVSTATE\0"
/** The container format's version. */
export const CONTAINER_VERSION = 1;
/** The largest encoded container accepted (device state only; guest RAM travels elsewhere). */
export const MAX_CONTAINER_BYTES = 256 << 20;
/** The most records one container may hold. */
export const MAX_RECORDS = 1024;
const MAX_NAME = 256;

/** One device's saved state in a container. */
export interface StateRecord {
  /** The device's name in its platform (unique in a container). */
  name: string;
  /** Its state type (e.g. `igb`, `virtio-net`). */
  kind: string;
  /** The state type's version the payload was saved with. */
  version: number;
  /** The state (JSON-safe). */
  state: unknown;
}

let table: Uint32Array | undefined;
/** CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`) of `b`. */
export function crc32(b: Uint8Array, seed = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = (seed ^ 0xffffffff) >>> 0;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Encodes records (see the module comment). Throws {@link StateError} on a record it cannot encode. */
export function encodeStates(records: readonly StateRecord[]): Uint8Array {
  if (records.length > MAX_RECORDS) throw new StateError("records", `${records.length} records, at most ${MAX_RECORDS}`);
  const enc = new TextEncoder();
  const parts: { name: Uint8Array; kind: Uint8Array; version: number; payload: Uint8Array }[] = [];
  const names = new Set<string>();
  let size = 12 + 4;
  for (const r of records) {
    if (names.has(r.name)) throw new StateError(`records.${r.name}`, "name used twice");
    names.add(r.name);
    const name = enc.encode(r.name);
    const kind = enc.encode(r.kind);
    if (name.length === 0 || name.length > MAX_NAME || kind.length === 0 || kind.length > MAX_NAME) throw new StateError(`records.${r.name}`, "name or kind length out of range");
    if (!Number.isInteger(r.version) || r.version < 0 || r.version > 0xffffffff) throw new StateError(`records.${r.name}.version`, "not a u32");
    const payload = enc.encode(JSON.stringify(r.state));
    parts.push({ name, kind, version: r.version, payload });
    size += 2 + name.length + 2 + kind.length + 4 + 4 + payload.length + 4;
  }
  if (size > MAX_CONTAINER_BYTES) throw new StateError("records", `${size} bytes, at most ${MAX_CONTAINER_BYTES}`);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  dv.setUint16(8, CONTAINER_VERSION, true);
  dv.setUint16(10, parts.length, true);
  let o = 12;
  for (const p of parts) {
    dv.setUint16(o, p.name.length, true);
    out.set(p.name, o + 2);
    o += 2 + p.name.length;
    dv.setUint16(o, p.kind.length, true);
    out.set(p.kind, o + 2);
    o += 2 + p.kind.length;
    dv.setUint32(o, p.version, true);
    dv.setUint32(o + 4, p.payload.length, true);
    out.set(p.payload, o + 8);
    o += 8 + p.payload.length;
    dv.setUint32(o, crc32(p.payload), true);
    o += 4;
  }
  dv.setUint32(o, crc32(out.subarray(0, o)), true);
  return out;
}

/**
 * Decodes {@link encodeStates}'s bytes into records whose `state` is still untrusted.
 * @throws StateError naming what is wrong (`container.magic`, `container.records[2].payload`...).
 */
export function decodeStates(bytes: Uint8Array): StateRecord[] {
  if (bytes.length > MAX_CONTAINER_BYTES) throw new StateError("container", `${bytes.length} bytes, at most ${MAX_CONTAINER_BYTES}`);
  if (bytes.length < 16 || MAGIC.some((b, i) => bytes[i] !== b)) throw new StateError("container.magic", "not a nicvisor state container");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(8, true);
  if (version !== CONTAINER_VERSION) throw new StateError("container.version", `format version ${version}, this build reads ${CONTAINER_VERSION}`);
  const end = bytes.length - 4;
  if (crc32(bytes.subarray(0, end)) !== dv.getUint32(end, true)) throw new StateError("container.checksum", "CRC-32 mismatch");
  const count = dv.getUint16(10, true);
  if (count > MAX_RECORDS) throw new StateError("container.count", `${count} records, at most ${MAX_RECORDS}`);
  const dec = new TextDecoder("utf-8", { fatal: true });
  const out: StateRecord[] = [];
  const names = new Set<string>();
  let o = 12;
  const need = (n: number, path: string): void => {
    if (o + n > end) throw new StateError(path, "truncated");
  };
  for (let i = 0; i < count; i++) {
    const path = `container.records[${i}]`;
    const text = (what: string): string => {
      need(2, `${path}.${what}`);
      const n = dv.getUint16(o, true);
      if (n === 0 || n > MAX_NAME) throw new StateError(`${path}.${what}`, `length ${n} outside [1, ${MAX_NAME}]`);
      need(2 + n, `${path}.${what}`);
      let s: string;
      try {
        s = dec.decode(bytes.subarray(o + 2, o + 2 + n));
      } catch {
        throw new StateError(`${path}.${what}`, "not UTF-8");
      }
      o += 2 + n;
      return s;
    };
    const name = text("name");
    const kind = text("kind");
    if (names.has(name)) throw new StateError(`${path}.name`, `${name} appears twice`);
    names.add(name);
    need(8, `${path}.version`);
    const ver = dv.getUint32(o, true);
    const plen = dv.getUint32(o + 4, true);
    o += 8;
    need(plen + 4, `${path}.payload`);
    const payload = bytes.subarray(o, o + plen);
    o += plen;
    if (crc32(payload) !== dv.getUint32(o, true)) throw new StateError(`${path}.payload`, "CRC-32 mismatch");
    o += 4;
    let state: unknown;
    try {
      state = JSON.parse(dec.decode(payload));
    } catch {
      throw new StateError(`${path}.payload`, "not JSON");
    }
    out.push({ name, kind, version: ver, state });
  }
  if (o !== end) throw new StateError("container", `${end - o} bytes after the last record`);
  return out;
}
