import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { SnapshotError } from "./runner.js";
import type { GuestSnapshot } from "./runner.js";
import { decodeSnapshot, encodeSnapshot, fnv1a } from "./runner-snapshot.js";
import { decodeStates, encodeStates } from "../../state/container.js";

const machineRecords = [
  { name: "machine", kind: "machine", version: 2, state: { version: 2, memMiB: 64, conf1Latch: 0x80001800 } },
  { name: "testdev", kind: "pci-testdev", version: 1, state: { version: 1, regs: [1, 2] } },
];

function snap(engine: Uint8Array): GuestSnapshot {
  return {
    magic: "nicvisor-guest-snapshot",
    version: 2,
    memMiB: 64,
    readyMarker: "@@R@@",
    engine,
    engineChecksum: fnv1a(engine),
    devices: encodeStates(machineRecords),
  };
}

describe("snapshot file encoding", () => {
  it("round-trips", () => {
    const s = snap(new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
    expect(decodeSnapshot(encodeSnapshot(s))).toEqual(s);
  });
  it("reads a format-1 file: its JSON machine state becomes the one format-1 machine record", () => {
    const engine = new Uint8Array([9, 8, 7]);
    const machine = { version: 1, memMiB: 64, conf1Latch: 0x80001800, platform: { version: 1, pci: {}, devices: {} } };
    const header = new TextEncoder().encode(
      JSON.stringify({ magic: "nicvisor-guest-snapshot", version: 1, memMiB: 64, readyMarker: "@@R@@", engineChecksum: fnv1a(engine), machine, engineLength: engine.length }),
    );
    const b = new Uint8Array(20 + header.length + engine.length);
    b.set(new TextEncoder().encode("NVGSNAP\0"), 0);
    const dv = new DataView(b.buffer);
    dv.setUint32(8, 1, true);
    dv.setUint32(12, header.length, true);
    dv.setUint32(16, fnv1a(header), true);
    b.set(header, 20);
    b.set(engine, 20 + header.length);
    const s = decodeSnapshot(b);
    expect(s.version).toBe(2);
    expect(s.engine).toEqual(engine);
    expect(decodeStates(s.devices)).toEqual([{ name: "machine", kind: "machine", version: 1, state: machine }]);
  });
  it("fnv1a gives the same value for aligned and unaligned views of the same bytes", () => {
    const b = new Uint8Array(13).map((_, i) => i * 7);
    const u = new Uint8Array(14);
    u.set(b, 1);
    expect(fnv1a(u.subarray(1))).toBe(fnv1a(b));
  });
  it("rejects truncated, corrupted and foreign bytes with SnapshotError", () => {
    const e = encodeSnapshot(snap(new Uint8Array(32).fill(9)));
    expect(() => decodeSnapshot(e.subarray(0, e.length - 1))).toThrow(SnapshotError);
    const c = e.slice();
    c[c.length - 1] = (c[c.length - 1] ?? 0) ^ 1;
    expect(() => decodeSnapshot(c)).toThrow(/checksum/);
    const h = e.slice();
    h[25] = (h[25] ?? 0) ^ 1;
    expect(() => decodeSnapshot(h)).toThrow(SnapshotError);
    expect(() => decodeSnapshot(new TextEncoder().encode("hello world, not a snapshot"))).toThrow(SnapshotError);
  });
  it("property: any single-byte corruption or random bytes give SnapshotError or the original, never another error", () => {
    const e = encodeSnapshot(snap(new Uint8Array(40).map((_, i) => i)));
    fc.assert(
      fc.property(fc.nat(e.length - 1), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const c = e.slice();
        c[pos] = (c[pos] ?? 0) ^ x;
        try {
          decodeSnapshot(c);
        } catch (err) {
          expect(err).toBeInstanceOf(SnapshotError);
        }
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        expect(() => decodeSnapshot(b)).toThrow(SnapshotError);
      }),
    );
  });
});
