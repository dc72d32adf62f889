/**
 * A byte encoding of {@link GuestSnapshot} for files and caches, so that test files can share
 * one booted guest:
 *
 * ```
 * 0   8  magic "NVGSNAP\0"
 * 8   4  format version (1), u32 LE
 * 12  4  length of the JSON header, u32 LE
 * 16  4  FNV-1a of the JSON header, u32 LE
 * 20  n  JSON header: every field of the snapshot except `engine`
 * ..     engine state bytes (length and checksum are in the header)
 * ```
 *
 * Decoding treats the bytes as hostile: it checks magic, version, sizes (capped) and both checksums
 * and throws {@link SnapshotError}. The snapshot's types live here too, so that the harness
 * (`runner.ts`) imports this module and not the other way round. Platform-neutral.
 * @module
 */
import type { MachineState } from "../machine.js";

/** A snapshot is malformed, of another version, or does not fit the machine. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
}

/** A saved VM: engine state + machine (device) state. Treat as untrusted input on restore. */
export interface GuestSnapshot {
  /** Always "nicvisor-guest-snapshot". */
  magic: "nicvisor-guest-snapshot";
  /** Format version. */
  version: 1;
  /** RAM in MiB. */
  memMiB: number;
  /** The ready marker of the image. */
  readyMarker: string;
  /** v86's state. */
  engine: Uint8Array;
  /** FNV-1a over `engine`. */
  engineChecksum: number;
  /** The machine's own state (conf1 latch, PCI platform). */
  machine: MachineState;
}

/** Largest engine state accepted beyond RAM (chipset state). */
export const MAX_ENGINE_EXTRA = 64 << 20;

const MAGIC = [0x4e, 0x56, 0x47, 0x53, 0x4e, 0x41, 0x50, 0x00] as const; // "NVGSNAP\0"
const FORMAT_VERSION = 1;
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
  const { engine, ...rest } = s;
  const header = new TextEncoder().encode(JSON.stringify({ ...rest, engineLength: engine.length }));
  const out = new Uint8Array(20 + header.length + engine.length);
  out.set(MAGIC, 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, FORMAT_VERSION, true);
  dv.setUint32(12, header.length, true);
  dv.setUint32(16, fnv1a(header), true);
  out.set(header, 20);
  out.set(engine, 20 + header.length);
  return out;
}

/**
 * Decodes {@link encodeSnapshot}'s bytes. The engine state is copied into its own aligned buffer.
 * @throws SnapshotError on anything malformed.
 */
export function decodeSnapshot(bytes: Uint8Array): GuestSnapshot {
  if (bytes.length < 20 || MAGIC.some((b, i) => bytes[i] !== b)) throw new SnapshotError("not a nicvisor snapshot file");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== FORMAT_VERSION) throw new SnapshotError(`unsupported snapshot file version ${version}`);
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
  if (20 + hlen + engineLength !== bytes.length) throw new SnapshotError("snapshot length does not match its header");
  const engine = bytes.slice(20 + hlen);
  if (o["magic"] !== "nicvisor-guest-snapshot" || o["version"] !== 1) throw new SnapshotError("unsupported snapshot");
  if (typeof o["readyMarker"] !== "string" || typeof o["engineChecksum"] !== "number") throw new SnapshotError("bad snapshot fields");
  if (fnv1a(engine) !== o["engineChecksum"]) throw new SnapshotError("engine state checksum mismatch");
  return {
    magic: "nicvisor-guest-snapshot",
    version: 1,
    memMiB,
    readyMarker: o["readyMarker"],
    engine,
    engineChecksum: o["engineChecksum"],
    machine: o["machine"] as GuestSnapshot["machine"],
  };
}
