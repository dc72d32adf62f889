/**
 * Activity of a virtio-net behind its transport (`VirtioNetPci.setActivity`), on both rings:
 * quiesced answers registers, latches notifications without reading a descriptor, holds
 * interrupts, and keeps incoming frames in a bounded FIFO (overflow counted); back to running the
 * FIFO is delivered in order, then the latched notifications run, then the held interrupts go.
 * Stopped is the same and also drops register writes. Saved while quiesced, the FIFO and the
 * latched work move to a fresh instance that is restored, attached, and run.
 */
import { describe, expect, it } from "vitest";
import type { FrameSink, NetBackend } from "../net/backend.js";
import { ManualClock } from "../net/testing.js";
import { createVirtioNetTestbed, FlatRam } from "../../guest/virtio-net/testbed.js";
import { STATUS } from "../virtio/pci-transport.js";
import { VirtioNetPci } from "./pci.js";

/** A backend that records what the device sends and lets the test push frames in. */
class Wire implements NetBackend {
  sink: FrameSink | undefined;
  readonly sent: Uint8Array[] = [];
  transmit(f: Uint8Array): void {
    this.sent.push(f.slice());
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
  push(f: Uint8Array): boolean {
    return this.sink?.(f) ?? false;
  }
}

/** A broadcast frame numbered `n` (byte 14..15), `len` bytes. */
const frame = (n: number, len = 64): Uint8Array => {
  const f = new Uint8Array(len).fill(0xaa);
  f.fill(0xff, 0, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = n >>> 8;
  f[15] = n & 0xff;
  return f;
};
const num = (f: Uint8Array): number => (f[14]! << 8) | f[15]!;

function bed(packed: boolean, o: { ram?: FlatRam; fifo?: number } = {}) {
  const wire = new Wire();
  const clock = new ManualClock();
  const tb = createVirtioNetTestbed({
    device: { packed, queueSize: 16, clock, ...(o.fifo === undefined ? {} : { rxFifoFrames: o.fifo }) },
    driver: { packed, ringSize: 16 },
    backend: wire,
    memSize: 4 << 20,
    ...(o.ram === undefined ? {} : { ram: o.ram }),
  });
  return { ...tb, wire, clock };
}

for (const packed of [false, true]) {
  describe(`activity, ${packed ? "packed" : "split"} ring`, () => {
    it("quiesced: registers answer, no descriptor is read, no interrupt; back to running everything runs in order", () => {
      const b = bed(packed, { fifo: 4 });
      b.driver.probe();
      b.driver.open();
      b.driver.readIsr();
      const txq = b.transport.queues[1]!;
      const rxq = b.transport.queues[0]!;
      b.dev.setActivity("quiesced");
      expect(b.dev.activity).toBe("quiesced");
      // Registers: status reads, queue_select writes and reads back.
      expect(b.driver.status & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
      b.transport.fn.barWrite(4, 0x16, 2, 1);
      expect(b.transport.fn.barRead(4, 0x16, 2)).toBe(1);
      // TX: queued and notified, but nothing read or sent.
      const visited = [txq.visited, rxq.visited];
      for (let i = 0; i < 3; i++) b.driver.queue(frame(100 + i));
      b.transport.fn.barWrite(4, 0x3000 + 4 * 1, 2, 1);
      // RX: six frames into a FIFO of four: two refused and counted.
      const accepted = [0, 1, 2, 3, 4, 5].map((n) => b.wire.push(frame(n)));
      expect(accepted).toEqual([true, true, true, true, false, false]);
      expect(b.nic.counters.rxFifoOverflow).toBe(2);
      expect([txq.visited, rxq.visited]).toEqual(visited);
      expect(b.wire.sent.length).toBe(0);
      expect(b.nic.counters.rxFrames).toBe(0);
      expect(b.irqs.intx).toBe(false);
      expect(b.dev.save().net.pendingQueues).toEqual([1]);
      expect(b.dev.save().net.rxFifo.length).toBe(4);
      // Running again: the FIFO in order, then the latched TX, then the held interrupt.
      b.dev.setActivity("running");
      expect(b.driver.receive().map(num)).toEqual([0, 1, 2, 3]);
      expect(b.wire.sent.map(num)).toEqual([100, 101, 102]);
      expect(b.irqs.intx).toBe(true);
      expect(b.driver.readIsr() & 1).toBe(1);
      expect(b.dev.save().net.pendingQueues).toEqual([]);
      // And it keeps running normally.
      expect(b.wire.push(frame(9))).toBe(true);
      expect(b.driver.receive().map(num)).toEqual([9]);
    });

    it("stopped: register writes are dropped and counted, the ISR survives a read, state does not change", () => {
      const b = bed(packed);
      b.driver.probe();
      b.driver.open();
      b.dev.setActivity("quiesced");
      b.nic.setLink(false); // a configuration interrupt, held
      b.nic.setLink(true);
      b.dev.setActivity("stopped");
      const before = JSON.stringify(b.dev.save());
      b.transport.fn.barWrite(4, 0x14, 1, 0); // a reset, dropped
      b.transport.fn.barWrite(4, 0x16, 2, 2);
      b.transport.fn.barWrite(4, 0x10, 2, 0xffff);
      expect(b.transport.counters.frozenWrites).toBe(3);
      expect(b.driver.status & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
      b.driver.readIsr();
      expect(JSON.stringify(b.dev.save())).toBe(before);
      expect(b.irqs.intx).toBe(false);
      b.clock.advance(1_000_000);
      expect(JSON.stringify(b.dev.save())).toBe(before);
      b.dev.setActivity("running");
      expect(b.irqs.intx).toBe(true);
      expect(b.driver.readIsr() & 2).toBe(2); // the held configuration interrupt
    });

    it("saved while quiesced: the FIFO and the latched notification move to a fresh instance, restored then attached", async () => {
      const a = bed(packed);
      a.driver.probe();
      a.driver.open();
      a.dev.setActivity("quiesced");
      a.driver.queue(frame(200));
      a.transport.fn.barWrite(4, 0x3000 + 4 * 1, 2, 1);
      a.wire.push(frame(7));
      a.wire.push(frame(8));
      const saved = JSON.parse(JSON.stringify({ fn: a.transport.fn.save(), dev: a.dev.save() }));
      expect(saved.dev.net.rxFifo.length).toBe(2);

      // The destination: created without I/O, plugged, stopped, restored, then attached and run.
      const dev = new VirtioNetPci({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), packed, queueSize: 16 });
      let msi = 0;
      dev.fn.attach(0x0100, { msi: () => void msi++, intx: () => undefined }, a.ram);
      dev.setActivity("stopped");
      dev.fn.restore(saved.fn);
      dev.restore(dev.stateType.parse(saved.dev));
      await Promise.resolve();
      expect(dev.save()).toEqual(saved.dev); // nothing ran before attach
      const wire = new Wire();
      const clock = new ManualClock();
      dev.attach({ clock, backend: wire });
      expect(wire.sent.length).toBe(0); // still stopped
      const b = { dev, transport: dev.transport };
      b.dev.setActivity("running");
      a.driver.rebind(b.transport.fn);
      expect(a.driver.receive().map(num)).toEqual([7, 8]);
      expect(wire.sent.map(num)).toEqual([200]);
      expect(b.dev.save().net.pendingQueues).toEqual([]);
    });

    it("attached without a clock, work a budget cut short continues in a microtask", async () => {
      const wire = new Wire();
      const tb = createVirtioNetTestbed({ device: { packed, queueSize: 16, notifyBudget: 4 }, driver: { packed, ringSize: 16 }, backend: wire, memSize: 4 << 20 });
      tb.driver.probe();
      tb.driver.open();
      for (let i = 0; i < 10; i++) tb.driver.queue(frame(300 + i));
      tb.driver.flush();
      expect(wire.sent.length).toBeLessThan(10);
      expect(tb.nic.work.maxUnits).toBeLessThanOrEqual(tb.nic.work.budget + 2 * 16);
      for (let i = 0; i < 20 && wire.sent.length < 10; i++) await Promise.resolve();
      expect(wire.sent.map(num)).toEqual(Array.from({ length: 10 }, (_, i) => 300 + i));
      expect(tb.nic.work.deferrals).toBeGreaterThan(0);
    });
  });
}
