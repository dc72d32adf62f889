/**
 * The guest the cross-process restore and live-migration tests move (cross-process-child.ts,
 * migration-child.ts): a Debian guest on a {@link VirtioAndVfPlatform}, virtio-net as 10.0.2.15
 * and the 82576 VF as 10.0.3.15, each pinging its host stub in the background long enough to
 * straddle the move.
 */
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import type { PlatformEnv } from "../../src/vmm/machine-platform.js";
import { VirtioAndVfPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, type BootedGuest } from "./boot.js";

/** Pings per NIC, and their interval in seconds. */
export const PINGS = 80;
const INTERVAL = 0.25;

/** The platform (the same on both sides of a move). */
export const twoNicPlatform = (env: PlatformEnv): VirtioAndVfPlatform => new VirtioAndVfPlatform(env);

/** Boots the guest with virtio_net and igbvf loaded. */
export function bootTwoNicGuest(): Promise<BootedGuest> {
  return bootTestGuest(twoNicPlatform, { append: "nv.modules=virtio_pci,virtio_net,igbvf" });
}

/**
 * Finds which interface is virtio-net's and which igbvf's, brings both up, checks each reaches its
 * stub, then starts the background pings (to /tmp/ping-virtio.txt and /tmp/ping-vf.txt) and lets
 * them run `settleS` seconds. Returns the two interface names. @throws when a step fails
 */
export async function startTwoNicPings(vm: GuestVm, settleS: number): Promise<{ vnet: string; vf: string }> {
  const names = (await vm.exec(`sleep 2; for d in /sys/class/net/eth*; do echo \${d##*/} $(readlink $d/device/driver | sed 's#.*/##'); done`)).output;
  const vnet = /(eth\d) virtio_net/.exec(names)?.[1];
  const vf = /(eth\d) igbvf/.exec(names)?.[1];
  if (vnet === undefined || vf === undefined) throw new Error(`interfaces not found:\n${names}`);
  const up = await vm.exec(
    `ip link set ${vnet} up && ip addr add 10.0.2.15/24 dev ${vnet} && ip link set ${vf} up && ip addr add 10.0.3.15/24 dev ${vf} && sleep 3 && ping -c 2 -W 2 10.0.2.2 && ping -c 2 -W 2 10.0.3.2`,
    { timeoutMs: 60_000 },
  );
  if (up.status !== 0) throw new Error(`bring-up failed:\n${up.output}`);
  await vm.exec(`ping -c ${PINGS} -i ${INTERVAL} -W 2 10.0.2.2 > /tmp/ping-virtio.txt 2>&1 & ping -c ${PINGS} -i ${INTERVAL} -W 2 10.0.3.2 > /tmp/ping-vf.txt 2>&1 & sleep ${settleS}`);
  return { vnet, vf };
}
