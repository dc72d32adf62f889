import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeTrace, encodeTrace, TraceError, TraceWriter, TRACE_VERSION, type Trace, type TraceHeader } from "./format.js";
import { replayTrace } from "./replay.js";

const header: TraceHeader = { platform: { kind: "igb" }, ramBytes: 32 << 20, ecamDiscovery: "acpi", nicvisor: "test" };

function sample(): Trace {
  return {
    header,
    cut: false,
    events: [
      { t: 10, depth: 0, kind: "cfg-read", bus: 2, devfn: 0, reg: 0, size: 4, value: 0x10c98086 },
      { t: 10, depth: 0, kind: "mmio-write", addr: 0xc0000000, size: 4, value: 0xffffffff },
      { t: 20.5, depth: 1, kind: "dma-read", addr: 0x1000, len: 4, data: new Uint8Array([1, 2, 3, 4]) },
      { t: 20.5, depth: 1, kind: "dma-write", addr: 0x2000, data: new Uint8Array([9]), ok: true },
      { t: 30, depth: 1, kind: "msi", address: 0xfee00000, data: 0x4021 },
      { t: 30, depth: 1, kind: "intx", rid: 0x28, pin: 1, level: true },
      { t: 31, depth: 1, kind: "tx", frame: new Uint8Array(60), meta: { needsCsum: { start: 34, offset: 6 } } },
      { t: 31, depth: 2, kind: "rx", frame: new Uint8Array(42), accepted: true },
      { t: 32, depth: 0, kind: "timer", id: 3 },
      { t: 33, depth: 1, kind: "rx-ready" },
      { t: 34, depth: 0, kind: "io-read", port: 0xc000, size: 2, value: 0xffff },
    ],
  };
}

/** Decoding `bytes` is refused with a TraceError whose path is `path`. */
function refused(bytes: Uint8Array, path: string | RegExp): TraceError {
  let err: unknown;
  try {
    decodeTrace(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TraceError);
  const te = err as TraceError;
  if (typeof path === "string") expect(te.path).toBe(path);
  else expect(te.path).toMatch(path);
  return te;
}

/** The byte offset of event `n` in an encoding of `t` (by encoding the prefix). */
function eventOffset(t: Trace, n: number): number {
  const w = new TraceWriter(t.header, Number.MAX_SAFE_INTEGER);
  for (const e of t.events.slice(0, n)) w.write(e);
  return w.size;
}

describe("trace format", () => {
  it("round-trips every kind of event", () => {
    const t = sample();
    const back = decodeTrace(encodeTrace(t));
    expect(back).toEqual(t);
  });

  it("refuses a wrong magic, a newer version, a bad header field", () => {
    const bytes = encodeTrace(sample());
    const bad = bytes.slice();
    bad[0] = 0x41;
    refused(bad, "magic");
    const v2 = bytes.slice();
    new DataView(v2.buffer).setUint32(8, TRACE_VERSION + 1, true);
    expect(refused(v2, "version").message).toContain(`version ${TRACE_VERSION + 1}`);
    const h = encodeTrace({ ...sample(), header: { ...header, ramBytes: 12 } });
    refused(h, "header.ramBytes");
    const kind = encodeTrace({ ...sample(), header: { ...header, platform: { kind: "e1000" } as unknown as TraceHeader["platform"] } });
    refused(kind, "header.platform.kind");
  });

  it("refuses a trace truncated anywhere, naming where it stopped", () => {
    const bytes = encodeTrace(sample());
    let n = 0;
    for (let len = 0; len < bytes.length; len++) {
      expect(() => decodeTrace(bytes.subarray(0, len))).toThrow(TraceError);
      n++;
    }
    expect(n).toBe(bytes.length);
    // Cut just inside event 4 (the msi): the error names it.
    const at = eventOffset(sample(), 4);
    refused(bytes.subarray(0, at + 2), /^events\[4\]\./);
    // Cut between events: the end record is missing.
    refused(bytes.subarray(0, at), "events[4]");
  });

  it("refuses a bad field, naming the event and the field", () => {
    const t = sample();
    const bytes = encodeTrace(t);
    // Event 0 is cfg-read: tag, f64 time, bus, devfn, reg, size.
    const at0 = eventOffset(t, 0);
    const size = bytes.slice();
    size[at0 + 1 + 8 + 3] = 3;
    expect(refused(size, "events[0].size").message).toContain("access size 3");
    const code = bytes.slice();
    code[at0] = 0x80 | 0x3f;
    refused(code, "events[0].kind");
    // Event 5 is intx with pin 1 at event 4's time: tag, depth, rid (0x28), pin.
    const at5 = eventOffset(t, 5);
    const pin = bytes.slice();
    expect(pin[at5 + 3]).toBe(1);
    pin[at5 + 3] = 7;
    refused(pin, "events[5].pin");
    // A time going back.
    const back = encodeTrace({ ...t, events: [t.events[2]!, { ...t.events[0]!, t: 1 }] });
    refused(back, "events[1].t");
    // A wrong event count in the end record.
    const end = bytes.slice();
    end[end.length - 2] = 99;
    refused(end, "end.count");
  });

  it("random corruption is refused with a TraceError or decodes; replaying it never throws anything else", () => {
    const bytes = encodeTrace(sample());
    let runs = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.nat(255)), { minLength: 1, maxLength: 64, size: "max" }), (edits) => {
        runs++;
        const b = bytes.slice();
        for (const [i, v] of edits) b[i] = v;
        try {
          replayTrace(b);
        } catch (e) {
          expect(e).toBeInstanceOf(TraceError);
        }
      }),
      { numRuns: 300 },
    );
    expect(runs).toBe(300);
  });
});
