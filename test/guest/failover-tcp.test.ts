/**
 * A TCP stream across the failover switch: Debian's iperf3 client in a guest whose only NIC is the
 * failover VF (Debian's igbvf), against Debian's iperf3 server in a network namespace behind a
 * TAP; 8 s without switching, then 8 s with 20 switches (10 each way). The retransmission counts
 * of the two runs are printed side by side; the stream must keep its pace and retransmit no more
 * than the run without switches plus a small margin.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { FailoverVfPlatform } from "../../src/vmm/platforms.js";
import { TapBackend, tapUnavailableReason } from "../../src/vmm/host/net/tap.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

const NS = `nvfo-${process.pid}`;
const IF = `nvf${process.pid % 100000}`;
const HOST_IP = "10.0.4.1";

let vm: GuestVm | undefined;
let tap: TapBackend | undefined;
let skip: string | undefined;
const children: ChildProcess[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

beforeAll(async () => {
  const why = tapUnavailableReason();
  if (why !== undefined) return void (skip = `TAP unavailable: ${why}`);
  if (sh("iperf3", ["--version"]).status !== 0) return void (skip = "iperf3 not installed on the host (apt-get install iperf3)");
  const added = sh("ip", ["netns", "add", NS]);
  if (added.status !== 0) return void (skip = `cannot create a network namespace: ${added.out.trim()}`);
  tap = TapBackend.open({ name: IF });
  for (const args of [["link", "set", IF, "netns", NS], ["netns", "exec", NS, "ip", "addr", "add", `${HOST_IP}/24`, "dev", IF], ["netns", "exec", NS, "ip", "link", "set", IF, "up"], ["netns", "exec", NS, "ip", "link", "set", "lo", "up"]]) {
    const r = sh("ip", args);
    if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
  }
  children.push(spawn("ip", ["netns", "exec", NS, "iperf3", "-s", "-B", HOST_IP], { stdio: "ignore" }));
  const backend = tap;
  const g = await bootTestGuest((env) => new FailoverVfPlatform(env, { backend }));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  const r = await vm.exec("sleep 1; ip link set eth0 up && ip addr add 10.0.4.15/24 dev eth0 && sleep 3 && ping -c 2 -W 2 10.0.4.1", { timeoutMs: 60_000 });
  if (!/2 packets received/.test(r.output)) throw new Error(`the VF did not reach the namespace: ${r.output}`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
  for (const c of children) c.kill("SIGKILL");
  tap?.close();
  sh("ip", ["netns", "del", NS]);
});

/** iperf3's sender summary: bits per second and retransmissions. */
function sender(out: string): { mbps: number; retr: number } {
  const m = /([\d.]+) ([KMG])bits\/sec\s+(\d+)\s+sender/.exec(out);
  if (m === null) throw new Error(`no sender line in:\n${out}`);
  const scale = { K: 1e-3, M: 1, G: 1e3 }[m[2] as "K" | "M" | "G"];
  return { mbps: Number(m[1]) * scale, retr: Number(m[3]) };
}

describe("TCP across the failover switch", () => {
  it("an iperf3 stream through 20 switches keeps its pace, and retransmits about as much as without switching", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, FailoverVfPlatform);
    const cmd = `iperf3 -c ${HOST_IP} -t 8 -f m 2>&1 | tail -4`;
    const quiet = sender((await vm.exec(cmd, { timeoutMs: 60_000 })).output);

    const run = vm.exec(cmd, { timeoutMs: 60_000 });
    await sleep(500);
    for (let i = 0; i < 20; i++) {
      const r = p.failover.switchTo(p.failover.active === "passthrough" ? "emulated" : "passthrough");
      expect(r.ok, r.ok ? "" : r.error.message).toBe(true);
      await sleep(330);
    }
    const switched = sender((await run).output);
    const st = p.failover.stats();
    console.log(
      `iperf3 guest->namespace over the failover VF: without switching ${quiet.mbps.toFixed(0)} Mbit/s, ${quiet.retr} retransmissions; ` +
        `with 20 switches ${switched.mbps.toFixed(0)} Mbit/s, ${switched.retr} retransmissions; worst blackout ${(st.worstBlackoutWallNs / 1e6).toFixed(2)} ms, frames dropped ${st.framesDropped}`,
    );
    expect(st.switches).toBeGreaterThanOrEqual(20);
    expect(st.framesDropped).toBe(0);
    expect(switched.mbps).toBeGreaterThan(quiet.mbps * 0.5);
    expect(switched.retr).toBeLessThanOrEqual(quiet.retr + 20);
  }, 120_000);
});
