/**
 * Real-guest `net_failover`: one guest with a pass-through 82576 VF (primary, igbvf) and a
 * virtio-net with VIRTIO_NET_F_STANDBY (standby), same MAC, both reaching the host stub through
 * one L2 switch ({@link FailoverPlatform}). Debian's virtio_net creates the failover master; the
 * VF is unplugged through its slot and plugged back while a ping runs on the master.
 *
 * Only the guest's side of failover is exercised; the failover switch (moving the VF's state
 * between pass-through and emulation) is not built.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { FailoverPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, hostUntil, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;
const ip = "/usr/bin/ip";

beforeAll(async () => {
  const g = await bootTestGuest((env) => new FailoverPlatform(env), { append: "nv.modules=virtio_pci,virtio_net,igbvf" });
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("net_failover over nicvisor's VF (primary) and virtio-net STANDBY", () => {
  it("builds the failover master from the two devices with one MAC", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const d = await vm.dmesg();
    expect(d).toMatch(/virtio_net virtio0 eth0: failover master:eth0 registered/);
    expect(d).toMatch(/virtio_net virtio0 eth0: failover standby slave:eth1 registered/);
    expect(d).toMatch(/virtio_net virtio0 eth0: failover primary slave:eth2 registered/);
    const links = (await vm.exec(`cat /sys/class/net/eth0/address /sys/class/net/eth1/address /sys/class/net/eth2/address; readlink /sys/class/net/eth2/device/driver`)).output;
    expect(links).toMatch(/^(52:54:00:12:34:58\n){3}.*\/igbvf\n$/);
  }, 60_000);

  it("keeps a ping going on the master while the VF is unplugged and plugged back, over the standby meanwhile", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, FailoverPlatform);
    const vfTx = (): number => p.host.core.regs.get("PVFGPTC", 0);
    const standbyTx = (): number => p.standby.counters.txFrames;
    const up = await vm.exec(`${ip} link set eth0 up && ${ip} addr add 10.0.2.15/24 dev eth0 && sleep 3 && ping -c 5 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(up.output).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);

    // With both slaves up, the master sends through the primary (the VF).
    let vf0 = vfTx();
    let sb0 = standbyTx();
    await vm.exec(`ping -c 80 -i 0.25 -W 1 10.0.2.2 > /tmp/failover-ping.txt 2>&1 &`);
    await sleep(2000);
    expect(vfTx() - vf0).toBeGreaterThanOrEqual(4);
    expect(standbyTx() - sb0).toBeLessThan(3);

    // Orderly removal of the VF (the attention button, as a migration starts): the primary goes,
    // the master moves to the standby.
    p.vfPort.pressAttentionButton();
    expect(await hostUntil(() => !p.vfPort.powered, 20_000)).toBe(true);
    expect(p.vfPort.unplug()).toEqual([p.shim]);
    vf0 = vfTx();
    sb0 = standbyTx();
    await sleep(3000);
    expect(vfTx()).toBe(vf0);
    expect(standbyTx() - sb0).toBeGreaterThanOrEqual(6);

    // The VF comes back: igbvf probes again with the same MAC and net_failover takes it as primary.
    p.vfPort.hotAdd(p.shim);
    expect(await hostUntil(() => p.vfPort.powered, 20_000)).toBe(true);
    const back = await vm.exec(`i=0; while [ $(dmesg | grep -c 'failover primary slave:.* registered') -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; dmesg | grep 'failover primary'`, { timeoutMs: 60_000 });
    expect(back.output).toMatch(/primary slave:eth2 registered\n.*primary slave:eth2 unregistered\n.*primary slave:\w+ registered/);
    await sleep(2000);
    vf0 = vfTx();
    sb0 = standbyTx();
    await sleep(2000);
    expect(vfTx() - vf0).toBeGreaterThanOrEqual(4);
    expect(standbyTx() - sb0).toBeLessThan(3);

    // The ping on the master ran through all of it.
    const done = await vm.exec(`while pidof ping > /dev/null; do sleep 0.2; done; tail -3 /tmp/failover-ping.txt`, { timeoutMs: 60_000 });
    const m = /80 packets transmitted, (\d+) packets received/.exec(done.output);
    expect(m, done.output).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(76);
  }, 180_000);
});
