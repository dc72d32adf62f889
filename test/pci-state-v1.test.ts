/**
 * The `platform.pci` part of every version 1 fixture (saved from real Debian guests by the code
 * before the portable-state change) loads, through the upgrade chain, onto a root complex built
 * like the platform that saved it, saves again as version 2, and that parses again to the same
 * state. The root complexes use the real device classes (test only: src/pci does not import them).
 */
import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { IgbPciDevice, createIgbVfFunction } from "../src/devices/igb/pci.js";
import { createLink } from "../src/devices/net/link.js";
import { VirtioPciTransport } from "../src/devices/virtio/pci-transport.js";
import { VirtioNet } from "../src/devices/virtio-net/device.js";
import type { Clock } from "../src/pci/interfaces.js";
import { PciTestDevice } from "../src/pci/test-device.js";
import { PciRoot } from "../src/pci/topology/root-complex.js";

const dir = new URL("./fixtures/state-v1/", import.meta.url);
const clock: Clock = { now: () => 0, schedule: () => ({ cancel: () => {} }) };
const mac = (b: number) => new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, b]);

function baseRoot(): PciRoot {
  const root = new PciRoot({ interrupts: { msi: () => {}, intx: () => {} }, dma: { read: () => undefined, write: () => false }, hostBridge: { vendorId: 0x1b36, deviceId: 0x0008 } });
  root.addRootPort(3 << 3, { slotNumber: 3 }).plug(new PciTestDevice().pf, { coldplug: true });
  return root;
}

function virtio(root: PciRoot, opts: { packed?: boolean; standby?: boolean; maxPairs: number }): void {
  const nic = new VirtioNet({ mac: mac(0x56), backend: createLink()[0], ...opts });
  root.addRootPort(4 << 3, { slotNumber: 4 }).plug(new VirtioPciTransport(nic).fn, { coldplug: true });
}

/** Root complexes built as src/vmm/pci-platform.ts builds each platform (ports in the same order). */
const BUILDERS: Record<string, () => PciRoot> = {
  "virtio-packed-platform": () => {
    const root = baseRoot();
    virtio(root, { packed: true, maxPairs: 2 });
    return root;
  },
  "igb-platform": () => {
    const root = baseRoot();
    root.addRootPort(5 << 3, { slotNumber: 5 }).plug(new IgbPciDevice({ mac: mac(0x57), clock }).pf, { coldplug: true });
    return root;
  },
  "failover-platform": () => {
    const root = baseRoot();
    const host = new IgbPciDevice({ mac: mac(0x57), clock });
    root.addRootPort(6 << 3, { slotNumber: 6 }).plug(createIgbVfFunction(host.core, 0), { coldplug: true });
    virtio(root, { standby: true, maxPairs: 1 });
    return root;
  },
};

const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

describe("version 1 PCI state fixtures", () => {
  it("has a builder for every fixture", () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) expect(BUILDERS[f.replace(/\.json$/, "")], f).toBeDefined();
  });

  for (const f of files) {
    it(`loads ${f} and saves it again as version 2`, () => {
      const machine = JSON.parse(readFileSync(new URL(f, dir), "utf8")) as { platform: { pci: unknown } };
      const v1 = machine.platform.pci as { version: number };
      expect(v1.version).toBe(1);
      const root = BUILDERS[f.replace(/\.json$/, "")]!();
      const parsed = root.stateType.parse(v1, "platform.pci");
      root.restore(parsed);
      const saved = JSON.parse(JSON.stringify(root.save()));
      expect(saved.version).toBe(2);
      expect(saved).toEqual(parsed);
      // And the version 2 state loads onto a fresh root complex built the same way.
      const again = BUILDERS[f.replace(/\.json$/, "")]!();
      again.restore(again.stateType.parse(saved, "platform.pci"));
      expect(again.save()).toEqual(saved);
      // What the guest had enumerated is reachable again: every slot function answers on its bus.
      const seen = again.enumerate().map((r) => `${r.bus}:${r.devfn}`);
      for (const port of again.rootPorts) expect(seen).toContain(`${port.secondaryBus}:0`);
      if (f.startsWith("igb-platform")) {
        // The guest had enabled 2 VFs (First VF Offset 0x80, stride 2) on the 82576 behind bus 2.
        expect(seen).toEqual(expect.arrayContaining(["2:128", "2:130"]));
      }
    });
  }
});
