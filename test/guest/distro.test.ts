/**
 * Real-guest tests of the image behaving like a distro where the switch work needs it: drivers
 * bind without a manual modprobe, at boot (coldplug over the devices already present) and when a
 * device appears later (the hotplug helper loads the module its modalias names, as udev does on
 * Debian); the kernel's own module requests resolve through modules.alias; `ip` in the console
 * shell is iproute2's; the VLAN, bridge, bonding, veth and macvlan modules load and work.
 *
 * Three boots, one after the other: virtio-net (coldplug, ip, the stacking modules), the 82576
 * (igb at boot, igbvf for VFs made with sriov_numvfs) and virtio-net with `nv.autoload=0`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { IgbPlatform, VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest } from "./boot.js";
import { skipTest } from "../skip.js";

/** The driver bound to a net device, or "" when there is none. */
async function driverOf(vm: GuestVm, dev: string): Promise<string> {
  return (await vm.exec(`readlink /sys/class/net/${dev}/device/driver | sed 's#.*/##'`)).output.trim();
}

/** Loaded modules, from /proc/modules. */
async function modules(vm: GuestVm): Promise<string[]> {
  return (await vm.exec("cut -d' ' -f1 /proc/modules")).output.trim().split(/\s+/);
}

describe("virtio-net guest booted with no nv.modules", () => {
  let vm: GuestVm | undefined;
  let skip: string | undefined;

  beforeAll(async () => {
    const g = await bootTestGuest((env) => new VirtioNetPlatform(env));
    if ("skip" in g) return void (skip = g.skip);
    vm = g.vm;
  }, 300_000);

  afterAll(async () => {
    await vm?.dispose();
  });

  it("has virtio_net bound to the NIC at the ready marker (coldplug: virtio_pci by PCI modalias, then virtio_net by virtio modalias)", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(await driverOf(vm, "eth0")).toBe("virtio_net");
    const mods = await modules(vm);
    for (const m of ["virtio_pci", "virtio_net", "net_failover", "failover"]) expect(mods).toContain(m);
    // Nothing else was loaded: the PCI test device, the root ports and the host bridge match no module.
    expect(mods).not.toContain("igb");
    expect((await vm.exec("ps -o args | grep '^uevent /sbin/nv-hotplug'")).status).toBe(0);
  });

  it("runs iproute2's ip for plain `ip` in the console shell, not busybox's applet", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ip -V");
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/^ip utility, iproute2-6\.\d+/);
    // Something only iproute2's ip has: detailed link attributes.
    expect((await vm.exec("ip -d link show eth0")).output).toMatch(/minmtu \d+ maxmtu \d+/);
  });

  it("loads 8021q, bridge, bonding, veth and macvlan with their dependencies, and makes each kind of link", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const load = await vm.exec("modprobe -a 8021q bridge bonding veth macvlan", { timeoutMs: 60_000 });
    expect(load.status, load.output).toBe(0);
    const mods = await modules(vm);
    for (const m of ["8021q", "garp", "mrp", "stp", "llc", "bridge", "bonding", "tls", "veth", "macvlan"]) expect(mods).toContain(m);
    const add = await vm.exec(
      [
        "ip link set eth0 up",
        "ip link add v0 type veth peer name v1",
        "ip link add br0 type bridge",
        "ip link set v1 master br0",
        "ip link add link eth0 name eth0.5 type vlan id 5",
        "ip link add mv0 link eth0 type macvlan mode bridge",
        // bonding made bond0 when it loaded (max_bonds=1), as it does on Debian.
        "ip link add bond1 type bond",
      ].join(" && "),
      { timeoutMs: 60_000 },
    );
    expect(add.status, add.output).toBe(0);
    const show = (await vm.exec("ip -d link show", { timeoutMs: 30_000 })).output;
    expect(show).toMatch(/v0@v1: .*\n.*\n\s+veth/);
    expect(show).toMatch(/v1@v0: .*master br0/);
    expect(show).toMatch(/br0: .*\n.*\n\s+bridge /);
    expect(show).toMatch(/eth0\.5@eth0: .*\n.*\n\s+vlan protocol 802\.1Q id 5 /);
    expect(show).toMatch(/mv0@eth0: .*\n.*\n\s+macvlan mode bridge /);
    expect(show).toMatch(/bond0: .*\n.*\n\s+bond mode balance-rr /);
    expect(show).toMatch(/bond1: .*\n.*\n\s+bond mode balance-rr /);
    await vm.exec("for l in v0 br0 eth0.5 mv0 bond1; do ip link del $l; done", { timeoutMs: 30_000 });
  });
});

describe("82576 guest booted with no nv.modules", () => {
  let vm: GuestVm | undefined;
  let skip: string | undefined;
  const PF = "0000:02:00.0";

  beforeAll(async () => {
    const g = await bootTestGuest((env) => new IgbPlatform(env));
    if ("skip" in g) return void (skip = g.skip);
    vm = g.vm;
  }, 300_000);

  afterAll(async () => {
    await vm?.dispose();
  });

  it("has igb bound to the PF at the ready marker, and modprobe igb is then a no-op", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect((await vm.exec(`readlink /sys/bus/pci/devices/${PF}/driver`)).output.trim()).toMatch(/\/igb$/);
    expect(await driverOf(vm, "eth0")).toBe("igb");
    expect((await vm.exec("modprobe igb")).status).toBe(0);
    expect(await modules(vm)).not.toContain("igbvf");
  });

  it("binds igbvf to both VFs made with sriov_numvfs, with no modprobe igbvf", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const bound = "ls /sys/bus/pci/drivers/igbvf 2>/dev/null | grep -c '^0000:'";
    const r = await vm.exec(
      `echo 2 > /sys/bus/pci/devices/${PF}/sriov_numvfs && i=0; while [ "$(${bound})" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ls /sys/bus/pci/drivers/igbvf`,
      { timeoutMs: 60_000 },
    );
    expect(r.output).toMatch(/0000:02:10\.0/);
    expect(r.output).toMatch(/0000:02:10\.2/);
    expect(await modules(vm)).toContain("igbvf");
    expect(await vm.dmesg()).toMatch(/igbvf 0000:02:10\.2: Intel\(R\) 82576 Virtual Function/);
  });

  it("gives a VF the MAC the admin set once the VF driver is reloaded, as igb asks", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    // igbvf bound the VF as it appeared, before there was an admin MAC: igb takes the new MAC
    // and says "Reload the VF driver to make this change effective".
    const r = await vm.exec(
      `ip link set eth0 up && sleep 3 && ip link set eth0 vf 0 mac 52:54:00:aa:bb:01 && rmmod igbvf && modprobe igbvf && sleep 4 && cat /sys/bus/pci/devices/0000:02:10.0/net/*/address`,
      { timeoutMs: 60_000 },
    );
    expect(r.output.trim()).toBe("52:54:00:aa:bb:01");
    expect(await vm.dmesg()).toMatch(/Reload the VF driver to make this change effective/);
  });

  it("lets the kernel load a link kind's module itself (request_module through /sbin/modprobe and modules.alias)", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(await modules(vm)).not.toContain("veth");
    const r = await vm.exec("ip link add d0 type veth peer name d1 && ip link del d0", { timeoutMs: 60_000 });
    expect(r.status, r.output).toBe(0);
    expect(await modules(vm)).toContain("veth");
  });
});

describe("virtio-net guest booted with nv.autoload=0", () => {
  let vm: GuestVm | undefined;
  let skip: string | undefined;

  beforeAll(async () => {
    const g = await bootTestGuest((env) => new VirtioNetPlatform(env), { append: "nv.autoload=0" });
    if ("skip" in g) return void (skip = g.skip);
    vm = g.vm;
  }, 300_000);

  afterAll(async () => {
    await vm?.dispose();
  });

  it("leaves the NIC without a driver and runs no hotplug listener", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(await modules(vm)).not.toContain("virtio_pci");
    expect((await vm.exec("ls /sys/class/net")).output.trim().split(/\s+/)).toEqual(["lo"]);
    expect((await vm.exec("ps -o args | grep '^uevent'")).status).not.toBe(0);
    // Loading by hand still works, as before.
    expect((await vm.exec("modprobe virtio_pci && modprobe virtio_net && readlink /sys/class/net/eth0/device/driver", { timeoutMs: 60_000 })).output).toMatch(/\/virtio_net\n$/);
  });
});
