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

/**
 * Fresh byte arrays for frames a device hands away (a backend owns what it is given), carved out of
 * a 256 KiB slab: a typed array over 64 bytes otherwise costs an off-heap allocation of its own,
 * about a microsecond. Each result owns its bytes, but its `.buffer` is shared, so a reader must use
 * `byteOffset` with it. One slab per device instance (no module-wide state).
 */
export class ByteSlab {
  /** Largest request served from the slab; bigger ones get an array of their own. */
  static readonly MAX_ITEM = 16 * 1024;
  private static readonly SIZE = 256 * 1024;
  private slab = new ArrayBuffer(ByteSlab.SIZE);
  private off = 0;

  /** A zeroed array of `n` bytes that nobody else sees. */
  alloc(n: number): Uint8Array {
    if (n > ByteSlab.MAX_ITEM || n <= 64) return new Uint8Array(n);
    if (this.off + n > ByteSlab.SIZE) {
      this.slab = new ArrayBuffer(ByteSlab.SIZE);
      this.off = 0;
    }
    const out = new Uint8Array(this.slab, this.off, n);
    this.off += (n + 7) & ~7;
    return out;
  }

  /** An owned copy of `src[start, end)` (see {@link alloc}); the caller checks the range. */
  copyRange(src: Uint8Array, start: number, end: number): Uint8Array {
    const n = end - start;
    // up to 64 bytes V8 keeps a typed array's bytes on its heap: one slice is the cheapest copy
    if (n <= 64) return src.slice(start, end);
    const out = this.alloc(n);
    out.set(src.subarray(start, end));
    return out;
  }

  /** An owned copy of `src` (see {@link alloc}). */
  copy(src: Uint8Array): Uint8Array {
    const out = this.alloc(src.length);
    out.set(src);
    return out;
  }
}
