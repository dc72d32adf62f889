/**
 * The page hash's two implementations agree bit for bit (WebAssembly over a memory it imports,
 * as it runs over v86's; TypeScript over the same bytes), a one-word change always changes both
 * halves, and a view outside the imported memory falls back to TypeScript with the same result.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createPageHasher, hashPageTs } from "./page-hash.js";

const PAGES = 64;

function engineMemory(): { buffer: ArrayBuffer } {
  const wa = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  return new wa.Memory({ initial: (PAGES * 4096) / 65536 + 1 });
}

describe("page hash", () => {
  it("WebAssembly and TypeScript give the same 64 bits for any page, at any page offset in the memory", () => {
    const mem = engineMemory();
    const wasm = createPageHasher(mem);
    expect(wasm.kind).toBe("wasm");
    const bytes = new Uint8Array(mem.buffer);
    const words = new Uint32Array(mem.buffer);
    let runs = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.integer({ min: 0, max: PAGES - 1 }), (page, at) => {
        bytes.set(page, at * 4096);
        const a = new Uint32Array(2);
        const b = new Uint32Array(2);
        wasm.hash(bytes, words, at * 4096, a);
        hashPageTs(words, at * 1024, b);
        expect([...a]).toEqual([...b]);
        runs++;
      }),
      { numRuns: 300 },
    );
    expect(runs).toBe(300);
  });

  it("a one-word change changes both halves, in both implementations", () => {
    const mem = engineMemory();
    const bytes = new Uint8Array(mem.buffer);
    const words = new Uint32Array(mem.buffer);
    for (const h of [createPageHasher(mem), createPageHasher(mem, "ts")]) {
      const base = new Uint32Array(2);
      h.hash(bytes, words, 0, base);
      for (let i = 0; i < 1024; i += 7) {
        words[i] = 0x80000000 >>> (i % 32);
        const x = new Uint32Array(2);
        h.hash(bytes, words, 0, x);
        expect(x[0], `${h.kind} word ${i}`).not.toBe(base[0]);
        expect(x[1], `${h.kind} word ${i}`).not.toBe(base[1]);
        words[i] = 0;
      }
    }
  });

  it("two changes of the same high bit in one lane (words 16 apart) do not cancel", () => {
    const mem = engineMemory();
    const bytes = new Uint8Array(mem.buffer);
    const words = new Uint32Array(mem.buffer);
    for (const h of [createPageHasher(mem), createPageHasher(mem, "ts")]) {
      const base = new Uint32Array(2);
      h.hash(bytes, words, 0, base);
      for (let i = 0; i + 16 < 1024; i += 29) {
        for (const bit of [0x80000000, 0x40000000, 1]) {
          words[i] = bit;
          words[i + 16] = bit;
          const x = new Uint32Array(2);
          h.hash(bytes, words, 0, x);
          expect(x[0] !== base[0] || x[1] !== base[1], `${h.kind} words ${i}, ${i + 16}, bit ${bit}`).toBe(true);
          words[i] = 0;
          words[i + 16] = 0;
        }
      }
    }
  });

  it("a page outside the imported memory is hashed by TypeScript, with the same result", () => {
    const mem = engineMemory();
    const wasm = createPageHasher(mem);
    const other = new Uint8Array(8192);
    for (let i = 0; i < other.length; i++) other[i] = (i * 131 + 7) & 0xff;
    const ow = new Uint32Array(other.buffer);
    const a = new Uint32Array(2);
    const b = new Uint32Array(2);
    wasm.hash(other, ow, 4096, a);
    hashPageTs(ow, 1024, b);
    expect([...a]).toEqual([...b]);
    expect(createPageHasher(undefined).kind).toBe("ts");
  });
});
