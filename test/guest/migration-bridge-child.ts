/**
 * One side of the live-migration test on a shared L2 segment (test/guest/migration-bridge.test.ts),
 * run as its own `node` process. Its NIC is the failover VF of a {@link FailoverVfPlatform} whose
 * uplink is a TAP, moved into the test's network namespace and made a port of its bridge `br0`.
 *
 *   dest URI NS TAP STYLE     create a paused machine, listen on URI, print LISTENING, receive the
 *                             guest; once it runs here, wait for the guest's own ping to end,
 *                             print PINGS-DONE, wait for a line on stdin, and print what the test
 *                             checks; exit 1 if the migration failed
 *   source URI NS TAP STYLE   boot a Debian guest, bring up its NIC as 10.0.7.15/24, start the
 *                             guest's ping to the bridge (10.0.7.1), print READY, wait for a line
 *                             on stdin, migrate to URI, print the figures
 *
 *   hop URI NS TAP STYLE OUT  receive the guest on URI (printing LISTENING, then RUNNING once it
 *                             runs here), wait for a line on stdin, migrate it on to OUT
 *
 * STYLE `transparent`: a {@link FailoverVfPlatform} (igbvf alone), migrated with transparent
 * failover. STYLE `standby`: a {@link FailoverPlatform} with `hidePrimary` (QEMU's failover=on:
 * net_failover over virtio-net STANDBY and the VF, which is unplugged before the migration and
 * plugged at the destination).
 *
 * Prints `PROGRESS {...}` lines, then one `RESULT {...}` line (or `SKIPPED: reason`).
 */
import { spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { GuestVm } from "../../src/vmm/harness/runner.js";
import { FailoverPlatform, FailoverVfPlatform } from "../../src/vmm/platforms.js";
import type { PlatformEnv } from "../../src/vmm/machine-platform.js";
import { machineEndpoint } from "../../src/vmm/migration/endpoint.js";
import { MigrationSource } from "../../src/vmm/migration/source.js";
import { MigrationDestination } from "../../src/vmm/migration/destination.js";
import type { MigrationInfo } from "../../src/vmm/migration/info.js";
import { connectMigration, listenMigration } from "../../src/vmm/migration/socket.js";
import { findV86Assets } from "../../src/vmm/host/v86-assets.js";
import { TapBackend } from "../../src/vmm/host/net/tap.js";
import { bootTestGuest } from "./boot.js";

const [mode, uri, ns, tapName, style] = process.argv.slice(2);
const standby = style === "standby";
const makePlatform = (tap: TapBackend) => (env: PlatformEnv): FailoverVfPlatform | FailoverPlatform =>
  standby ? new FailoverPlatform(env, { hidePrimary: true, backend: tap }) : new FailoverVfPlatform(env, { backend: tap });
/** Waits (up to 20 s) until the igbvf interface has carrier, then sends a few frames through it. */
const VF_CARRIER = `vfc() { for d in /sys/class/net/eth*; do case "$(readlink $d/device/driver)" in *igbvf) cat $d/carrier 2>/dev/null;; esac; done; }; i=0; until [ "$(vfc)" = 1 ] || [ $i -ge 200 ]; do sleep 0.1; i=$((i+1)); done; ping -c 3 -i 0.2 -W 2 10.0.7.1`;
/** Lines of dmesg saying net_failover took a primary (the VF). */
const PRIMARY = "failover primary slave:.* registered";
/** The guest's own ping to the bridge: count and interval (long enough to straddle the migration; standby waits for the unplug first). */
const GUEST_PINGS = style === "standby" ? 400 : 200;
const GUEST_INTERVAL = 0.05;

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

/** A TAP in the namespace's bridge. */
function bridgedTap(): TapBackend {
  const tap = TapBackend.open({ name: tapName! });
  ip("link", "set", tapName!, "netns", ns!);
  ip("netns", "exec", ns!, "ip", "link", "set", tapName!, "master", "br0");
  ip("netns", "exec", ns!, "ip", "link", "set", tapName!, "up");
  return tap;
}

const brief = (i: MigrationInfo): object => ({ at: Date.now(), status: i.status, phase: i.phase, bytes: i.bytes, iterations: i.iterations, lastDirty: i.rounds[i.rounds.length - 1]?.dirtyPages });

function failoverOf(vm: GuestVm): object {
  const p = vm.machine.platform;
  if (p instanceof FailoverPlatform) return { ...p.standbyCounts, vfPresent: p.vfPort.occupied };
  if (!(p instanceof FailoverVfPlatform)) throw new Error("not a failover platform");
  return { ...p.failover.stats(), active: p.failover.active };
}

/** Frames the host 82576's VF 0 sent (standby style): the VF carries the guest's traffic when it rises. */
function vfTx(vm: GuestVm): number {
  const p = vm.machine.platform;
  return p instanceof FailoverPlatform ? p.host.core.regs.get("PVFGPTC", 0) : -1;
}

/** Waits (up to `s` seconds) until net_failover has taken a primary `n` times in all. */
async function primaries(vm: GuestVm, n: number, s: number): Promise<number> {
  const r = await vm.exec(`i=0; while [ $(dmesg | grep -c '${PRIMARY}') -lt ${n} ] && [ $i -lt ${s * 10} ]; do sleep 0.1; i=$((i+1)); done; dmesg | grep -c '${PRIMARY}'`, { timeoutMs: (s + 20) * 1000 });
  return Number(r.output.trim());
}

async function dest(): Promise<number> {
  const assets = findV86Assets();
  if ("missing" in assets) {
    console.log(`SKIPPED: ${assets.missing}`);
    return 0;
  }
  const tap = bridgedTap();
  const vm = await GuestVm.incoming({ platform: makePlatform(tap) });
  const listener = await listenMigration(uri!);
  console.log("LISTENING");
  const channel = await listener.accept();
  const d = new MigrationDestination(machineEndpoint(vm.machine), channel);
  const info = await d.run();
  try {
    if (info.status !== "completed") {
      console.log(`RESULT ${JSON.stringify({ info })}`);
      return 1;
    }
    const failoverAtResume = failoverOf(vm);
    for (let i = 0; i < 60; i++) {
      if (/packets transmitted/.test((await vm.exec("cat /tmp/ping.txt")).output)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const ping = (await vm.exec("cat /tmp/ping.txt")).output;
    const icmpAfter = (await vm.exec("grep Icmp: /proc/net/snmp")).output;
    // Standby: the VF plugged here after the resume is net_failover's primary again.
    const primaryCount = standby ? await primaries(vm, 2, 30) : 0;
    const tx0 = vfTx(vm);
    await vm.exec("ping -c 5 -i 0.1 -W 2 10.0.7.1");
    const vfTxFinal = vfTx(vm) - tx0;
    // The test stops its traffic (its peer's last requests answered here), then says go.
    console.log("PINGS-DONE");
    await new Promise<void>((r) => createInterface({ input: process.stdin }).once("line", () => r()));
    const stillPings = (await vm.exec("ping -c 3 -i 0.2 -W 2 10.0.7.1", { timeoutMs: 30_000 })).status;
    const dmesg = (await vm.exec("dmesg")).output;
    console.log(`RESULT ${JSON.stringify({ info, resumeMs: d.resumeMs, engineRestoreMs: d.engineRestoreMs, deviceRestoreMs: d.deviceRestoreMs, failoverAtResume, failover: failoverOf(vm), ping, icmpAfter, primaryCount, vfTxFinal, stillPings, dmesg, tap: tap.counters })}`);
    return 0;
  } finally {
    await vm.dispose();
    tap.close();
  }
}

/** Receives the guest on URI, prints RUNNING, waits for a line on stdin, then migrates it on to `out`. */
async function hop(out: string): Promise<number> {
  const tap = bridgedTap();
  const vm = await GuestVm.incoming({ platform: makePlatform(tap) });
  try {
    const listener = await listenMigration(uri!);
    console.log("LISTENING");
    const received = await new MigrationDestination(machineEndpoint(vm.machine), await listener.accept()).run();
    await listener.close();
    if (received.status !== "completed") {
      console.log(`RESULT ${JSON.stringify({ received })}`);
      return 1;
    }
    console.log("RUNNING");
    await new Promise<void>((r) => createInterface({ input: process.stdin }).once("line", () => r()));
    const src = new MigrationSource(machineEndpoint(vm.machine), await connectMigration(out), {
      transparent: style === "transparent",
      onProgress: (i) => console.log(`PROGRESS ${JSON.stringify(brief(i))}`),
    });
    const info = await src.run();
    console.log(`RESULT ${JSON.stringify({ received: { status: received.status }, info, failover: failoverOf(vm), tap: tap.counters })}`);
    return info.status === "completed" ? 0 : 1;
  } finally {
    await vm.dispose();
    tap.close();
  }
}

async function source(): Promise<number> {
  const tap = bridgedTap();
  const g = await bootTestGuest(makePlatform(tap), { append: standby ? "nv.modules=virtio_pci,virtio_net,igbvf" : "nv.modules=igbvf" });
  if ("skip" in g) {
    console.log(`SKIPPED: ${g.skip}`);
    return 0;
  }
  const vm = g.vm;
  try {
    const up = await vm.exec("sleep 1; ip link set eth0 up && ip addr add 10.0.7.15/24 dev eth0 && sleep 3 && ping -c 2 -W 2 10.0.7.1", { timeoutMs: 60_000 });
    if (!/2 packets received/.test(up.output)) throw new Error(`the NIC did not reach the bridge:\n${up.output}`);
    // Standby: the VF appears once virtio-net took STANDBY (pciehp powers it on 5 s after the button).
    if (standby && (await primaries(vm, 1, 30)) < 1) throw new Error(`net_failover took no primary:\n${(await vm.dmesg()).slice(-3000)}`);
    // ... and until its link is up: until then net_failover sends through virtio-net but drops what
    // arrives there (a primary exists), so the traffic starts once the VF carries it.
    if (standby) await vm.exec(VF_CARRIER, { timeoutMs: 60_000 });
    // No rate limit on the guest's ICMP answers, so every request of the test's peers is answered.
    await vm.exec("echo 0 > /proc/sys/net/ipv4/icmp_ratelimit");
    // The guest's end of the test's UDP stream (one test, then it exits).
    await vm.exec("iperf3 -s -D -1 >/dev/null 2>&1");
    const dmesgLines = (await vm.exec("dmesg")).output.split("\n").length;
    const icmpBefore = (await vm.exec("grep Icmp: /proc/net/snmp")).output;
    const pl = vm.machine.platform;
    const sbTx = (): number => (pl instanceof FailoverPlatform ? pl.standby.counters.txFrames : -1);
    const before = { standbyTx: sbTx(), vfTx: vfTx(vm) };
    console.log("READY");
    // The test starts its traffic, then says go.
    await new Promise<void>((r) => createInterface({ input: process.stdin }).once("line", () => r()));
    const beforeGo = { standbyTx: sbTx() - before.standbyTx, vfTx: vfTx(vm) - before.vfTx };
    await vm.exec(`ping -c ${GUEST_PINGS} -i ${GUEST_INTERVAL} -W 2 10.0.7.1 > /tmp/ping.txt 2>&1 & sleep 1`);
    const channel = await connectMigration(uri!);
    const src = new MigrationSource(machineEndpoint(vm.machine), channel, {
      transparent: style === "transparent",
      onProgress: (i) => console.log(`PROGRESS ${JSON.stringify(brief(i))}`),
    });
    const info = await src.run();
    console.log(`RESULT ${JSON.stringify({ info, dmesgLines, icmpBefore, beforeGo, failover: failoverOf(vm), tap: tap.counters })}`);
    return info.status === "completed" ? 0 : 1;
  } finally {
    await vm.dispose();
    tap.close();
  }
}

if (uri === undefined || ns === undefined || tapName === undefined || (style !== "transparent" && style !== "standby")) throw new Error("usage: migration-bridge-child.ts dest|source|hop URI NS TAP transparent|standby [OUT]");
let code: number;
if (mode === "dest") code = await dest();
else if (mode === "source") code = await source();
else if (mode === "hop" && process.argv[7] !== undefined) code = await hop(process.argv[7]);
else throw new Error(`unknown mode ${String(mode)}`);
process.exit(code);
