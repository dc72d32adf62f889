import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Machine, MachineError } from "../src/vmm/machine.js";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { skipTest } from "./skip.js";

describe("Machine (v86 engine created, guest not started)", () => {
  it("places ACPI tables in RAM and boots with their kernel args instead of acpi=off", async (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const blob = new TextEncoder().encode("RSD PTR fake tables");
    const m = await Machine.create({
      bios: readFileSync(a.assets.biosPath),
      engine: a.assets,
      memMiB: 64,
      acpi: { blob, base: 0x3ff0000, kernelArgs: "acpi_rsdp=0x3ff0000 memmap=64K$0x3ff0000" },
      append: "console=ttyS0",
    });
    try {
      expect(m.dma.read(0x3ff0000, blob.length)).toEqual(blob);
      expect(m.cmdline).toBe("acpi_rsdp=0x3ff0000 memmap=64K$0x3ff0000 cryptomgr.notests noisapnp console=ttyS0");
      // The default platform is in place: the generic PCIe host bridge answers at 00:00.0.
      expect(m.platform.configRead(0, 0, 0, 4)).toBe(0x00081b36);
      expect(m.dma.read(64 << 20, 1)).toBeUndefined();
      expect(m.dma.write((64 << 20) - 1, new Uint8Array(2))).toBe(false);
    } finally {
      await m.stop();
    }
    expect(m.stopReason).toEqual({ kind: "stopped" });
  });

  it("builds its own ACPI tables by default, and boots with acpi=off and the 945G PCIEXBAR when told to", async (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const bios = readFileSync(a.assets.biosPath);
    const m = await Machine.create({ bios, engine: a.assets, memMiB: 64 });
    try {
      expect(m.cmdline).toBe("acpi_rsdp=0xf00000 memmap=4K#0xf00000 memmap=64M$0xb0000000 cryptomgr.notests noisapnp");
      expect(new TextDecoder().decode(m.dma.read(0xf00000, 8))).toBe("RSD PTR ");
      expect(m.layout.ecamDiscovery).toBe("acpi");
    } finally {
      await m.stop();
    }
    const legacy = await Machine.create({ bios, engine: a.assets, memMiB: 64, acpi: false });
    try {
      expect(legacy.cmdline).toBe("acpi=off memmap=64M$0xb0000000 cryptomgr.notests noisapnp");
      expect(legacy.platform.configRead(0, 0, 0, 4)).toBe(0x27708086);
      expect(legacy.platform.configRead(0, 0, 0x48, 4)).toBe(0xb0000005);
      expect(new TextDecoder().decode(legacy.dma.read(0xf00000, 8))).not.toBe("RSD PTR ");
    } finally {
      await legacy.stop();
    }
  });

  it("rejects tables outside RAM and bad memory sizes", async (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const bios = readFileSync(a.assets.biosPath);
    await expect(Machine.create({ bios, engine: a.assets, memMiB: 64, acpi: { blob: new Uint8Array(16), base: 64 << 20, kernelArgs: "" } })).rejects.toBeInstanceOf(MachineError);
    await expect(Machine.create({ bios, engine: a.assets, memMiB: 7 })).rejects.toBeInstanceOf(MachineError);
  });
});
