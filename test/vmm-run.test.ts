import { describe, it, expect } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../src/cli/command.js";
import { command, parseRunArgs } from "../src/cli/commands/run.js";
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
