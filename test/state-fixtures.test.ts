/**
 * States saved by nicvisor before the portable-state change (test/fixtures/state-v1, made from
 * running Debian guests by commit acb8cf6's code) still load: each into a fresh platform of the
 * same build, through every device's upgrade chain, and what that platform saves then loads into
 * another fresh one and saves the same again.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ManualClock, FlatMemory } from "../src/devices/igb/testing.js";
import { defaultLayout, type PlatformEnv } from "../src/vmm/machine-platform.js";
import type { PciPlatform } from "../src/vmm/pci-platform.js";
import { FailoverPlatform, IgbPlatform, VirtioNetPlatform } from "../src/vmm/platforms.js";
import { decodeStates } from "../src/state/container.js";

function env(): PlatformEnv {
  return { dma: new FlatMemory(64 << 20), interrupts: { msi: () => undefined, intx: () => undefined }, clock: new ManualClock(), layout: defaultLayout(256 << 20) };
}

const fixtures: [string, () => PciPlatform][] = [
  ["failover-platform", () => new FailoverPlatform(env())],
  ["igb-platform", () => new IgbPlatform(env())],
  ["virtio-packed-platform", () => new VirtioNetPlatform(env(), { packed: true })],
];

const load = (name: string): { version: number; memMiB: number; conf1Latch: number; platform: { version: number; devices: Record<string, unknown> } } =>
  JSON.parse(readFileSync(new URL(`fixtures/state-v1/${name}.json`, import.meta.url), "utf8"));

describe("state saved before the portable-state change (format 1)", () => {
  for (const [name, make] of fixtures) {
    it(`${name}: loads into a fresh platform, and its re-save round-trips through JSON and bytes`, () => {
      const f = load(name);
      expect(f.platform.version).toBe(1);
      const p = make();
      p.restore(f.platform);
      const saved = p.save();
      expect(saved.version).toBe(2);
      expect(Object.keys(saved.devices).sort()).toEqual(Object.keys(f.platform.devices).sort());
      const q = make();
      q.restore(JSON.parse(JSON.stringify(saved)));
      expect(q.save()).toEqual(saved);
      const r = make();
      const bytes = p.saveBytes();
      expect(decodeStates(bytes).map((x) => x.name)).toEqual(["pci", ...Object.keys(saved.devices)]);
      r.restoreBytes(bytes);
      expect(r.save()).toEqual(saved);
    });
  }

  it("igb-platform: the restored 82576 has the guest's state (VFs enabled, rings programmed)", () => {
    const p = new IgbPlatform(env());
    p.restore(load("igb-platform").platform);
    expect(p.nic.core.numVfs).toBe(2);
    // igb with 2 VFs runs the PF's rings in queue 2, the pool after the VFs' (the fixture was
    // saved after an MTU change on the PF, whose reset cleared the VFs' rings).
    expect(p.nic.core.regs.get("TDLEN", 2)).toBe(0x1000);
    expect(p.nic.core.regs.get("RDLEN", 2)).toBe(0x1000);
  });
});
