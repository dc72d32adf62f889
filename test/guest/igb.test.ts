/**
 * Real-guest tests of nicvisor's 82576 (behind root port 00:05.0, so the PF is 02:00.0): Debian's
 * igb binds the PF, and igbvf binds VFs created with sriov_numvfs, the PF's igb answering their
 * mailbox. Traffic goes to the host stub (10.0.2.2) on the NIC's uplink.
 *
 * Debian's busybox shell runs its own applets before PATH, so iproute2 is called as /usr/bin/ip.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { IgbPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;
const PF = "0000:02:00.0";

const platformOf = (v: GuestVm): IgbPlatform => platformAs(v, IgbPlatform);

beforeAll(async () => {
  const g = await bootTestGuest((env) => new IgbPlatform(env));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("82576 under Debian's igb and igbvf", () => {
  it("igb binds the PF, reads the MAC from the NVM, uses MSI-X and brings the link up", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("modprobe igb && sleep 1 && ip link set eth0 up && sleep 3 && cat /sys/class/net/eth0/address /sys/class/net/eth0/carrier && readlink /sys/class/net/eth0/device/driver", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/^52:54:00:12:34:57\n1\n.*\/igb\n$/);
    const d = await vm.dmesg();
    expect(d).toMatch(/igb 0000:02:00\.0: Using MSI-X interrupts/);
    expect(d).toMatch(/eth0: igb: eth0 NIC Link is Up 1000 Mbps Full Duplex/);
    expect((await vm.exec("ethtool eth0")).output).toMatch(/Speed: 1000Mb\/s[\s\S]*Link detected: yes/);
  });

  it("passes igb's offline self-test: registers, EEPROM, interrupts, MAC/PHY loopback and link", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ethtool -t eth0 offline; echo status=$?; sleep 4; cat /sys/class/net/eth0/carrier", { timeoutMs: 120_000 });
    expect(r.output).toMatch(/The test result is PASS/);
    for (const t of ["Register test", "Eeprom test", "Interrupt test", "Loopback test", "Link test"]) expect(r.output).toMatch(new RegExp(`${t}\\s+\\((on/)?offline\\)\\s+0\\n`));
    expect(r.output).toMatch(/status=0\n1\n$/);
  }, 180_000);

  it("pings the host stub through the PF with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const before = p.stub.counters.echoReplies;
    const r = await vm.exec("ip addr add 10.0.2.15/24 dev eth0 && ping -c 20 -i 0.2 -W 2 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/20 packets transmitted, 20 packets received, 0% packet loss/);
    expect(p.stub.counters.echoReplies - before).toBe(20);
  });

  it("carries 8000-byte frames at MTU 9000 on the PF", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ip link set eth0 mtu 9000 && ping -c 3 -s 8000 -W 2 10.0.2.2; ip link set eth0 mtu 1500", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
  });

  it("creates two VFs at offset 0x80 / stride 2 that igbvf binds, with the MAC the admin set", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    expect((await vm.exec(`echo 2 > /sys/bus/pci/devices/${PF}/sriov_numvfs && sleep 1 && /usr/bin/ip link set eth0 vf 0 mac 52:54:00:aa:bb:01`, { timeoutMs: 60_000 })).status).toBe(0);
    expect(p.nic.sriov.liveVfs().map((v) => v.rid)).toEqual([0x280, 0x282]);
    const lspci = await vm.exec(`lspci -vvv -s 02:00.0 2>/dev/null; lspci -n -s 02:10`);
    expect(lspci.output).toMatch(/Initial VFs: 8, Total VFs: 8, Number of VFs: 2/);
    expect(lspci.output).toMatch(/VF offset: 128, stride: 2, Device ID: 10ca/);
    expect(lspci.output).toMatch(/02:10\.0 0200: 8086:10ca/);
    expect(lspci.output).toMatch(/02:10\.2 0200: 8086:10ca/);
    // igbvf bound the new VFs by itself (hotplug, as udev does), before the administrator's MAC
    // was set: as Linux igb says, the VF driver must be reloaded for the MAC to take effect.
    const r = await vm.exec("rmmod igbvf; modprobe igbvf && sleep 6 && for d in /sys/class/net/eth*; do echo ${d##*/} $(readlink $d/device/driver | sed 's#.*/##') $(cat $d/address); done", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/eth1 igbvf 52:54:00:aa:bb:01/);
    expect(r.output).toMatch(/eth2 igbvf [0-9a-f:]{17}/);
  });

  it("pings the host stub through a VF with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const before = p.stub.counters.echoReplies;
    const r = await vm.exec("ip link set eth1 up && sleep 3 && ip addr add 10.0.2.16/24 dev eth1 && ping -c 10 -i 0.2 -W 2 -I eth1 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/10 packets transmitted, 10 packets received, 0% packet loss/);
    expect(p.stub.counters.echoReplies - before).toBe(10);
    expect(await vm.dmesg()).toMatch(/igbvf 0000:02:10\.0: Link is Up 1000 Mbps Full Duplex/);
  });

  it("passes traffic between a VF in its own network namespace and the PF", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const ip = "/usr/bin/ip";
    const setup = await vm.exec(
      `${ip} addr del 10.0.2.16/24 dev eth1; ${ip} netns add vfns && ${ip} link set eth1 netns vfns && ${ip} netns exec vfns ${ip} link set eth1 up && ${ip} netns exec vfns ${ip} addr add 10.0.2.16/24 dev eth1 && sleep 3`,
      { timeoutMs: 60_000 },
    );
    expect(setup.status, setup.output).toBe(0);
    // VF (namespace) to PF (root namespace, 10.0.2.15) through the NIC's internal switch.
    const toPf = await vm.exec(`${ip} netns exec vfns ping -c 5 -i 0.2 -W 2 10.0.2.15`, { timeoutMs: 60_000 });
    expect(toPf.output).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    // MTU 9000 on the VF: SET_LPE through the mailbox to the PF's igb, header-split receive
    const jumbo = await vm.exec(
      `${ip} link set eth0 mtu 9000 && ${ip} netns exec vfns ${ip} link set eth1 mtu 9000 && sleep 2 && ${ip} netns exec vfns ping -c 3 -i 0.2 -s 8000 -W 2 10.0.2.15; ${ip} link set eth0 mtu 1500`,
      { timeoutMs: 60_000 },
    );
    expect(jumbo.output).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    await vm.exec(`${ip} netns del vfns`);
  }, 180_000);

  it("removes the VFs again", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const r = await vm.exec(`echo 0 > /sys/bus/pci/devices/${PF}/sriov_numvfs && ls /sys/bus/pci/devices`, { timeoutMs: 60_000 });
    expect(r.output).not.toMatch(/02:10\./);
    expect(p.nic.sriov.liveVfs()).toEqual([]);
  });
});
