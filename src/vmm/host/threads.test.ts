import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { lowerHelperThreads } from "./threads.js";
import { skipTest } from "../../../test/skip.js";

const here = fileURLToPath(new URL("./threads.ts", import.meta.url));

// Runs in a child process: lowering is irreversible without privilege, and this test's own worker
// should keep its priorities.
const probe = `
import { readdirSync } from "node:fs";
import { lowerHelperThreads, threadNice } from ${JSON.stringify(here)};
const nices = () => Object.fromEntries(readdirSync("/proc/self/task").map((t) => [t, threadNice(Number(t))]));
const before = nices();
const first = await lowerHelperThreads(15);
const after = nices();
const second = await lowerHelperThreads(15);
console.log(JSON.stringify({ pid: process.pid, before, first, after, second }));
`;

describe("lowerHelperThreads", () => {
  it("raises the nice value of every thread but the main one, once", (ctx) => {
    if (process.platform !== "linux") return skipTest(ctx, `SKIPPED: per-thread nice values are Linux only (${process.platform})`);
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as {
      pid: number;
      before: Record<string, number>;
      after: Record<string, number>;
      first: { lowered: number; already: number; skipped?: string };
      second: { lowered: number; already: number; skipped?: string };
    };
    const helpers = Object.keys(j.before).filter((t) => Number(t) !== j.pid);
    // Node always starts V8's worker pool, so there is something to lower.
    expect(helpers.length).toBeGreaterThanOrEqual(2);
    expect(j.first.skipped).toBeUndefined();
    expect(j.first.lowered).toBe(helpers.filter((t) => (j.before[t] ?? 0) < 15).length);
    for (const t of helpers) if (t in j.after) expect(j.after[t]).toBeGreaterThanOrEqual(15);
    expect(j.after[String(j.pid)]).toBe(j.before[String(j.pid)]);
    expect(j.second.lowered).toBe(0);
    expect(j.second.already).toBeGreaterThanOrEqual(helpers.length);
  });

  it("refuses nice values outside 1..19 without touching anything", async () => {
    for (const n of [0, 20, 2.5, -1]) {
      const r = await lowerHelperThreads(n);
      expect(r.lowered).toBe(0);
      expect(r.skipped).toMatch(/not in 1\.\.19|not Linux/);
    }
  });
});
