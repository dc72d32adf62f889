/**
 * A small seeded PRNG (sfc32) for the fuzzer: the same seed gives the same operation sequence on
 * every platform, so any failure replays from its seed.
 * @module
 */

/** Hashes a string or number seed into 32 bits (FNV-1a over its decimal/text form). */
export function seedHash(seed: string | number): number {
  const s = String(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A seeded generator of 32-bit values (Chris Doty-Humphrey's sfc32).
 * @example
 * const r = new Rng("42"); r.below(10); r.pick(["a", "b"]);
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string | number) {
    this.a = seedHash(`${seed}/a`);
    this.b = seedHash(`${seed}/b`);
    this.c = seedHash(`${seed}/c`);
    this.d = 1;
    for (let i = 0; i < 15; i++) this.u32();
  }

  /** The next 32-bit unsigned value. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A value in [0, n) (n up to 2^32). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  /** One element of a non-empty list. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }

  /** An access size: 1, 2 or 4 (4 most often). */
  size(): 1 | 2 | 4 {
    const r = this.below(8);
    return r < 1 ? 1 : r < 3 ? 2 : 4;
  }

  /** A 32-bit value biased to the edges that break code: 0, all ones, single bits, small numbers. */
  value(): number {
    switch (this.below(8)) {
      case 0: return 0;
      case 1: return 0xffffffff;
      case 2: return (1 << this.below(32)) >>> 0;
      case 3: return this.below(256);
      case 4: return (0xffffffff - this.below(256)) >>> 0;
      default: return this.u32();
    }
  }
}

/** Fills `out` with bytes drawn from `seed` (used to rebuild an operation's payload on replay). */
export function bytesFromSeed(seed: number, out: Uint8Array): Uint8Array {
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
