import { describe, it, expect } from "vitest";
import fc from "fast-check";
import type { AccessSize } from "../src/vmm/cpu/backend.js";
import { Conf1Ports, PlatformMmio, defaultLayout, exitCounters } from "../src/vmm/machine-platform.js";
import type { PlatformBus, PlatformEnv } from "../src/vmm/machine-platform.js";
import { StateError } from "../src/state/parse.js";
import { PciPlatform } from "../src/vmm/pci-platform.js";
import { createTestDeviceModel } from "../src/devices/models/testdev.js";
import { FailoverPlatform, TEST_DEVICE_PORT, TestDevicePlatform } from "../src/vmm/platforms.js";
import { GuestVm, SnapshotError } from "../src/vmm/harness/runner.js";
import type { GuestSnapshot } from "../src/vmm/harness/runner.js";

const layout = defaultLayout(256 << 20);

function recorder(): PlatformBus & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    configRead: (b, d, r, s) => (log.push(`cr ${b}:${d}:${r}/${s}`), 0x11223344 & (s === 4 ? 0xffffffff : (1 << (s * 8)) - 1)),
    configWrite: (b, d, r, s, v) => void log.push(`cw ${b}:${d}:${r}/${s}=${v.toString(16)}`),
    mmioRead: (a, s) => (log.push(`mr ${a.toString(16)}/${s}`), 0),
    mmioWrite: (a, s, v) => void log.push(`mw ${a.toString(16)}/${s}=${v.toString(16)}`),
    ioRead: () => 0,
    ioWrite: () => undefined,
    save: () => null,
    restore: () => undefined,
    saveRecords: () => [],
    restoreRecords: () => undefined,
    parseRecords: () => undefined,
    describeRecords: () => [],
    setMigrationState: () => new Map(),
  };
}

describe("conf1", () => {
  it("decodes bus/devfn/register and byte lanes, and reaches only the first 256 bytes", () => {
    const r = recorder();
    const c = new Conf1Ports(r);
    c.write(0xcf8, 4, 0x80031a44 | (1 << 24)); // bits 27:24 (AMD's extended register bits) are reserved here
    expect(c.read(0xcf8, 4)).toBe(0x80031a44);
    c.read(0xcfe, 2);
    c.write(0xcfd, 1, 0xab);
    expect(r.log).toEqual(["cr 3:26:70/2", "cw 3:26:69/1=ab"]);
  });
  it("reads all ones and drops writes while the enable bit is clear or a lane overflows", () => {
    const r = recorder();
    const c = new Conf1Ports(r);
    c.write(0xcf8, 4, 0x00001000);
    expect(c.read(0xcfc, 4)).toBe(0xffffffff);
    c.write(0xcfc, 4, 1);
    c.write(0xcf8, 4, 0x80000000);
    expect(c.read(0xcfe, 4)).toBe(0xffffffff);
    expect(r.log).toEqual([]);
  });
});

describe("ECAM and the PCI MMIO windows", () => {
  it("sends ECAM accesses to config space and the rest to BAR dispatch", () => {
    const r = recorder();
    const exits = exitCounters();
    const m = new PlatformMmio(r, layout, exits);
    m.read(layout.ecamBase + (2 << 20) + (0x19 << 12) + 0x104, 4);
    m.write(layout.ecamBase + 0x3e, 2, 0x40);
    m.read(layout.ecamBase + 0x3, 2); // misaligned: all ones, not forwarded
    m.write(0xfebff000, 4, 7);
    expect(r.log).toEqual(["cr 2:25:260/4", "cw 0:0:62/2=40", "mw febff000/4=7"]);
    // Every access that reached nicvisor counts as an exit, forwarded or not.
    expect(exits).toEqual({ mmioReads: 2, mmioWrites: 2, portReads: 0, portWrites: 0 });
  });
});

function env(intx?: (rid: number, pin: number, level: boolean) => void): PlatformEnv {
  return {
    dma: { read: () => undefined, write: () => false },
    interrupts: { msi: () => undefined, intx: intx ?? (() => undefined) },
    clock: { now: () => 0, schedule: () => ({ cancel: () => undefined }) },
    layout,
  };
}

/** Programs bus numbers and BARs as the BIOS would: port 00:03.0 -> bus 1, PF BAR0 at 0xfe800000. */
function programmed(p: TestDevicePlatform): void {
  const port = TEST_DEVICE_PORT << 3;
  p.configWrite(0, port, 0x18, 4, 0x00010100);
  p.configWrite(0, port, 0x20, 4, 0xfe80fe80); // memory window 0xfe800000-0xfe8fffff
  p.configWrite(0, port, 0x04, 2, 0x0006);
  p.configWrite(1, 0, 0x10, 4, 0xfe800000);
  p.configWrite(1, 0, 0x04, 2, 0x0006);
}

describe("PCI platform with the test device", () => {
  it("puts the generic host bridge (ACPI layout) or the 945G PCIEXBAR (acpi=off layout) at 00:00.0", () => {
    const acpi = new TestDevicePlatform(env());
    expect(acpi.configRead(0, 0, 0, 4)).toBe(0x00081b36);
    expect(acpi.configRead(0, 0, 0x48, 4)).toBe(0);
    const legacy = new TestDevicePlatform({ ...env(), layout: defaultLayout(256 << 20, "pciexbar") });
    expect(legacy.configRead(0, 0, 0x48, 4)).toBe(0xb0000005);
    expect(legacy.configRead(0, 0, 0, 4)).toBe(0x27708086);
  });

  it("puts the root port on bus 0 and the test device behind it", () => {
    const p = new TestDevicePlatform(env());
    expect(p.configRead(0, TEST_DEVICE_PORT << 3, 0, 4)).toBe(0x000c1b36);
    expect(p.configRead(1, 0, 0, 4)).toBe(0xffffffff); // bus numbers not programmed yet
    programmed(p);
    expect(p.configRead(1, 0, 0, 4)).toBe(0x00051b36);
    expect(p.configRead(1, 8, 0, 2)).toBe(0xffff); // only device 0 behind a root port
    p.configWrite(1, 0, 0x10, 4, 0xffffffff);
    expect(p.configRead(1, 0, 0x10, 4)).toBe(0xfffff000);
  });
  it("hardwires Interrupt Line to the routed IRQ and swizzles INTx up to the root port's slot", () => {
    const calls: Array<[number, number, boolean]> = [];
    const p = new TestDevicePlatform(env((rid, pin, l) => void calls.push([rid, pin, l])));
    programmed(p);
    const line = p.configRead(1, 0, 0x3c, 1);
    expect(line).toBe(layout.intxIrq(TEST_DEVICE_PORT, 1));
    p.configWrite(1, 0, 0x3c, 1, 0xff);
    expect(p.configRead(1, 0, 0x3c, 1)).toBe(line);
    p.mmioWrite(0xfe800080, 4, 1);
    expect(p.configRead(1, 0, 6, 1) & 8).toBe(8);
    p.configWrite(1, 0, 4, 2, 0x0406); // INTx disable
    p.mmioWrite(0xfe800080, 4, 0);
    expect(calls).toEqual([
      [TEST_DEVICE_PORT << 3, 1, true],
      [TEST_DEVICE_PORT << 3, 1, false],
    ]);
  });
  it("property: hostile config/MMIO traffic never throws and save/restore round-trips", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(3), fc.nat(2), fc.nat(0xff), fc.nat(0x1003), fc.constantFrom<AccessSize>(1, 2, 4), fc.nat(0xffffffff)), { maxLength: 60 }),
        (ops) => {
          const p = new TestDevicePlatform(env());
          programmed(p);
          for (const [kind, bus, devfn, reg, size, v] of ops) {
            if (kind === 0) p.configWrite(bus, devfn, reg, size, v);
            else if (kind === 1) p.configRead(bus, devfn, reg, size);
            else if (kind === 2) p.mmioWrite(0xfe800000 + reg, size, v);
            else p.mmioRead(0xfe800000 + reg, size);
          }
          const q = new TestDevicePlatform(env());
          q.restore(JSON.parse(JSON.stringify(p.save())));
          expect(q.save()).toEqual(p.save());
        },
      ),
    );
  });
  it("keeps an INTx asserted by a vector raise (no MSI, no MSI-X) across save and restore", () => {
    const p = new TestDevicePlatform(env());
    programmed(p);
    p.mmioWrite(0xfe800084, 1, 0);
    expect(p.configRead(1, 0, 6, 1) & 8).toBe(8);
    const q = new TestDevicePlatform(env());
    q.restore(JSON.parse(JSON.stringify(p.save())));
    expect(q.configRead(1, 0, 6, 1) & 8).toBe(8);
    expect(q.save()).toEqual(p.save());
  });

  it("rejects malformed saved state with an error naming the field, and changes nothing", () => {
    const p = new TestDevicePlatform(env());
    programmed(p);
    const before = JSON.stringify(p.save());
    const msg = (u: unknown): string => {
      try {
        p.restore(u);
      } catch (e) {
        expect(e).toBeInstanceOf(StateError);
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(msg({ version: 3 })).toBe("platform.version: 3 is outside [1, 2]");
    const s = p.save();
    s.devices = {};
    expect(msg(s)).toBe("platform.devices.testdev: missing");
    const k = p.save();
    k.devices["testdev"]!.kind = "igb";
    expect(msg(k)).toBe("platform.devices.testdev.kind: igb, this platform has pci-testdev");
    const x = p.save();
    (x.devices as Record<string, unknown>)["ghost"] = { kind: "igb", state: {} };
    expect(msg(x)).toBe("platform.devices.ghost: no such device in this platform");
    const t = p.save();
    (t.devices["testdev"]!.state as { pf: { scratch: number[] } }).pf.scratch[0] = -1;
    expect(msg(t)).toMatch(/^platform\.devices\.testdev\.state/);
    expect(JSON.stringify(p.save())).toBe(before);
  });
});

describe("GuestVm.restore validation", () => {
  it("rejects malformed snapshots before starting an engine", async () => {
    const good: GuestSnapshot = {
      magic: "nicvisor-guest-snapshot",
      version: 2,
      memMiB: 64,
      readyMarker: "x",
      engine: new Uint8Array(16),
      engineChecksum: 0,
      devices: new Uint8Array(0),
    };
    await expect(GuestVm.restore({ ...good, magic: "nope" } as unknown as GuestSnapshot)).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore({ ...good, version: 1 } as unknown as GuestSnapshot)).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore({ ...good, memMiB: 1 })).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore(good)).rejects.toThrow(/checksum/);
  });
});

describe("FailoverPlatform", () => {
  it("saves its L2 switch with the NICs, and refuses a corrupt switch state", () => {
    const p = new FailoverPlatform(env());
    // One learned address, written into the saved state, must come back on a fresh platform.
    const s = JSON.parse(JSON.stringify(p.save())) as { devices: Record<string, { state: { entries: unknown[]; ports: { id: number }[] } }> };
    const sw = s.devices["l2-switch"]!.state;
    expect(sw.ports.length).toBe(3);
    sw.entries.push({ vlan: 0, mac: "52:54:00:12:34:58", port: sw.ports[2]!.id, ageNs: 0 });
    const q = new FailoverPlatform(env());
    q.restore(s);
    expect(q.net.macTable().map((e) => e.mac)).toEqual(["52:54:00:12:34:58"]);
    sw.entries.push({ vlan: 0, mac: "52:54:00:12:34:59", port: 99, ageNs: 0 });
    expect(() => new FailoverPlatform(env()).restore(s)).toThrow(/platform\.devices\.l2-switch\.state/);
  });
});

describe("FailoverPlatform with hidePrimary (QEMU's failover=on)", () => {
  /** The root port's PCIe capability offset (walks its capability list). */
  function pcieCap(port: FailoverPlatform["vfPort"]): number {
    for (let at = port.fn.configRead(0x34, 1); at !== 0; at = port.fn.configRead(at + 1, 1)) if (port.fn.configRead(at, 1) === 0x10) return at;
    throw new Error("no PCIe capability");
  }
  /** What the guest's pciehp does on the button: power the slot on or off (Slot Control's Power Controller Control). */
  function power(port: FailoverPlatform["vfPort"], on: boolean): void {
    const at = pcieCap(port) + 0x18;
    const v = port.fn.configRead(at, 2);
    port.fn.configWrite(at, 2, on ? v & ~0x400 : v | 0x400);
  }
  const STANDBY = 1n << 62n;

  it("hides the VF until the driver takes STANDBY; a migration unplugs it through the slot and waits; an aborted one plugs it back", async () => {
    const p = new FailoverPlatform(env(), { hidePrimary: true });
    expect(p.vfPort.occupied).toBe(false);
    p.standby.onActivate?.(0n, false);
    expect(p.vfPort.occupied).toBe(false); // no STANDBY, no VF
    p.standby.onActivate?.(STANDBY, false);
    expect(p.vfPort.occupied).toBe(true);
    expect(p.standbyCounts.plugs).toBe(1);
    power(p.vfPort, true); // the guest's pciehp takes the card
    expect(p.vfPort.reachable()).toEqual([p.shim]);
    const hooks = new Map(p.liveHooks());
    const standby = hooks.get("failover-standby")!;
    let done = false;
    const unplug = standby.beforeMigration!({ transparent: false }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 60));
    expect(done).toBe(false); // waits for the guest
    power(p.vfPort, false);
    await unplug;
    expect(p.vfPort.occupied).toBe(false);
    expect(p.standbyCounts.unplugs).toBe(1);
    // The state of an empty slot loads into a platform made the same way, not into one with the VF present.
    const saved = p.saveBytes();
    expect(() => new FailoverPlatform(env(), { hidePrimary: true }).restoreBytes(saved)).not.toThrow();
    expect(() => new FailoverPlatform(env()).restoreBytes(saved)).toThrow(/occupied/);
    standby.afterAbort!();
    expect(p.vfPort.occupied).toBe(true);
    expect(p.standbyCounts.plugs).toBe(2);
  });

  it("gives up on a guest that never lets the VF go, naming pciehp; the VF stays", async () => {
    const p = new FailoverPlatform(env(), { hidePrimary: true, unplugTimeoutMs: 100 });
    p.standby.onActivate?.(STANDBY, false);
    power(p.vfPort, true);
    const standby = new Map(p.liveHooks()).get("failover-standby")!;
    await expect(standby.beforeMigration!({ transparent: false })).rejects.toThrow(/did not power the VF's slot off within 100 ms \(is pciehp loaded\?\)/);
    expect(p.vfPort.occupied).toBe(true);
  });
});

describe("PciPlatform records", () => {
  it("a restored platform's devices wait in RESUMING until the platform runs them", () => {
    const p = new TestDevicePlatform(env());
    const q = new TestDevicePlatform(env());
    q.restoreBytes(p.saveBytes());
    expect([...q.devices.values()].map((d) => d.migration.state)).toEqual(["RESUMING"]);
    expect(q.setMigrationState("RUNNING").size).toBe(0);
    expect([...q.devices.values()].map((d) => d.migration.state)).toEqual(["RUNNING"]);
  });

  it("refuses the names the topology's and the machine's records use", () => {
    const p = new PciPlatform(env());
    expect(() => p.add(createTestDeviceModel(), { name: "pci", slot: 3 })).toThrow(/reserved/);
    expect(() => p.add(createTestDeviceModel(), { name: "machine", slot: 3 })).toThrow(/reserved/);
  });

  it("checks each record's kind and version, and takes a record named __proto__ as an unknown device", () => {
    const p = new TestDevicePlatform(env());
    const recs = p.saveRecords();
    const msg = (r: typeof recs): string => {
      try {
        p.parseRecords(r);
      } catch (e) {
        expect(e).toBeInstanceOf(StateError);
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(msg(recs)).toBe("accepted");
    expect(msg(recs.map((r) => (r.name === "pci" ? { ...r, kind: "igb" } : r)))).toBe("platform.pci.kind: igb, expected pci-root");
    expect(msg(recs.map((r) => (r.name === "testdev" ? { ...r, version: 99 } : r)))).toMatch(/^platform\.testdev\.version: record version 99/);
    expect(msg([...recs, { name: "__proto__", kind: "igb", version: 2, state: {} }])).toBe("platform.devices.__proto__: no such device in this platform");
  });
});
