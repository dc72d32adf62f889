/**
 * Live migration from the command line, as a user runs it: `nicvisor run --incoming unix:PATH`
 * waits; `nicvisor run --migrate-to unix:PATH --after 1` boots a guest and moves it; the
 * destination then runs its `--exec` command in the moved guest, which pings through virtio-net.
 * Progress and the final figures go to stderr on both sides.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { canBuildGuestImage } from "../src/vmm/host/guest-image/index.js";
import { skipTest } from "./skip.js";

const bin = new URL("../dist/cli/bin.js", import.meta.url).pathname;

function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), 240_000);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

/** Why no guest can run here (no v86 assets, no image), or undefined. */
async function cannotRun(): Promise<string | undefined> {
  const a = findV86Assets();
  if ("missing" in a) return a.missing;
  const can = await canBuildGuestImage();
  if (!can.ok) return can.reason;
  if (!existsSync(bin)) throw new Error("dist/ is not built: run `npm run build` (npm test does) first");
  return undefined;
}

/** Waits (up to 60 s) until the destination listens on the unix socket `path`. */
async function listening(path: string): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 100));
}

describe("nicvisor run --incoming / --migrate-to", () => {
  it("moves a running guest from one process to another, which then runs the --exec command in it", async (ctx) => {
    const why = await cannotRun();
    if (why !== undefined) return skipTest(ctx, `SKIPPED: ${why}`);
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-mig-"));
    try {
      const sock = `unix:${join(dir, "m.sock")}`;
      const dst = run(["run", "--net", "virtio", "--incoming", sock, "--exec", "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; sleep 2; ping -c 3 -W 2 10.0.2.2"]);
      // The destination listens once its (paused, empty) machine exists.
      await listening(join(dir, "m.sock"));
      const src = await run(["run", "--net", "virtio", "--migrate-to", sock, "--after", "1"]);
      const d = await dst;
      console.log(`${src.err.split("\n").filter((l) => /completed/.test(l))[0] ?? src.err.slice(-500)}`);
      expect(src.code, src.err).toBe(0);
      expect(src.err).toMatch(/migration source: completed\/done, [\d.]+ MiB, round \d+.*downtime \d+ ms/);
      expect(d.code, d.err).toBe(0);
      expect(d.err).toMatch(/migration destination: completed/);
      expect(d.out).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("with --net vf,failover --migrate-transparent: the source switches the VF to emulation, the destination back to pass-through, and the moved guest pings through it", async (ctx) => {
    const why = await cannotRun();
    if (why !== undefined) return skipTest(ctx, `SKIPPED: ${why}`);
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-mig-"));
    try {
      const sock = `unix:${join(dir, "t.sock")}`;
      const up = "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; sleep 2; ping -c 3 -W 2 10.0.2.2";
      const dst = run(["run", "--net", "vf,failover", "--incoming", sock, "--exec", up]);
      await listening(join(dir, "t.sock"));
      const src = await run(["run", "--net", "vf,failover", "--migrate-to", sock, "--after", "1", "--migrate-transparent"]);
      const d = await dst;
      expect(src.code, src.err).toBe(0);
      expect(src.err).toMatch(/migration source: completed\/done/);
      // the source's VF went to emulation for the move (and stayed there: the guest left)
      expect(src.err).toMatch(/failover: 1 switches \(0 failed\).*backing emulated/);
      expect(d.code, d.err).toBe(0);
      // the destination switched it back to pass-through once the guest ran there
      expect(d.err).toMatch(/failover: 1 switches \(0 failed\).*backing passthrough/);
      expect(d.out).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("with --net failover (QEMU's failover=on): the source unplugs the VF before pre-copy, the destination plugs one and net_failover takes it as primary again", async (ctx) => {
    const why = await cannotRun();
    if (why !== undefined) return skipTest(ctx, `SKIPPED: ${why}`);
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-mig-"));
    try {
      const sock = `unix:${join(dir, "f.sock")}`;
      // On the destination: the master up, a ping, then net_failover's primaries in this guest's life.
      const primaries = "dmesg | grep -c 'failover primary slave:.* registered'";
      const check = `ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; sleep 2; ping -c 3 -W 2 10.0.2.2; i=0; while [ $(${primaries}) -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo primaries=$(${primaries})`;
      const dst = run(["run", "--net", "failover", "--incoming", sock, "--exec", check]);
      await listening(join(dir, "f.sock"));
      // --after 12: the VF is hot-added 5 s after the guest's virtio-net takes STANDBY; the move waits for it to be in use
      const src = await run(["run", "--net", "failover", "--migrate-to", sock, "--after", "12"]);
      const d = await dst;
      expect(src.code, src.err).toBe(0);
      expect(src.err).toMatch(/migration source: completed\/done/);
      expect(d.code, d.err).toBe(0);
      expect(d.out).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
      expect(d.out).toMatch(/primaries=2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
