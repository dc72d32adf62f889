import { describe, expect, it } from "vitest";
import { defineState } from "./versioned.js";
import { StateError, arr, field, int, obj, onlyKeys, optField, u32 } from "./parse.js";

// A state type in three versions: v1 {n}, v2 {n, extra}, v3 {count, extra, list}.
const Counter = defineState(
  "counter",
  3,
  {
    1: (o) => ({ ...o, version: 2, extra: 0 }),
    2: (o, path) => ({ version: 3, count: int(o.n, `${path}.n`, 0, 1000), extra: o.extra, list: [] }),
  },
  (o, path) => {
    onlyKeys(o, path, ["version", "count", "extra", "list", "later"]);
    return {
      version: 3 as const,
      count: field(o, "count", path, (v, p) => int(v, p, 0, 1000)),
      extra: field(o, "extra", path, (v, p) => int(v, p, 0, 9)),
      list: field(o, "list", path, (v, p) => arr(v, p, 4, u32)),
      later: optField(o, "later", path, (v, p) => int(v, p, 0, 1), 0),
    };
  },
);

describe("versioned state types", () => {
  it("lifts every older version through the chain", () => {
    expect(Counter.oldest).toBe(1);
    expect(Counter.parse({ version: 1, n: 5 })).toEqual({ version: 3, count: 5, extra: 0, list: [], later: 0 });
    expect(Counter.parse({ version: 2, n: 7, extra: 3 })).toEqual({ version: 3, count: 7, extra: 3, list: [], later: 0 });
    expect(Counter.parse({ version: 3, count: 1, extra: 1, list: [1, 2], later: 1 })).toEqual({ version: 3, count: 1, extra: 1, list: [1, 2], later: 1 });
  });

  it("names the field and the bound in every refusal", () => {
    const msg = (u: unknown): string => {
      try {
        Counter.parse(u);
      } catch (e) {
        expect(e).toBeInstanceOf(StateError);
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(msg(null)).toBe("counter: expected an object, got null");
    expect(msg({ version: 4 })).toBe("counter.version: 4 is outside [1, 3]");
    expect(msg({ version: 1, n: 5000 })).toBe("counter.n: 5000 is outside [0, 1000]");
    expect(msg({ version: 3, count: 1, extra: 1, list: [1, 2, 3, 4, 5] })).toBe("counter.list: array of 5, at most 4");
    expect(msg({ version: 3, count: 1, extra: 1, list: [-1] })).toBe("counter.list[0]: -1 is outside [0, 4294967295]");
    expect(msg({ version: 3, count: 1, extra: 1, list: [], bogus: 1 })).toBe("counter.bogus: unknown field");
    expect(msg({ version: 3, count: 1.5, extra: 1, list: [] })).toBe("counter.count: expected an integer, got 1.5");
    expect(() => obj([], "x")).toThrow("x: expected an object, got an array of 0");
  });
});
