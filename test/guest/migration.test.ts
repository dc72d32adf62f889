/**
 * Live migration of a real guest between two processes: a Debian guest with virtio-net and an
 * 82576 VF (its state travels too) boots in one `node` process and pings on both NICs; a second
 * process waits with a paused machine on a unix socket; the running guest migrates (pre-copy
 * rounds, then stop-and-copy). Afterwards the guest, now in the second process, finishes its
 * pings, still pings, igbvf's interrupts keep arriving, and dmesg shows no reset. The figures
 * (bytes, rounds, downtime, total) are printed. A second case has the destination refuse the device
 * state after the stop: the source resumes its guest, which carries on with nothing lost.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { skipTest } from "../skip.js";
import type { MigrationInfo } from "../../src/vmm/migration/info.js";

const child = new URL("./migration-child.ts", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "nicvisor-migrate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Child {
  out: () => string;
  listening: Promise<void>;
  exit: Promise<number | null>;
}

function start(mode: "dest" | "dest-refuse" | "source", uri: string): Child {
  const p = spawn(process.execPath, ["--import", "tsx", child, mode, uri], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let onListen: () => void = () => undefined;
  const listening = new Promise<void>((r) => (onListen = r));
  p.stdout.on("data", (b: Buffer) => {
    out += b.toString();
    if (/^(LISTENING|SKIPPED)/m.test(out)) onListen();
  });
  p.stderr.on("data", (b: Buffer) => (out += b.toString()));
  const exit = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
  const kill = setTimeout(() => p.kill("SIGKILL"), 280_000);
  void exit.then(() => clearTimeout(kill));
  return { out: () => out, listening, exit };
}

function result(c: Child): Record<string, unknown> | undefined {
  const line = /^RESULT (.*)$/m.exec(c.out())?.[1];
  return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
}

function irq(text: string, name: string): number {
  const m = new RegExp(`^\\s*\\d+:\\s+(\\d+)\\s.*\\s${name}$`, "m").exec(text);
  return m === null ? -1 : Number(m[1]);
}

/** Runs a destination (`mode`) and a source; returns their results, or the skip reason. */
async function pair(mode: "dest" | "dest-refuse", name: string): Promise<{ skip: string } | { sr: Record<string, unknown>; dr: Record<string, unknown>; sc: number | null; dc: number | null; log: string }> {
  const uri = `unix:${join(dir, name)}`;
  const d = start(mode, uri);
  await d.listening;
  const skipD = /^SKIPPED: (.*)$/m.exec(d.out())?.[1];
  if (skipD !== undefined) return { skip: skipD };
  const s = start("source", uri);
  const [sc, dc] = await Promise.all([s.exit, d.exit]);
  const skipS = /^SKIPPED: (.*)$/m.exec(s.out())?.[1];
  if (skipS !== undefined) return { skip: skipS };
  const log = `source exit ${String(sc)}, destination exit ${String(dc)}\n--- source:\n${s.out().slice(-4000)}\n--- destination:\n${d.out().slice(-4000)}`;
  const sr = result(s);
  const dr = result(d);
  if (sr === undefined || dr === undefined) throw new Error(log);
  return { sr, dr, sc, dc, log };
}

/** What the guest did after the migration (or after the failed one): pings, igbvf's interrupts, dmesg. */
function checkGuestCarriedOn(after: Record<string, unknown>, vfIf: string, dmesgLines: number): void {
  const [virtio, vf] = (after.pings as string).split("====");
  for (const [name, out] of [["virtio-net", virtio], ["VF", vf]] as const) {
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(out ?? "");
    expect(m, `${name} ping summary:\n${out}`).not.toBeNull();
    expect(Number(m![1])).toBe(80);
    // At most the echoes in flight during the downtime may be lost.
    expect(Number(m![2]), `${name}:\n${out}`).toBeGreaterThanOrEqual(76);
  }
  expect(after.stillPings).toBe(0);
  for (const q of ["tx-0", "rx-0"]) {
    const at = irq(after.irqAtResume as string, `${vfIf}-${q}`);
    const later = irq(after.irqAfter as string, `${vfIf}-${q}`);
    expect(at, `${vfIf}-${q} at resume`).toBeGreaterThan(0);
    expect(later - at, `${vfIf}-${q} interrupts afterwards`).toBeGreaterThanOrEqual(10);
  }
  const newLines = (after.dmesg as string).split("\n").slice(dmesgLines - 1).join("\n");
  expect(newLines).not.toMatch(/reset|watchdog|link is down|link down|timed out|hang/i);
}

describe("live migration of a real guest between two processes over a unix socket", () => {
  it("moves the running guest: pings carry on on both NICs, igbvf's interrupts keep coming, no reset in dmesg", async (ctx) => {
    const p = await pair("dest", "migrate.sock");
    if ("skip" in p) return skipTest(ctx, `SKIPPED: ${p.skip}`);
    const { sr, dr, sc, dc } = p;
    if (sc !== 0 || dc !== 0) throw new Error(p.log);
    const si = sr.info as MigrationInfo;
    const di = dr.info as MigrationInfo;
    console.log(
      `migration figures: status ${si.status}, bytes ${si.bytes} (${(si.bytes / 2 ** 20).toFixed(1)} MiB), pages ${si.pages} + ${si.zeroPages} zero, iterations ${si.iterations}, ` +
        `dirty pages per round [${si.rounds.map((r) => r.dirtyPages).join(", ")}], round ms [${si.rounds.map((r) => Math.round(r.ms)).join(", ")}], ` +
        `engine ${si.engineBytes} B, devices ${si.deviceBytes} B, expected downtime ${Math.round(si.expectedDowntimeMs)} ms, downtime ${Math.round(si.downtimeMs ?? -1)} ms, ` +
        `downtime parts (ms) ${JSON.stringify(Object.fromEntries(Object.entries(si.downtimeParts ?? {}).map(([k, v]) => [k, Math.round(v)])))}, ` +
        `destination engine load ${Math.round(dr.engineRestoreMs as number)} ms, device load ${Math.round(dr.deviceRestoreMs as number)} ms, resume ${Math.round(dr.resumeMs as number)} ms, total ${Math.round(si.totalMs)} ms; ` +
        `pings: ${((dr.pings as string).match(/\d+ packets transmitted, \d+ packets received/g) ?? []).join(" / ")}`,
    );
    expect(si.status).toBe("completed");
    expect(di.status).toBe("completed");
    expect(si.iterations).toBeGreaterThanOrEqual(2);
    expect(si.rounds[si.rounds.length - 1]!.stopped).toBe(true);
    expect(di.bytes).toBe(si.bytes);
    checkGuestCarriedOn(dr, sr.vf as string, sr.dmesgLines as number);
  }, 300_000);

  it("a destination that refuses the device state after the stop: the source resumes its guest, which carries on with nothing lost; the destination exits non-zero", async (ctx) => {
    const p = await pair("dest-refuse", "refuse.sock");
    if ("skip" in p) return skipTest(ctx, `SKIPPED: ${p.skip}`);
    const { sr, dr, sc, dc } = p;
    const si = sr.info as MigrationInfo;
    console.log(`refused migration: source ${si.status} (${si.error}), destination exit ${String(dc)}: ${(dr.info as MigrationInfo).error}`);
    expect(sc, p.log).toBe(0);
    expect(dc).toBe(1);
    expect(si.status).toBe("failed");
    expect(si.error).toMatch(/refused record #\d+ \(devices\): .*refused by the test's destination/);
    expect(si.phase).toBe("stop-and-copy"); // it failed after the guest had been stopped
    expect((dr.info as MigrationInfo).status).toBe("failed");
    checkGuestCarriedOn(sr, sr.vf as string, sr.dmesgLines as number);
  }, 300_000);
});
