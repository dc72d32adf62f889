/**
 * The page hash live migration finds changed guest pages with (v86 keeps no dirty log): 64 bits
 * per 4 KiB page, in two implementations that give identical results, WebAssembly with SIMD over
 * the CPU engine's memory in place (`assembly/pagehash.ts`) and TypeScript ({@link hashPageTs}).
 *
 * The hash: the page is read as 16-byte blocks of four little-endian 32-bit words, four blocks per
 * 64-byte step. Two families of four accumulator vectors (`a` and `c`, 4 lanes each, 32 lanes in
 * all, fixed start values) take block j of every step: lane l of `a_j` becomes
 * `rotl((a_jl ^ w) * 0x01000193, 13)` and of `c_j` `rotl((c_jl ^ w) * 0x85ebca6b, 17)` (32-bit
 * products), w being word l of the block; the rotation brings high bits down into the next
 * product (without it, two changes of the same high bit in one lane cancel). Each family is folded
 * lane-wise with four odd multipliers, then its four lanes into 32 bits: `a` gives the low half,
 * `c` the high one. Every word feeds one lane of each family and every step is a bijection, so a
 * page that differs in one word always hashes differently in both halves.
 *
 * Platform-neutral.
 * @module
 */
import { PAGEHASH_WASM_BASE64 } from "./wasm/pagehash-wasm.generated.js";
import { decodeBase64 } from "../../devices/net/base64.js";

/** Bytes of a page. */
const PAGE = 4096;
const M1 = 0x01000193;
const M2 = 0x85ebca6b | 0;

/** Hashes the page at word `at` of `words`; writes the low and high halves to `out[0]`, `out[1]`. */
export function hashPageTs(words: Uint32Array, at: number, out: Uint32Array): void {
  let a00 = 0x811c9dc5 | 0, a01 = 0x9747b28c | 0, a02 = 0x2545f491 | 0, a03 = 0x6c8e9cf5 | 0;
  let a10 = 0x1b873593 | 0, a11 = 0xe6546b64 | 0, a12 = 0x27d4eb2f | 0, a13 = 0x165667b1 | 0;
  let a20 = 0x85ebca77 | 0, a21 = 0xc2b2ae3d | 0, a22 = 0x9e3779b1 | 0, a23 = 0x7f4a7c15 | 0;
  let a30 = 0x94d049bb | 0, a31 = 0xbf58476d | 0, a32 = 0x2127599b | 0, a33 = 0x5851f42d | 0;
  let c00 = 0x4cf5ad43 | 0, c01 = 0x2545f491 | 0, c02 = 0x61c88647 | 0, c03 = 0x3c6ef372 | 0;
  let c10 = 0xa54ff53a | 0, c11 = 0x510e527f | 0, c12 = 0x9b05688c | 0, c13 = 0x1f83d9ab | 0;
  let c20 = 0x5be0cd19 | 0, c21 = 0xcbbb9d5d | 0, c22 = 0x629a292a | 0, c23 = 0x9159015a | 0;
  let c30 = 0x152fecd8 | 0, c31 = 0x67332667 | 0, c32 = 0x8eb44a87 | 0, c33 = 0xdb0c2e0d | 0;
  let w = 0;
  let x = 0;
  const end = at + PAGE / 4;
  for (let i = at; i < end; i += 16) {
    w = words[i + 0]!;
    x = Math.imul(a00 ^ w, M1);
    a00 = (x << 13) | (x >>> 19);
    x = Math.imul(c00 ^ w, M2);
    c00 = (x << 17) | (x >>> 15);
    w = words[i + 1]!;
    x = Math.imul(a01 ^ w, M1);
    a01 = (x << 13) | (x >>> 19);
    x = Math.imul(c01 ^ w, M2);
    c01 = (x << 17) | (x >>> 15);
    w = words[i + 2]!;
    x = Math.imul(a02 ^ w, M1);
    a02 = (x << 13) | (x >>> 19);
    x = Math.imul(c02 ^ w, M2);
    c02 = (x << 17) | (x >>> 15);
    w = words[i + 3]!;
    x = Math.imul(a03 ^ w, M1);
    a03 = (x << 13) | (x >>> 19);
    x = Math.imul(c03 ^ w, M2);
    c03 = (x << 17) | (x >>> 15);
    w = words[i + 4]!;
    x = Math.imul(a10 ^ w, M1);
    a10 = (x << 13) | (x >>> 19);
    x = Math.imul(c10 ^ w, M2);
    c10 = (x << 17) | (x >>> 15);
    w = words[i + 5]!;
    x = Math.imul(a11 ^ w, M1);
    a11 = (x << 13) | (x >>> 19);
    x = Math.imul(c11 ^ w, M2);
    c11 = (x << 17) | (x >>> 15);
    w = words[i + 6]!;
    x = Math.imul(a12 ^ w, M1);
    a12 = (x << 13) | (x >>> 19);
    x = Math.imul(c12 ^ w, M2);
    c12 = (x << 17) | (x >>> 15);
    w = words[i + 7]!;
    x = Math.imul(a13 ^ w, M1);
    a13 = (x << 13) | (x >>> 19);
    x = Math.imul(c13 ^ w, M2);
    c13 = (x << 17) | (x >>> 15);
    w = words[i + 8]!;
    x = Math.imul(a20 ^ w, M1);
    a20 = (x << 13) | (x >>> 19);
    x = Math.imul(c20 ^ w, M2);
    c20 = (x << 17) | (x >>> 15);
    w = words[i + 9]!;
    x = Math.imul(a21 ^ w, M1);
    a21 = (x << 13) | (x >>> 19);
    x = Math.imul(c21 ^ w, M2);
    c21 = (x << 17) | (x >>> 15);
    w = words[i + 10]!;
    x = Math.imul(a22 ^ w, M1);
    a22 = (x << 13) | (x >>> 19);
    x = Math.imul(c22 ^ w, M2);
    c22 = (x << 17) | (x >>> 15);
    w = words[i + 11]!;
    x = Math.imul(a23 ^ w, M1);
    a23 = (x << 13) | (x >>> 19);
    x = Math.imul(c23 ^ w, M2);
    c23 = (x << 17) | (x >>> 15);
    w = words[i + 12]!;
    x = Math.imul(a30 ^ w, M1);
    a30 = (x << 13) | (x >>> 19);
    x = Math.imul(c30 ^ w, M2);
    c30 = (x << 17) | (x >>> 15);
    w = words[i + 13]!;
    x = Math.imul(a31 ^ w, M1);
    a31 = (x << 13) | (x >>> 19);
    x = Math.imul(c31 ^ w, M2);
    c31 = (x << 17) | (x >>> 15);
    w = words[i + 14]!;
    x = Math.imul(a32 ^ w, M1);
    a32 = (x << 13) | (x >>> 19);
    x = Math.imul(c32 ^ w, M2);
    c32 = (x << 17) | (x >>> 15);
    w = words[i + 15]!;
    x = Math.imul(a33 ^ w, M1);
    a33 = (x << 13) | (x >>> 19);
    x = Math.imul(c33 ^ w, M2);
    c33 = (x << 17) | (x >>> 15);
  }
  const A0 = Math.imul(a00, 0x27d4eb2f) ^ Math.imul(a10, 0x165667b1) ^ Math.imul(a20, 0x9e3779b1) ^ Math.imul(a30, 0x85ebca77);
  const A1 = Math.imul(a01, 0x27d4eb2f) ^ Math.imul(a11, 0x165667b1) ^ Math.imul(a21, 0x9e3779b1) ^ Math.imul(a31, 0x85ebca77);
  const A2 = Math.imul(a02, 0x27d4eb2f) ^ Math.imul(a12, 0x165667b1) ^ Math.imul(a22, 0x9e3779b1) ^ Math.imul(a32, 0x85ebca77);
  const A3 = Math.imul(a03, 0x27d4eb2f) ^ Math.imul(a13, 0x165667b1) ^ Math.imul(a23, 0x9e3779b1) ^ Math.imul(a33, 0x85ebca77);
  const C0 = Math.imul(c00, 0xc2b2ae3d) ^ Math.imul(c10, 0x94d049bb) ^ Math.imul(c20, 0xbf58476d) ^ Math.imul(c30, 0x2127599b);
  const C1 = Math.imul(c01, 0xc2b2ae3d) ^ Math.imul(c11, 0x94d049bb) ^ Math.imul(c21, 0xbf58476d) ^ Math.imul(c31, 0x2127599b);
  const C2 = Math.imul(c02, 0xc2b2ae3d) ^ Math.imul(c12, 0x94d049bb) ^ Math.imul(c22, 0xbf58476d) ^ Math.imul(c32, 0x2127599b);
  const C3 = Math.imul(c03, 0xc2b2ae3d) ^ Math.imul(c13, 0x94d049bb) ^ Math.imul(c23, 0xbf58476d) ^ Math.imul(c33, 0x2127599b);
  out[0] = (Math.imul(A0, 0x7f4a7c15) ^ Math.imul(A1, 0x61c88647) ^ Math.imul(A2, 0x3c6ef373) ^ A3) >>> 0;
  out[1] = (Math.imul(C0, 0x1b873593) ^ Math.imul(C1, 0xe6546b65) ^ Math.imul(C2, 0x5851f42d) ^ C3) >>> 0;
}

/** The slice of the WebAssembly JS API used here (the project's `lib` has no wasm typings). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** A WebAssembly.Memory, as far as this module needs one. */
export interface WasmMemoryLike {
  readonly buffer: ArrayBuffer;
}

interface PageHashExports {
  hashPage(ptr: number): number;
  hi(): number;
}

/** Hashes pages: {@link PageHasher.hash} picks WebAssembly when the page lives in its memory. */
export interface PageHasher {
  /** "wasm" when a WebAssembly instance over the engine's memory exists, else "ts". */
  readonly kind: "ts" | "wasm";
  /**
   * Hashes the page at byte `offset` of `src` (4-byte aligned in its buffer when `words` is
   * given: `words` is `src`'s buffer as 32-bit words); writes the halves to `out`.
   */
  hash(src: Uint8Array, words: Uint32Array, offset: number, out: Uint32Array): void;
}

/**
 * The compiled module, or undefined where WebAssembly (or its SIMD) is unavailable. Compiled when
 * this file loads, as the net kernels are: V8 fixes a module's tiers when it compiles it, and once
 * a machine runs, the VMM has switched V8 to its baseline compiler for later modules
 * (`setGuestCodeTier`). Compiled after that switch, the hash ran at 39-54 ms per 256 MiB instead of
 * 19-24 ms (the migration's last pass, which the guest waits for, took 67 ms of a 96 ms downtime).
 */
const module: object | undefined = ((): object | undefined => {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    return wa === undefined ? undefined : new wa.Module(decodeBase64(PAGEHASH_WASM_BASE64));
  } catch {
    return undefined;
  }
})();

/**
 * A page hasher. With `memory` (the WebAssembly memory guest RAM lives in, `CpuBackend.wasmMemory`)
 * and WebAssembly with SIMD here, pages in that memory are hashed in place by the wasm kernel;
 * anything else, or `kind: "ts"` asked for, by {@link hashPageTs}.
 */
export function createPageHasher(memory?: WasmMemoryLike, kind: "auto" | "ts" = "auto"): PageHasher {
  const m = kind === "auto" && memory !== undefined ? module : undefined;
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  let x: PageHashExports | undefined;
  if (m !== undefined && wa !== undefined && memory !== undefined) {
    try {
      x = new wa.Instance(m, { env: { memory } }).exports as PageHashExports;
    } catch {
      x = undefined;
    }
  }
  const ts = (src: Uint8Array, words: Uint32Array, offset: number, out: Uint32Array): void => hashPageTs(words, (src.byteOffset + offset - words.byteOffset) >>> 2, out);
  if (x === undefined || memory === undefined) return { kind: "ts", hash: ts };
  const ex = x;
  const mem = memory;
  // WebAssembly.Memory's `buffer` getter costs tens of ns, once per page it was several ms a pass:
  // compare with the last buffer seen and ask the memory again only when that differs (it grew).
  let buf = mem.buffer;
  return {
    kind: "wasm",
    hash(src, words, offset, out) {
      if (src.buffer !== buf && src.buffer !== (buf = mem.buffer)) return ts(src, words, offset, out);
      out[0] = ex.hashPage(src.byteOffset + offset) >>> 0;
      out[1] = ex.hi() >>> 0;
    },
  };
}
