/**
 * A hostile driver against the whole virtio-net function (PCI function, modern transport, split
 * queues, device): random register writes, ring addresses inside and outside guest memory, random
 * bytes scribbled over descriptor tables and rings, notifications, resets and incoming frames.
 * Whatever happens: no exception escapes, each notification does bounded work, the outcome is a
 * delivered frame, NEEDS_RESET, or a counted drop, and after a reset a clean driver brings the
 * device up and passes traffic again.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import type { NetBackend } from "../net/backend.js";
import { VirtioPciTransport, STATUS } from "../virtio/pci-transport.js";
import { VirtioNet } from "./device.js";

const RAM = 1 << 20;
const QS = 16;
const COMMON = 0x0000;
const NOTIFY = 0x3000;

interface Rig {
  t: VirtioPciTransport;
  nic: VirtioNet;
  bytes: Uint8Array;
  view: DataView;
  reads: { n: number };
  sent: Uint8Array[];
}

function rig(): Rig {
  const bytes = new Uint8Array(RAM);
  const reads = { n: 0 };
  const mem: DmaSpace = {
    read: (a, l) => {
      reads.n++;
      return Number.isSafeInteger(a) && a >= 0 && l >= 0 && a + l <= RAM ? bytes.subarray(a, a + l) : undefined;
    },
    write: (a, d) => (Number.isSafeInteger(a) && a >= 0 && a + d.length <= RAM ? (bytes.set(d, a), true) : false),
  };
  const sent: Uint8Array[] = [];
  const backend: NetBackend = { transmit: (f) => void sent.push(f), setReceiver: () => undefined };
  const nic = new VirtioNet({ mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), backend, queueSize: QS, maxPairs: 2 });
  const t = new VirtioPciTransport(nic);
  t.fn.attach(0x100, { msi: () => undefined, intx: () => undefined }, mem);
  t.fn.configWrite(0x04, 2, 0x0006); // memory space + bus master
  return { t, nic, bytes, view: new DataView(bytes.buffer), reads, sent };
}

const w = (r: Rig, off: number, size: 1 | 2 | 4, v: number): void => r.t.fn.barWrite(4, off, size, v);
const rd = (r: Rig, off: number, size: 1 | 2 | 4): number => r.t.fn.barRead(4, off, size);

/** A well-behaved driver: reset, negotiate VERSION_1 only, set up rx0/tx0, DRIVER_OK. */
function cleanBringUp(r: Rig): void {
  w(r, COMMON + 0x14, 1, 0);
  w(r, COMMON + 0x14, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  w(r, COMMON + 0x08, 4, 1);
  w(r, COMMON + 0x0c, 4, 1); // VERSION_1 (bit 32)
  w(r, COMMON + 0x08, 4, 0);
  w(r, COMMON + 0x0c, 4, 0);
  w(r, COMMON + 0x14, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  expect(rd(r, COMMON + 0x14, 1) & STATUS.FEATURES_OK).toBe(STATUS.FEATURES_OK);
  r.bytes.fill(0, 0x10000, 0x20000);
  for (const q of [0, 1]) {
    w(r, COMMON + 0x16, 2, q);
    w(r, COMMON + 0x18, 2, QS);
    w(r, COMMON + 0x20, 4, 0x10000 + q * 0x1000);
    w(r, COMMON + 0x24, 4, 0);
    w(r, COMMON + 0x28, 4, 0x14000 + q * 0x1000);
    w(r, COMMON + 0x2c, 4, 0);
    w(r, COMMON + 0x30, 4, 0x18000 + q * 0x1000);
    w(r, COMMON + 0x34, 4, 0);
    w(r, COMMON + 0x1c, 2, 1);
  }
  w(r, COMMON + 0x14, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  expect(rd(r, COMMON + 0x14, 1)).toBe(0x0f);
}

/** Posts one 2 KiB RX buffer and sends one 60-byte frame; checks both crossed the device. */
function checkTraffic(r: Rig): void {
  const desc = (q: number, i: number, addr: number, len: number, flags: number): void => {
    const o = 0x10000 + q * 0x1000 + 16 * i;
    r.view.setUint32(o, addr, true);
    r.view.setUint32(o + 4, 0, true);
    r.view.setUint32(o + 8, len, true);
    r.view.setUint16(o + 12, flags, true);
    r.view.setUint16(o + 14, 0, true);
  };
  const avail = (q: number, head: number): void => {
    const a = 0x14000 + q * 0x1000;
    const idx = r.view.getUint16(a + 2, true);
    r.view.setUint16(a + 4 + 2 * (idx % QS), head, true);
    r.view.setUint16(a + 2, idx + 1, true);
  };
  desc(0, 0, 0x30000, 2048, 2);
  avail(0, 0);
  w(r, NOTIFY + 0, 2, 0);
  const frame = new Uint8Array(60).fill(0xab);
  frame.set([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0);
  expect(r.nic.receive(frame)).toBe(true);
  expect(r.view.getUint16(0x18000 + 2, true)).toBe(1);
  expect(r.bytes[0x30000 + 12 + 59]).toBe(0xab);
  r.bytes.set(new Uint8Array(12), 0x31000);
  r.bytes.set(frame, 0x31000 + 12);
  desc(1, 0, 0x31000, 72, 0);
  avail(1, 0);
  const before = r.sent.length;
  w(r, NOTIFY + 4, 2, 1);
  expect(r.sent.length).toBe(before + 1);
  expect(r.sent.at(-1)).toEqual(frame);
}

type Op =
  | { k: "common"; off: number; size: 1 | 2 | 4; v: number }
  | { k: "status"; v: number }
  | { k: "queue"; q: number; size: number; desc: number; drv: number; dev: number; enable: boolean }
  | { k: "scribble"; at: number; data: Uint8Array }
  | { k: "notify"; q: number }
  | { k: "rx"; frame: Uint8Array }
  | { k: "config"; off: number; size: 1 | 2 | 4 };

const addr = fc.oneof(fc.integer({ min: 0x10000, max: 0x1ffff }).map((a) => a & ~0xf), fc.integer({ min: 0, max: 0xffffffff }), fc.constant(RAM - 8));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant("common" as const), off: fc.integer({ min: 0, max: 0x3b }), size: fc.constantFrom(1 as const, 2 as const, 4 as const), v: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ k: fc.constant("status" as const), v: fc.constantFrom(0, 1, 3, 0x0b, 0x0f, 0x8f, 0x4f, 0xff) }),
  fc.record({ k: fc.constant("queue" as const), q: fc.integer({ min: 0, max: 6 }), size: fc.constantFrom(0, 1, 3, 8, 16, 32, 0xffff), desc: addr, drv: addr, dev: addr, enable: fc.boolean() }),
  fc.record({ k: fc.constant("scribble" as const), at: fc.integer({ min: 0x10000, max: 0x1fff0 }), data: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ k: fc.constant("notify" as const), q: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ k: fc.constant("rx" as const), frame: fc.uint8Array({ minLength: 0, maxLength: 3000 }) }),
  fc.record({ k: fc.constant("config" as const), off: fc.integer({ min: 0, max: 0x30 }), size: fc.constantFrom(1 as const, 2 as const, 4 as const) }),
);

function apply(r: Rig, o: Op): void {
  switch (o.k) {
    case "common": return w(r, COMMON + o.off, o.size, o.v);
    case "status": return w(r, COMMON + 0x14, 1, o.v);
    case "queue":
      w(r, COMMON + 0x16, 2, o.q);
      w(r, COMMON + 0x18, 2, o.size);
      w(r, COMMON + 0x20, 4, o.desc);
      w(r, COMMON + 0x28, 4, o.drv);
      w(r, COMMON + 0x30, 4, o.dev);
      if (o.enable) w(r, COMMON + 0x1c, 2, 1);
      return;
    case "scribble": return void r.bytes.set(o.data, o.at);
    case "notify": return w(r, NOTIFY + 4 * o.q, 2, o.q);
    case "rx": return void r.nic.receive(o.frame);
    case "config": return void rd(r, 0x2000 + o.off, o.size);
  }
}

describe("virtio-net against a hostile driver (fast-check)", () => {
  it("never throws, bounds the work of each notification, and works again after a reset", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        const r = rig();
        // A sane start half of the time, so that queue processing is reached.
        if (ops.length % 2 === 0) cleanBringUp(r);
        for (const o of ops) {
          r.reads.n = 0;
          const errors = r.t.counters.guestErrors;
          expect(() => apply(r, o)).not.toThrow();
          // A guest error is never silent: the device is in NEEDS_RESET right after it (unless the
          // op itself was the reset that cleared it).
          if (r.t.counters.guestErrors > errors && !(o.k === "status" && o.v === 0)) {
            expect(rd(r, COMMON + 0x14, 1) & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
          }
          // One notification visits at most QS chains of at most QS descriptors (plus indirect
          // tables of at most QS), with a handful of reads each.
          expect(r.reads.n).toBeLessThanOrEqual(QS * QS * 8 + 64);
        }
        cleanBringUp(r);
        checkTraffic(r);
      }),
      { numRuns: 300 },
    );
  });

  it("goes to NEEDS_RESET with a config interrupt on a looping chain, and recovers after reset", () => {
    const r = rig();
    cleanBringUp(r);
    // tx0: descriptor 0 -> 1 -> 0 ...
    for (const [i, next] of [[0, 1], [1, 0]] as const) {
      const o = 0x11000 + 16 * i;
      r.view.setUint32(o, 0x31000, true);
      r.view.setUint32(o + 8, 64, true);
      r.view.setUint16(o + 12, 1, true);
      r.view.setUint16(o + 14, next, true);
    }
    r.view.setUint16(0x15000 + 4, 0, true);
    r.view.setUint16(0x15000 + 2, 1, true);
    w(r, NOTIFY + 4, 2, 1);
    expect(rd(r, COMMON + 0x14, 1) & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
    expect(r.t.lastError).toMatch(/loop|chain/i);
    expect(r.sent).toHaveLength(0);
    cleanBringUp(r);
    checkTraffic(r);
  });
});
