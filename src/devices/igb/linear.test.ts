/**
 * The data path's direct accesses to flat memory (DmaSpace.linear) must be invisible: the same
 * guest and the same traffic, with and without `linear`, leave the same guest memory, the same
 * registers, the same counters and faults, and the same frames on the uplink. The operations
 * include hostile descriptors (addresses anywhere in 64 bits, random lengths and command bits) so
 * the fall-back to read/write at the edge of memory is exercised too.
 */
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { RecordingBackend } from "../net/testing.js";
import { VR } from "./regs.js";

const MEM = 1 << 20;

type Op =
  | { kind: "tx"; vf: number; size: number; toVf: boolean }
  | { kind: "rx"; vf: number; size: number }
  | { kind: "badTx"; vf: number; desc: number[] }
  | { kind: "badRx"; vf: number; desc: number[] }
  | { kind: "drain"; vf: number };

const u32 = fc.integer({ min: 0, max: 0xffffffff });
// addresses: inside memory, at its very end, or far out of it
const addrLo = fc.oneof(fc.integer({ min: 0, max: MEM - 1 }), fc.integer({ min: MEM - 2048, max: MEM + 2048 }), u32);
const addrHi = fc.oneof(fc.constant(0), fc.constant(0), u32);
const desc = fc.tuple(addrLo, addrHi, u32, u32).map(([a, b, c, d]) => [a, b, c, d]);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("tx" as const), vf: fc.integer({ min: 0, max: 1 }), size: fc.integer({ min: 1, max: 2048 }), toVf: fc.boolean() }),
  fc.record({ kind: fc.constant("rx" as const), vf: fc.integer({ min: 0, max: 1 }), size: fc.integer({ min: 1, max: 1600 }) }),
  fc.record({ kind: fc.constant("badTx" as const), vf: fc.integer({ min: 0, max: 1 }), desc }),
  fc.record({ kind: fc.constant("badRx" as const), vf: fc.integer({ min: 0, max: 1 }), desc }),
  fc.record({ kind: fc.constant("drain" as const), vf: fc.integer({ min: 0, max: 1 }) }),
);

function bed(linear: boolean) {
  const up = new RecordingBackend();
  const tb = createIgbTestbed({ numVfs: 2, backend: up, memSize: MEM, linear, driver: { ringSize: 32 } });
  for (const d of tb.vfs) {
    expect(d.reset()).toBe(true);
    d.open();
  }
  return { tb, up };
}

/** Writes `words` as the descriptor at the ring's tail and moves the tail past it. */
function rawDesc(b: ReturnType<typeof bed>, vf: number, tx: boolean, words: number[]): void {
  const bar = b.tb.vfRegs[vf]!;
  const base = bar.read(tx ? VR.TDBAL(0) : VR.RDBAL(0), 4);
  const len = bar.read(tx ? VR.TDLEN(0) : VR.RDLEN(0), 4);
  const tail = bar.read(tx ? VR.TDT(0) : VR.RDT(0), 4);
  const n = Math.floor(len / 16);
  if (n === 0) return;
  const dv = new DataView(b.tb.vfMem[vf]!.bytes.buffer);
  words.forEach((w, i) => dv.setUint32(base + tail * 16 + 4 * i, w >>> 0, true));
  bar.write(tx ? VR.TDT(0) : VR.RDT(0), 4, (tail + 1) % n);
}

function run(b: ReturnType<typeof bed>, ops: Op[]): void {
  for (const o of ops) {
    const d = b.tb.vfs[o.vf]!;
    switch (o.kind) {
      case "tx": {
        const f = new Uint8Array(o.size).fill(o.size & 0xff);
        const dst = o.toVf ? b.tb.vfs[1 - o.vf]!.mac : Uint8Array.of(0x02, 9, 9, 9, 9, 9);
        f.set(dst.subarray(0, Math.min(6, o.size)), 0);
        if (f.length >= 12) f.set(d.mac, 6);
        d.reclaim();
        d.send(f);
        break;
      }
      case "rx": {
        const f = new Uint8Array(o.size).fill(0x5a);
        f.set(d.mac.subarray(0, Math.min(6, o.size)), 0);
        b.up.inject(f);
        break;
      }
      case "badTx":
        rawDesc(b, o.vf, true, o.desc);
        break;
      case "badRx":
        rawDesc(b, o.vf, false, o.desc);
        break;
      case "drain":
        d.drain(() => undefined);
        break;
    }
    b.tb.clock.advance(2000);
  }
}

describe("flat-memory fast paths (DmaSpace.linear)", () => {
  it("leave memory, registers, counters, faults and uplink frames exactly as the read/write paths do", () => {
    let runs = 0;
    let ops = 0;
    let faults = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 300, size: "max" }), (seq) => {
        const a = bed(false);
        const b = bed(true);
        run(a, seq);
        run(b, seq);
        expect(Buffer.compare(a.tb.mem.bytes, b.tb.mem.bytes)).toBe(0);
        expect(b.tb.core.regs.saveNamed()).toEqual(a.tb.core.regs.saveNamed());
        expect(b.tb.core.counters).toEqual(a.tb.core.counters);
        expect(b.tb.mem.faults).toBe(a.tb.mem.faults);
        expect(b.up.sent.map((f) => Buffer.from(f).toString("hex"))).toEqual(a.up.sent.map((f) => Buffer.from(f).toString("hex")));
        runs++;
        ops += seq.length;
        faults += a.tb.mem.faults;
      }),
      { numRuns: 40 },
    );
    expect(runs).toBe(40);
    // the sequences were long, and the hostile descriptors really reached the edge of memory
    expect(ops).toBeGreaterThan(40 * 50);
    expect(faults).toBeGreaterThan(0);
  });
});
