import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { crc32, decodeStates, encodeStates, type StateRecord } from "./container.js";
import { StateError } from "./parse.js";

const sample: StateRecord[] = [
  { name: "igb", kind: "igb", version: 2, state: { regs: { CTRL: 1, TDLEN: [128, 0] } } },
  { name: "virtio-net", kind: "virtio-net", version: 2, state: { status: 15, note: "é✓" } },
];

describe("state container", () => {
  it("CRC-32 matches the IEEE check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });

  it("round-trips records", () => {
    expect(decodeStates(encodeStates(sample))).toEqual(sample);
  });

  it("refuses a duplicate name when encoding", () => {
    expect(() => encodeStates([sample[0]!, sample[0]!])).toThrow(/name used twice/);
  });

  it("names what is wrong: magic, version, checksum, truncation", () => {
    const good = encodeStates(sample);
    const bad = (f: (b: Uint8Array) => Uint8Array | void): Uint8Array => {
      const b = good.slice();
      return f(b) ?? b;
    };
    expect(() => decodeStates(bad((b) => void (b[0] = 0)))).toThrow(/container.magic/);
    expect(() => decodeStates(bad((b) => void (b[8] = 9)))).toThrow(/container.version: format version 9/);
    expect(() => decodeStates(bad((b) => void (b[40] = (b[40] ?? 0) ^ 1)))).toThrow(/container.checksum/);
    expect(() => decodeStates(good.subarray(0, good.length - 7))).toThrow(StateError);
  });

  it("property: any corruption of the bytes is refused with a StateError, never another exception", () => {
    const good = encodeStates(sample);
    let runs = 0;
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat(good.length - 1), v: fc.nat(255) }), { minLength: 1, maxLength: 64, size: "max" }), fc.nat(good.length), (edits, cut) => {
        runs++;
        const b = good.slice(0, Math.max(cut, 16));
        let changed = b.length !== good.length;
        for (const e of edits) {
          if (e.at < b.length && b[e.at] !== e.v) {
            b[e.at] = e.v;
            changed = true;
          }
        }
        if (!changed) return;
        let err: unknown;
        try {
          decodeStates(b);
        } catch (e) {
          err = e;
        }
        // A corrupted container is always refused (CRC-32 catches every edit here), and only ever
        // with the typed error.
        expect(err).toBeInstanceOf(StateError);
      }),
      { numRuns: 2000 },
    );
    expect(runs).toBe(2000);
  });
});
