/**
 * The WebAssembly implementation of the packet kernels, compiled from `assembly/` and embedded as
 * base64 in `net-wasm.generated.ts`.
 * @module
 */
import type { NetKernels } from "../kernels.js";

/**
 * Instantiates the WebAssembly kernels (synchronously; the module is small). Returns `undefined` if
 * WebAssembly is unavailable here. A new instance with its own memory on every call.
 */
export function loadWasmKernels(): NetKernels | undefined {
  return undefined;
}
