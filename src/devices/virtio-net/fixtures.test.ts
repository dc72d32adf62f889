/**
 * Version-1 state saved by the old code from running Debian guests (test/fixtures/state-v1) loads
 * through the upgrade chain into fresh instances configured as the platforms configure them
 * (src/vmm/pci-platform.ts), saves as version 2, and that parses again to the same state.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { STATUS } from "../virtio/pci-transport.js";
import { VirtioNetPci, type VirtioNetPciState } from "./pci.js";

const fixture = (name: string): { platform: { devices: Record<string, unknown> } } =>
  JSON.parse(readFileSync(new URL(`../../../test/fixtures/state-v1/${name}`, import.meta.url), "utf8"));

const cases = [
  {
    file: "virtio-packed-platform.json",
    device: "virtio-net",
    // VirtioNetPlatform with { packed: true }: default MAC, two queue pairs.
    make: () => new VirtioNetPci({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), packed: true, maxPairs: 2 }),
    layout: "packed",
  },
  {
    file: "failover-platform.json",
    device: "virtio-net-standby",
    // FailoverPlatform: the standby virtio-net shares the VF's MAC, one pair.
    make: () => new VirtioNetPci({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x58]), standby: true, maxPairs: 1 }),
    layout: "split",
  },
] as const;

describe("virtio-net v1 fixtures", () => {
  for (const c of cases) {
    it(`${c.file} ${c.device}: v1 -> parse -> apply to a fresh instance -> save v2 -> parse again`, () => {
      const raw = fixture(c.file).platform.devices[c.device];
      const dev = c.make();
      const parsed = dev.stateType.parse(raw);
      expect(parsed.version).toBe(2);
      dev.restore(parsed);
      const saved = JSON.parse(JSON.stringify(dev.save())) as VirtioNetPciState;
      expect(saved).toEqual(parsed);
      const fresh = c.make();
      const again = fresh.stateType.parse(saved);
      fresh.restore(again);
      expect(fresh.save()).toEqual(saved);
      expect(saved.transport.status & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
      expect(dev.transport.queues.every((q) => q.layout === c.layout && q.ready)).toBe(true);
      expect(dev.nic.negotiatedFeatures).not.toBe(0n);
      // A v1 record is refused by an instance configured otherwise (here: another queue count).
      const other = new VirtioNetPci({ mac: new Uint8Array(6), packed: true, maxPairs: 3 });
      expect(() => other.stateType.parse(raw, "d")).toThrow(expect.objectContaining({ name: "StateError", path: "d.transport.queues" }));
    });
  }

  it("a v1 record with something wrong is rejected naming the field", () => {
    const raw = fixture("failover-platform.json").platform.devices["virtio-net-standby"] as { transport: { queues: { nextUsed: number }[] }; nic: { version: number } };
    const dev = cases[1].make();
    const q = structuredClone(raw);
    q.transport.queues[0]!.nextUsed = 9; // 3 popped, 9 used: inconsistent (v1 split saved no in-flight heads)
    expect(() => dev.stateType.parse(q, "d")).toThrow(expect.objectContaining({ path: "d.transport.queues[0].inflight" }));
    const n = structuredClone(raw);
    n.nic.version = 3;
    expect(() => dev.stateType.parse(n, "d")).toThrow(expect.objectContaining({ path: "d.nic.version" }));
  });
});
