/**
 * The WebAssembly implementation of the packet kernels, compiled from `assembly/net.ts` by
 * `scripts/build-wasm.mjs` and embedded as base64 in `net-wasm.generated.ts` (no fs, no fetch: it
 * loads the same in Node and in browsers). Inputs are copied into the instance's linear memory.
 * @module
 */
import type { NetKernels } from "../kernels.js";
import { NET_WASM_BASE64 } from "./net-wasm.generated.js";
import { decodeBase64 } from "../base64.js";

export { decodeBase64 };

/** Largest input copied into wasm memory; longer inputs use the TypeScript kernels. */
export const WASM_MAX_INPUT = 1 << 24;

/** The slice of the WebAssembly JS API used here (the project's `lib` has no DOM/wasm typings). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface NetWasmExports {
  memory: WasmMemory;
  scratch(): number;
  csum(ptr: number, len: number, initial: number): number;
  toeplitz(keyPtr: number, keyLen: number, inPtr: number, inLen: number): number;
}

function fold16(sum: number): number {
  let s = Number.isFinite(sum) && sum > 0 ? Math.floor(sum) : 0;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

class WasmKernels implements NetKernels {
  readonly kind = "wasm" as const;
  readonly #x: NetWasmExports;
  readonly #base: number;
  #view: Uint8Array;
  readonly #ts: NetKernels;

  constructor(x: NetWasmExports, ts: NetKernels) {
    this.#x = x;
    this.#base = x.scratch();
    this.#view = new Uint8Array(x.memory.buffer);
    this.#ts = ts;
  }

  /**
   * Makes room for `n` bytes at the scratch base; returns the memory view. Only this class grows
   * the memory (the wasm code never does), so the cached view stays valid until we grow it.
   */
  #ensure(n: number): Uint8Array {
    const need = this.#base + n;
    if (need > this.#view.length) {
      const have = this.#x.memory.buffer.byteLength;
      if (need > have) this.#x.memory.grow(Math.ceil((need - have) / 65536));
      this.#view = new Uint8Array(this.#x.memory.buffer);
    }
    return this.#view;
  }

  csumPartial = (data: Uint8Array, start: number, end: number, initial: number): number => {
    let s = Math.floor(start);
    let e = Math.floor(end);
    if (!(s >= 0)) s = 0;
    if (s > data.length) s = data.length;
    if (Number.isNaN(e)) e = s;
    if (!(e <= data.length)) e = data.length;
    if (!(e >= s)) e = s;
    const len = e - s;
    if (len > WASM_MAX_INPUT) return this.#ts.csumPartial(data, s, e, initial);
    const base = this.#base;
    if (len <= 16) {
      const view = this.#ensure(len);
      for (let i = 0; i < len; i++) view[base + i] = data[s + i]!;
      return this.#x.csum(base, len, fold16(initial));
    }
    // A range that is most of its array (a frame's L4 part): copy the whole array, which needs no
    // subarray view, and sum from the range's offset in the copy.
    if (data.length - len <= 256) {
      this.#ensure(data.length).set(data, base);
      return this.#x.csum(base + s, len, fold16(initial));
    }
    this.#ensure(len).set(data.subarray(s, e), base);
    return this.#x.csum(base, len, fold16(initial));
  };

  toeplitz = (key: Uint8Array, input: Uint8Array): number => {
    if (key.length + input.length > WASM_MAX_INPUT) return this.#ts.toeplitz(key, input);
    const inOff = this.#base + ((key.length + 15) & ~15);
    const view = this.#ensure(inOff - this.#base + input.length);
    view.set(key, this.#base);
    view.set(input, inOff);
    return this.#x.toeplitz(this.#base, key.length, inOff, input.length) >>> 0;
  };
}

/**
 * The kernels' module, compiled once when this file loads: before any machine exists, so before
 * the VMM may switch V8 to its baseline compiler for later modules (`setGuestCodeTier`), and V8
 * can still tier these hot loops up.
 */
const netModule: object | undefined = ((): object | undefined => {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    return wa === undefined ? undefined : new wa.Module(decodeBase64(NET_WASM_BASE64));
  } catch {
    return undefined;
  }
})();

/**
 * Instantiates the WebAssembly kernels synchronously (the module is under 1 KiB, well below the
 * browsers' main-thread limit for synchronous compilation). Returns `undefined` if WebAssembly or
 * its SIMD extension is unavailable here. Each call makes a new instance with its own memory.
 * `ts` provides the fallback for inputs larger than {@link WASM_MAX_INPUT}.
 */
export function loadWasmKernels(ts: NetKernels): NetKernels | undefined {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wa === undefined || netModule === undefined) return undefined;
  try {
    const inst = new wa.Instance(netModule, {
      env: {
        abort: () => {
          throw new Error("net wasm abort");
        },
      },
    });
    return new WasmKernels(inst.exports as unknown as NetWasmExports, ts);
  } catch {
    return undefined;
  }
}
