/**
 * Regression (fuzz finding, open/virtio-split-19b2edd6 and open/virtio-packed-3afe4f3c): a
 * descriptor whose 64-bit address is 2^53 or more reached `DmaSpace` as an inexact number. Such an
 * address is outside guest memory: the queue refuses it (VirtqueueError, which the transport turns
 * into NEEDS_RESET) before forming it, so every address `DmaSpace` sees is an exact integer. Rings
 * programmed there cannot be enabled, and a saved ready queue there is refused by the parser.
 */
import { describe, expect, it } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import { PACKED_DESC_F, PackedQueue } from "./packed-queue.js";
import { ADDR_EXACT_LIMIT, parseQueueState } from "./queue-state.js";
import { SplitQueue, VIRTQ_DESC_F, VirtqueueError } from "./split-queue.js";

/** 64 KiB of guest memory without a linear view (every access goes through read/write), recording inexact addresses. */
function ram(): DmaSpace & { view: DataView; bad: number[]; accesses: number } {
  const bytes = new Uint8Array(1 << 16);
  const m = {
    view: new DataView(bytes.buffer),
    bad: [] as number[],
    accesses: 0,
    read(a: number, l: number): Uint8Array | undefined {
      m.accesses++;
      if (!Number.isSafeInteger(a) || !Number.isSafeInteger(a + l)) m.bad.push(a);
      return a >= 0 && a + l <= bytes.length ? bytes.subarray(a, a + l) : undefined;
    },
    write(a: number, d: Uint8Array): boolean {
      m.accesses++;
      if (!Number.isSafeInteger(a) || !Number.isSafeInteger(a + d.length)) m.bad.push(a);
      if (a < 0 || a + d.length > bytes.length) return false;
      bytes.set(d, a);
      return true;
    },
  };
  return m;
}

/** Writes a 16-byte descriptor with its address as two 32-bit words. */
function put(v: DataView, at: number, lo: number, hi: number, len: number, a: number, b: number): void {
  v.setUint32(at, lo, true);
  v.setUint32(at + 4, hi, true);
  v.setUint32(at + 8, len, true);
  v.setUint16(at + 12, a, true);
  v.setUint16(at + 14, b, true);
}

/** High words of addresses at or past the limit: 2^21 - 1 (2^53 - 2^32), 2^21 (2^53), 2^32 - 1. */
const HIGH = [ADDR_EXACT_LIMIT / 2 ** 32, 0x20_0000, 0xffff_ffff];

function split(m: ReturnType<typeof ram>, flags: number, lo: number, hi: number, len: number): SplitQueue {
  const q = Object.assign(new SplitQueue(8), { desc: 0x1000, driver: 0x2000, device: 0x3000, ready: true, indirect: true });
  put(m.view, 0x1000, lo, hi, len, flags, 0);
  m.view.setUint16(0x2004, 0, true); // avail.ring[0] = head 0
  m.view.setUint16(0x2002, 1, true); // avail.idx = 1
  return q;
}

function packed(m: ReturnType<typeof ram>, flags: number, lo: number, hi: number, len: number): PackedQueue {
  const q = Object.assign(new PackedQueue(8), { desc: 0x1000, driver: 0x2000, device: 0x3000, ready: true, indirect: true });
  put(m.view, 0x1000, lo, hi, len, 0, flags | PACKED_DESC_F.AVAIL);
  return q;
}

describe("virtqueue addresses at or past 2^53 - 2^32", () => {
  for (const hi of HIGH) {
    const tag = `high word 0x${hi.toString(16)}`;
    it(`split: a buffer or an indirect table at ${tag} is refused before any inexact address reaches DmaSpace`, () => {
      for (const [flags, len] of [[VIRTQ_DESC_F.WRITE, 64], [0, 0x1000], [VIRTQ_DESC_F.INDIRECT, 32]] as const) {
        const m = ram();
        const q = split(m, flags, 0xffff_fff0, hi, len);
        expect(() => q.popChain(m)).toThrow(VirtqueueError);
        expect(m.bad).toEqual([]);
        expect(m.accesses).toBeGreaterThan(0);
      }
    });

    it(`packed: a buffer or an indirect table at ${tag} is refused before any inexact address reaches DmaSpace`, () => {
      for (const [flags, len] of [[PACKED_DESC_F.WRITE, 64], [0, 0x1000], [PACKED_DESC_F.INDIRECT, 32]] as const) {
        const m = ram();
        const q = packed(m, flags, 0xffff_fff0, hi, len);
        expect(() => q.popChain(m)).toThrow(VirtqueueError);
        expect(m.bad).toEqual([]);
      }
    });
  }

  it("packed: an indirect table entry at 2^53 is refused too", () => {
    const m = ram();
    const q = packed(m, PACKED_DESC_F.INDIRECT, 0x4000, 0, 32);
    put(m.view, 0x4000, 0x5000, 0, 64, 0, 0);
    put(m.view, 0x4010, 0, 0x20_0000, 64, 0, PACKED_DESC_F.WRITE);
    expect(() => q.popChain(m)).toThrow(/outside guest memory/);
    expect(m.bad).toEqual([]);
  });

  it("a buffer just below the limit is still an exact address (refused as outside this memory, not as inexact)", () => {
    const m = ram();
    const q = split(m, VIRTQ_DESC_F.WRITE, 0xffff_ffff, ADDR_EXACT_LIMIT / 2 ** 32 - 1, 0xffff_ffff);
    expect(() => q.popChain(m)).toThrow(/buffer outside guest memory/);
    expect(m.bad).toEqual([]);
  });

  it("a ring programmed at or past the limit cannot be enabled (validate refuses: the transport sets NEEDS_RESET)", () => {
    for (const q of [new SplitQueue(8), new PackedQueue(8)]) {
      Object.assign(q, { size: 8, desc: 0x1000, driver: 0x2000, device: 0x3000 });
      expect(() => q.validate()).not.toThrow();
      for (const k of ["desc", "driver", "device"] as const) {
        Object.assign(q, { desc: 0x1000, driver: 0x2000, device: 0x3000, [k]: 2 ** 53 });
        expect(() => q.validate(), `${k}`).toThrow(/ring outside guest memory/);
      }
    }
  });

  it("a saved ready queue whose ring lies past the limit is refused by the parser, naming the field", () => {
    const s = { layout: "split", ready: true, size: 8, desc: 2 ** 60, driver: 0x2000, device: 0x3000, nextAvail: 0, nextUsed: 0, msixVector: 0, inflight: [] };
    expect(() => parseQueueState(s, "q", { maxSize: 8, layout: "split", msixVectors: 2, mayBeReady: true })).toThrow(/q\.desc/);
    expect(() => parseQueueState({ ...s, desc: 0x1000 }, "q", { maxSize: 8, layout: "split", msixVectors: 2, mayBeReady: true })).not.toThrow();
  });
});
