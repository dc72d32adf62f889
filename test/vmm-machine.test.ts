import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Machine, MachineError } from "../src/vmm/machine.js";
import { CpuBackendError } from "../src/vmm/cpu/backend.js";
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

  it("loads the initrd itself at 64 MiB after the RAM advice, and points the setup header at it", async (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const bios = readFileSync(a.assets.biosPath);
    // A bzImage that v86's loader accepts: 4 setup sectors after the boot sector, boot flag, HdrS,
    // protocol 2.15, and a few bytes of "protected-mode code".
    const kernel = new Uint8Array(5 * 512 + 64);
    const kv = new DataView(kernel.buffer);
    kernel[0x1f1] = 4;
    kv.setUint16(0x1fe, 0xaa55, true);
    kv.setUint32(0x202, 0x53726448, true);
    kv.setUint16(0x206, 0x020f, true);
    const initrd = new Uint8Array(3000).map((_, i) => (i * 7 + 1) & 0xff);
    const seen: Array<{ len: number; zeroAtInitrd: boolean }> = [];
    const m = await Machine.create({
      bios,
      engine: a.assets,
      memMiB: 128,
      kernel,
      initrd,
      adviseRam: (ram) => seen.push({ len: ram.length, zeroAtInitrd: ram[64 << 20] === 0 && ram[(64 << 20) + 1] === 0 }),
    });
    try {
      expect(seen).toEqual([{ len: 128 << 20, zeroAtInitrd: true }]);
      expect(m.dma.read(64 << 20, initrd.length)).toEqual(initrd);
      const hdr = new DataView(m.dma.read(0x80218, 8)!.slice().buffer);
      expect([hdr.getUint32(0, true), hdr.getUint32(4, true)]).toEqual([64 << 20, initrd.length]);
    } finally {
      await m.stop();
    }
    // An advice that throws is only advice.
    const m2 = await Machine.create({ bios, engine: a.assets, memMiB: 128, kernel, initrd, adviseRam: () => { throw new Error("no"); } });
    try {
      expect(m2.dma.read(64 << 20, initrd.length)).toEqual(initrd);
    } finally {
      await m2.stop();
    }
    // An initrd that does not fit above 64 MiB is refused, not truncated.
    await expect(Machine.create({ bios, engine: a.assets, memMiB: 64, kernel, initrd })).rejects.toBeInstanceOf(CpuBackendError);
  });
});

describe("Machine on a caller's CPU backend", () => {
  it("takes any CpuBackend from the `cpu` factory: config cycles reach the platform through the ports it registered", async () => {
    const { FlatMemory } = await import("../src/devices/igb/testing.js");
    const ports = new Map<number, import("../src/vmm/cpu/backend.js").PortHandler>();
    let seen: import("../src/vmm/machine.js").CpuFactoryConfig | undefined;
    const mem = new FlatMemory(64 << 20);
    const cpu: import("../src/vmm/cpu/backend.js").CpuBackend = {
      memory: mem,
      memBytes: 64 << 20,
      mmioGranule: 128 << 10,
      registerPorts: (base, count, h) => {
        for (let p = base; p < base + count; p++) ports.set(p, h);
      },
      registerMmio: () => {},
      setIrqLine: () => {},
      deliverMsi: () => true,
      serialSend: () => {},
      onSerial: () => () => {},
      onStop: () => () => {},
      nowNs: () => 0,
      schedule: () => () => {},
      start: async () => {},
      pause: async () => {},
      stop: async () => {},
      saveState: async () => new Uint8Array(0),
      restoreState: async () => {},
      running: false,
    };
    const m = await Machine.create({
      bios: new Uint8Array(0),
      memMiB: 64,
      cpu: async (cfg) => {
        seen = cfg;
        return cpu;
      },
    });
    expect(seen?.memBytes).toBe(64 << 20);
    expect(seen?.cmdline).toMatch(/acpi_rsdp=0xf00000/);
    // The machine's own ACPI tables went into the backend's memory.
    expect(new TextDecoder().decode(mem.bytes.subarray(0xf00000, 0xf00008))).toBe("RSD PTR ");
    // conf1: address 00:00.0 reg 0, then read the data port: the generic host bridge's IDs.
    ports.get(0xcf8)!.write(0xcf8, 4, 0x80000000);
    expect(ports.get(0xcfc)!.read(0xcfc, 4)).toBe(0x00081b36);
    await expect(Machine.create({ bios: new Uint8Array(0), memMiB: 64 })).rejects.toThrow(MachineError);
  });
});
