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
import { bootTwoNicGuest, startTwoNicPings, twoNicPlatform as platform } from "./two-nic-guest.js";

const [mode, file] = process.argv.slice(2);

async function save(path: string): Promise<void> {
  const g = await bootTwoNicGuest();
  if ("skip" in g) {
    console.log(`SKIPPED: ${g.skip}`);
    return;
  }
  const vm = g.vm;
  // Which interface is which: virtio_net's and igbvf's.
  const { vnet, vf } = await startTwoNicPings(vm, 3);
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
