/**
 * `nicvisor demo`: the main demo. Boots Debian's i386 kernel on v86 with nicvisor's PCI platform
 * (host bridge with ECAM, a PCIe root port with a hotplug slot, the PCI test device with SR-IOV),
 * then shows, from inside the guest, what Linux made of it: the devices lspci sees, ECAM and pciehp
 * in the kernel log, the test device's registers through its BAR, and two VFs created with
 * `sriov_numvfs`, and Debian's virtio_net pinging nicvisor's host stub through nicvisor's
 * virtio-net — next to nicvisor's own view of the same functions and counters. It ends with the
 * failover switch: a second guest with one 82576 VF (Debian's igbvf), whose backing nicvisor
 * switches between the host NIC's VF (pass-through) and its own emulation while the guest pings,
 * with the counts on both sides.
 * @module
 */
import { readFileSync } from "node:fs";
import { UsageError, type CliCommand, type CliIo } from "../command.js";
import { GuestVm } from "../../vmm/harness/runner.js";
import { FailoverVfPlatform, VirtioNetPlatform } from "../../vmm/platforms.js";
import { VR } from "../../devices/igb/regs.js";
import type { PlatformBus, PlatformEnv } from "../../vmm/machine-platform.js";
import { buildGuestImage } from "../../vmm/host/guest-image/index.js";

const USAGE = `usage: nicvisor demo [--keep-console]

Boots a Debian Linux guest on nicvisor's emulated PCI platform and shows what the guest's own
drivers and tools see. The first run builds the guest image from Debian packages (needs root and
apt); later runs reuse it.

  --keep-console   also print the guest's serial console as it boots`;

function hex(n: number, w = 8): string {
  return "0x" + n.toString(16).padStart(w, "0");
}

async function step(io: CliIo, vm: GuestVm, title: string, cmd: string): Promise<string> {
  io.out(`\n== ${title}\n$ ${cmd}\n`);
  const r = await vm.exec(cmd, { timeoutMs: 60_000 });
  io.out(r.output.endsWith("\n") || r.output === "" ? r.output : r.output + "\n");
  if (r.status !== 0) io.out(`(exit status ${r.status})\n`);
  return r.output;
}

/** The `demo` command. */
export const command: CliCommand = {
  name: "demo",
  summary: "boot a Debian guest on nicvisor's PCI platform and show what its drivers see",
  usage: USAGE,
  async run(argv, io) {
    const keepConsole = argv.includes("--keep-console");
    for (const a of argv) if (a !== "--keep-console") throw new UsageError(`unknown option ${a}`);
    io.out("nicvisor demo: guest image (Debian i386 kernel, busybox, pciutils)...\n");
    const img = await buildGuestImage({ log: (l) => io.out(`  ${l}\n`) });
    io.out(`nicvisor demo: booting Linux ${img.kernelVersion} on v86 with nicvisor's PCI platform...\n`);
    const vm = await bootDemoGuest(io, img, keepConsole, (env) => new VirtioNetPlatform(env));
    try {
      const p = vm.machine.platform as VirtioNetPlatform;
      io.out("\n== nicvisor's view: functions and the BARs they decode\n");
      for (const { bus, devfn, fn } of p.root.enumerate()) {
        const name = `${bus.toString(16).padStart(2, "0")}:${(devfn >>> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;
        const id = `${fn.config.get16(0).toString(16).padStart(4, "0")}:${fn.config.get16(2).toString(16).padStart(4, "0")}`;
        const bars = fn.barAddresses().flatMap((a, i) => (a === undefined ? [] : [`BAR${i}@${hex(a)}`]));
        io.out(`  ${name} ${id}${fn.isVf ? " (VF)" : ""}  ${bars.join(" ")}\n`);
      }
      await step(io, vm, "the guest's PCI devices (Debian's lspci)", "lspci -nn");
      await step(io, vm, "nicvisor's ACPI tables, ECAM, the root port's hotplug slot and SR-IOV in the kernel log", "dmesg | grep -E 'ACPI: (MCFG|DSDT|PCI Root)|_OSC: OS now|Using MMCONFIG|pciehp|SR-IOV|VF BAR' | head -14");
      await step(io, vm, "the test device's capabilities, decoded by lspci inside the guest", "lspci -vv -s 01:00.0 2>/dev/null | grep -E 'Capabilities|Region|Initial VFs|VF offset|Number of VFs'");
      const bar = p.device.pf.barAddress(0);
      if (bar !== undefined) {
        await step(io, vm, "the test device's ID register, read by the guest through its BAR", `devmem ${hex(bar)} 32`);
        await step(io, vm, "a scratch register written by the guest...", `devmem ${hex(bar + 0x10)} 32 0x1234abcd; echo written`);
        io.out(`...and read back by nicvisor's model: ${hex(p.root.mmioRead(bar + 0x10, 4))}\n`);
      }
      await step(
        io,
        vm,
        "SR-IOV: bind pci-pf-stub and create two VFs",
        "modprobe pci-pf-stub && echo 1b36 0005 > /sys/bus/pci/drivers/pci-pf-stub/new_id && echo 2 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs && lspci -nn -s 01:",
      );
      io.out(`\nnicvisor sees ${p.device.sriov.liveVfs().length} live VFs at routing IDs ${p.device.sriov.liveVfs().map((v) => hex(v.rid, 4)).join(", ")}\n`);
      await step(
        io,
        vm,
        "virtio-net: Debian's virtio_net drives nicvisor's device; ping the host stub at 10.0.2.2",
        "modprobe virtio_pci && modprobe virtio_net && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ethtool -i eth0 | head -2 && ping -c 5 -i 0.2 10.0.2.2",
      );
      const c = p.nic.counters;
      io.out(`nicvisor's virtio-net counted ${c.txFrames} frames out, ${c.rxFrames} in; the host stub answered ${p.stub.counters.echoReplies} echo requests\n`);
    } finally {
      await vm.dispose();
    }
    await failoverDemo(io, img, keepConsole);
    return 0;
  },
};

/** Boots the demo image on `platform` and waits for its shell (the VM is disposed on failure). */
async function bootDemoGuest(io: CliIo, img: Awaited<ReturnType<typeof buildGuestImage>>, keepConsole: boolean, platform: (env: PlatformEnv) => PlatformBus): Promise<GuestVm> {
  const t0 = performance.now();
  const vm = await GuestVm.boot({
    kernel: readFileSync(img.kernel),
    initrd: readFileSync(img.initrd),
    // The kernel the builder decompressed on the host, so the guest skips its own decompressor.
    ...(img.vmlinux !== undefined ? { kernelElf: readFileSync(img.vmlinux) } : {}),
    append: img.cmdline.join(" "),
    platform,
  });
  try {
    if (keepConsole) vm.machine.onSerial((b) => io.out(String.fromCharCode(b)));
    await vm.waitReady(240_000);
  } catch (e) {
    await vm.dispose();
    throw e;
  }
  io.out(`nicvisor demo: guest ready after ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return vm;
}

/**
 * The failover switch: a VF-only guest pings through its one 82576 VF while nicvisor switches the
 * VF's backing (host NIC's VF <-> emulated 82576) every 300 ms; the guest's ping and nicvisor's
 * counters are printed side by side.
 */
async function failoverDemo(io: CliIo, img: Awaited<ReturnType<typeof buildGuestImage>>, keepConsole: boolean): Promise<void> {
  io.out("\n== the failover switch: a second guest whose only NIC is an 82576 VF (Debian's igbvf)\n");
  const vm = await bootDemoGuest(io, img, keepConsole, (env) => new FailoverVfPlatform(env));
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    const p = vm.machine.platform as FailoverVfPlatform;
    await step(io, vm, "igbvf binds the VF and brings the link up", "sleep 1; ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && sleep 3 && ethtool -i eth0 | head -1 && ping -c 2 -W 2 10.0.2.2 | tail -2");
    const stats = (): number[] => [VR.VFGPTC, VR.VFGPRC].map((off) => p.model.devices[p.failover.active].regionRead(0, off, 4));
    const [tx0, rx0] = stats();
    const ticks: string[] = [];
    timer = setInterval(() => {
      const to = p.failover.active === "passthrough" ? "emulated" : "passthrough";
      const r = p.failover.switchTo(to);
      ticks.push(r.ok ? `${to === "emulated" ? "E" : "P"}` : "!");
    }, 300);
    const out = await step(io, vm, "ping 40 times while nicvisor switches the VF's backing every 300 ms", "ping -c 40 -i 0.1 -W 2 10.0.2.2 | tail -3");
    clearInterval(timer);
    timer = undefined;
    const [tx1, rx1] = stats();
    const st = p.failover.stats();
    const toEmu = ticks.filter((t) => t === "E").length;
    io.out(`nicvisor switched ${st.switches} times (${toEmu} to emulation, ${st.switches - toEmu} back to pass-through, ${st.failures} failed): ${ticks.join("")}\n`);
    io.out(`the VF's own counters (as the guest reads them) moved by ${(tx1! - tx0!) >>> 0} frames out and ${(rx1! - rx0!) >>> 0} in; frames queued during switches ${st.framesQueued}, dropped ${st.framesDropped}; worst blackout ${(st.worstBlackoutWallNs / 1e6).toFixed(2)} ms\n`);
    io.out(/ 0% packet loss/.test(out) ? "the guest lost nothing and noticed nothing.\n" : "the guest saw loss: see above.\n");
    await step(io, vm, "and igbvf logged nothing about it", "dmesg | grep -c -iE 'igbvf.*(reset|link is down|watchdog)' || true");
  } finally {
    if (timer !== undefined) clearInterval(timer);
    await vm.dispose();
  }
}
