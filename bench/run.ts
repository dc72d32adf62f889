/**
 * Runs every benchmark in bench/ one after another (each in its own Node process, so one bench's
 * JIT state does not colour the next), or only those whose file name contains an argument:
 *
 *   npm run bench               # all
 *   npm run bench -- toeplitz   # bench/toeplitz.bench.ts
 *
 * bench/boot.ts (real guests, minutes) runs only when named: `npm run bench -- boot`.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL(".", import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts") || (f === "boot.ts" && filters.includes("boot")))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n### ${f}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", `${dir}${f}`], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
