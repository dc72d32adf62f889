/**
 * `npm run fuzz [-- --device NAME --ops N --seconds S --seed X --no-coverage --corpus DIR]`
 *
 * Runs the fuzz targets of src/fuzz (all, or the one named), prints per target the operations,
 * operations per second and what the checks found, minimizes the first failing sequence of each
 * kind of finding and saves it as test/fuzz-corpus/<target>-<hash>.json, and prints the V8 code
 * coverage (node:inspector precise block coverage) of src/pci and src/devices reached by the
 * targets run: functions and blocks covered, per directory, over the files the targets load.
 * Exit status 1 if any escape, isolation break, budget or invariant finding was seen.
 */
import { Session } from "node:inspector/promises";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Args {
  device: string | undefined;
  ops: number;
  seconds: number;
  seed: string;
  coverage: boolean;
  corpus: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { device: undefined, ops: 100_000, seconds: Infinity, seed: "1", coverage: true, corpus: join(root, "test/fuzz-corpus") };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const need = (): string => {
      if (v === undefined) throw new Error(`${k} needs a value`);
      i++;
      return v;
    };
    if (k === "--device") a.device = need();
    else if (k === "--ops") a.ops = Number(need());
    else if (k === "--seconds") a.seconds = Number(need());
    else if (k === "--seed") a.seed = need();
    else if (k === "--corpus") a.corpus = need();
    else if (k === "--no-coverage") a.coverage = false;
    else if (k === "--help" || k === "-h") {
      console.log("usage: npm run fuzz -- [--device pci|virtio-split|virtio-packed|igb-pf|igb-vf|snapshot] [--ops N] [--seconds S] [--seed X] [--no-coverage] [--corpus DIR]");
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.ops > 0) || !(a.seconds > 0)) throw new Error("--ops and --seconds must be positive");
  return a;
}

interface ScriptCoverage {
  url: string;
  functions: { functionName: string; isBlockCoverage: boolean; ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

interface DirCoverage {
  files: number;
  fnHit: number;
  fnAll: number;
  blockHit: number;
  blockAll: number;
}

/**
 * Per directory: functions covered of functions in the loaded scripts under src/pci and
 * src/devices, and bytes of function code covered (V8 block coverage: the innermost range decides).
 */
function summarize(scripts: ScriptCoverage[]): Map<string, DirCoverage> {
  const out = new Map<string, DirCoverage>();
  for (const s of scripts) {
    if (!s.url.startsWith("file:")) continue;
    const rel = relative(root, fileURLToPath(s.url)).replaceAll("\\", "/");
    if (!/^src\/(pci|devices)\//.test(rel) || rel.endsWith(".test.ts") || rel.includes("/wasm/")) continue;
    const parts = rel.split("/");
    const dirs = ["src/pci + src/devices", `${parts[0]}/${parts[1]}`];
    if (parts.length > 3) dirs.push(parts.slice(0, 3).join("/"));
    const fns = s.functions.slice(1); // [0] is the module's top level
    const fnHit = fns.filter((f) => (f.ranges[0]?.count ?? 0) > 0).length;
    // bytes of function code (not the module's top level, nor the inline source map) whose
    // innermost range ran: larger ranges first, so nested blocks and functions override them
    const end = Math.max(0, ...fns.map((f) => f.ranges[0]?.endOffset ?? 0));
    const state = new Int8Array(end).fill(-1);
    const ranges = fns.flatMap((f) => f.ranges).sort((x, y) => y.endOffset - y.startOffset - (x.endOffset - x.startOffset));
    for (const r of ranges) state.fill(r.count > 0 ? 1 : 0, r.startOffset, r.endOffset);
    let blockAll = 0;
    let blockHit = 0;
    for (const b of state) {
      if (b >= 0) blockAll++;
      if (b > 0) blockHit++;
    }
    for (const d of dirs) {
      const e = out.get(d) ?? { files: 0, fnHit: 0, fnAll: 0, blockHit: 0, blockAll: 0 };
      e.files++;
      e.fnHit += fnHit;
      e.fnAll += fns.length;
      e.blockHit += blockHit;
      e.blockAll += blockAll;
      out.set(d, e);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  let session: Session | undefined;
  if (args.coverage) {
    session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    // before the device code loads, so every function it has is reported (covered or not)
    await session.post("Profiler.startPreciseCoverage", { callCount: false, detailed: true });
  }
  const fuzz = await import("../src/fuzz/index.js");
  const fxDir = join(root, "test/fixtures/state-v1");
  const fixtures = readdirSync(fxDir).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(join(fxDir, f), "utf8")) as unknown);
  const all = fuzz.fuzzTargets(fixtures);
  const targets = args.device === undefined ? all : all.filter((t) => t.name === args.device);
  if (targets.length === 0) throw new Error(`no target ${args.device}; targets: ${all.map((t) => t.name).join(", ")}`);
  let bad = false;
  console.log(`seed ${args.seed}, at most ${args.ops} operations${Number.isFinite(args.seconds) ? ` or ${args.seconds} s` : ""} per target`);
  for (const t of targets) {
    const t0 = performance.now();
    const deadline = t0 + args.seconds * 1000;
    const r = fuzz.runFuzz(t, { seed: args.seed, ops: args.ops, stop: () => performance.now() > deadline });
    const s = (performance.now() - t0) / 1000;
    const c = r.counts;
    console.log(`\n[${t.name}] ${t.description}`);
    console.log(`  ${r.ops} ops in ${s.toFixed(1)} s = ${Math.round(r.ops / s)} ops/s; escapes ${c.escape}, isolation breaks ${c.break}, budget ${c.budget}, invariants ${c.invariant}`);
    console.log(`  ${t.budget}`);
    for (const f of r.findings) console.log(`  op ${f.op}: ${f.kind}: ${f.detail}`);
    if (c.escape + c.break + c.budget + c.invariant > 0) bad = true;
    // minimize the first finding of each key (at most 3 per target) and save it
    for (const f of r.findings.slice(0, 3)) {
      const key = fuzz.findingKey(f);
      const ops = fuzz.opsOf(t, args.seed, f.op);
      const until = performance.now() + 300_000; // at most 5 minutes of shrinking per finding
      const min = fuzz.minimize(t, ops, key, 2000, () => performance.now() > until);
      const still = fuzz.replay(t, min).find((x) => fuzz.findingKey(x) === key);
      if (still === undefined) {
        console.log(`  (could not reproduce op ${f.op} on a fresh instance; not saved)`);
        continue;
      }
      mkdirSync(args.corpus, { recursive: true });
      const file = join(args.corpus, `${t.name}-${fuzz.opsHash(min)}.json`);
      writeFileSync(file, `${JSON.stringify({ target: t.name, seed: args.seed, finding: { kind: f.kind, detail: still.detail }, ops: min }, null, 1)}\n`);
      console.log(`  minimized ${ops.length} -> ${min.length} ops: ${relative(root, file)}`);
    }
  }
  if (session !== undefined) {
    // one take at the end: counts accumulate over every target run above
    const cov = (await session.post("Profiler.takePreciseCoverage")) as unknown as { result: ScriptCoverage[] };
    console.log(`\nV8 coverage of src/pci and src/devices reached by ${targets.map((t) => t.name).join(", ")} (files the targets load):`);
    const sum = summarize(cov.result);
    for (const [d, e] of [...sum.entries()].sort((x, y) => x[0].localeCompare(y[0]))) {
      const pct = (a: number, b: number): string => `${((100 * a) / Math.max(1, b)).toFixed(1)}%`;
      console.log(`  ${d.padEnd(24)} ${String(e.files).padStart(3)} files  functions ${String(e.fnHit).padStart(4)}/${String(e.fnAll).padEnd(4)} ${pct(e.fnHit, e.fnAll).padStart(6)}  code bytes ${pct(e.blockHit, e.blockAll).padStart(6)} of ${e.blockAll}`);
    }
    session.disconnect();
  }
  process.exit(bad ? 1 : 0);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
});
