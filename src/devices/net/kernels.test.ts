import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createKernels, defaultKernels, tsKernels, CSUM_WASM_MIN_BYTES } from "./kernels.js";
import { decodeBase64 } from "./wasm/wasm-kernels.js";
import { MICROSOFT_RSS_KEY } from "./toeplitz.js";
import { skipTest } from "../../../test/skip.js";

const wasm = createKernels("wasm");

describe("net kernels: WebAssembly vs TypeScript", () => {
  it("loads the WebAssembly kernels here (Node has WebAssembly with SIMD)", () => {
    expect(wasm?.kind).toBe("wasm");
    expect(defaultKernels().kind).toBe("auto");
  });

  it("checksums identically on random data, ranges and seeds", (ctx) => {
    if (wasm === undefined) return skipTest(ctx, "SKIPPED: WebAssembly kernels did not load");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(), fc.nat(), fc.nat({ max: 2 ** 40 }), (d, a, b, init) => {
        const s = d.length === 0 ? 0 : a % d.length;
        const e = s + (d.length === 0 ? 0 : b % (d.length - s + 1));
        expect(wasm.csumPartial(d, s, e, init)).toBe(tsKernels.csumPartial(d, s, e, init));
      }),
      { numRuns: 1000 },
    );
    // All-ones data exercises the end-around carry at every width.
    for (const n of [1, 2, 3, 31, 32, 33, 63, 64, 65, 1500, 65536, 200000, (1 << 18) + 64, (3 << 20) + 5]) {
      const d = new Uint8Array(n).fill(0xff);
      expect(wasm.csumPartial(d, 0, n, 0xffff)).toBe(tsKernels.csumPartial(d, 0, n, 0xffff));
    }
  });

  it("clamps hostile bounds the same way", (ctx) => {
    if (wasm === undefined) return skipTest(ctx, "SKIPPED: WebAssembly kernels did not load");
    const d = Uint8Array.from({ length: 100 }, (_, i) => i * 7);
    for (const [s, e] of [[-1, 1e12], [50, 10], [NaN, 5], [3, NaN], [Infinity, -Infinity], [2.5, 99.9]] as const) {
      expect(wasm.csumPartial(d, s, e, -3)).toBe(tsKernels.csumPartial(d, s, e, -3));
    }
  });

  it("computes identical Toeplitz hashes on random keys and inputs", (ctx) => {
    if (wasm === undefined) return skipTest(ctx, "SKIPPED: WebAssembly kernels did not load");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), fc.uint8Array({ maxLength: 64 }), (key, input) => {
        expect(wasm.toeplitz(key, input)).toBe(tsKernels.toeplitz(key, input));
      }),
      { numRuns: 1000 },
    );
    const four = Uint8Array.of(66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6);
    expect(wasm.toeplitz(MICROSOFT_RSS_KEY, four)).toBe(0x51ccc178);
  });

  it("auto selects by size and still agrees", () => {
    const auto = createKernels("auto");
    const d = Uint8Array.from({ length: CSUM_WASM_MIN_BYTES * 3 }, (_, i) => (i * 31) & 0xff);
    for (const n of [10, CSUM_WASM_MIN_BYTES - 1, CSUM_WASM_MIN_BYTES, d.length]) {
      expect(auto?.csumPartial(d, 0, n, 0)).toBe(tsKernels.csumPartial(d, 0, n, 0));
    }
  });

  it("decodes base64 like the platform does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        expect(Array.from(decodeBase64(Buffer.from(b).toString("base64")))).toEqual(Array.from(b));
      }),
    );
  });
});

describe("base64", () => {
  it("round-trips and matches Node's encoder; rejects garbage with a typed error", async () => {
    const { encodeBase64, decodeBase64: dec, Base64Error } = await import("./base64.js");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(encodeBase64(b)).toBe(Buffer.from(b).toString("base64"));
        expect(Array.from(dec(encodeBase64(b)))).toEqual(Array.from(b));
      }),
    );
    expect(() => dec("AB\u0141C")).toThrow(Base64Error);
    expect(() => dec("A*==")).toThrow(Base64Error);
  });
});
