/**
 * One side of the live-migration test (test/guest/migration.test.ts), run as its own `node`
 * process:
 *
 *   dest URI     create a paused machine (VirtioAndVfPlatform), listen on URI, print LISTENING,
 *                receive the guest; once it runs here, let the pings finish and print what the
 *                test checks; exit 1 if the migration failed
 *   dest-refuse URI  the same, but the destination refuses the device state once it arrives (as
 *                a device parser rejecting it would), after the source has stopped its guest
 *   source URI   boot a Debian guest on a VirtioAndVfPlatform, bring up virtio-net and the 82576
 *                VF, start a ping on each, migrate the running guest to URI, print the figures;
 *                when the migration fails, the guest carries on here and this side reports what
 *                the destination would have
 *
 * Prints `PROGRESS {...}` lines, then one `RESULT {...}` line (or `SKIPPED: reason`).
 */
import { GuestVm } from "../../src/vmm/harness/runner.js";
import { machineEndpoint } from "../../src/vmm/migration/endpoint.js";
import { MigrationSource } from "../../src/vmm/migration/source.js";
import { MigrationDestination } from "../../src/vmm/migration/destination.js";
import type { MigrationInfo } from "../../src/vmm/migration/info.js";
import { connectMigration, listenMigration } from "../../src/vmm/migration/socket.js";
import { findV86Assets } from "../../src/vmm/host/v86-assets.js";
import { StateError } from "../../src/state/parse.js";
import { bootTwoNicGuest, startTwoNicPings, twoNicPlatform as platform } from "./two-nic-guest.js";

const [mode, uri] = process.argv.slice(2);

const brief = (i: MigrationInfo): object => ({ status: i.status, phase: i.phase, bytes: i.bytes, iterations: i.iterations, lastDirty: i.rounds[i.rounds.length - 1]?.dirtyPages, expectedDowntimeMs: Math.round(i.expectedDowntimeMs) });

/** Waits for both pings to finish in `vm`, then collects what the test checks. */
async function afterwards(vm: GuestVm): Promise<Record<string, unknown>> {
  const irqAtResume = (await vm.exec("cat /proc/interrupts")).output;
  for (let i = 0; i < 120; i++) {
    const done = (await vm.exec("cat /tmp/ping-virtio.txt /tmp/ping-vf.txt | grep -c 'packets transmitted'")).output.trim();
    if (done === "2") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const pings = (await vm.exec("cat /tmp/ping-virtio.txt; echo ====; cat /tmp/ping-vf.txt")).output;
  const stillPings = (await vm.exec("ping -c 3 -i 0.2 -W 2 10.0.2.2 && ping -c 3 -i 0.2 -W 2 10.0.3.2", { timeoutMs: 30_000 })).status;
  const irqAfter = (await vm.exec("cat /proc/interrupts")).output;
  const dmesg = (await vm.exec("dmesg")).output;
  return { pings, stillPings, irqAtResume, irqAfter, dmesg };
}

async function dest(where: string, refuse: boolean): Promise<number> {
  const assets = findV86Assets();
  if ("missing" in assets) {
    console.log(`SKIPPED: ${assets.missing}`);
    return 0;
  }
  const vm = await GuestVm.incoming({ platform });
  const listener = await listenMigration(where);
  console.log("LISTENING");
  const channel = await listener.accept();
  const ep = machineEndpoint(vm.machine);
  if (refuse) {
    ep.restoreDevices = () => {
      throw new StateError("platform.devices.virtio-net.state", "refused by the test's destination");
    };
  }
  const d = new MigrationDestination(ep, channel);
  const info = await d.run();
  if (info.status !== "completed") {
    console.log(`RESULT ${JSON.stringify({ info })}`);
    await vm.dispose();
    return 1;
  }
  try {
    console.log(`RESULT ${JSON.stringify({ info, resumeMs: d.resumeMs, engineRestoreMs: d.engineRestoreMs, deviceRestoreMs: d.deviceRestoreMs, ...(await afterwards(vm)) })}`);
  } finally {
    await vm.dispose();
  }
  return 0;
}

async function source(where: string): Promise<number> {
  const g = await bootTwoNicGuest();
  if ("skip" in g) {
    console.log(`SKIPPED: ${g.skip}`);
    return 0;
  }
  const vm = g.vm;
  try {
    const { vnet, vf } = await startTwoNicPings(vm, 2);
    const dmesgBefore = (await vm.exec("dmesg")).output;
    const channel = await connectMigration(where);
    const src = new MigrationSource(machineEndpoint(vm.machine), channel, { onProgress: (i) => console.log(`PROGRESS ${JSON.stringify(brief(i))}`) });
    const info = await src.run();
    // Failed: the guest runs here again; report on it as the destination would have.
    const here = info.status === "completed" ? {} : await afterwards(vm);
    console.log(`RESULT ${JSON.stringify({ info, vnet, vf, dmesgLines: dmesgBefore.split("\n").length, ...here })}`);
    return 0;
  } finally {
    await vm.dispose();
  }
}

if (uri === undefined) throw new Error("usage: migration-child.ts dest|source URI");
let code: number;
if (mode === "dest" || mode === "dest-refuse") code = await dest(uri, mode === "dest-refuse");
else if (mode === "source") code = await source(uri);
else throw new Error(`unknown mode ${String(mode)}`);
process.exit(code);
