import { describe, it, expect } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../src/cli/command.js";
import { command, parseRunArgs } from "../src/cli/commands/run.js";
import { parseNetSpec } from "../src/cli/net-option.js";
import { VIRTIO_NET_F } from "../src/devices/virtio-net/features.js";
import { spawn, spawnSync } from "node:child_process";
import { main } from "../src/cli/main.js";
import { listenStream } from "../src/vmm/host/net/socket.js";
import { HostStub } from "../src/devices/net/host-stub.js";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { testImage } from "./guest/image.js";
import { skipTest } from "./skip.js";

describe("nicvisor run: arguments", () => {
  it("parses options in both spellings", () => {
    expect(parseRunArgs(["--kernel", "k", "--initrd=i", "--mem", "128", "--exec", "ls /", "--append=quiet"])).toEqual({
      kernel: "k",
      initrd: "i",
      mem: 128,
      exec: "ls /",
      append: "quiet",
      timeoutS: 180,
    });
  });
  it("rejects bad input with a usage error", () => {
    expect(() => parseRunArgs(["--mem", "7"])).toThrow(UsageError);
    expect(() => parseRunArgs(["--kernel", "k"])).toThrow(UsageError);
    expect(() => parseRunArgs(["--bogus"])).toThrow(UsageError);
    // Migration options are checked together, and their URIs at parse time.
    expect(parseRunArgs(["--migrate-to", "unix:/tmp/m.sock", "--after", "2"])).toMatchObject({ migrateTo: "unix:/tmp/m.sock", afterS: 2 });
    expect(parseRunArgs(["--incoming", "tcp:127.0.0.1:4444"])).toMatchObject({ incoming: "tcp:127.0.0.1:4444" });
    expect(() => parseRunArgs(["--incoming", "unix:/a", "--migrate-to", "unix:/b"])).toThrow(/exclude each other/);
    expect(() => parseRunArgs(["--after", "1"])).toThrow(/--after goes with --migrate-to/);
    expect(parseRunArgs(["--net", "vf,failover", "--migrate-to", "unix:/b", "--migrate-transparent"])).toMatchObject({ migrateTransparent: true });
    expect(() => parseRunArgs(["--net", "virtio", "--migrate-to", "unix:/b", "--migrate-transparent"])).toThrow(/needs --net vf,failover/);
    expect(() => parseRunArgs(["--net", "vf,failover", "--incoming", "unix:/b", "--migrate-transparent"])).toThrow(/is for the source/);
    expect(() => parseRunArgs(["--net", "vf,failover", "--migrate-transparent=on"])).toThrow(/takes no value/);
    expect(() => parseRunArgs(["--migrate-to", "unix:/b", "--exec", "ls"])).toThrow(/exclude each other/);
    expect(() => parseRunArgs(["--migrate-to", "ftp:x"])).toThrow(UsageError);
    expect(() => parseRunArgs(["--exec"])).toThrow(UsageError);
  });
});

describe("nicvisor run --net and --pcap: arguments", () => {
  it("parses NIC specs with their options", () => {
    expect(parseNetSpec("virtio")).toEqual({ kind: "virtio", maxPairs: 2, standby: false, packed: false, withhold: [] });
    expect(parseNetSpec("virtio,mac=52:54:00:00:00:07,mq=4,mtu=9000,standby,packed,no-mrg-rxbuf,no-ctrl-vq")).toEqual({
      kind: "virtio",
      mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 7),
      maxPairs: 4,
      mtu: 9000,
      standby: true,
      packed: true,
      withhold: [VIRTIO_NET_F.MRG_RXBUF, VIRTIO_NET_F.CTRL_VQ],
    });
    expect(parseNetSpec("igb,mac=52:54:00:00:00:08")).toEqual({ kind: "igb", mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 8) });
    expect(parseNetSpec("none")).toEqual({ kind: "none" });
    expect(parseNetSpec("vf")).toEqual({ kind: "vf", trust: false, spoofchk: true, failover: false });
    expect(parseNetSpec("vf,failover,mac=52:54:00:00:00:09")).toEqual({ kind: "vf", mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 9), trust: false, spoofchk: true, failover: true });
    expect(parseNetSpec("vf,mac=52:54:00:00:00:09,trust,spoofchk=off")).toEqual({ kind: "vf", mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 9), trust: true, spoofchk: false, failover: false });
    expect(parseRunArgs(["--net", "virtio", "--pcap", "/tmp/x.pcap"]).pcap).toBe("/tmp/x.pcap");
  });
  it("rejects what it cannot do with a usage error that says why", () => {
    expect(() => parseNetSpec("virtio,no-bogus")).toThrow(/unknown feature 'bogus'/);
    expect(() => parseNetSpec("virtio,mq=0")).toThrow(/mq must be an integer in 1..16/);
    expect(() => parseNetSpec("virtio,mac=01:00:5e:00:00:01")).toThrow(/multicast/);
    expect(() => parseNetSpec("virtio,mac=zz")).toThrow(/bad mac/);
    expect(() => parseNetSpec("e1000")).toThrow(/unknown NIC/);
    expect(parseNetSpec("failover,mac=52:54:00:00:00:0a,netdev=n0")).toEqual({ kind: "failover", mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x0a), netdev: "n0" });
    expect(() => parseNetSpec("failover,trust")).toThrow(/--net failover: unknown option 'trust'/);
    expect(() => parseNetSpec("vf,vlan=5")).toThrow(/unknown option 'vlan=5'/);
    expect(() => parseRunArgs(["--pcap", "/tmp/x.pcap"])).toThrow(UsageError);
  });
});

describe("nicvisor run --exec on a real guest", () => {
  it("boots, runs the command, prints its output and returns its status", async (ctx) => {
    const assets = findV86Assets();
    const img = await testImage();
    if ("missing" in assets || "missing" in img) {
      return skipTest(ctx, `SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    }
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-run-"));
    try {
      writeFileSync(join(dir, "vmlinuz"), img.kernel);
      writeFileSync(join(dir, "initrd"), img.initrd);
      let out = "";
      let err = "";
      const status = await command.run(
        ["--kernel", join(dir, "vmlinuz"), "--initrd", join(dir, "initrd"), "--append", img.append, "--exec", "cat /sys/bus/pci/devices/0000:01:00.0/vendor; exit 4"],
        { out: (s) => (out += s), err: (s) => (err += s) },
      );
      expect(err).toBe("");
      expect(out).toBe("0x1b36\n");
      expect(status).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe("nicvisor run --net virtio --pcap (the built CLI, a real guest, Debian's tshark)", () => {
  it("pings the host stub through virtio-net, and tshark finds the three echo pairs in the capture", async (ctx) => {
    const assets = findV86Assets();
    const img = await testImage();
    if ("missing" in assets || "missing" in img) {
      return skipTest(ctx, `SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    }
    if (spawnSync("tshark", ["--version"]).status !== 0) return skipTest(ctx, "SKIPPED: tshark not found (apt-get install tshark)");
    const bin = fileURLToPath(new URL("../dist/cli/bin.js", import.meta.url));
    if (!existsSync(bin)) return skipTest(ctx, "SKIPPED: dist/ not built (npm run build)");
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-run-"));
    try {
      const pcap = join(dir, "ping.pcap");
      const r = spawnSync(process.execPath, [bin, "run", "--net", "virtio", "--pcap", pcap, "--exec", "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ping -c 3 -W 2 10.0.2.2"], {
        encoding: "utf8",
        timeout: 240_000,
      });
      expect(r.stdout).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/frames captured to /);
      const t = spawnSync("tshark", ["-r", pcap, "-Y", "icmp", "-T", "fields", "-e", "icmp.type", "-e", "icmp.seq", "-e", "ip.src", "-e", "ip.dst"], { encoding: "utf8" });
      expect(t.status).toBe(0);
      const rows = t.stdout.trim().split("\n").map((l) => l.split("\t"));
      const requests = rows.filter((x) => x[0] === "8" && x[2] === "10.0.2.15" && x[3] === "10.0.2.2").map((x) => x[1]);
      const replies = rows.filter((x) => x[0] === "0" && x[2] === "10.0.2.2" && x[3] === "10.0.2.15").map((x) => x[1]);
      expect(requests).toEqual(["0", "1", "2"]);
      expect(replies).toEqual(["0", "1", "2"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

/** The CLI from source (no build needed): `node --import tsx src/cli/bin.ts ...`. */
const CLI = [ "--import", "tsx", fileURLToPath(new URL("../src/cli/bin.ts", import.meta.url)) ];

/** Runs `nicvisor ARGS` in this process; its status and output. */
async function cliHere(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const status = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { status, out, err };
}

/** Waits (bounded by the test's timeout) until `cond()` holds. */
async function waitFor(what: string, cond: () => boolean, maxMs = 200_000): Promise<void> {
  for (let t = 0; !cond(); t += 50) {
    if (t > maxMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("nicvisor run --control (a real guest, the CLI from source)", () => {
  it("query-status says running; stop pauses (input waits), cont resumes; quit ends the run with status 0", async (ctx) => {
    const assets = findV86Assets();
    const img = await testImage();
    if ("missing" in assets || "missing" in img) {
      return skipTest(ctx, `SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    }
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-ctl-run-"));
    const sock = join(dir, "vm.sock");
    const child = spawn(process.execPath, [...CLI, "run", "--net", "virtio", "--control", `unix:${sock}`], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("latin1")));
    child.stderr.on("data", (d: Buffer) => (err += d.toString("latin1")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let code: number | null | undefined;
    void exited.then((c) => (code = c));
    try {
      await waitFor("the control socket", () => err.includes(`control socket on unix:${sock}`) || code !== undefined);
      expect(code).toBeUndefined();
      expect(await cliHere(["control", `unix:${sock}`, "query-status"])).toEqual({ status: 0, out: '{"running":true,"status":"running"}\n', err: "" });
      await waitFor("the ready marker", () => out.includes("@@NICVISOR-READY@@"));
      expect(await cliHere(["control", `unix:${sock}`, "stop"])).toMatchObject({ status: 0, out: "{}\n" });
      // The script-facing binary itself, once.
      const q = spawnSync(process.execPath, [...CLI, "control", `unix:${sock}`, "query-status"], { encoding: "utf8", timeout: 60_000 });
      expect(q.stdout).toBe('{"running":false,"status":"paused"}\n');
      expect(q.status).toBe(0);
      // Typed while paused: the guest answers only once it runs again.
      child.stdin.write("echo nv-ctl-$((40+2))\n");
      expect(await cliHere(["control", `unix:${sock}`, "cont"])).toMatchObject({ status: 0, out: "{}\n" });
      expect((await cliHere(["control", `unix:${sock}`, "query-status"])).out).toBe('{"running":true,"status":"running"}\n');
      await waitFor("the guest's answer after cont", () => out.includes("nv-ctl-42"));
      const cmds = await cliHere(["control", `unix:${sock}`, "query-commands"]);
      expect(JSON.parse(cmds.out)).toEqual(expect.arrayContaining([{ name: "query-status" }, { name: "stop" }, { name: "cont" }, { name: "quit" }]));
      expect(await cliHere(["control", `unix:${sock}`, "quit"])).toMatchObject({ status: 0, out: "{}\n" });
      expect(await exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
    } finally {
      if (code === undefined) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe("nicvisor run --netdev stream (a real guest, the CLI from source)", () => {
  it("a guest on --net virtio,netdev=n0 pings a host stub behind a stream server in this process", async (ctx) => {
    const assets = findV86Assets();
    const img = await testImage();
    if ("missing" in assets || "missing" in img) {
      return skipTest(ctx, `SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    }
    const server = await listenStream({ port: 0 });
    const stub = new HostStub({ backend: server });
    try {
      const child = spawn(
        process.execPath,
        [
          ...CLI, "run", "--net", "virtio,netdev=n0",
          "--netdev", `stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${server.port}`,
          "--exec", "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ping -c 3 -W 2 10.0.2.2",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString("latin1")));
      child.stderr.on("data", (d: Buffer) => (err += d.toString("latin1")));
      const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
      expect(err).toContain(`netdev 'n0': stream client of 127.0.0.1:${server.port}`);
      expect(out).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
      expect(code).toBe(0);
      expect(stub.counters.echoReplies).toBe(3);
      expect(server.counters.connections).toBe(1);
    } finally {
      server.close();
    }
  }, 300_000);
});
