/**
 * Real-guest tests of nicvisor's virtio-net: Debian's own virtio_pci and virtio_net bind the device
 * behind root port 00:04.0, and the guest pings the host stub (10.0.2.2) through it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;


const platformOf = (v: GuestVm): VirtioNetPlatform => platformAs(v, VirtioNetPlatform);

beforeAll(async () => {
  const g = await bootTestGuest((env) => new VirtioNetPlatform(env));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  const r = await vm.exec("modprobe virtio_pci && modprobe virtio_net", { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`loading virtio modules failed: ${r.output}`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("virtio-net under Debian's virtio_net", () => {
  it("binds virtio_net with one MSI-X vector per queue plus config, and the link is up", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const drv = await vm.exec("readlink /sys/bus/pci/devices/0000:02:00.0/driver; readlink /sys/class/net/eth0/device/driver; cat /sys/class/net/eth0/address");
    expect(drv.output).toMatch(/virtio-pci\n.*virtio_net\n52:54:00:12:34:56\n$/);
    const irqs = (await vm.exec("grep virtio0 /proc/interrupts")).output;
    expect(irqs).toMatch(/PCI-MSI.*virtio0-config/);
    expect(irqs).toMatch(/PCI-MSI.*virtio0-input\.0/);
    expect(irqs).toMatch(/PCI-MSI.*virtio0-output\.0/);
    await vm.exec("ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0");
    expect((await vm.exec("cat /sys/class/net/eth0/carrier")).output.trim()).toBe("1");
    expect(platformOf(vm).transport.lastError).toBeUndefined();
  });

  it("pings the host stub with nothing lost, and the counters on both sides agree", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const before = { ...p.nic.counters };
    const stubBefore = p.stub.counters.echoReplies;
    const r = await vm.exec("ping -c 20 -i 0.2 -W 2 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/20 packets transmitted, 20 packets received, 0% packet loss/);
    expect(r.status).toBe(0);
    // At least one echo request and one reply per ping crossed the device.
    expect(p.nic.counters.txFrames - before.txFrames).toBeGreaterThanOrEqual(20);
    expect(p.nic.counters.rxFrames - before.rxFrames).toBeGreaterThanOrEqual(20);
    expect(p.nic.counters.txErrors).toBe(0);
    expect(p.stub.counters.echoReplies - stubBefore).toBe(20);
  });

  it("carries large frames after an MTU change", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ip link set eth0 mtu 1400 && ping -c 3 -s 1300 -W 2 10.0.2.2 && ip link set eth0 mtu 1500 && ping -c 3 -s 1472 -W 2 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).not.toMatch(/[1-9]\d*% packet loss/);
    expect(r.output.match(/3 packets received/g)?.length).toBe(2);
  });

  it("reports link down and up through the config change interrupt", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    p.nic.setLink(false);
    expect((await vm.exec("sleep 0.3; cat /sys/class/net/eth0/carrier")).output.trim()).toBe("0");
    p.nic.setLink(true);
    expect((await vm.exec("sleep 0.3; cat /sys/class/net/eth0/carrier")).output.trim()).toBe("1");
    expect((await vm.exec("ping -c 2 -W 2 10.0.2.2")).output).toMatch(/2 packets received/);
  });
});
