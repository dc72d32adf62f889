/**
 * The page hash's two implementations agree bit for bit (WebAssembly over a memory it imports,
 * as it runs over v86's; TypeScript over the same bytes), a one-word change always changes both
 * halves, and a view outside the imported memory falls back to TypeScript with the same result.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createPageHasher, hashPageTs, type PageHasher } from "./page-hash.js";

const PAGES = 64;

/** A WebAssembly memory standing for the engine's, and views of it. */
function engineMemory(): { mem: { buffer: ArrayBuffer }; bytes: Uint8Array; words: Uint32Array } {
  const wa = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  const mem = new wa.Memory({ initial: (PAGES * 4096) / 65536 + 1 });
  return { mem, bytes: new Uint8Array(mem.buffer), words: new Uint32Array(mem.buffer) };
}

/** Hashes page 0 with `h`, with `words[i]` set to `v` for each [i, v] of `changes`, then puts them back to 0. */
function hashWith(h: PageHasher, bytes: Uint8Array, words: Uint32Array, changes: Array<[number, number]>): Uint32Array {
  for (const [i, v] of changes) words[i] = v;
  const x = new Uint32Array(2);
  h.hash(bytes, words, 0, x);
  for (const [i] of changes) words[i] = 0;
  return x;
}

describe("page hash", () => {
  it("WebAssembly and TypeScript give the same 64 bits for any page, at any page offset in the memory", () => {
    const { mem, bytes, words } = engineMemory();
    const wasm = createPageHasher(mem);
    expect(wasm.kind).toBe("wasm");
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
    const { mem, bytes, words } = engineMemory();
    for (const h of [createPageHasher(mem), createPageHasher(mem, "ts")]) {
      const base = hashWith(h, bytes, words, []);
      for (let i = 0; i < 1024; i += 7) {
        const x = hashWith(h, bytes, words, [[i, 0x80000000 >>> (i % 32)]]);
        expect(x[0], `${h.kind} word ${i}`).not.toBe(base[0]);
        expect(x[1], `${h.kind} word ${i}`).not.toBe(base[1]);
      }
    }
  });

  it("two changes of the same high bit in one lane (words 16 apart) do not cancel", () => {
    const { mem, bytes, words } = engineMemory();
    for (const h of [createPageHasher(mem), createPageHasher(mem, "ts")]) {
      const base = hashWith(h, bytes, words, []);
      for (let i = 0; i + 16 < 1024; i += 29) {
        for (const bit of [0x80000000, 0x40000000, 1]) {
          const x = hashWith(h, bytes, words, [[i, bit], [i + 16, bit]]);
          expect(x[0] !== base[0] || x[1] !== base[1], `${h.kind} words ${i}, ${i + 16}, bit ${bit}`).toBe(true);
        }
      }
    }
  });

  it("a page outside the imported memory is hashed by TypeScript, with the same result", () => {
    const { mem } = engineMemory();
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
