import fc from "fast-check";
import { parseQueueState, type SplitQueueState } from "./queue-state.js";
import { describe, expect, it } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import { SplitQueue, VIRTQ_DESC_F, VirtqueueError, readChain, writeChain } from "./split-queue.js";

/** 1 MiB of guest memory: descriptor table at 0x1000, avail at 0x2000, used at 0x3000, buffers above. */
function ram(size = 1 << 20): DmaSpace & { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  return {
    bytes,
    view: new DataView(bytes.buffer),
    read: (a, l) => (a >= 0 && l >= 0 && a + l <= size ? bytes.subarray(a, a + l) : undefined),
    write: (a, d) => (a >= 0 && a + d.length <= size ? (bytes.set(d, a), true) : false),
  };
}

function queue(size = 8): SplitQueue {
  const q = new SplitQueue(size);
  q.desc = 0x1000;
  q.driver = 0x2000;
  q.device = 0x3000;
  q.ready = true;
  q.indirect = true; // VIRTIO_F_INDIRECT_DESC negotiated
  return q;
}

function desc(m: ReturnType<typeof ram>, table: number, i: number, addr: number, len: number, flags: number, next: number): void {
  const o = table + 16 * i;
  m.view.setUint32(o, addr, true);
  m.view.setUint32(o + 4, 0, true);
  m.view.setUint32(o + 8, len, true);
  m.view.setUint16(o + 12, flags, true);
  m.view.setUint16(o + 14, next, true);
}

function offer(m: ReturnType<typeof ram>, q: SplitQueue, heads: number[]): void {
  const idx = m.view.getUint16(q.driver + 2, true);
  heads.forEach((h, k) => m.view.setUint16(q.driver + 4 + 2 * ((idx + k) % q.size), h, true));
  m.view.setUint16(q.driver + 2, (idx + heads.length) & 0xffff, true);
}

describe("split virtqueue", () => {
  it("pops a readable+writable chain, writes into it and publishes the used element", () => {
    const m = ram();
    const q = queue();
    desc(m, 0x1000, 0, 0x10000, 4, VIRTQ_DESC_F.NEXT, 1);
    desc(m, 0x1000, 1, 0x10100, 16, VIRTQ_DESC_F.WRITE, 0);
    m.bytes.set([1, 2, 3, 4], 0x10000);
    offer(m, q, [0]);
    const c = q.popChain(m)!;
    expect([c.head, c.readableLen, c.writableLen]).toEqual([0, 4, 16]);
    expect([...readChain(m, c, 100)!]).toEqual([1, 2, 3, 4]);
    expect(writeChain(m, c, new Uint8Array([9, 9]))).toBe(2);
    q.addUsed(m, c.head, 2);
    expect(m.view.getUint16(0x3002, true)).toBe(1);
    expect([m.view.getUint32(0x3004, true), m.view.getUint32(0x3008, true)]).toEqual([0, 2]);
    expect(q.popChain(m)).toBeUndefined();
  });

  it("follows an indirect table and rejects indirect inside indirect", () => {
    const m = ram();
    const q = queue();
    desc(m, 0x1000, 0, 0x8000, 32, VIRTQ_DESC_F.INDIRECT, 0);
    desc(m, 0x8000, 0, 0x10000, 8, VIRTQ_DESC_F.NEXT, 1);
    desc(m, 0x8000, 1, 0x10100, 8, VIRTQ_DESC_F.WRITE, 0);
    offer(m, q, [0]);
    const c = q.popChain(m)!;
    expect([c.readableLen, c.writableLen]).toEqual([8, 8]);
    desc(m, 0x8000, 1, 0x9000, 16, VIRTQ_DESC_F.INDIRECT, 0);
    desc(m, 0x8000, 0, 0x10000, 8, VIRTQ_DESC_F.NEXT, 1);
    offer(m, q, [0]);
    expect(() => q.popChain(m)).toThrow(/indirect descriptor inside an indirect table/);
  });

  it("turns a looping chain, a bad index, memory out of range and a runaway avail index into typed errors", () => {
    const m = ram();
    let q = queue();
    desc(m, 0x1000, 0, 0x10000, 8, VIRTQ_DESC_F.NEXT, 1);
    desc(m, 0x1000, 1, 0x10000, 8, VIRTQ_DESC_F.NEXT, 0);
    offer(m, q, [0]);
    expect(() => q.popChain(m)).toThrow(VirtqueueError);
    q = queue();
    desc(m, 0x1000, 0, 0x10000, 8, VIRTQ_DESC_F.NEXT, 99);
    offer(m, q, [0]);
    expect(() => q.popChain(m)).toThrow(/out of range/);
    q = queue();
    desc(m, 0x1000, 0, 0xfffff000, 0x2000, 0, 0);
    offer(m, q, [0]);
    expect(() => q.popChain(m)).toThrow(/outside guest memory/);
    q = queue();
    desc(m, 0x1000, 0, 0x10000, 8, VIRTQ_DESC_F.WRITE | VIRTQ_DESC_F.NEXT, 1);
    desc(m, 0x1000, 1, 0x10000, 8, 0, 0);
    offer(m, q, [0]);
    expect(() => q.popChain(m)).toThrow(/readable descriptor after a writable one/);
    q = queue();
    m.view.setUint16(q.driver + 2, (q.nextAvail + 9) & 0xffff, true);
    expect(() => q.popChain(m)).toThrow(/available index moved/);
    const bad = new SplitQueue(8);
    bad.size = 6;
    expect(() => bad.validate()).toThrow(/bad queue size/);
  });

  it("property: any descriptor table and avail ring gives a chain or a VirtqueueError, with bounded work", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ addr: fc.nat(0x120000), len: fc.nat(0x20000), flags: fc.nat(7), next: fc.nat(20) }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.record({ addr: fc.nat(0x120000), len: fc.nat(0x200), flags: fc.nat(7), next: fc.nat(40) }), { minLength: 32, maxLength: 32 }),
        fc.array(fc.nat(12), { minLength: 1, maxLength: 10 }),
        fc.nat(0xffff),
        (table, indirect, heads, usedEvent) => {
          const m = ram(0x100000);
          const q = queue();
          q.eventIdx = usedEvent % 2 === 0;
          table.forEach((d, i) => desc(m, 0x1000, i, d.addr, d.len, d.flags, d.next));
          indirect.forEach((d, i) => desc(m, 0x40000, i, d.addr, d.len, d.flags, d.next));
          if (table[0]) desc(m, 0x1000, 0, 0x40000, 16 * indirect.length, VIRTQ_DESC_F.INDIRECT, 0);
          offer(m, q, heads);
          m.view.setUint16(q.driver + 4 + 2 * q.size, usedEvent, true);
          let popped = 0;
          for (let n = 0; n < 20; n++) {
            try {
              const c = q.popChain(m);
              if (c === undefined) break;
              popped++;
              expect(c.readable.length + c.writable.length).toBeLessThanOrEqual(Math.max(q.size, indirect.length));
              expect(c.readableLen + c.writableLen).toBeLessThanOrEqual(0x100000000);
              q.addUsed(m, c.head, Math.min(c.writableLen, 64));
              q.needsNotification(m);
            } catch (e) {
              expect(e).toBeInstanceOf(VirtqueueError);
              break;
            }
          }
          expect(popped).toBeLessThanOrEqual(heads.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("suppresses interrupts with EVENT_IDX until used_event is passed, and saves/restores positions", () => {
    const m = ram();
    const q = queue();
    q.eventIdx = true;
    for (let i = 0; i < 4; i++) desc(m, 0x1000, i, 0x10000 + 0x100 * i, 16, VIRTQ_DESC_F.WRITE, 0);
    offer(m, q, [0, 1, 2, 3]);
    m.view.setUint16(q.driver + 4 + 2 * q.size, 2, true); // interrupt once used idx passes 2
    const first = q.popChain(m)!;
    q.addUsed(m, first.head, 0);
    expect(q.needsNotification(m)).toBe(true); // first signal
    q.addUsed(m, q.popChain(m)!.head, 0);
    expect(q.needsNotification(m)).toBe(false); // used idx 2: not past used_event yet
    q.addUsed(m, q.popChain(m)!.head, 0);
    expect(q.needsNotification(m)).toBe(true); // used idx 3 passed used_event 2
    expect(m.view.getUint16(q.device + 4 + 8 * q.size, true)).toBe(3); // avail_event
    const s = JSON.parse(JSON.stringify(q.save()));
    const r = new SplitQueue(8);
    const cfg = { maxSize: 8, layout: "split" as const, msixVectors: 4, mayBeReady: true };
    r.restore(parseQueueState(s, "q", cfg) as SplitQueueState);
    expect(r.save()).toEqual(q.save());
    expect(() => parseQueueState({ ...s, nextAvail: 70000 }, "q", cfg)).toThrow(expect.objectContaining({ name: "StateError", path: "q.nextAvail" }));
    expect(() => parseQueueState({ ...s, size: 6 }, "q", cfg)).toThrow(expect.objectContaining({ path: "q.size" }));
  });
});
