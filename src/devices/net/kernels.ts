/**
 * The hot inner loops of the packet helpers (the one's-complement sum and the bit-serial Toeplitz
 * hash), with two interchangeable implementations: TypeScript ({@link tsKernels}) and WebAssembly
 * compiled from `assembly/` (see `wasm-kernels.ts`). {@link defaultKernels} picks WebAssembly when
 * it loads and falls back to TypeScript; {@link createKernels} lets tests and benches choose.
 * @module
 */
import { loadWasmKernels } from "./wasm/wasm-kernels.js";

/** The interchangeable inner loops. Every implementation gives bit-identical results. */
export interface NetKernels {
  /** Which implementation this is. */
  readonly kind: "ts" | "wasm" | "auto";
  /**
   * One's-complement sum of `data[start..end)` as big-endian 16-bit words (odd tail padded with
   * zero) plus `initial`, folded to 16 bits. Bounds are clamped to the array.
   */
  csumPartial(data: Uint8Array, start: number, end: number, initial: number): number;
  /**
   * Toeplitz hash (Microsoft RSS) of `input` under `key`, computed bit by bit. Input bits beyond
   * `key.length * 8 - 32` use zero key bits. Returns an unsigned 32-bit number.
   */
  toeplitz(key: Uint8Array, input: Uint8Array): number;
}

function clampRange(len: number, start: number, end: number): [number, number] {
  let s = Math.floor(start);
  let e = Math.floor(end);
  if (!(s >= 0)) s = 0;
  if (s > len) s = len;
  if (Number.isNaN(e)) e = s;
  if (!(e <= len)) e = len;
  if (!(e >= s)) e = s;
  return [s, e];
}

function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** TypeScript one's-complement sum (see {@link NetKernels.csumPartial}). */
export function csumPartialTs(data: Uint8Array, start: number, end: number, initial: number): number {
  const [s, e] = clampRange(data.length, start, end);
  let hi = 0;
  let lo = 0;
  let i = s;
  const stop8 = e - ((e - s) & 7);
  for (; i < stop8; i += 8) {
    hi += data[i]! + data[i + 2]! + data[i + 4]! + data[i + 6]!;
    lo += data[i + 1]! + data[i + 3]! + data[i + 5]! + data[i + 7]!;
  }
  for (; i + 1 < e; i += 2) {
    hi += data[i]!;
    lo += data[i + 1]!;
  }
  if (i < e) hi += data[i]!;
  const init = Number.isFinite(initial) && initial > 0 ? Math.floor(initial) : 0;
  return foldSum(hi * 256 + lo + init);
}

/** TypeScript bit-serial Toeplitz hash (see {@link NetKernels.toeplitz}). */
export function toeplitzTs(key: Uint8Array, input: Uint8Array): number {
  // `window` holds the 32 key bits aligned with the current input bit.
  let window = ((key[0] ?? 0) << 24) | ((key[1] ?? 0) << 16) | ((key[2] ?? 0) << 8) | (key[3] ?? 0);
  let result = 0;
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!;
    const next = key[i + 4] ?? 0;
    for (let bit = 7; bit >= 0; bit--) {
      if ((b >> bit) & 1) result ^= window;
      window = (window << 1) | ((next >> bit) & 1);
    }
  }
  return result >>> 0;
}

/** The TypeScript implementation. */
export const tsKernels: NetKernels = Object.freeze({
  kind: "ts" as const,
  csumPartial: csumPartialTs,
  toeplitz: toeplitzTs,
});

/** Which implementation {@link createKernels} should return. */
export type KernelChoice = "ts" | "wasm" | "auto";

let cachedDefault: NetKernels | undefined;

/**
 * Returns the kernels of the given choice: `"ts"` always works; `"wasm"` returns `undefined` if the
 * WebAssembly module cannot be instantiated here; `"auto"` picks per call and input size whichever
 * was measured faster (see `bench/checksum.bench.ts`), falling back to TypeScript.
 */
export function createKernels(choice: "ts"): NetKernels;
export function createKernels(choice: KernelChoice): NetKernels | undefined;
export function createKernels(choice: KernelChoice): NetKernels | undefined {
  if (choice === "ts") return tsKernels;
  const wasm = loadWasmKernels(tsKernels);
  if (choice === "wasm") return wasm;
  return wasm === undefined ? tsKernels : autoKernels(wasm);
}

/**
 * Below this many bytes the TypeScript sum wins over copying into WebAssembly memory and calling
 * in (measured with `bench/checksum.bench.ts`: 64 bytes wasm 30 ns, TS 35 ns; see
 * docs/networking.md).
 */
export const CSUM_WASM_MIN_BYTES = 64;

/**
 * From this input length the bit-serial WebAssembly Toeplitz kernel beats the TypeScript one
 * (`bench/toeplitz.bench.ts`: 12 bytes TS wins, 36 bytes wasm wins by ~15%). Both lose to the
 * per-key table of `ToeplitzHasher`, which is what devices should use.
 */
export const TOEPLITZ_WASM_MIN_BYTES = 32;

function autoKernels(wasm: NetKernels): NetKernels {
  return Object.freeze({
    kind: "auto" as const,
    csumPartial(data: Uint8Array, start: number, end: number, initial: number): number {
      return end - start >= CSUM_WASM_MIN_BYTES
        ? wasm.csumPartial(data, start, end, initial)
        : csumPartialTs(data, start, end, initial);
    },
    toeplitz(key: Uint8Array, input: Uint8Array): number {
      return input.length >= TOEPLITZ_WASM_MIN_BYTES ? wasm.toeplitz(key, input) : toeplitzTs(key, input);
    },
  });
}

/**
 * The kernels the helpers use: `createKernels("auto")`, computed once per module instance (a
 * write-once cache of an immutable object).
 */
export function defaultKernels(): NetKernels {
  cachedDefault ??= createKernels("auto") ?? tsKernels;
  return cachedDefault;
}
