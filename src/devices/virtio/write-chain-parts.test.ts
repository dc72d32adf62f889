import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { writeChain, writeChainParts, type DescriptorChain } from "./virtqueue.js";
import type { DmaSpace } from "../../pci/interfaces.js";

/** Guest RAM with or without the linear fast path. */
function ram(bytes: Uint8Array, linear: boolean): DmaSpace {
  return {
    read: (a, n) => (a >= 0 && n >= 0 && a + n <= bytes.length ? bytes.subarray(a, a + n) : undefined),
    write: (a, d) => {
      if (!(a >= 0 && a + d.length <= bytes.length)) return false;
      bytes.set(d, a);
      return true;
    },
    ...(linear ? { linear: () => bytes } : {}),
  };
}

describe("writeChainParts", () => {
  it("property: writes the joined header and body from any offset buffer by buffer, as far as they fit (writeChain likewise)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 5 }),
        fc.uint8Array({ maxLength: 16 }),
        fc.uint8Array({ maxLength: 120 }),
        fc.nat(),
        fc.boolean(),
        (lens, head, body, fromSeed, linear) => {
          const chain: DescriptorChain = { head: 0, readable: [], writable: [], readableLen: 0, writableLen: 0 };
          let addr = 64;
          for (const len of lens) {
            chain.writable.push({ addr, len });
            chain.writableLen += len;
            addr += len + 9;
          }
          const joined = new Uint8Array(head.length + body.length);
          joined.set(head, 0);
          joined.set(body, head.length);
          const from = fromSeed % (joined.length + 1);
          // the reference: the joined bytes from `from` on, laid out buffer by buffer
          const expected = new Uint8Array(1024);
          let pos = from;
          for (const s of chain.writable) {
            for (let i = 0; i < s.len && pos < joined.length; i++) expected[s.addr + i] = joined[pos++]!;
          }
          const a = new Uint8Array(1024);
          expect(writeChainParts(ram(a, linear), chain, head, body, from)).toBe(pos - from);
          expect(Buffer.from(a).equals(Buffer.from(expected))).toBe(true);
          // writeChain is the same with no header
          const b = new Uint8Array(1024);
          expect(writeChain(ram(b, linear), chain, joined.subarray(from))).toBe(pos - from);
          expect(Buffer.from(b).equals(Buffer.from(expected))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("returns -1 for a buffer outside guest memory instead of throwing", () => {
    const chain: DescriptorChain = { head: 0, readable: [], writable: [{ addr: 1020, len: 20 }], readableLen: 0, writableLen: 20 };
    for (const linear of [true, false]) expect(writeChainParts(ram(new Uint8Array(1024), linear), chain, new Uint8Array(12), new Uint8Array(8), 0)).toBe(-1);
  });
});
