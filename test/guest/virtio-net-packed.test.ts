/**
 * Real-guest test of the packed virtqueue layout: the device offers VIRTIO_F_RING_PACKED, Debian's
 * virtio_ring negotiates it, and the guest pings the host stub through packed rings.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;

beforeAll(async () => {
  const g = await bootTestGuest((env) => new VirtioNetPlatform(env, { packed: true }));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  const r = await vm.exec("modprobe virtio_pci && modprobe virtio_net", { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`loading virtio modules failed: ${r.output}`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("virtio-net with the packed ring under Debian's virtio_net", () => {
  it("negotiates RING_PACKED and pings the host stub with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, VirtioNetPlatform);
    // The features file lists negotiated bits as a string of 0/1 by bit number.
    const f = (await vm.exec("cat /sys/bus/virtio/devices/virtio0/features")).output.trim();
    expect(f[34]).toBe("1");
    // Two queue pairs and the control queue, all packed.
    expect(p.transport.queues.map((q) => q.layout)).toEqual(["packed", "packed", "packed", "packed", "packed"]);
    await vm.exec("ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0");
    const r = await vm.exec("ping -c 20 -i 0.2 -W 2 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/20 packets transmitted, 20 packets received, 0% packet loss/);
    expect(p.stub.counters.echoReplies).toBeGreaterThanOrEqual(20);
    expect(p.nic.counters.txErrors).toBe(0);
    expect(p.transport.lastError).toBeUndefined();
  });

  it("carries full-size frames and keeps going past a ring wrap (300 pings on 256-entry rings)", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ping -c 5 -s 1472 -W 2 10.0.2.2", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/5 packets received/);
    const w = await vm.exec("ping -c 300 -i 0.01 -W 2 -q 10.0.2.2", { timeoutMs: 120_000 });
    expect(w.output).toMatch(/300 packets transmitted, 300 packets received/);
    expect(platformAs(vm, VirtioNetPlatform).transport.lastError).toBeUndefined();
  });
});
