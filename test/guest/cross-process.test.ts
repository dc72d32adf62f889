/**
 * A real guest moves between processes: a Debian guest with virtio-net and a VF-only 82576 boots
 * in one `node` process, starts a ping on each NIC, and is saved to a file; a fresh process,
 * started at least 10 s after the first (so its clock origin differs), restores it and the guest
 * carries on: both pings complete with no loss beyond the pause, igbvf's interrupts keep arriving
 * (no moderation timer stuck in the old process's future), and dmesg shows no reset, watchdog or
 * link-down line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { skipTest } from "../skip.js";

const child = new URL("./cross-process-child.ts", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "nicvisor-xproc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(mode: "save" | "restore", file: string): { result?: Record<string, unknown>; skip?: string; log: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", child, mode, file], { encoding: "utf8", timeout: 240_000, maxBuffer: 64 << 20 });
  const log = `${r.stdout}\n${r.stderr}`;
  const skip = /^SKIPPED: (.*)$/m.exec(r.stdout)?.[1];
  if (skip !== undefined) return { skip, log };
  const line = /^RESULT (.*)$/m.exec(r.stdout)?.[1];
  if (r.status !== 0 || line === undefined) throw new Error(`${mode} process failed (status ${String(r.status)}):\n${log.slice(-4000)}`);
  return { result: JSON.parse(line) as Record<string, unknown>, log };
}

/** The count of `name`'s line in /proc/interrupts (one CPU). */
function irq(text: string, name: string): number {
  const m = new RegExp(`^\\s*\\d+:\\s+(\\d+)\\s.*\\s${name}$`, "m").exec(text);
  return m === null ? -1 : Number(m[1]);
}

describe("a real guest saved in one process and restored in another", () => {
  it("carries on: pings on virtio-net and on the VF complete, igbvf's interrupts keep coming, no reset in dmesg", async (ctx) => {
    const file = join(dir, "guest.snap");
    const saved = run("save", file);
    if (saved.skip !== undefined) return skipTest(ctx, `SKIPPED: ${saved.skip}`);
    const s = saved.result!;
    // A different clock origin: the restoring process starts at least 10 s after the saving one did.
    const wait = (s.origin as number) + 10_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait + 200));
    const restored = run("restore", file);
    const r = restored.result!;
    expect((r.origin as number) - (s.origin as number)).toBeGreaterThanOrEqual(10_000);

    const pings = r.pings as string;
    const [virtio, vf] = pings.split("====");
    for (const [name, out] of [["virtio-net", virtio], ["VF", vf]] as const) {
      const m = /(\d+) packets transmitted, (\d+) packets received/.exec(out ?? "");
      expect(m, `${name} ping summary:\n${out}`).not.toBeNull();
      expect(Number(m![1])).toBe(80);
      // At most the echoes in flight at the instant of the save may be lost.
      expect(Number(m![2]), `${name}:\n${out}`).toBeGreaterThanOrEqual(78);
    }

    const vfIf = s.vf as string;
    for (const q of ["tx-0", "rx-0"]) {
      const at = irq(r.irqAtRestore as string, `${vfIf}-${q}`);
      const after = irq(r.irqAfter as string, `${vfIf}-${q}`);
      expect(at, `${vfIf}-${q} at restore`).toBeGreaterThan(0);
      expect(after - at, `${vfIf}-${q} interrupts after the restore`).toBeGreaterThanOrEqual(20);
    }

    const newLines = (r.dmesg as string).split("\n").slice((s.dmesgLines as number) - 1).join("\n");
    expect(newLines).not.toMatch(/reset|watchdog|link is down|link down|timed out|hang/i);
  }, 300_000);
});
