/**
 * One side of the cross-process restore test (test/guest/cross-process.test.ts), run as its own
 * `node` process:
 *
 *   save FILE     boot a Debian guest on a VirtioAndVfPlatform (virtio-net and an 82576 VF), bring
 *                 both NICs up, start a ping on each, save the machine to FILE, exit
 *   restore FILE  restore FILE in this fresh process, let the pings finish, print what the test checks
 *
 * Prints one JSON line prefixed `RESULT ` (or `SKIPPED: reason`).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { GuestVm } from "../../src/vmm/harness/runner.js";
import { decodeSnapshot, encodeSnapshot } from "../../src/vmm/harness/runner-snapshot.js";
import { VirtioAndVfPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest } from "./boot.js";

const [mode, file] = process.argv.slice(2);
const platform = (env: ConstructorParameters<typeof VirtioAndVfPlatform>[0]): VirtioAndVfPlatform => new VirtioAndVfPlatform(env);
/** Pings per NIC and their interval: long enough to straddle the save and the restore. */
export const PINGS = 80;
const INTERVAL = 0.25;

async function save(path: string): Promise<void> {
  const g = await bootTestGuest(platform, { append: "nv.modules=virtio_pci,virtio_net,igbvf" });
  if ("skip" in g) {
    console.log(`SKIPPED: ${g.skip}`);
    return;
  }
  const vm = g.vm;
  // Which interface is which: virtio_net's and igbvf's.
  const names = (await vm.exec(`sleep 2; for d in /sys/class/net/eth*; do echo \${d##*/} $(readlink $d/device/driver | sed 's#.*/##'); done`)).output;
  const vnet = /(eth\d) virtio_net/.exec(names)?.[1];
  const vf = /(eth\d) igbvf/.exec(names)?.[1];
  if (vnet === undefined || vf === undefined) throw new Error(`interfaces not found:\n${names}`);
  const up = await vm.exec(
    `ip link set ${vnet} up && ip addr add 10.0.2.15/24 dev ${vnet} && ip link set ${vf} up && ip addr add 10.0.3.15/24 dev ${vf} && sleep 3 && ping -c 2 -W 2 10.0.2.2 && ping -c 2 -W 2 10.0.3.2`,
    { timeoutMs: 60_000 },
  );
  if (up.status !== 0) throw new Error(`bring-up failed:\n${up.output}`);
  await vm.exec(`ping -c ${PINGS} -i ${INTERVAL} -W 2 10.0.2.2 > /tmp/ping-virtio.txt 2>&1 & ping -c ${PINGS} -i ${INTERVAL} -W 2 10.0.3.2 > /tmp/ping-vf.txt 2>&1 & sleep 3`);
  const irqBefore = (await vm.exec(`grep ${vf} /proc/interrupts`)).output;
  const dmesgBefore = (await vm.exec("dmesg")).output;
  const snap = await vm.snapshot();
  await vm.dispose();
  writeFileSync(path, encodeSnapshot(snap));
  console.log(`RESULT ${JSON.stringify({ vnet, vf, irqBefore, dmesgLines: dmesgBefore.split("\n").length, origin: performance.timeOrigin })}`);
}

async function restore(path: string): Promise<void> {
  const snap = decodeSnapshot(new Uint8Array(readFileSync(path)));
  const vm = await GuestVm.restore(snap, { platform });
  try {
    const t0 = performance.now();
    const irqAtRestore = (await vm.exec("cat /proc/interrupts")).output;
    // Wait for both pings to end (each prints its summary line).
    let done = "";
    for (let i = 0; i < 120; i++) {
      done = (await vm.exec("cat /tmp/ping-virtio.txt /tmp/ping-vf.txt | grep -c 'packets transmitted'")).output.trim();
      if (done === "2") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const pings = (await vm.exec("cat /tmp/ping-virtio.txt; echo ====; cat /tmp/ping-vf.txt")).output;
    const irqAfter = (await vm.exec("cat /proc/interrupts")).output;
    const dmesg = (await vm.exec("dmesg")).output;
    console.log(`RESULT ${JSON.stringify({ pings, irqAtRestore, irqAfter, dmesg, waitedMs: performance.now() - t0, origin: performance.timeOrigin })}`);
  } finally {
    await vm.dispose();
  }
}

if (file === undefined) throw new Error("usage: cross-process-child.ts save|restore FILE");
if (mode === "save") await save(file);
else if (mode === "restore") await restore(file);
else throw new Error(`unknown mode ${String(mode)}`);
process.exit(0);
