#!/usr/bin/env node
// Runs the vitest suite (arguments pass through) and ends with one plain summary line,
// "tests: N passed, N failed, N skipped", so a CI log states the count whatever the reporter.
// Exits with vitest's own status.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "nicvisor-vitest-"));
const out = join(dir, "results.json");
const r = spawnSync("npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...process.argv.slice(2)], {
  stdio: "inherit",
});
let summary = "tests: no result file (vitest did not finish)";
try {
  const j = JSON.parse(readFileSync(out, "utf8"));
  const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  summary = `tests: ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${skipped} skipped`;
} catch {
  // keep the message above
}
rmSync(dir, { recursive: true, force: true });
console.log(summary);
process.exit(r.status ?? 1);
