import { describe, it, expect } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../src/cli/command.js";
import { command, parseRunArgs } from "../src/cli/commands/run.js";
import { parseNetSpec } from "../src/cli/net-option.js";
import { VIRTIO_NET_F } from "../src/devices/virtio-net/features.js";
import { spawnSync } from "node:child_process";
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
    expect(parseNetSpec("vf")).toEqual({ kind: "vf", trust: false, spoofchk: true });
    expect(parseNetSpec("vf,mac=52:54:00:00:00:09,trust,spoofchk=off")).toEqual({ kind: "vf", mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 9), trust: true, spoofchk: false });
    expect(parseRunArgs(["--net", "virtio", "--pcap", "/tmp/x.pcap"]).pcap).toBe("/tmp/x.pcap");
  });
  it("rejects what it cannot do with a usage error that says why", () => {
    expect(() => parseNetSpec("virtio,no-bogus")).toThrow(/unknown feature 'bogus'/);
    expect(() => parseNetSpec("virtio,mq=0")).toThrow(/mq must be an integer in 1..16/);
    expect(() => parseNetSpec("virtio,mac=01:00:5e:00:00:01")).toThrow(/multicast/);
    expect(() => parseNetSpec("virtio,mac=zz")).toThrow(/bad mac/);
    expect(() => parseNetSpec("e1000")).toThrow(/unknown NIC/);
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
