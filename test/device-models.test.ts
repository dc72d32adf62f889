/**
 * The one lifecycle, driven through each device model's migration state machine: in RUNNING_P2P
 * a device answers register accesses but starts no DMA and raises no interrupt; work the guest
 * asked for meanwhile runs on the return to RUNNING; a model saved in STOP_COPY restores into a
 * fresh model that was created with no I/O and attached afterwards, and carries on.
 */
import { describe, expect, it } from "vitest";
import { createVirtioNetModel } from "../src/devices/models/virtio-net.js";
import { createTestDeviceModel } from "../src/devices/models/testdev.js";
import { createIgbHostVfModel } from "../src/vmm/pf-agent/model.js";
import { CountingBackend } from "../src/devices/net/testing.js";
import { FlatMemory, ManualClock } from "../src/devices/igb/testing.js";
import { SimVirtioNet } from "../src/guest/virtio-net/driver.js";
import { SimIgbvf } from "../src/guest/igbvf/driver.js";
import type { InterruptSink } from "../src/pci/interfaces.js";
import { IgbVfRegs } from "../src/devices/igb/vf.js";

const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const frame = (n: number, dst = MAC): Uint8Array => {
  const f = new Uint8Array(96);
  f.set(dst, 0);
  f.set([0x02, 0, 0, 0, 0, 0x09], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = n;
  return f;
};
function bumpAlloc(size: number, start = 0x10000): (n: number, align: number) => number {
  let next = start;
  return (n, align) => {
    next = Math.ceil(next / align) * align;
    const a = next;
    next += n;
    if (next > size) throw new RangeError("out of test memory");
    return a;
  };
}

describe("device models through their migration states", () => {
  it("virtio-net: RUNNING_P2P holds TX, RX and interrupts while registers answer; RUNNING releases them in order", () => {
    const ram = new FlatMemory(8 << 20);
    const wire = new CountingBackend();
    // The simulated driver runs on INTx: count raises of the line.
    const irqs = { raised: 0 };
    const sink: InterruptSink = { msi: () => void irqs.raised++, intx: (_r, _p, level) => void (level && irqs.raised++) };
    const m = createVirtioNetModel({ mac: MAC });
    m.transport.fn.attach(0x0100, sink, ram);
    m.attach({ clock: new ManualClock(), backend: wire });
    const drv = new SimVirtioNet({ fn: m.transport.fn, ram: ram.bytes, alloc: bumpAlloc(ram.bytes.length) });
    drv.probe();
    drv.open();
    expect(drv.send(frame(1))).toBe(true);
    expect(wire.sent).toBe(1);

    drv.readIsr(); // acknowledge, so that the line is low and a new interrupt would show
    expect(m.migration.set("RUNNING_P2P")).toBeUndefined();
    const before = irqs.raised;
    const cfg = m.transport.fn.configRead(0, 4);
    expect(cfg).toBe(0x10411af4); // registers answer
    expect(drv.send(frame(2))).toBe(true); // queued and notified, but no DMA
    expect(wire.sink?.(frame(3))).toBe(true); // taken into the device's FIFO, not the ring
    expect(wire.sent).toBe(1);
    expect(drv.receive().length).toBe(0);
    expect(irqs.raised).toBe(before);

    expect(m.migration.set("RUNNING")).toBeUndefined();
    expect(wire.sent).toBe(2);
    const rx = drv.receive();
    expect(rx.map((f) => f[14])).toEqual([3]);
    expect(irqs.raised).toBeGreaterThan(before);
  });

  it("virtio-net: saved in STOP_COPY, restored into a fresh model created without I/O, attached after, carries on", () => {
    const ram = new FlatMemory(8 << 20);
    const sink: InterruptSink = { msi: () => undefined, intx: () => undefined };
    const a = createVirtioNetModel({ mac: MAC });
    const wireA = new CountingBackend();
    a.transport.fn.attach(0x0100, sink, ram);
    a.attach({ clock: new ManualClock(), backend: wireA });
    const drv = new SimVirtioNet({ fn: a.transport.fn, ram: ram.bytes, alloc: bumpAlloc(ram.bytes.length) });
    drv.probe();
    drv.open();
    drv.send(frame(1));
    a.migration.go("RUNNING_P2P");
    drv.send(frame(2)); // waits in the ring: it must travel with the state
    a.migration.go("STOP_COPY");
    const saved = JSON.parse(JSON.stringify(a.save())) as unknown;
    // The function's config space (Bus Master Enable, MSI-X) is the PCI topology's state.
    const savedFn = JSON.parse(JSON.stringify(a.transport.fn.save())) as unknown;

    const b = createVirtioNetModel({ mac: MAC });
    expect(b.attached).toBe(false);
    b.restore(b.stateType.parse(saved));
    expect(b.migration.state).toBe("RESUMING");
    b.transport.fn.restore(b.transport.fn.stateType.parse(savedFn));
    const wireB = new CountingBackend();
    b.transport.fn.attach(0x0100, sink, ram);
    b.attach({ clock: new ManualClock(), backend: wireB });
    drv.rebind(b.transport.fn);
    b.migration.go("RUNNING");
    // The frame notified while the source was quiesced goes out of the destination.
    expect(wireB.sent).toBe(1);
    expect(drv.send(frame(3))).toBe(true);
    expect(wireB.sent).toBe(2);
    expect(wireA.sent).toBe(1);
  });

  it("the 82576 VF kept by a host agent: RUNNING_P2P holds the VF's transmit until RUNNING", () => {
    const mem = new FlatMemory(8 << 20);
    const wire = new CountingBackend();
    const clock = new ManualClock();
    const m = createIgbHostVfModel({ pfMac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]), numVfs: 2, adminMac: MAC });
    m.shim.attach(0x0200, { msi: () => undefined, intx: () => undefined }, mem);
    m.attach({ clock, backend: wire });
    // Bus mastering on, so the VF may DMA.
    m.shim.configWrite(4, 2, 0x6);
    const drv = new SimIgbvf({ bar: new IgbVfRegs(m.host.core, m.vf), mem, alloc: bumpAlloc(mem.bytes.length), delay: (us) => clock.advance(us * 1000) });
    expect(drv.reset()).toBe(true);
    drv.open();
    // From the VF's own MAC (spoof checking is on), to another host.
    const out = (n: number): Uint8Array => {
      const f = frame(n, new Uint8Array([0x02, 0, 0, 0, 0, 0x09]));
      f.set(MAC, 6);
      return f;
    };
    expect(drv.send(out(1))).toBe(true);
    const sent0 = wire.sent;
    expect(sent0).toBeGreaterThanOrEqual(1);
    m.migration.go("RUNNING_P2P");
    expect(drv.send(out(2))).toBe(true);
    expect(wire.sent).toBe(sent0);
    m.migration.go("RUNNING");
    expect(wire.sent).toBe(sent0 + 1);
  });

  it("the PCI test device: an interrupt asked for in RUNNING_P2P is raised on RUNNING; a refused arc is an error value, never a throw", () => {
    const m = createTestDeviceModel();
    m.attach({ clock: new ManualClock() });
    expect(m.migration.set("RESUMING")).toBeUndefined();
    expect(m.migration.state).toBe("RESUMING");
    expect(m.migration.set("RUNNING")).toBeUndefined();
    const err = m.migration.set("ERROR");
    expect(err?.name).toBe("MigrationStateError");
    expect(m.migration.state).toBe("RUNNING");
  });
});
