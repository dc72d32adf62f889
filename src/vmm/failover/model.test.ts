/**
 * The failover VF as a device model (kind, functions, state save / parse / restore into a fresh
 * instance, migration states) and the VFIO-shaped boundary's own rules.
 */
import { describe, expect, it } from "vitest";
import { VR } from "../../devices/igb/regs.js";
import { StateError } from "../../state/parse.js";
import { createFailoverVfModel } from "./model.js";
import { GUEST_MAC, PEER, createFailoverTestbed, seqFrame, serviceGuest } from "./testbed.js";
import {
  VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP, VfioError,
} from "./vfio.js";

/** VF BAR0 registers whose values a restore must carry. */
const PROBE = [VR.RDBAL(0), VR.RDLEN(0), VR.RDH(0), VR.RDT(0), VR.TDBAL(0), VR.TDLEN(0), VR.TDH(0), VR.TDT(0), VR.EIMS, VR.EIAC, VR.EIAM, VR.IVAR0, VR.IVAR_MISC, VR.VFGPRC, VR.VFGPTC, VR.VFGORC, VR.VFGOTC, VR.EITR(0)];

describe("the failover VF as a device model", () => {
  it("kind, one guest function 8086:10CA with 3 MSI-X vectors, and a state that restores into a fresh model on either backing", () => {
    const tb = createFailoverTestbed({ adminMac: GUEST_MAC });
    expect(tb.model.kind).toBe("igb-failover-vf");
    expect(tb.model.functions).toEqual([tb.model.guest.fn]);
    const fn = tb.model.guest.fn;
    expect(fn.configRead(0, 4)).toBe(0x10ca8086);
    expect(tb.driver.reset()).toBe(true);
    tb.driver.open();
    tb.write(VR.EIMS, 7);
    tb.write(VR.EITR(0), 40 << 2);
    expect(tb.driver.setVlan(12, true)).toBe(true);
    expect(tb.model.failover.switchTo("emulated").ok).toBe(true);
    tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 0));
    tb.driver.send(seqFrame(PEER, GUEST_MAC, 1, 0));
    expect(tb.model.migration.set("STOP_COPY")).toBeUndefined();
    expect(tb.model.devices.emulated.migration.state).toBe("STOP");
    const saved = JSON.parse(JSON.stringify(tb.model.save())) as unknown;
    expect(saved).toMatchObject({ version: 1, backing: "emulated" });
    const regs = PROBE.map((o) => tb.read(o));

    const twin = createFailoverVfModel({ pfMac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), adminMac: GUEST_MAC, ramBytes: 16 << 20 });
    twin.restore(twin.stateType.parse(saved));
    expect(twin.failover.active).toBe("emulated");
    // A restored model waits in RESUMING (frozen) until it is run.
    expect(twin.migration.state).toBe("RESUMING");
    expect(twin.devices.emulated.migration.state).toBe("STOP");
    expect(twin.migration.set("RUNNING")).toBeUndefined();
    expect(twin.devices.emulated.migration.state).toBe("RUNNING");
    expect(twin.devices.passthrough.migration.state).toBe("STOP");
    expect(PROBE.map((o) => twin.devices.emulated.regionRead(VFIO_PCI_BAR0_REGION_INDEX, o, 4))).toEqual(regs);
    expect(twin.emu.agent.vfs[0]!.vlans).toEqual([12]);
    expect(twin.emu.agent.vfs[0]!.cts).toBe(true);
    // and the source model runs on after its save
    expect(tb.model.migration.set("RUNNING")).toBeUndefined();
    expect(tb.model.devices.emulated.migration.state).toBe("RUNNING");
    tb.clock.advance(50_000);
    expect(serviceGuest(tb)).toEqual([0]);
  });

  it("a saved state is parsed before anything changes, and the error names the field", () => {
    const tb = createFailoverTestbed({ adminMac: GUEST_MAC });
    expect(tb.driver.reset()).toBe(true);
    tb.driver.open();
    const s = JSON.parse(JSON.stringify(tb.model.save())) as { device: { vf: { queues: Record<string, number[]> } } };
    const bad: [unknown, string][] = [
      [{ ...s, backing: "virtio" }, "igb-failover-vf.backing"],
      [{ ...s, extra: 1 }, "igb-failover-vf.extra"],
      [{ ...s, device: { ...s.device, vf: { ...s.device.vf, queues: { ...s.device.vf.queues, RDH: [0x10000, 0] } } } }, "igb-failover-vf.device.vf.queues.RDH[0]"],
      [{ ...s, version: 2 }, "igb-failover-vf.version"],
    ];
    for (const [u, path] of bad) {
      let err: unknown;
      try {
        tb.model.stateType.parse(u);
      } catch (e) {
        err = e;
      }
      expect(err, path).toBeInstanceOf(StateError);
      expect((err as StateError).path).toBe(path);
    }
  });
});

describe("the VFIO-shaped boundary", () => {
  it("regions, IRQ sets, DMA map/unmap and the migration data's states", () => {
    const tb = createFailoverTestbed({ adminMac: GUEST_MAC });
    const dev = tb.model.devices.passthrough;
    expect(dev.regionInfo(VFIO_PCI_BAR0_REGION_INDEX)).toMatchObject({ size: 16384 });
    expect(dev.regionInfo(VFIO_PCI_BAR0_REGION_INDEX).flags & VFIO_REGION_INFO_FLAG_MMAP).toBeTruthy();
    expect(dev.regionInfo(5).size).toBe(0);
    expect(dev.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4)).toBe(0x10ca8086);
    expect(dev.regionRead(VFIO_PCI_BAR0_REGION_INDEX, 0x4000, 4)).toBe(0xffffffff);
    expect(dev.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(3);
    expect(dev.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 2, [() => {}, () => {}])).toBeInstanceOf(VfioError);
    expect(dev.setIrqs(0, 0, [() => {}])).toBeInstanceOf(VfioError);
    expect(dev.dmaMap(0x1000, 0x1000)).toBeInstanceOf(VfioError); // overlaps the RAM mapping
    expect(dev.dmaUnmap(0x2000, 0x1000)).toBe(0x1000);
    expect(dev.iommu.mappingCount).toBe(2);
    expect(dev.dmaMap(0x2000, 0x1000)).toBeUndefined();
    expect(dev.saveState()).toBeInstanceOf(VfioError); // RUNNING: the state is read in STOP_COPY
    const s = tb.model.save().device;
    expect(dev.loadState(s)).toBeInstanceOf(VfioError); // written in RESUMING only
    expect(dev.migration.set("STOP_COPY")).toBeUndefined();
    expect(dev.saveState()).not.toBeInstanceOf(VfioError);
    expect(dev.migration.set("RUNNING")).toBeUndefined();
  });

  it("DMA of the host VF goes through its IOMMU domain: an unmapped ring page faults, nothing is written, and the VF's driver sees no frame", () => {
    const tb = createFailoverTestbed({ adminMac: GUEST_MAC });
    expect(tb.driver.reset()).toBe(true);
    tb.driver.open();
    const dev = tb.model.devices.passthrough;
    const ring = tb.read(VR.RDBAL(0));
    const page = Math.floor(ring / 4096) * 4096;
    expect(dev.dmaUnmap(page, 4096)).toBe(4096);
    const before = tb.mem.bytes.slice(page, page + 4096);
    tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 0));
    expect(dev.iommu.faults).toBeGreaterThan(0);
    expect(Math.floor(dev.iommu.lastFault!.iova / 4096) * 4096).toBe(page);
    expect(tb.mem.bytes.slice(page, page + 4096)).toEqual(before);
    expect(tb.driver.receive()).toEqual([]);
  });
});
