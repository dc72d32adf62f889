/**
 * Regression tests for issue 15 (hostile drivers against the transport and the queues), on both
 * ring layouts:
 * - clearing FEATURES_OK under DRIVER_OK, renegotiating and replacing live queues;
 * - INDIRECT descriptors followed without VIRTIO_F_INDIRECT_DESC;
 * - one notification costing about 2 x size^2 descriptor reads (an indirect table per chain).
 */
import { describe, expect, it } from "vitest";
import { ManualClock } from "../net/testing.js";
import { createVirtioNetTestbed } from "../../guest/virtio-net/testbed.js";
import { PACKED_DESC_F } from "./packed-queue.js";
import { STATUS, VIRTIO_F } from "./pci-transport.js";
import { VIRTQ_DESC_F } from "./split-queue.js";

const RAM = 8 << 20;
const SCRATCH = RAM - 0x10000;
const SIZE = 16;
const TX = 1;
const { NEXT, INDIRECT } = VIRTQ_DESC_F;

function bed(packed: boolean, withhold: number[] = []) {
  const clock = new ManualClock();
  const tb = createVirtioNetTestbed({ device: { packed, queueSize: SIZE, withhold, clock }, driver: { packed, ringSize: SIZE }, memSize: RAM });
  tb.driver.probe();
  tb.driver.open();
  const v = new DataView(tb.ram.bytes.buffer);
  const w = (o: number, s: 1 | 2 | 4, val: number): void => tb.transport.fn.barWrite(4, o, s, val);
  const r = (o: number, s: 1 | 2 | 4): number => tb.transport.fn.barRead(4, o, s);
  const desc = (at: number, addr: number, len: number, flags: number, next: number): void => {
    v.setUint32(at, addr, true);
    v.setUint32(at + 4, 0, true);
    v.setUint32(at + 8, len, true);
    v.setUint16(at + 12, packed ? 0 : flags, true);
    v.setUint16(at + 14, packed ? flags : next, true);
  };
  /** An indirect table of `n` readable 8-byte buffers at `at`. */
  const table = (at: number, n: number): void => {
    for (let k = 0; k < n; k++) desc(at + 16 * k, SCRATCH + 0x8000, 8, k + 1 < n && !packed ? NEXT : 0, k + 1);
  };
  return { tb, clock, v, w, r, desc, table };
}

for (const packed of [false, true]) {
  describe(`issue 15, ${packed ? "packed" : "split"} ring`, () => {
    it("regression: clearing FEATURES_OK under DRIVER_OK neither renegotiates nor replaces live queues", () => {
      const b = bed(packed);
      const live = b.tb.transport.queues[TX]!;
      b.w(0x08, 4, 0);
      const low = b.r(0x0c, 4);
      b.w(0x14, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK); // FEATURES_OK cleared
      b.w(0x0c, 4, 0); // renegotiate: nothing but VERSION_1 (high dword untouched)
      b.w(0x14, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
      expect(b.tb.transport.queues[TX]).toBe(live);
      b.w(0x08, 4, 0);
      expect(b.r(0x0c, 4)).toBe(low);
      expect(b.tb.transport.status & STATUS.FEATURES_OK).toBe(STATUS.FEATURES_OK);
      expect(b.tb.transport.status & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
    });

    it("regression: a queue left unused at DRIVER_OK cannot be set up and enabled afterwards", () => {
      const clock = new ManualClock();
      const tb = createVirtioNetTestbed({ device: { packed, queueSize: SIZE, maxPairs: 2, clock }, driver: { packed, ringSize: SIZE, pairs: 1 }, memSize: RAM });
      tb.driver.probe();
      tb.driver.open();
      const w = (o: number, s: 1 | 2 | 4, val: number): void => tb.transport.fn.barWrite(4, o, s, val);
      const q2 = tb.transport.queues[2]!; // rx1: unused with one pair
      expect(q2.ready).toBe(false);
      w(0x16, 2, 2);
      w(0x18, 2, 8);
      w(0x20, 4, SCRATCH);
      w(0x28, 4, SCRATCH + 0x1000);
      w(0x30, 4, SCRATCH + 0x2000);
      w(0x1c, 2, 1);
      expect([q2.ready, q2.size, q2.desc]).toEqual([false, SIZE, 0]);
      expect(tb.transport.queues[2]).toBe(q2);
    });

    it("queue configuration written after DRIVER_OK is ignored", () => {
      const b = bed(packed);
      const q = b.tb.transport.queues[TX]!;
      const desc = q.desc;
      b.w(0x16, 2, TX);
      b.w(0x1c, 2, 0); // queue_enable 0 is not a reset
      b.w(0x18, 2, 8);
      b.w(0x20, 4, 0x1000);
      expect([q.ready, q.size, q.desc]).toEqual([true, SIZE, desc]);
    });

    it("regression: an INDIRECT descriptor without VIRTIO_F_INDIRECT_DESC is a guest error and is not followed", () => {
      const b = bed(packed, [VIRTIO_F.INDIRECT_DESC]);
      expect(b.tb.driver.has(VIRTIO_F.INDIRECT_DESC)).toBe(false);
      const q = b.tb.transport.queues[TX]!;
      b.table(SCRATCH, 2);
      const at = packed ? q.desc : q.desc + 16 * (SIZE - 1);
      b.desc(at, SCRATCH, 32, INDIRECT | (packed ? PACKED_DESC_F.AVAIL : 0), 0);
      if (!packed) {
        const idx = b.v.getUint16(q.driver + 2, true);
        b.v.setUint16(q.driver + 4 + 2 * (idx % SIZE), SIZE - 1, true);
        b.v.setUint16(q.driver + 2, (idx + 1) & 0xffff, true);
      }
      const before = q.visited;
      b.w(0x3000 + 4 * TX, 2, TX);
      expect(b.tb.transport.status & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
      expect(b.tb.transport.lastError).toMatch(/INDIRECT_DESC/);
      expect(q.visited - before).toBe(1);
      expect(b.tb.nic.counters.txFrames).toBe(0);
    });

    it("an INDIRECT descriptor with NEXT (in the middle of a chain) is a guest error", () => {
      const b = bed(packed);
      const q = b.tb.transport.queues[TX]!;
      b.table(SCRATCH, 2);
      const base = packed ? q.desc : q.desc + 16 * (SIZE - 2);
      const avail = packed ? PACKED_DESC_F.AVAIL : 0;
      b.desc(base, SCRATCH, 32, INDIRECT | NEXT | avail, SIZE - 1);
      b.desc(base + 16, SCRATCH + 0x8000, 60, avail, 0);
      if (!packed) {
        const idx = b.v.getUint16(q.driver + 2, true);
        b.v.setUint16(q.driver + 4 + 2 * (idx % SIZE), SIZE - 2, true);
        b.v.setUint16(q.driver + 2, (idx + 1) & 0xffff, true);
      }
      b.w(0x3000 + 4 * TX, 2, TX);
      expect(b.tb.transport.status & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
      expect(b.tb.nic.counters.txFrames).toBe(0);
    });

    it("regression: one notification over a ring of maximal indirect chains does bounded work; the rest runs later on the device clock", () => {
      const b = bed(packed);
      const q = b.tb.transport.queues[TX]!;
      // Every chain: (split) 15 direct descriptors then an indirect table of 16; (packed) one
      // indirect descriptor per ring entry, each with a table of 16. Split chains share one head.
      b.table(SCRATCH, SIZE);
      let chains: number;
      if (packed) {
        const p = q as unknown as { nextAvail: number; availWrap: boolean };
        let pos = p.nextAvail;
        let wrap = p.availWrap;
        for (let k = 0; k < SIZE; k++) {
          b.desc(q.desc + 16 * pos, SCRATCH, 16 * SIZE, INDIRECT | (wrap ? PACKED_DESC_F.AVAIL : PACKED_DESC_F.USED), 0);
          if (++pos === SIZE) {
            pos = 0;
            wrap = !wrap;
          }
        }
        chains = SIZE;
      } else {
        for (let k = 0; k < SIZE - 1; k++) b.desc(q.desc + 16 * k, SCRATCH + 0x8000, 8, NEXT, k + 1);
        b.desc(q.desc + 16 * (SIZE - 1), SCRATCH, 16 * SIZE, INDIRECT, 0);
        const idx = b.v.getUint16(q.driver + 2, true);
        for (let k = 0; k < SIZE; k++) b.v.setUint16(q.driver + 4 + 2 * ((idx + k) % SIZE), 0, true);
        b.v.setUint16(q.driver + 2, (idx + SIZE) & 0xffff, true);
        chains = SIZE;
      }
      const before = q.visited;
      b.w(0x3000 + 4 * TX, 2, TX);
      const first = q.visited - before;
      // Old bound: size chains x (size + size) descriptors. Now: the budget plus one chain.
      expect(first).toBeLessThanOrEqual(4 * SIZE + 2 * SIZE);
      const work = b.tb.nic.work;
      expect(work.maxUnits).toBe(first);
      expect(work.maxUnits).toBeLessThanOrEqual(work.budget + 2 * SIZE);
      expect(b.tb.nic.counters.txFrames).toBeLessThan(chains);
      // The rest continues on the device clock, each run bounded the same way.
      for (let i = 0; i < 20 && b.tb.nic.counters.txFrames < chains; i++) b.clock.advance(1_000_000);
      expect(b.tb.nic.counters.txFrames).toBe(chains);
      expect(b.tb.nic.work.maxUnits).toBeLessThanOrEqual(work.budget + 2 * SIZE);
      expect(b.tb.nic.work.deferrals).toBeGreaterThan(0);
      expect(b.tb.transport.status & STATUS.NEEDS_RESET).toBe(0);
    });
  });
}
