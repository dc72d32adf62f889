// nicvisor's page hash for live migration in AssemblyScript, over guest RAM in place: the module
// imports the CPU engine's linear memory (v86's), so nothing is copied. Compiled by
// scripts/build-wasm.mjs into src/vmm/migration/wasm/pagehash-wasm.generated.ts; bit-identical to
// hashPageTs in src/vmm/migration/page-hash.ts, which documents the hash.

const M1: u32 = 0x01000193;
const M2: u32 = 0x85ebca6b;

let resultHi: u32 = 0;

/** One step of an `a` lane: multiply, then rotate left by 13 (so that high bits reach the next product). */
@inline
function stepA(s: v128, w: v128, m: v128): v128 {
  const x = i32x4.mul(v128.xor(s, w), m);
  return v128.or(i32x4.shl(x, 13), i32x4.shr_u(x, 19));
}

/** One step of a `c` lane: multiply, then rotate left by 17. */
@inline
function stepC(s: v128, w: v128, m: v128): v128 {
  const x = i32x4.mul(v128.xor(s, w), m);
  return v128.or(i32x4.shl(x, 17), i32x4.shr_u(x, 15));
}

/** Lane-wise products with four constants, XORed: the four accumulators of one family folded into one vector. */
@inline
function mix4(x0: v128, x1: v128, x2: v128, x3: v128, k0: u32, k1: u32, k2: u32, k3: u32): v128 {
  return v128.xor(
    v128.xor(i32x4.mul(x0, i32x4.splat(k0)), i32x4.mul(x1, i32x4.splat(k1))),
    v128.xor(i32x4.mul(x2, i32x4.splat(k2)), i32x4.mul(x3, i32x4.splat(k3))),
  );
}

/** Four lanes folded into 32 bits. */
@inline
function lanes(v: v128, k0: u32, k1: u32, k2: u32): u32 {
  return (i32x4.extract_lane(v, 0) * k0) ^ (i32x4.extract_lane(v, 1) * k1) ^ (i32x4.extract_lane(v, 2) * k2) ^ i32x4.extract_lane(v, 3);
}

/**
 * Hashes the 4 KiB page at `ptr`: returns the low 32 bits; the high 32 bits are then read with
 * hi(). Eight independent accumulator vectors (two families over the same 16-byte blocks, four
 * blocks per 64-byte step) keep the multiplier busy.
 */
export function hashPage(ptr: usize): u32 {
  let a0 = i32x4(0x811c9dc5, 0x9747b28c, 0x2545f491, 0x6c8e9cf5);
  let a1 = i32x4(0x1b873593, 0xe6546b64, 0x27d4eb2f, 0x165667b1);
  let a2 = i32x4(0x85ebca77, 0xc2b2ae3d, 0x9e3779b1, 0x7f4a7c15);
  let a3 = i32x4(0x94d049bb, 0xbf58476d, 0x2127599b, 0x5851f42d);
  let c0 = i32x4(0x4cf5ad43, 0x2545f491, 0x61c88647, 0x3c6ef372);
  let c1 = i32x4(0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab);
  let c2 = i32x4(0x5be0cd19, 0xcbbb9d5d, 0x629a292a, 0x9159015a);
  let c3 = i32x4(0x152fecd8, 0x67332667, 0x8eb44a87, 0xdb0c2e0d);
  const m1 = i32x4.splat(M1);
  const m2 = i32x4.splat(M2);
  const end = ptr + 4096;
  for (let p = ptr; p < end; p += 64) {
    const w0 = v128.load(p);
    const w1 = v128.load(p, 16);
    const w2 = v128.load(p, 32);
    const w3 = v128.load(p, 48);
    a0 = stepA(a0, w0, m1);
    a1 = stepA(a1, w1, m1);
    a2 = stepA(a2, w2, m1);
    a3 = stepA(a3, w3, m1);
    c0 = stepC(c0, w0, m2);
    c1 = stepC(c1, w1, m2);
    c2 = stepC(c2, w2, m2);
    c3 = stepC(c3, w3, m2);
  }
  const a = mix4(a0, a1, a2, a3, 0x27d4eb2f, 0x165667b1, 0x9e3779b1, 0x85ebca77);
  const c = mix4(c0, c1, c2, c3, 0xc2b2ae3d, 0x94d049bb, 0xbf58476d, 0x2127599b);
  resultHi = lanes(c, 0x1b873593, 0xe6546b65, 0x5851f42d);
  return lanes(a, 0x7f4a7c15, 0x61c88647, 0x3c6ef373);
}

/** The high 32 bits of the last hashPage(). */
export function hi(): u32 {
  return resultHi;
}
