import { describe, it, expect } from "vitest";
import fc from "fast-check";
import type { AccessSize } from "../src/vmm/cpu/backend.js";
import { Conf1Ports, PlatformMmio, defaultLayout } from "../src/vmm/machine-platform.js";
import type { PlatformBus } from "../src/vmm/machine-platform.js";
import { StandinPlatform, StandinStateError } from "../src/vmm/machine-standin.js";
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
  };
}

describe("conf1", () => {
  it("decodes bus/devfn/register, byte lanes and AMD extended register bits", () => {
    const r = recorder();
    const c = new Conf1Ports(r);
    c.write(0xcf8, 4, 0x80031a44 | (1 << 24));
    expect(c.read(0xcf8, 4)).toBe(0x81031a44);
    c.read(0xcfe, 2);
    c.write(0xcfd, 1, 0xab);
    expect(r.log).toEqual(["cr 3:26:326/2", "cw 3:26:325/1=ab"]);
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
    const m = new PlatformMmio(r, layout);
    m.read(layout.ecamBase + (2 << 20) + (0x19 << 12) + 0x104, 4);
    m.write(layout.ecamBase + 0x3e, 2, 0x40);
    m.read(layout.ecamBase + 0x3, 2); // misaligned: all ones, not forwarded
    m.write(0xfebff000, 4, 7);
    expect(r.log).toEqual(["cr 2:25:260/4", "cw 0:0:62/2=40", "mw febff000/4=7"]);
  });
});

describe("stand-in platform", () => {
  it("sizes BAR0 as 4 KiB memory and answers all ones for absent functions", () => {
    const p = new StandinPlatform(layout);
    p.configWrite(0, 0x18, 0x10, 4, 0xffffffff);
    expect(p.configRead(0, 0x18, 0x10, 4)).toBe(0xfffff000);
    expect(p.configRead(0, 0x20, 0, 4)).toBe(0xffffffff);
    expect(p.configRead(1, 0, 0, 2)).toBe(0xffff);
    expect(p.configRead(0, 0, 0x48, 4)).toBe(0xb0000005);
  });
  it("raises INTx only while Command.INTx-disable is clear, and reports Status.Interrupt", () => {
    const calls: boolean[] = [];
    const p = new StandinPlatform(layout, { msi: () => undefined, intx: (_r, _pin, l) => void calls.push(l) });
    p.setScratchIntx(true);
    expect(p.configRead(0, 0x18, 6, 1) & 8).toBe(8);
    p.configWrite(0, 0x18, 4, 2, 0x0400);
    p.setScratchIntx(false);
    expect(calls).toEqual([true, false]);
    expect(p.intxAsserts).toBe(1);
  });
  it("property: hostile config/MMIO traffic never throws and save/restore round-trips", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(3), fc.nat(0xff), fc.nat(0x1003), fc.constantFrom<AccessSize>(1, 2, 4), fc.nat(0xffffffff)), { maxLength: 60 }),
        (ops) => {
          const p = new StandinPlatform(layout);
          for (const [kind, devfn, reg, size, v] of ops) {
            if (kind === 0) p.configWrite(0, devfn & 0x1f ? devfn : 0x18, reg, size, v);
            else if (kind === 1) p.configRead(0, devfn, reg, size);
            else if (kind === 2) p.mmioWrite(0xfebff000 + reg, size, v);
            else p.mmioRead(0xfebff000 + reg, size);
          }
          const q = new StandinPlatform(layout);
          q.restore(JSON.parse(JSON.stringify(p.save())));
          expect(q.save()).toEqual(p.save());
        },
      ),
    );
  });
  it("SR-IOV: VFs answer at PF + offset + n * stride only while VF Enable is set; NumVFs locked while enabled", () => {
    const p = new StandinPlatform(layout);
    const pf = StandinPlatform.SCRATCH_DEVFN;
    expect(p.configRead(0, pf, 0x100, 4) & 0xffff).toBe(0x0010);
    expect(p.configRead(0, pf, 0x11a, 2)).toBe(StandinPlatform.VF_DEVICE_ID);
    p.configWrite(0, pf, 0x110, 2, 9); // above TotalVFs: ignored
    expect(p.configRead(0, pf, 0x110, 2)).toBe(0);
    p.configWrite(0, pf, 0x110, 2, 2);
    expect(p.configRead(0, pf + 1, 0, 4)).toBe(0xffffffff); // not enabled yet: no function
    p.configWrite(0, pf, 0x108, 2, 0x9);
    expect(p.enabledVfs()).toBe(2);
    p.configWrite(0, pf, 0x110, 2, 3); // locked while enabled
    expect(p.configRead(0, pf, 0x110, 2)).toBe(2);
    expect(p.configRead(0, pf + 1, 0, 4)).toBe(0xffffffff); // VF header: Vendor/Device 0xFFFF
    expect(p.configRead(0, pf + 2, 8, 4)).toBe(p.configRead(0, pf, 8, 4));
    expect(p.configRead(0, pf + 3, 8, 4)).toBe(0xffffffff);
    p.configWrite(0, pf, 0x108, 2, 0);
    expect(p.configRead(0, pf + 1, 8, 4)).toBe(0xffffffff);
  });
  it("rejects malformed saved state with a typed error", () => {
    const p = new StandinPlatform(layout);
    expect(() => p.restore({ version: 2 })).toThrow(StandinStateError);
    const s = p.save();
    s.configs[0] = [0, 1, 2];
    expect(() => p.restore(s)).toThrow(StandinStateError);
    const t = p.save();
    t.regs[0] = -1;
    expect(() => p.restore(t)).toThrow(StandinStateError);
  });
});

describe("GuestVm.restore validation", () => {
  it("rejects malformed snapshots before starting an engine", async () => {
    const good: GuestSnapshot = {
      magic: "nicvisor-guest-snapshot",
      version: 1,
      memMiB: 64,
      readyMarker: "x",
      engine: new Uint8Array(16),
      engineChecksum: 0,
      machine: { version: 1, memMiB: 64, conf1Latch: 0, platform: null },
    };
    await expect(GuestVm.restore({ ...good, magic: "nope" } as unknown as GuestSnapshot)).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore({ ...good, version: 2 } as unknown as GuestSnapshot)).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore({ ...good, memMiB: 1 })).rejects.toBeInstanceOf(SnapshotError);
    await expect(GuestVm.restore(good)).rejects.toThrow(/checksum/);
  });
});
