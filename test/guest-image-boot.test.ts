/**
 * The project image's /init on the VMM: it loads the modules named by `nv.modules=`, sets the
 * hostname, brings lo up, mounts proc/sys/devtmpfs, and the Debian tools run from it (not busybox's
 * applets of the same name).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { GuestVm } from "../src/vmm/harness/runner.js";
import { bootTestGuest } from "./guest/boot.js";
import { skipTest } from "./skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;

beforeAll(async () => {
  // This one boots the bzImage the classic way (the guest runs its own decompressor), so that path
  // stays covered while every other guest test boots the host-decompressed vmlinux directly.
  const g = await bootTestGuest(undefined, { append: "nv.modules=virtio_net,igbvf", direct: false });
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  console.log(`boot to ready with nv.modules=virtio_net,igbvf, guest-side decompression: ${g.bootMs.toFixed(0)} ms (${g.source})`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("the project image's init", () => {
  it("loaded the modules nv.modules= names, with their dependencies, before the marker", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const mods = (await vm.exec("cut -d' ' -f1 /proc/modules | sort")).output.trim().split(/\s+/);
    for (const m of ["virtio_net", "net_failover", "failover", "virtio", "virtio_ring", "igbvf"]) expect(mods).toContain(m);
    expect(mods).not.toContain("igb");
  });

  it("set the hostname, brought lo up and mounted proc, sysfs and devtmpfs", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect((await vm.exec("hostname")).output.trim()).toBe("nicvisor-guest");
    // IFF_UP is bit 0 of the interface flags.
    expect(Number.parseInt((await vm.exec("cat /sys/class/net/lo/flags")).output.trim(), 16) & 1).toBe(1);
    const mounts = (await vm.exec("cut -d' ' -f2,3 /proc/mounts")).output;
    for (const m of ["/proc proc", "/sys sysfs", "/dev devtmpfs"]) expect(mounts).toContain(m);
  });

  it("runs Debian's lspci, setpci, ethtool, ip and iperf3 through the dynamic loader", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("lspci --version; setpci --version; ethtool --version; /usr/bin/ip -V; iperf3 --version | head -1", { timeoutMs: 60_000 });
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/lspci version 3\.\d+/);
    expect(r.output).toMatch(/setpci version 3\.\d+/);
    expect(r.output).toMatch(/ethtool version 6\.\d+/);
    expect(r.output).toMatch(/ip utility, iproute2-6\.\d+/);
    expect(r.output).toMatch(/iperf 3\.\d+/);
  });
});
