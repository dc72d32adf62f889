/**
 * A byte encoding of {@link GuestSnapshot} for files and caches, so that test files can share
 * one booted guest:
 *
 * ```
 * 0   8  magic "NVGSNAP\0"
 * 8   4  format version (2; 1 is still read), u32 LE
 * 12  4  length of the JSON header, u32 LE
 * 16  4  FNV-1a of the JSON header, u32 LE
 * 20  n  JSON header: every field of the snapshot except `engine` and `devices`, with their lengths
 * ..     engine state bytes (length and checksum are in the header)
 * ..     device state: a state container (`state/container.ts`, with its own CRC-32)
 * ```
 *
 * Decoding treats the bytes as hostile: it checks magic, version, sizes (capped) and both checksums
 * and throws {@link SnapshotError}. The snapshot's types live here too, so that the harness
 * (`runner.ts`) imports this module and not the other way round. Platform-neutral.
 * @module
 */
import { MAX_CONTAINER_BYTES, decodeStates, encodeStates } from "../../state/container.js";

/** A snapshot is malformed, of another version, or does not fit the machine. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
}

/** A saved VM: engine state + the machine's device state. Treat as untrusted input on restore. */
export interface GuestSnapshot {
  /** Always "nicvisor-guest-snapshot". */
  magic: "nicvisor-guest-snapshot";
  /** Format version. */
  version: 2;
  /** RAM in MiB. */
  memMiB: number;
  /** The ready marker of the image. */
  readyMarker: string;
  /** v86's state. */
  engine: Uint8Array;
  /** FNV-1a over `engine`. */
  engineChecksum: number;
  /** The machine's and its devices' state as a state container (`Machine.saveBytes()`). */
  devices: Uint8Array;
}

/** Largest engine state accepted beyond RAM (chipset state). */
export const MAX_ENGINE_EXTRA = 64 << 20;

const MAGIC = [0x4e, 0x56, 0x47, 0x53, 0x4e, 0x41, 0x50, 0x00] as const; // "NVGSNAP\0"
const FORMAT_VERSION = 2;
const HEADER_CAP = 16 << 20;

/**
 * A 32-bit FNV-1a variant over little-endian 32-bit words, then the trailing bytes (word-wise for
 * speed on 50 MB states). The value does not depend on the view's alignment.
 */
export function fnv1a(input: Uint8Array): number {
  let h = 0x811c9dc5;
  const b = input.byteOffset % 4 === 0 ? input : input.slice();
  const n = b.byteLength >>> 2;
  if (n > 0) {
    const words = new Uint32Array(b.buffer, b.byteOffset, n);
    for (let i = 0; i < n; i++) h = Math.imul(h ^ (words[i] ?? 0), 0x01000193);
  }
  for (let i = n * 4; i < b.length; i++) h = Math.imul(h ^ (b[i] ?? 0), 0x01000193);
  return h >>> 0;
}

/** Encodes a snapshot as bytes (see the module comment for the layout). */
export function encodeSnapshot(s: GuestSnapshot): Uint8Array {
  const { engine, devices, ...rest } = s;
  const header = new TextEncoder().encode(JSON.stringify({ ...rest, engineLength: engine.length, devicesLength: devices.length }));
  const out = new Uint8Array(20 + header.length + engine.length + devices.length);
  out.set(MAGIC, 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, FORMAT_VERSION, true);
  dv.setUint32(12, header.length, true);
  dv.setUint32(16, fnv1a(header), true);
  out.set(header, 20);
  out.set(engine, 20 + header.length);
  out.set(devices, 20 + header.length + engine.length);
  return out;
}

/**
 * Decodes {@link encodeSnapshot}'s bytes, of format 2 or of format 1 (whose machine state was JSON
 * in the header: it becomes the single format-1 machine record of a state container, which
 * `Machine.restoreBytes` reads). The engine state is copied into its own aligned buffer.
 * @throws SnapshotError on anything malformed.
 */
export function decodeSnapshot(bytes: Uint8Array): GuestSnapshot {
  if (bytes.length < 20 || MAGIC.some((b, i) => bytes[i] !== b)) throw new SnapshotError("not a nicvisor snapshot file");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== 1 && version !== FORMAT_VERSION) throw new SnapshotError(`unsupported snapshot file version ${version}`);
  const hlen = dv.getUint32(12, true);
  if (hlen > HEADER_CAP || 20 + hlen > bytes.length) throw new SnapshotError("snapshot header length out of range");
  const header = bytes.subarray(20, 20 + hlen);
  if (fnv1a(header) !== dv.getUint32(16, true)) throw new SnapshotError("snapshot header checksum mismatch");
  let h: unknown;
  try {
    h = JSON.parse(new TextDecoder().decode(header));
  } catch {
    throw new SnapshotError("snapshot header is not JSON");
  }
  if (typeof h !== "object" || h === null) throw new SnapshotError("snapshot header is not an object");
  const o = h as Record<string, unknown>;
  const memMiB = o["memMiB"];
  const engineLength = o["engineLength"];
  if (typeof memMiB !== "number" || !Number.isInteger(memMiB) || memMiB < 32 || memMiB > 2048) throw new SnapshotError("bad memMiB");
  if (typeof engineLength !== "number" || !Number.isInteger(engineLength) || engineLength < 0 || engineLength > memMiB * (1 << 20) + MAX_ENGINE_EXTRA) {
    throw new SnapshotError("bad engine length");
  }
  const devicesLength = version === 1 ? 0 : o["devicesLength"];
  if (typeof devicesLength !== "number" || !Number.isInteger(devicesLength) || devicesLength < 0 || devicesLength > MAX_CONTAINER_BYTES) {
    throw new SnapshotError("bad device state length");
  }
  if (20 + hlen + engineLength + devicesLength !== bytes.length) throw new SnapshotError("snapshot length does not match its header");
  const engine = bytes.slice(20 + hlen, 20 + hlen + engineLength);
  if (o["magic"] !== "nicvisor-guest-snapshot" || o["version"] !== version) throw new SnapshotError("unsupported snapshot");
  if (typeof o["readyMarker"] !== "string" || typeof o["engineChecksum"] !== "number") throw new SnapshotError("bad snapshot fields");
  if (fnv1a(engine) !== o["engineChecksum"]) throw new SnapshotError("engine state checksum mismatch");
  // Format 1 kept the machine's state as JSON; it goes on as a format-1 machine record.
  const devices = version === 1 ? encodeStates([{ name: "machine", kind: "machine", version: 1, state: o["machine"] ?? null }]) : bytes.slice(20 + hlen + engineLength);
  try {
    decodeStates(devices); // framing and checksums now; each device's own parser runs at restore
  } catch (e) {
    throw new SnapshotError(`device state: ${(e as Error).message}`);
  }
  return { magic: "nicvisor-guest-snapshot", version: 2, memMiB, readyMarker: o["readyMarker"], engine, engineChecksum: o["engineChecksum"], devices };
}
