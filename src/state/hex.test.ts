/** The table-driven hex codec saved states use: round trips, either case in, and refusals. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeHex, encodeHex } from "./hex.js";

describe("hex", () => {
  it("round-trips any bytes, lowercase out, either case in", () => {
    let runs = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (b) => {
        runs++;
        const s = encodeHex(b);
        expect(s).toBe(Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(""));
        expect(decodeHex(s)).toEqual(b);
        expect(decodeHex(s.toUpperCase())).toEqual(b);
      }),
      { numRuns: 200 },
    );
    expect(runs).toBe(200);
  });

  it("refuses odd lengths and anything but hex digits, wide characters included", () => {
    expect(decodeHex("abc")).toBeUndefined();
    for (const bad of ["0g", "g0", " 0", "0-", "\u0130" + "0", "0\uff10", "0\u0000", "0x"]) expect(decodeHex(bad)).toBeUndefined();
    expect(decodeHex("")).toEqual(new Uint8Array(0));
    expect(encodeHex(new Uint8Array(0))).toBe("");
  });
});
