/**
 * nicvisor's virtio-net on a Linux TAP inside a network namespace the test creates: Debian's
 * iperf3 client in the guest against Debian's iperf3 server in the namespace, TCP, 10 s in each
 * direction, with checksum and TSO offloads going through the TAP's vnet header; and 2 MiB of
 * random data each way over TCP (busybox nc in the guest, a Node helper in the namespace) with
 * SHA-256 compared on both ends.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { TapBackend, tapUnavailableReason } from "../../src/vmm/host/net/tap.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

const NS = `nvtap-${process.pid}`;
const IF = `nvi${process.pid % 100000}`;
const HOST_IP = "10.0.3.1";

let vm: GuestVm | undefined;
let tap: TapBackend | undefined;
let skip: string | undefined;
const children: ChildProcess[] = [];
let dir = "";

function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** A helper in the namespace: port 5000 hashes what it receives, port 5001 sends `send.bin`. */
const HELPER = `
import { createServer } from "node:net";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
const dir = process.argv[2];
createServer((s) => {
  const h = createHash("sha256"); let n = 0;
  s.on("data", (d) => { h.update(d); n += d.length; });
  s.on("end", () => writeFileSync(dir + "/recv.sha", h.digest("hex") + " " + n));
}).listen(5000, "${HOST_IP}");
createServer((s) => { s.end(readFileSync(dir + "/send.bin")); }).listen(5001, "${HOST_IP}");
console.log("ready");
`;

beforeAll(async () => {
  const why = tapUnavailableReason();
  if (why !== undefined) return void (skip = `TAP unavailable: ${why}`);
  if (sh("iperf3", ["--version"]).status !== 0) return void (skip = "iperf3 not installed on the host (apt-get install iperf3)");
  const added = sh("ip", ["netns", "add", NS]);
  if (added.status !== 0) return void (skip = `cannot create a network namespace: ${added.out.trim()}`);
  dir = mkdtempSync(join(tmpdir(), "nicvisor-tap-"));
  tap = TapBackend.open({ name: IF });
  for (const args of [["link", "set", IF, "netns", NS], ["netns", "exec", NS, "ip", "addr", "add", `${HOST_IP}/24`, "dev", IF], ["netns", "exec", NS, "ip", "link", "set", IF, "up"], ["netns", "exec", NS, "ip", "link", "set", "lo", "up"]]) {
    const r = sh("ip", args);
    if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
  }
  writeFileSync(join(dir, "helper.mjs"), HELPER);
  const iperf = spawn("ip", ["netns", "exec", NS, "iperf3", "-s", "-B", HOST_IP], { stdio: "ignore" });
  const helper = spawn("ip", ["netns", "exec", NS, process.execPath, join(dir, "helper.mjs"), dir], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(iperf, helper);
  await new Promise<void>((resolve, reject) => {
    helper.stdout!.once("data", () => resolve());
    helper.once("exit", (c) => reject(new Error(`namespace helper exited (${c})`)));
  });
  const backend = tap;
  const g = await bootTestGuest((env) => new VirtioNetPlatform(env, { backend }));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  const r = await vm.exec("modprobe virtio_pci && modprobe virtio_net && ip link set eth0 up && ip addr add 10.0.3.15/24 dev eth0", { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`bringing up virtio_net failed: ${r.output}`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
  for (const c of children) c.kill("SIGKILL");
  tap?.close();
  sh("ip", ["netns", "del", NS]);
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
  expect(sh("ip", ["netns", "list"]).out).not.toContain(NS);
});

/** The receiver's bitrate in Mbit/s from iperf3's summary. */
function receiverMbps(out: string): number {
  const m = /([\d.]+) ([KMG])bits\/sec\s+(?:\d+\s+)?receiver/.exec(out);
  if (m === null) return NaN;
  const scale = m[2] === "G" ? 1000 : m[2] === "M" ? 1 : 0.001;
  return Number(m[1]) * scale;
}

describe("virtio-net on a TAP in a network namespace", () => {
  it("runs iperf3 TCP for 10 s from the guest to the namespace and back (-R)", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, VirtioNetPlatform);
    const up = await vm.exec(`iperf3 -c ${HOST_IP} -t 10 -f m`, { timeoutMs: 90_000 });
    expect(up.status, up.output).toBe(0);
    const down = await vm.exec(`iperf3 -c ${HOST_IP} -t 10 -f m -R`, { timeoutMs: 90_000 });
    expect(down.status, down.output).toBe(0);
    const a = receiverMbps(up.output);
    const b = receiverMbps(down.output);
    console.log(`iperf3 through nicvisor virtio-net + TAP: guest->host ${a} Mbit/s, host->guest ${b} Mbit/s; device counters ${JSON.stringify(p.nic.counters)}`);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(p.nic.counters.txErrors).toBe(0);
    expect(p.transport.lastError).toBeUndefined();
  });

  it("moves 2 MiB each way over TCP with the SHA-256 intact on both ends", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const send = new Uint8Array(2 << 20);
    for (let i = 0; i < send.length; i += 65536) send.set(crypto.getRandomValues(new Uint8Array(65536)), i);
    writeFileSync(join(dir, "send.bin"), send);
    const { createHash } = await import("node:crypto");
    const sendSha = createHash("sha256").update(send).digest("hex");
    const g = await vm.exec(
      `dd if=/dev/urandom of=/tmp/up.bin bs=64k count=32 2>/dev/null && sha256sum /tmp/up.bin && nc ${HOST_IP} 5000 < /tmp/up.bin && nc ${HOST_IP} 5001 > /tmp/down.bin && sha256sum /tmp/down.bin && wc -c < /tmp/down.bin`,
      { timeoutMs: 120_000 },
    );
    expect(g.status, g.output).toBe(0);
    const [upLine, downLine, size] = g.output.trim().split("\n");
    const upSha = upLine!.split(/\s+/)[0];
    // Wait for the helper to see the end of the upload.
    let recv = "";
    for (let i = 0; i < 50 && recv === ""; i++) {
      try {
        recv = readFileSync(join(dir, "recv.sha"), "utf8");
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(recv).toBe(`${upSha} ${2 << 20}`);
    expect(downLine!.split(/\s+/)[0]).toBe(sendSha);
    expect(Number(size)).toBe(2 << 20);
  });
});
