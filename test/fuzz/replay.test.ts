/**
 * The fuzzer under `npm test`: every minimized reproducer in test/fuzz-corpus replays clean, the
 * open ones in test/fuzz-corpus/open still show their defect (when one no longer does, its fix
 * landed: move the file up a directory so it guards against a regression), and a short seeded pass
 * over every target (a fixed number of operations, a few seconds each) finds no escape, no
 * isolation break, no budget overrun and no broken invariant beyond the open defects listed below.
 * The long run (a million operations per target) is `npm run fuzz`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findingKey, fuzzTargets, parseCorpusEntry, replay, runFuzz, type Finding, type FuzzTarget } from "../../src/fuzz/index.js";

const here = new URL(".", import.meta.url).pathname;
const corpusDir = join(here, "../fuzz-corpus");
const openDir = join(corpusDir, "open");
const fxDir = join(here, "../fixtures/state-v1");
const fixtures = readdirSync(fxDir).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(join(fxDir, f), "utf8")) as unknown);
const targets = new Map<string, FuzzTarget>(fuzzTargets(fixtures).map((t) => [t.name, t]));

const jsonIn = (dir: string): string[] => {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  } catch {
    return [];
  }
};
const load = (dir: string, f: string) => parseCorpusEntry(JSON.parse(readFileSync(join(dir, f), "utf8")));

/**
 * Defects the fuzzer finds in the tree today, each with the work that will fix it. Empty since the
 * state parsers (parse-then-apply restores), the virtio status rules and the 2^53 address limit
 * landed: every finding fails the pass. Add an entry (and its reproducer under open/) only for a
 * defect whose fix is in progress elsewhere.
 */
const OPEN: { target: string; kind: Finding["kind"]; detail: RegExp; why: string }[] = [];
const isOpen = (target: string, f: Finding): boolean => OPEN.some((o) => o.target === target && o.kind === f.kind && o.detail.test(f.detail));

/** Operations per target in the short pass: about 3-4 s each on the development machine. */
const SHORT: Record<string, number> = {
  pci: 30_000,
  "virtio-split": 250_000,
  "virtio-packed": 250_000,
  "igb-pf": 150_000,
  "igb-vf": 15_000,
  snapshot: 2_500,
};

describe("fuzz corpus", () => {
  it("every corpus file is a reproducer for a known target", () => {
    const files = [...jsonIn(corpusDir).map((f) => [corpusDir, f] as const), ...jsonIn(openDir).map((f) => [openDir, f] as const)];
    for (const [dir, f] of files) {
      const e = load(dir, f);
      expect(targets.has(e.target), `${f}: target ${e.target}`).toBe(true);
      expect(f.startsWith(`${e.target}-`), f).toBe(true);
      expect(e.ops.length).toBeGreaterThan(0);
    }
  });

  for (const f of jsonIn(corpusDir)) {
    it(`replays ${f} clean`, () => {
      const e = load(corpusDir, f);
      expect(replay(targets.get(e.target)!, e.ops)).toEqual([]);
    });
  }

  for (const f of jsonIn(openDir)) {
    it(`open/${f} still shows its defect (if fixed, move it to test/fuzz-corpus/)`, () => {
      const e = load(openDir, f);
      const found = replay(targets.get(e.target)!, e.ops).map((x) => findingKey(x));
      expect(found).toContain(findingKey(e.finding));
    });
  }
});

describe("fuzz short pass", () => {
  for (const [name, ops] of Object.entries(SHORT)) {
    it(`${name}: ${ops} seeded operations, no escape, isolation break, budget overrun or broken invariant beyond the open ones`, () => {
      const t = targets.get(name)!;
      const r = runFuzz(t, { seed: "npm-test", ops, maxFindings: 1000 });
      expect(r.ops).toBe(ops);
      const unexpected = r.findings.filter((f) => !isOpen(name, f));
      expect(unexpected).toEqual([]);
      expect(r.counts.budget).toBe(0);
      if (!OPEN.some((o) => o.target === name)) {
        expect(r.counts).toEqual({ escape: 0, break: 0, budget: 0, invariant: 0 });
      }
    }, 120_000);
  }
});
