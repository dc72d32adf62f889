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
      // The default platform is in place: the stand-in host bridge answers at 00:00.0.
      expect(m.platform.configRead(0, 0, 0, 4)).toBe(0x27708086);
      expect(m.dma.read(64 << 20, 1)).toBeUndefined();
      expect(m.dma.write((64 << 20) - 1, new Uint8Array(2))).toBe(false);
    } finally {
      await m.stop();
    }
    expect(m.stopReason).toEqual({ kind: "stopped" });
  });

  it("rejects tables outside RAM and bad memory sizes", async (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const bios = readFileSync(a.assets.biosPath);
    await expect(Machine.create({ bios, engine: a.assets, memMiB: 64, acpi: { blob: new Uint8Array(16), base: 64 << 20, kernelArgs: "" } })).rejects.toBeInstanceOf(MachineError);
    await expect(Machine.create({ bios, engine: a.assets, memMiB: 7 })).rejects.toBeInstanceOf(MachineError);
  });
});
