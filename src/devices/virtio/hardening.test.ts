/**
 * Hostile-driver cases on both ring layouts, through the whole device (transport + queues +
 * VirtioNet): each puts the device into NEEDS_RESET with a configuration interrupt, nothing throws,
 * and after a reset and a clean bring-up the device passes traffic again.
 */
import { describe, expect, it } from "vitest";
import { buildEcho, buildEthernet, buildIpv4, finishFrame, parseIpv4 } from "../net/frames.js";
import { createVirtioNetTestbed } from "../../guest/virtio-net/testbed.js";
import { PACKED_DESC_F } from "./packed-queue.js";
import { STATUS } from "./pci-transport.js";
import { SplitQueue, VIRTQ_DESC_F } from "./split-queue.js";
import { VirtqueueError } from "./virtqueue.js";

const RAM = 32 << 20;
const SCRATCH = RAM - 0x10000; // descriptor tables and buffers of the hostile chains
const IP = parseIpv4("10.0.2.15");
const STUB_IP = parseIpv4("10.0.2.2");

type Desc = [addr: number, len: number, flags: number, next?: number];

function bed(packed: boolean) {
  const tb = createVirtioNetTestbed({ device: { packed, queueSize: 16 }, driver: { packed, ringSize: 16 }, memSize: RAM });
  tb.driver.probe();
  tb.driver.open();
  const v = new DataView(tb.ram.bytes.buffer);
  const notifyOff = (i: number): number => 0x3000 + 4 * i;
  /**
   * Puts one chain on queue `qi` where the device will read it next (split: a fresh head at the
   * table's last entries; packed: at the device's position) and notifies. Flags are split-style
   * NEXT/WRITE/INDIRECT; for packed the AVAIL/USED bits are added.
   */
  const inject = (qi: number, descs: Desc[], notify = true): void => {
    const q = tb.transport.queues[qi]!;
    if (q.layout === "split") {
      const base = q.size - descs.length;
      descs.forEach(([a, l, f, n], k) => {
        const o = q.desc + 16 * (base + k);
        v.setUint32(o, a % 0x1_0000_0000, true);
        v.setUint32(o + 4, Math.floor(a / 0x1_0000_0000), true);
        v.setUint32(o + 8, l, true);
        v.setUint16(o + 12, f, true);
        v.setUint16(o + 14, n ?? base + k + 1, true);
      });
      const idx = v.getUint16(q.driver + 2, true);
      v.setUint16(q.driver + 4 + 2 * (idx % q.size), base, true);
      v.setUint16(q.driver + 2, (idx + 1) & 0xffff, true);
    } else {
      const pq = q as unknown as { nextAvail: number; availWrap: boolean };
      let pos = pq.nextAvail;
      let wrap = pq.availWrap;
      descs.forEach(([a, l, f]) => {
        const o = q.desc + 16 * pos;
        v.setUint32(o, a % 0x1_0000_0000, true);
        v.setUint32(o + 4, Math.floor(a / 0x1_0000_0000), true);
        v.setUint32(o + 8, l, true);
        v.setUint16(o + 12, 0, true);
        v.setUint16(o + 14, f | (wrap ? PACKED_DESC_F.AVAIL : PACKED_DESC_F.USED), true);
        if (++pos === q.size) {
          pos = 0;
          wrap = !wrap;
        }
      });
    }
    if (notify) tb.transport.fn.barWrite(4, notifyOff(qi), 2, qi);
  };
  /** An indirect table at SCRATCH (16-byte descriptors, split or packed layout). */
  const table = (descs: Desc[], at = SCRATCH): number => {
    descs.forEach(([a, l, f, n], k) => {
      const o = at + 16 * k;
      v.setUint32(o, a, true);
      v.setUint32(o + 4, 0, true);
      v.setUint32(o + 8, l, true);
      if (packed) {
        v.setUint16(o + 12, 0, true);
        v.setUint16(o + 14, f & ~VIRTQ_DESC_F.NEXT, true);
      } else {
        v.setUint16(o + 12, f, true);
        v.setUint16(o + 14, n ?? k + 1, true);
      }
    });
    return at;
  };
  const expectNeedsReset = (why: RegExp): void => {
    expect(tb.transport.status & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
    expect(tb.transport.lastError).toMatch(why);
    expect(tb.driver.readIsr() & 2).toBe(2); // configuration change interrupt
  };
  /** Resets, brings the device up again and pings the stub. */
  const recovers = (): void => {
    const p = tb.driver.probe();
    tb.driver.open();
    expect(tb.transport.status & STATUS.NEEDS_RESET).toBe(0);
    tb.driver.send(finishFrame(buildEthernet({ dst: tb.stub!.mac, src: p.mac, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 1, 1, new Uint8Array(8)) }) })));
    expect(tb.driver.receive().length).toBe(1);
  };
  return { tb, inject, table, expectNeedsReset, recovers };
}

const TX = 1;
const RX = 0;
const { NEXT, WRITE, INDIRECT } = VIRTQ_DESC_F;

for (const packed of [false, true]) {
  describe(`hostile driver, ${packed ? "packed" : "split"} ring`, () => {
    it("a descriptor outside guest memory", () => {
      const b = bed(packed);
      b.inject(TX, [[RAM - 4, 64, 0]]);
      b.expectNeedsReset(/outside guest memory/);
      b.recovers();
    });

    it("a descriptor loop / a chain longer than the queue", () => {
      const b = bed(packed);
      if (packed) {
        // Every ring entry says NEXT: the chain would run round the ring.
        b.inject(TX, Array.from({ length: 16 }, (): Desc => [SCRATCH, 8, NEXT]));
      } else {
        b.inject(TX, [[SCRATCH, 8, NEXT, 15], [SCRATCH, 8, NEXT, 14]]);
      }
      b.expectNeedsReset(/longer than|loop|not available/);
      b.recovers();
    });

    it("an indirect descriptor inside an indirect table", () => {
      const b = bed(packed);
      const inner = b.table([[SCRATCH + 0x800, 8, 0]], SCRATCH + 0x400);
      const t = b.table([[SCRATCH + 0x800, 8, NEXT], [inner, 16, INDIRECT]]);
      b.inject(TX, [[t, 32, INDIRECT]]);
      b.expectNeedsReset(/indirect descriptor inside an indirect table/);
      b.recovers();
    });

    it("an indirect table with a bad length (not a multiple of 16, zero, longer than the queue)", () => {
      for (const len of [24, 0, 16 * 17]) {
        const b = bed(packed);
        const t = b.table([[SCRATCH + 0x800, 8, 0]]);
        b.inject(TX, [[t, len, INDIRECT]]);
        b.expectNeedsReset(/indirect table length/);
        b.recovers();
      }
    });

    it("a bad queue size at queue_enable", () => {
      for (const size of packed ? [0, 17] : [0, 12, 32]) {
        const b = bed(packed);
        b.tb.driver.reset();
        b.tb.driver.probe();
        const w = (o: number, s: 1 | 2 | 4, val: number): void => b.tb.transport.fn.barWrite(4, o, s, val);
        w(0x16, 2, 0);
        w(0x18, 2, size);
        w(0x1c, 2, 1);
        b.expectNeedsReset(/bad queue size/);
        expect(b.tb.transport.fn.barRead(4, 0x1c, 2)).toBe(0);
        b.recovers();
      }
    });

    it("a device-writable descriptor on TX and a device-readable one on RX", () => {
      const b = bed(packed);
      b.inject(TX, [[SCRATCH, 12, NEXT], [SCRATCH + 64, 64, WRITE]]);
      b.expectNeedsReset(/device-writable descriptor on a device-readable queue/);
      b.recovers();
      // RX: turn the next posted RX buffer device-readable (clear WRITE where the device reads next).
      const c = bed(packed);
      const rxq = c.tb.transport.queues[RX]!;
      const v = new DataView(c.tb.ram.bytes.buffer);
      let d: number;
      if (rxq.layout === "split") {
        const sq = rxq as SplitQueue;
        d = sq.desc + 16 * v.getUint16(sq.driver + 4 + 2 * (sq.nextAvail % sq.size), true);
        v.setUint16(d + 12, v.getUint16(d + 12, true) & ~WRITE, true);
      } else {
        d = rxq.desc + 16 * (rxq as unknown as { nextAvail: number }).nextAvail;
        v.setUint16(d + 14, v.getUint16(d + 14, true) & ~WRITE, true);
      }
      expect(c.tb.nic.receive(new Uint8Array(60))).toBe(true);
      c.expectNeedsReset(/device-readable descriptor on a device-writable queue/);
      c.recovers();
    });

    it("bounded work per notification: a full ring of maximal chains costs at most size x size descriptors", () => {
      const b = bed(packed);
      const q = b.tb.transport.queues[TX]!;
      const before = q.visited;
      // The driver fills the ring with frames; one notify handles them all and no more.
      for (let i = 0; i < 16; i++) b.tb.driver.queue(new Uint8Array(60));
      b.tb.driver.flush();
      expect(b.tb.nic.counters.txFrames).toBe(16);
      expect(q.visited - before).toBeLessThanOrEqual(16 * 16);
      expect(b.tb.transport.status & STATUS.NEEDS_RESET).toBe(0);
    });
  });
}

describe("chain length bound", () => {
  it("a chain over 4 GiB in total is a VirtqueueError (split queue, sparse memory)", () => {
    const bytes = new Uint8Array(0x10000);
    const v = new DataView(bytes.buffer);
    // Memory that maps every address (reads of ring structures come from `bytes`).
    const mem = {
      read: (a: number, l: number) => (a < bytes.length ? bytes.subarray(a, a + l) : new Uint8Array(l)),
      write: () => true,
    };
    const q = new SplitQueue(8);
    Object.assign(q, { desc: 0x1000, driver: 0x2000, device: 0x3000, ready: true });
    for (let i = 0; i < 3; i++) {
      v.setUint32(0x1000 + 16 * i, 0x100000, true);
      v.setUint32(0x1000 + 16 * i + 8, 0x7000_0000, true);
      v.setUint16(0x1000 + 16 * i + 12, NEXT, true);
      v.setUint16(0x1000 + 16 * i + 14, i + 1, true);
    }
    v.setUint16(0x2002, 1, true);
    expect(() => q.popChain(mem)).toThrow(new VirtqueueError("descriptor chain exceeds 4 GiB"));
  });
});

describe("VirtioNet queue directions", () => {
  it("RX writable, TX readable, the control queue (2 without MQ, 2 x max pairs with MQ) both", () => {
    const tb = createVirtioNetTestbed();
    const dir = (i: number, f: bigint): string => tb.nic.queueDirection(i, f);
    // One pair: queue 2 can only ever be the control queue.
    expect([0, 1, 2].map((i) => dir(i, 0n))).toEqual(["writable", "readable", "any"]);
    const two = createVirtioNetTestbed({ device: { maxPairs: 2 } });
    expect([0, 1, 2, 3, 4].map((i) => two.nic.queueDirection(i, 1n << 17n))).toEqual(["writable", "readable", "any", "readable", "any"]);
    expect([0, 1, 2, 3, 4].map((i) => two.nic.queueDirection(i, (1n << 17n) | (1n << 22n)))).toEqual(["writable", "readable", "writable", "readable", "any"]);
    const ctrl = 1n << 17n;
    expect([0, 1, 2].map((i) => dir(i, ctrl))).toEqual(["writable", "readable", "any"]);
    // max_virtqueue_pairs is 1 in this device's config: with MQ the control queue is still 2.
    expect(dir(2, ctrl | (1n << 22n))).toBe("any");
  });
});
