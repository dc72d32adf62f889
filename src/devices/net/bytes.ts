/**
 * Little-endian field reads from byte arrays, for per-frame paths (descriptors, headers) where a
 * DataView per read would cost an allocation. Bytes past the end read as 0.
 * @module
 */

/** The little-endian u16 at `o`. */
export function le16(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
}

/** The little-endian u32 at `o`. */
export function le32(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;
}

/** A 64-bit bus address from its two 32-bit halves, exactly (no 32-bit operator touches it). */
export function addr64(lo: number, hi: number): number {
  return (hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
}
