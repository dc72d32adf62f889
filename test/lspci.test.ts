/**
 * `nicvisor lspci -xxxx` against Debian's real lspci: the dump must read back through `lspci -F`
 * and decode with no warnings, showing the demo topology's SR-IOV PF, its MSI-X, the root port's
 * slot and the VFs.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { skipTest } from "./skip.js";

const LSPCI = "/usr/bin/lspci";

async function dump(args: string[]): Promise<string> {
  let out = "";
  const status = await main(["lspci", ...args], { out: (s) => void (out += s), err: () => {} });
  expect(status).toBe(0);
  return out;
}

function decode(text: string): { stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "nv-lspci-"));
  try {
    const file = join(dir, "dump.txt");
    writeFileSync(file, text);
    const r = spawnSync(LSPCI, ["-F", file, "-vvv"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    // -vvv makes lspci look up kernel drivers through libkmod; in a container without modules for
    // the running kernel it says so on stderr. That line is about this machine, not the dump.
    const stderr = r.stderr.split("\n").filter((l) => l !== "" && !/Unable to load libkmod resources/.test(l)).join("\n");
    return { stdout: r.stdout, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("nicvisor lspci -xxxx, decoded by Debian's lspci", () => {
  it("prints every function in the lspci -xxxx layout", async () => {
    const text = await dump(["-xxxx"]);
    const heads = text.split("\n").filter((l) => /^[0-9a-f]{2}:[0-9a-f]{2}\.\d /.test(l)).map((l) => l.slice(0, 7));
    expect(heads).toEqual(["00:00.0", "00:01.0", "01:00.0", "01:00.1", "01:00.2"]);
    // PCIe functions dump 4096 bytes (rows 00: .. ff0:), the conventional host bridge 256.
    expect(text).toMatch(/\nff0:( [0-9a-f]{2}){16}\n/);
    expect(text.split("\n\n")[0]!.split("\n").length).toBe(1 + 16);
    expect((await dump(["-x"])).split("\n\n")[0]!.split("\n").length).toBe(1 + 4);
  });

  it("decodes with no warnings and shows SR-IOV, MSI-X, the slot and the VFs", async (ctx) => {
    if (!existsSync(LSPCI)) return skipTest(ctx, `SKIPPED: ${LSPCI} not installed (Debian package pciutils)`);
    const { stdout, stderr } = decode(await dump(["-xxxx"]));
    expect(stderr).toBe("");
    const pf = stdout.split("\n\n").find((b) => b.startsWith("01:00.0"))!;
    expect(pf).toMatch(/Single Root I\/O Virtualization \(SR-IOV\)/);
    expect(pf).toMatch(/IOVCtl:\s+Enable\+ .*MSE\+ ARIHierarchy\+/);
    expect(pf).toMatch(/Initial VFs: 8, Total VFs: 8, Number of VFs: 2/);
    expect(pf).toMatch(/VF offset: 1, stride: 1, Device ID: 0105/);
    expect(pf).toMatch(/Region 0: Memory at c0010000 \(32-bit, non-prefetchable\)/);
    expect(pf).toMatch(/Region 2: Memory at 00000000c0100000 \(64-bit, non-prefetchable\)/);
    expect(pf).toMatch(/MSI-X: Enable- Count=4 Masked-\n\s+Vector table: BAR=2 offset=00000000\n\s+PBA: BAR=2 offset=00000800/);
    expect(pf).toMatch(/Alternative Routing-ID Interpretation \(ARI\)/);
    expect(pf).toMatch(/Advanced Error Reporting/);
    expect(pf).toMatch(/Express \(v2\) Endpoint/);
    const port = stdout.split("\n\n").find((b) => b.startsWith("00:01.0"))!;
    expect(port).toMatch(/Express \(v2\) Root Port \(Slot\+\)/);
    expect(port).toMatch(/SltCap:\s+AttnBtn\+ PwrCtrl\+ MRL- AttnInd\+ PwrInd\+ HotPlug\+/);
    expect(port).toMatch(/SltSta:\s+Status: .*PresDet\+/);
    expect(port).toMatch(/Bus: primary=00, secondary=01, subordinate=01/);
    // VFs: their own header reads Vendor ID 0xFFFF, as on real hardware.
    for (const vf of ["01:00.1", "01:00.2"]) {
      const b = stdout.split("\n\n").find((x) => x.startsWith(vf));
      expect(b).toMatch(/Illegal Vendor ID Device ffff/);
      expect(b).toMatch(/MSI-X: Enable- Count=2/);
    }
  });

  it("is what the installed CLI prints", async (ctx) => {
    const bin = join(process.cwd(), "dist", "cli", "bin.js");
    if (!existsSync(bin)) return skipTest(ctx, "SKIPPED: dist/ not built (npm test builds it before vitest)");
    const r = spawnSync(process.execPath, [bin, "lspci", "-xxxx"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(await dump(["-xxxx"]));
  });
});
