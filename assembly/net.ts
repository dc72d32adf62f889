// nicvisor packet kernels in AssemblyScript: the Internet checksum (RFC 1071) and the Toeplitz
// hash (Microsoft RSS). Compiled by scripts/build-wasm.mjs into
// src/devices/net/wasm/net-wasm.generated.ts. The TypeScript side copies its input into linear
// memory at scratch() and calls in; the results are bit-identical to src/devices/net/kernels.ts.

/** First byte of linear memory free for the caller's data (16-byte aligned). */
export function scratch(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

/** Folds a 64-bit one's-complement accumulator to 16 bits. */
@inline
function fold64(a: u64): u32 {
  a = (a & 0xffffffff) + (a >> 32);
  a = (a & 0xffffffff) + (a >> 32);
  let s = <u32>a;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return s;
}

/**
 * One's-complement sum of `len` bytes at `ptr` as big-endian 16-bit words (an odd trailing byte is
 * the high byte of a zero-padded word), plus `initial` (any u32), folded to 16 bits.
 *
 * The sum is byte-order independent (RFC 1071 §2.B): it is computed on little-endian 16-bit lanes
 * and byte-swapped once at the end. Each 16-byte vector adds its eight lanes pairwise into four
 * 32-bit lanes (at most 2 * 0xffff per vector and lane). Four chains take one vector in four, so
 * in a block of 256 KiB a chain's lane gets at most 4096 * 2 * 0xffff < 2^31; each block is then
 * widened into a 64-bit accumulator.
 */
export function csum(ptr: usize, len: i32, initial: u32): u32 {
  let i: i32 = 0;
  let acc: u64 = 0;
  const BLOCK: i32 = 1 << 18;
  while (i + 64 <= len) {
    const stop = min(len, i + BLOCK);
    let a = i32x4.splat(0);
    let b = i32x4.splat(0);
    let c = i32x4.splat(0);
    let d = i32x4.splat(0);
    for (; i + 64 <= stop; i += 64) {
      const p = ptr + <usize>i;
      a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(v128.load(p)));
      b = i32x4.add(b, i32x4.extadd_pairwise_i16x8_u(v128.load(p, 16)));
      c = i32x4.add(c, i32x4.extadd_pairwise_i16x8_u(v128.load(p, 32)));
      d = i32x4.add(d, i32x4.extadd_pairwise_i16x8_u(v128.load(p, 48)));
    }
    let w = i64x2.add(i64x2.extend_low_i32x4_u(a), i64x2.extend_high_i32x4_u(a));
    w = i64x2.add(w, i64x2.add(i64x2.extend_low_i32x4_u(b), i64x2.extend_high_i32x4_u(b)));
    w = i64x2.add(w, i64x2.add(i64x2.extend_low_i32x4_u(c), i64x2.extend_high_i32x4_u(c)));
    w = i64x2.add(w, i64x2.add(i64x2.extend_low_i32x4_u(d), i64x2.extend_high_i32x4_u(d)));
    acc += <u64>i64x2.extract_lane(w, 0) + <u64>i64x2.extract_lane(w, 1);
  }
  for (; i + 8 <= len; i += 8) {
    const x = load<u64>(ptr + <usize>i);
    acc += (x & 0xffffffff) + (x >> 32);
  }
  if (i + 4 <= len) {
    acc += <u64>load<u32>(ptr + <usize>i);
    i += 4;
  }
  if (i + 2 <= len) {
    acc += <u64>load<u16>(ptr + <usize>i);
    i += 2;
  }
  if (i < len) acc += <u64>load<u8>(ptr + <usize>i);
  let s = fold64(acc);
  s = ((s & 0xff) << 8) | (s >> 8);
  return fold64(<u64>s + <u64>initial);
}

/**
 * Toeplitz hash of `inLen` bytes at `inPtr` under the `keyLen`-byte key at `keyPtr`, bit by bit.
 * Input bits past the key's end meet zero key bits.
 */
export function toeplitz(keyPtr: usize, keyLen: i32, inPtr: usize, inLen: i32): u32 {
  // A 64-bit window: the top 32 bits are the key bits aligned with the current input bit.
  let win: u64 = 0;
  for (let k = 0; k < 8; k++) {
    win = (win << 8) | (k < keyLen ? <u64>load<u8>(keyPtr + <usize>k) : 0);
  }
  let next = 8; // next key byte to shift in
  let result: u32 = 0;
  for (let i = 0; i < inLen; i++) {
    const b = <u32>load<u8>(inPtr + <usize>i);
    for (let bit = 7; bit >= 0; bit--) {
      // Branch-free: all-ones mask when the input bit is set.
      const m = <u32>0 - ((b >> <u32>bit) & 1);
      result ^= <u32>(win >> 32) & m;
      win <<= 1;
    }
    // After 8 shifts the low byte of the window is free: refill it.
    win |= next < keyLen ? <u64>load<u8>(keyPtr + <usize>next) : 0;
    next++;
  }
  return result;
}
