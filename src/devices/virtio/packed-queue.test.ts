import { describe, expect, it } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import { PACKED_DESC_F, PackedQueue, RING_EVENT_FLAGS } from "./packed-queue.js";
import { VirtqueueError, readChain, writeChain } from "./virtqueue.js";

function ram(size = 1 << 20): DmaSpace & { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  return {
    bytes,
    view: new DataView(bytes.buffer),
    read: (a, l) => (a >= 0 && l >= 0 && a + l <= size ? bytes.subarray(a, a + l) : undefined),
    write: (a, d) => (a >= 0 && a + d.length <= size ? (bytes.set(d, a), true) : false),
  };
}

const RING = 0x1000;
const DRV = 0x2000;
const DEV = 0x3000;

function queue(size = 4, eventIdx = false): PackedQueue {
  const q = new PackedQueue(size);
  Object.assign(q, { desc: RING, driver: DRV, device: DEV, ready: true, eventIdx, indirect: true });
  return q;
}

/** A tiny packed-ring driver: writes chains at its own position with its own wrap counter. */
class Drv {
  pos = 0;
  wrap = true;
  usedPos = 0;
  usedWrap = true;
  constructor(readonly m: ReturnType<typeof ram>, readonly size: number) {}
  put(i: number, addr: number, len: number, flags: number, id: number, avail = true): void {
    const o = RING + 16 * i;
    this.m.view.setUint32(o, addr, true);
    this.m.view.setUint32(o + 4, 0, true);
    this.m.view.setUint32(o + 8, len, true);
    this.m.view.setUint16(o + 12, id, true);
    const w = avail ? this.wrap : !this.wrap;
    this.m.view.setUint16(o + 14, flags | (w ? PACKED_DESC_F.AVAIL : PACKED_DESC_F.USED), true);
  }
  /** Adds a chain of [addr, len, write] buffers with buffer id `id`. */
  add(id: number, bufs: [number, number, boolean][]): void {
    bufs.forEach(([a, l, w], k) => {
      this.put(this.pos, a, l, (w ? PACKED_DESC_F.WRITE : 0) | (k < bufs.length - 1 ? PACKED_DESC_F.NEXT : 0), id);
      if (++this.pos === this.size) {
        this.pos = 0;
        this.wrap = !this.wrap;
      }
    });
  }
  used(count: number): { id: number; len: number } | undefined {
    const o = RING + 16 * this.usedPos;
    const f = this.m.view.getUint16(o + 14, true);
    const a = (f & PACKED_DESC_F.AVAIL) !== 0;
    const u = (f & PACKED_DESC_F.USED) !== 0;
    if (a !== this.usedWrap || u !== this.usedWrap) return undefined;
    const r = { id: this.m.view.getUint16(o + 12, true), len: this.m.view.getUint32(o + 8, true) };
    this.usedPos += count;
    if (this.usedPos >= this.size) {
      this.usedPos -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    return r;
  }
}

describe("packed virtqueue", () => {
  it("pops chains across the wrap, returns buffer IDs and marks them used with the right wrap counter", () => {
    const m = ram();
    const q = queue(4);
    const d = new Drv(m, 4);
    for (let round = 0; round < 5; round++) {
      m.bytes.set([round, 2, 3], 0x10000);
      d.add(7 + round, [[0x10000, 3, false], [0x11000, 64, true]]);
      const c = q.popChain(m)!;
      expect([c.head, c.readableLen, c.writableLen]).toEqual([7 + round, 3, 64]);
      expect([...readChain(m, c, 10)!]).toEqual([round, 2, 3]);
      expect(writeChain(m, c, new Uint8Array(5))).toBe(5);
      expect(q.popChain(m)).toBeUndefined();
      q.addUsed(m, c.head, 5);
      expect(d.used(2)).toEqual({ id: 7 + round, len: 5 });
    }
    expect([q.nextAvail, q.availWrap, q.nextUsed, q.usedWrap]).toEqual([2, true, 2, true]); // 10 entries in a ring of 4: two wraps
  });

  it("follows an indirect descriptor; rejects indirect inside indirect, a bad table length and a chain longer than the ring", () => {
    const m = ram();
    let q = queue(4);
    let d = new Drv(m, 4);
    const t = 0x8000;
    const ind = (i: number, addr: number, len: number, flags: number): void => {
      m.view.setUint32(t + 16 * i, addr, true);
      m.view.setUint32(t + 16 * i + 8, len, true);
      m.view.setUint16(t + 16 * i + 14, flags, true);
    };
    ind(0, 0x10000, 8, 0);
    ind(1, 0x10100, 100, PACKED_DESC_F.WRITE);
    d.put(0, t, 32, PACKED_DESC_F.INDIRECT, 3);
    const c = q.popChain(m)!;
    expect([c.head, c.readableLen, c.writableLen]).toEqual([3, 8, 100]);
    q.addUsed(m, 3, 0);
    expect(d.used(1)).toEqual({ id: 3, len: 0 });

    ind(1, 0x9000, 16, PACKED_DESC_F.INDIRECT);
    d.put(1, t, 32, PACKED_DESC_F.INDIRECT, 3);
    expect(() => q.popChain(m)).toThrow(/indirect descriptor inside an indirect table/);

    q = queue(4);
    d = new Drv(m, 4);
    d.put(0, t, 24, PACKED_DESC_F.INDIRECT, 3);
    expect(() => q.popChain(m)).toThrow(/indirect table length/);

    q = queue(4);
    for (let i = 0; i < 4; i++) d.put(i, 0x10000, 8, PACKED_DESC_F.NEXT, 0);
    // All four entries say NEXT; the fifth (position 0 again) is not available with the flipped wrap.
    expect(() => q.popChain(m)).toThrow(VirtqueueError);
  });

  it("undoPop gives chains back in order (MRG_RXBUF takes several, then returns them)", () => {
    const m = ram();
    const q = queue(8);
    const d = new Drv(m, 8);
    d.add(1, [[0x10000, 100, true]]);
    d.add(2, [[0x10100, 100, true], [0x10200, 100, true]]);
    const a = q.popChain(m)!;
    const b = q.popChain(m)!;
    expect([a.head, b.head, b.writableLen]).toEqual([1, 2, 200]);
    q.undoPop();
    q.undoPop();
    expect(q.popChain(m)!.head).toBe(1);
    expect(q.popChain(m)!.head).toBe(2);
    q.addUsed(m, 1, 100);
    q.addUsed(m, 2, 50);
    expect(d.used(1)).toEqual({ id: 1, len: 100 });
    expect(d.used(2)).toEqual({ id: 2, len: 50 });
    expect(q.nextUsed).toBe(3);
  });

  it("a buffer used out of order advances the used position by its own ring entries; a repeated ID takes the oldest", () => {
    const m = ram();
    const q = queue(8);
    const d = new Drv(m, 8);
    d.add(1, [[0x10000, 100, true]]);
    d.add(2, [[0x10100, 100, true], [0x10200, 100, true], [0x10300, 100, true]]);
    d.add(1, [[0x10400, 100, true], [0x10500, 100, true]]); // ID 1 again: a driver bug, still bounded
    for (let k = 0; k < 3; k++) q.popChain(m);
    q.addUsed(m, 2, 7); // the middle one first: 3 entries
    expect(q.nextUsed).toBe(3);
    expect(q.save().inflight).toEqual([[1, 1], [1, 2]]);
    q.addUsed(m, 1, 8); // the oldest with ID 1: 1 entry
    expect(q.nextUsed).toBe(4);
    expect(q.save().inflight).toEqual([[1, 2]]);
    q.addUsed(m, 9, 0); // never popped: one entry, nothing removed
    expect([q.nextUsed, q.save().inflight]).toEqual([5, [[1, 2]]]);
    expect(d.used(3)).toEqual({ id: 2, len: 7 });
    expect(d.used(1)).toEqual({ id: 1, len: 8 });
  });

  it("event suppression: DISABLE, ENABLE, and DESC with offset and wrap under EVENT_IDX", () => {
    const m = ram();
    const q = queue(4, true);
    const d = new Drv(m, 4);
    const use = (): void => {
      d.add(9, [[0x10000, 8, true]]);
      q.addUsed(m, q.popChain(m)!.head, 0);
      d.used(1);
    };
    m.view.setUint16(DRV + 2, RING_EVENT_FLAGS.DISABLE, true);
    use();
    expect(q.needsNotification(m)).toBe(false);
    expect(m.view.getUint16(DEV + 2, true)).toBe(RING_EVENT_FLAGS.DESC); // the device asks for notifications at its avail position
    expect(m.view.getUint16(DEV, true)).toBe(1 | 0x8000);
    m.view.setUint16(DRV + 2, RING_EVENT_FLAGS.ENABLE, true);
    use();
    expect(q.needsNotification(m)).toBe(true);
    // DESC: interrupt when the used position passes entry 3 (wrap 1); used is at 2 now.
    m.view.setUint16(DRV + 2, RING_EVENT_FLAGS.DESC, true);
    m.view.setUint16(DRV, 3 | 0x8000, true);
    use(); // used entry 2
    expect(q.needsNotification(m)).toBe(false);
    use(); // used entry 3
    expect(q.needsNotification(m)).toBe(true);
    // Next event at entry 0 of the next lap (wrap 0).
    m.view.setUint16(DRV, 0, true);
    use(); // entry 0, lap 2
    expect(q.needsNotification(m)).toBe(true);
  });
});
