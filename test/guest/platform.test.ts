/**
 * Real-guest tests of the VMM: boot Debian's i386 kernel on v86 with nicvisor's PCI platform
 * (conf1, ECAM, the PCI core's host bridge, a root port with a hotplug slot, and the PCI test
 * device with SR-IOV in that slot), once per file; later tests restore the booted snapshot.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { GuestStoppedError, GuestVm } from "../../src/vmm/harness/runner.js";
import type { GuestSnapshot } from "../../src/vmm/harness/runner.js";
import { decodeSnapshot, encodeSnapshot } from "../../src/vmm/harness/runner-snapshot.js";
import { TestDevicePlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, platformAs } from "./boot.js";
import type { PlatformEnv } from "../../src/vmm/machine-platform.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;
let snap: GuestSnapshot | undefined;

const platformOf = (v: GuestVm): TestDevicePlatform => platformAs(v, TestDevicePlatform);

const platform = (env: PlatformEnv): TestDevicePlatform => new TestDevicePlatform(env);
/** The PF as the guest names it (bus 1 is the root port's secondary bus, as the BIOS numbers it). */
const PF = "0000:01:00.0";
/** Host-side view of the test device's BAR0 register `off` (what the model holds). */
function reg(p: TestDevicePlatform, off: number): number {
  const base = p.device.pf.barAddress(0);
  if (base === undefined) throw new Error("BAR0 not decoded");
  return p.root.mmioRead(base + off, 4);
}

beforeAll(async () => {
  const g = await bootTestGuest(platform);
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  console.log(`boot to ready: ${g.bootMs.toFixed(0)} ms (${g.source})`);
}, 240_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("real guest on nicvisor's platform", () => {
  it("runs commands and reports their exit status", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(await vm.exec("echo hello; echo there")).toEqual({ output: "hello\nthere\n", status: 0 });
    expect((await vm.exec("exit 3")).status).toBe(3);
  });

  it("parses nicvisor's ACPI tables without errors and takes the host bridge, MCFG, _PRT and _OSC from them", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const d = await vm.dmesg();
    for (const sig of ["RSDP", "XSDT", "FACP", "DSDT", "APIC", "MCFG"]) expect(d).toMatch(new RegExp(`ACPI: ${sig} 0x0+F00[0-9A-F]{3} .*NICVSR`));
    expect(d).toMatch(/ACPI: FACS 0x0+F00040 000040/);
    expect(d).toMatch(/ACPI: 1 ACPI AML tables successfully acquired and loaded/);
    expect(d).toMatch(/ACPI: Interpreter enabled/);
    expect(d).toMatch(/ACPI: PCI Root Bridge \[PCI0\] \(domain 0000 \[bus 00-3f\]\)/);
    expect(d).toMatch(/_OSC: OS now controls \[PCIeHotplug [^\]]*PME AER PCIeCapability/);
    expect(d).toMatch(/ACPI: PCI: Interrupt link LI0A configured for IRQ 10/);
    expect(d).toMatch(/PCI: Using ACPI for IRQ routing/);
    expect(d).toMatch(/ACPI: Using IOAPIC for interrupt routing/);
    // No ACPICA complaint of any kind ("ACPI Error", "ACPI BIOS Error", "ACPI Warning", "[Firmware Bug]").
    expect(d).not.toMatch(/ACPI (BIOS )?(Error|Warning)|Firmware Bug|ACPI Exception/);
  });

  it("uses MMCONFIG (ECAM) on the host bridge, with no resource conflicts", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const d = await vm.dmesg();
    expect(d).toMatch(/PCI: MMCONFIG for domain 0000 \[bus 00-3f\] at \[mem 0xb0000000-0xb3ffffff\]/);
    expect(d).toMatch(/PCI: Using MMCONFIG for extended config space/);
    expect(d).not.toMatch(/conflict/i);
    const ids = await vm.exec("for d in /sys/bus/pci/devices/*; do echo ${d##*/} $(cat $d/vendor $d/device); done");
    expect(ids.output).toContain("0000:00:00.0 0x1b36 0x0008");
    expect(ids.output).toContain("0000:00:03.0 0x1b36 0x000c");
    expect(ids.output).toContain(`${PF} 0x1b36 0x0005`);
    // Linux's pciehp drives the root port's slot.
    expect(d).toMatch(/pciehp: Slot #3 AttnBtn\+ PwrCtrl\+/);
    // Extended config space is reachable: sysfs exposes 4096 bytes of a PCIe function only through ECAM.
    expect((await vm.exec(`wc -c < /sys/bus/pci/devices/${PF}/config`)).output.trim()).toBe("4096");
    expect((await vm.exec("wc -c < /sys/bus/pci/devices/0000:00:03.0/config")).output.trim()).toBe("4096");
  });

  it("reads and writes the test device's BAR with devmem, also after the guest moves the BAR", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    await vm.exec(`echo 1 > /sys/bus/pci/devices/${PF}/enable`);
    const base = p.device.pf.barAddress(0);
    expect(base).toBeDefined();
    const hex = (n: number): string => "0x" + n.toString(16);
    expect((await vm.exec(`devmem ${hex(base!)} 32`)).output.trim().toLowerCase()).toBe("0x4e560001");
    expect((await vm.exec(`devmem ${hex(base! + 0x18)} 32 0xcafef00d`)).status).toBe(0);
    expect(reg(p, 0x18)).toBe(0xcafef00d);
    p.root.mmioWrite(base! + 0x24, 4, 0x12345678);
    expect((await vm.exec(`devmem ${hex(base! + 0x24)} 32`)).output.trim().toLowerCase()).toBe("0x12345678");
    expect((await vm.exec(`devmem ${hex(base! + 0x26)} 16`)).output.trim().toLowerCase()).toBe("0x1234");
    // A 16-bit store reaches the model as one 16-bit write, not two byte writes.
    expect((await vm.exec(`devmem ${hex(base! + 0x26)} 16 0xbeef`)).status).toBe(0);
    expect(reg(p, 0x8c)).toBe(2);
    expect(reg(p, 0x24)).toBe(0xbeef5678);
    // Move BAR0 inside the root port's window by writing config space through sysfs (bytes 0x10-0x13).
    const to = (base! + 0x100000) >>> 0;
    const le = [0, 1, 2, 3].map((k) => "\\" + ((to >>> (8 * k)) & 0xff).toString(8).padStart(3, "0")).join("");
    const mv = await vm.exec(`printf '${le}' | dd of=/sys/bus/pci/devices/${PF}/config bs=1 seek=16 conv=notrunc 2>&1`);
    expect(mv.status).toBe(0);
    expect(p.device.pf.barAddress(0)).toBe(to);
    expect((await vm.exec(`devmem ${hex(to + 0x24)} 32`)).output.trim().toLowerCase()).toBe("0xbeef5678");
    expect((await vm.exec(`devmem ${hex(to + 0x10)} 32 0x5a5a0001`)).status).toBe(0);
    expect(reg(p, 0x10)).toBe(0x5a5a0001);
    // The old place and other unclaimed addresses read all ones and drop writes.
    const before = p.root.unclaimed;
    expect((await vm.exec(`devmem ${hex(base! + 0x18)} 32 0x1; devmem ${hex(base! + 0x18)} 32; devmem 0xd0000000 16`)).output.trim().toLowerCase().split(/\s+/)).toEqual(["0xffffffff", "0xffff"]);
    expect(p.root.unclaimed).toBeGreaterThan(before);
    expect(reg(p, 0x18)).toBe(0xcafef00d);
    // Put it back so later tests find it where the snapshot expects.
    const back = [0, 1, 2, 3].map((k) => "\\" + ((base! >>> (8 * k)) & 0xff).toString(8).padStart(3, "0")).join("");
    await vm.exec(`printf '${back}' | dd of=/sys/bus/pci/devices/${PF}/config bs=1 seek=16 conv=notrunc 2>&1`);
    expect(p.device.pf.barAddress(0)).toBe(base);
  });

  it("delivers an MSI vector into the running guest's LAPIC", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    // No handler owns vector 0xdf in this guest, so Linux reports it: proof that it landed.
    expect(vm.machine.cpu.deliverMsi(0xfee00000, 0x00df)).toBe(true);
    const d = await vm.dmesg();
    expect(d).toMatch(/No irq handler for vector/);
  });

  it("counts the test device's INTx in /proc/interrupts once uio_pci_generic binds it", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const bind = await vm.exec(
      "modprobe uio_pci_generic && echo 1b36 0005 > /sys/bus/pci/drivers/uio_pci_generic/new_id && ls /dev/uio0",
    );
    expect(bind.status).toBe(0);
    const count = async (): Promise<number> => {
      const line = (await vm!.exec("grep uio_pci_generic /proc/interrupts")).output;
      return Number(/^\s*\d+:\s+(\d+)/.exec(line)?.[1] ?? NaN);
    };
    expect(await count()).toBe(0);
    const bar = p.device.pf.barAddress(0)!;
    // The device's test-only trigger asserts INTx; uio_pci_generic masks it (Command bit 10) in its handler.
    p.root.mmioWrite(bar + 0x80, 4, 1);
    expect(await count()).toBe(1);
    const status = (await vm.exec(`od -An -tx1 -j4 -N4 /sys/bus/pci/devices/${PF}/config`)).output.trim().split(/\s+/);
    expect(Number.parseInt(status[1] ?? "0", 16) & 0x04).toBe(0x04); // INTx disabled by the handler
    expect(Number.parseInt(status[2] ?? "0", 16) & 0x08).toBe(0x08); // Status.Interrupt still set
    p.root.mmioWrite(bar + 0x80, 4, 0);
    await vm.exec(`echo ${PF} > /sys/bus/pci/drivers/uio_pci_generic/unbind`);
  });

  it("SR-IOV from inside the guest: pci-pf-stub, sriov_numvfs 2 makes two VFs at offset/stride, 0 removes them", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const bind = await vm.exec(`modprobe pci-pf-stub && echo 1b36 0005 > /sys/bus/pci/drivers/pci-pf-stub/new_id && readlink /sys/bus/pci/devices/${PF}/driver`);
    expect(bind.status).toBe(0);
    expect(bind.output).toMatch(/pci-pf-stub/);
    expect((await vm.exec(`cat /sys/bus/pci/devices/${PF}/sriov_totalvfs`)).output.trim()).toBe("8");
    expect((await vm.exec(`echo 2 > /sys/bus/pci/devices/${PF}/sriov_numvfs`)).status).toBe(0);
    const live = p.device.sriov.liveVfs();
    expect(live.length).toBe(2);
    // Linux enabled ARI forwarding on the root port and ARI Capable Hierarchy in the PF, so the
    // test device reports First VF Offset 1 and VF Stride 1.
    expect([p.device.sriov.firstVfOffset, p.device.sriov.vfStride]).toEqual([1, 1]);
    const list = await vm.exec("for d in /sys/bus/pci/devices/*; do echo ${d##*/} $(cat $d/vendor $d/device); done");
    for (const { rid } of live) {
      const name = `0000:${(rid >>> 8).toString(16).padStart(2, "0")}:${((rid >>> 3) & 0x1f).toString(16).padStart(2, "0")}.${rid & 7}`;
      expect(list.output).toContain(`${name} 0x1b36 0x0105`);
    }
    expect(list.output).not.toContain("0000:01:00.3");
    // The VF's own header reads Vendor ID 0xFFFF (sysfs config reads go to the device).
    expect((await vm.exec("od -An -tx1 -N2 /sys/bus/pci/devices/0000:01:00.1/config")).output.trim()).toBe("ff ff");
    expect((await vm.exec(`echo 0 > /sys/bus/pci/devices/${PF}/sriov_numvfs; ls /sys/bus/pci/devices`)).output).not.toContain("00.1");
    expect(p.device.sriov.liveVfs().length).toBe(0);
  });

  it("snapshots, restores to a working shell with the device state, and keeps both apart", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const bar = p.device.pf.barAddress(0)!;
    p.root.mmioWrite(bar + 0x2c, 4, 0x77);
    snap = await vm.snapshot();
    p.root.mmioWrite(bar + 0x2c, 4, 0x99);
    // Through the byte encoding, as a snapshot cached in a file would travel.
    const bytes = encodeSnapshot(snap);
    const td = performance.now();
    const decoded = decodeSnapshot(bytes);
    const decodeMs = performance.now() - td;
    const t0 = performance.now();
    const vm2 = await GuestVm.restore(decoded, { platform });
    try {
      const r = await vm2.exec("echo restored");
      const ms = performance.now() - t0;
      console.log(`snapshot ${(snap.engine.length / 1e6).toFixed(1)} MB; decode ${decodeMs.toFixed(0)} ms; restore to first command answered: ${ms.toFixed(0)} ms`);
      expect(r).toEqual({ output: "restored\n", status: 0 });
      expect(reg(platformOf(vm2), 0x2c)).toBe(0x77);
      expect((await vm2.exec(`devmem 0x${(bar + 0x2c).toString(16)} 32`)).output.trim().toLowerCase()).toBe("0x00000077");
    } finally {
      await vm2.dispose();
    }
    expect((await vm.exec("echo original")).output).toBe("original\n");
  });

  /** Restores the snapshot, runs `cmd` and returns how the guest stopped (and the VM, disposed). */
  async function stopWith(cmd: string): Promise<{ err: unknown; vm: GuestVm }> {
    const v = await GuestVm.restore(snap!, { platform });
    try {
      return { err: await v.exec(cmd, { timeoutMs: 20_000 }).catch((e: unknown) => e), vm: v };
    } finally {
      await v.dispose();
    }
  }

  it("stops cleanly with the reason when the guest halts for good", async (ctx) => {
    if (skip !== undefined || snap === undefined) return skipTest(ctx, `SKIPPED: ${skip ?? "no snapshot"}`);
    const { err } = await stopWith("halt -f");
    expect(err).toBeInstanceOf(GuestStoppedError);
    expect((err as GuestStoppedError).reason.kind).toBe("halted");
  });

  it("stops cleanly with a poweroff reason when the guest shuts down through ACPI S5", async (ctx) => {
    if (skip !== undefined || snap === undefined) return skipTest(ctx, `SKIPPED: ${skip ?? "no snapshot"}`);
    const { err } = await stopWith("poweroff -f");
    expect(err).toBeInstanceOf(GuestStoppedError);
    expect((err as GuestStoppedError).reason).toEqual({ kind: "poweroff", detail: "the guest entered ACPI S5 (soft off)" });
  });

  it("stops cleanly with the reason when the guest resets the CPU", async (ctx) => {
    if (skip !== undefined || snap === undefined) return skipTest(ctx, `SKIPPED: ${skip ?? "no snapshot"}`);
    const { err, vm: v } = await stopWith("echo b > /proc/sysrq-trigger");
    expect(err).toBeInstanceOf(GuestStoppedError);
    expect((err as GuestStoppedError).reason.kind).toBe("triple-fault");
    expect(v.machine.stopReason?.kind).toBe("triple-fault");
  });
});

describe("Debian's tools inside the guest", () => {
  it("lspci -vvv decodes the host bridge, the root port's slot and the test device's SR-IOV capability", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("lspci -vvv", { timeoutMs: 60_000 });
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/00:00\.0 Host bridge: Red Hat, Inc\. QEMU PCIe Host bridge/);
    expect(r.output).toMatch(/00:03\.0 PCI bridge: Red Hat, Inc\. QEMU PCIe Root port/);
    expect(r.output).toMatch(/SltCap:\s+AttnBtn\+ PwrCtrl\+ MRL- AttnInd\+ PwrInd\+ HotPlug\+/);
    expect(r.output).toMatch(/Kernel driver in use: pcieport/);
    expect(r.output).toMatch(/01:00\.0 Unclassified device \[00ff\]: Red Hat, Inc\. QEMU PCI Test Device/);
    expect(r.output).toMatch(/Single Root I\/O Virtualization \(SR-IOV\)/);
    expect(r.output).toMatch(/Initial VFs: 8, Total VFs: 8, Number of VFs: 0/);
    expect(r.output).toMatch(/MSI-X: Enable- Count=4/);
  });

  it("loads every NIC module the image ships with modprobe", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("for m in virtio_pci virtio_net failover net_failover igb igbvf pci-pf-stub uio_pci_generic; do modprobe $m || echo FAILED $m; done; lsmod | cut -d' ' -f1 | sort", { timeoutMs: 60_000 });
    expect(r.output).not.toMatch(/FAILED/);
    for (const m of ["virtio_net", "net_failover", "igb", "igbvf", "pci_pf_stub", "uio_pci_generic"]) expect(r.output.split("\n")).toContain(m);
  });
});
