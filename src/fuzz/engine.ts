/**
 * The fuzz engine: runs seeded operation sequences against a target, checks the invariants after
 * every operation, and shrinks a failing sequence (delta debugging) into a small reproducer.
 *
 * A target (see `targets/`) drives one device through its public API. After each operation the
 * engine and the target check that:
 * - no exception escaped a guest-facing handler (`escape`);
 * - no DMA left what the function may reach and no other function's state changed (`break`);
 * - each work counter a device exposes stayed under its budget (`budget`);
 * - the target's own invariants hold (`invariant`).
 *
 * Platform-neutral: no `node:` imports (the CLI in `scripts/fuzz.ts` adds timing and coverage).
 * @module
 */
import { Rng } from "./rng.js";

/** One operation: a kind and numbers, JSON-safe so a reproducer can hold it verbatim. */
export type FuzzOp = readonly [string, ...number[]];

/** What a check found. */
export type FindingKind = "escape" | "break" | "budget" | "invariant";

/** One finding after an operation. */
export interface Finding {
  readonly kind: FindingKind;
  readonly detail: string;
}

/** Collects findings during one operation. */
export interface Reporter {
  report(kind: FindingKind, detail: string): void;
}

/**
 * A work counter of a device and its limit. Devices that count work (descriptors visited per
 * notification, units per register write) are wired in through this probe. Two kinds:
 * - a running total (no `reset`): it may grow by at most `limit()` in one operation;
 * - a peak (with `reset`): the engine calls `reset()` before each operation (e.g. zeroes the
 *   device's "most units one write spent" counter), and `read()` after it must be `<= limit()`.
 */
export interface BudgetProbe {
  /** What is counted, e.g. "virtqueue descriptors visited". */
  readonly name: string;
  /** The counter's current value. */
  read(): number;
  /** The largest growth (or, for a peak, value) allowed in one operation. */
  limit(): number;
  /** For a peak counter: restarts it before an operation. */
  reset?(): void;
}

/** A live instance of a target: fresh devices plus their in-memory surroundings. */
export interface FuzzInstance {
  /** Draws the next operation (may look at the device's state, e.g. which BARs decode). */
  next(rng: Rng): FuzzOp;
  /**
   * Performs `op` and runs the target's checks, reporting into `r`. An exception thrown out of
   * here is counted as an escape by the engine.
   */
  apply(op: FuzzOp, r: Reporter): void;
  /** Work counters checked around each operation; empty if the device exposes none. */
  readonly budgets: readonly BudgetProbe[];
}

/** A fuzz target. */
export interface FuzzTarget {
  readonly name: string;
  /** One line: what the target drives. */
  readonly description: string;
  /** What the budget check is wired to, or "budget: not exposed". */
  readonly budget: string;
  /** Builds a fresh instance. */
  create(): FuzzInstance;
}

/** Options of {@link runFuzz}. */
export interface RunOptions {
  readonly seed: string | number;
  /** Operations to run. */
  readonly ops: number;
  /** Stop early when this returns true (checked every 256 operations; a time limit goes here). */
  readonly stop?: () => boolean;
  /** Keep at most this many distinct findings (default 20). */
  readonly maxFindings?: number;
}

/** A finding and the index of the operation that showed it. */
export interface IndexedFinding extends Finding {
  readonly op: number;
}

/** Result of {@link runFuzz}. */
export interface RunResult {
  readonly target: string;
  readonly seed: string;
  readonly ops: number;
  readonly counts: Record<FindingKind, number>;
  /** The first findings (one per distinct kind + detail head). */
  readonly findings: IndexedFinding[];
}

/** Builds an empty count per kind. */
export function emptyCounts(): Record<FindingKind, number> {
  return { escape: 0, break: 0, budget: 0, invariant: 0 };
}

/** Names an exception for a report (its `name` and message, first line only). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message.split("\n")[0] ?? ""}`;
  return `non-Error thrown: ${String(e)}`;
}

const BUILTIN_ERRORS = new Set(["Error", "TypeError", "RangeError", "ReferenceError", "SyntaxError", "EvalError", "URIError", "AggregateError"]);

/** True for a typed error (an Error subclass with a fixed name of its own), not a JS engine error. */
export function isTypedError(e: unknown): boolean {
  return e instanceof Error && !BUILTIN_ERRORS.has(e.name);
}

/** The part of a finding that identifies it across runs (kind plus the detail up to the first digit-bearing word). */
export function findingKey(f: Finding): string {
  return `${f.kind}:${f.detail.replace(/0x[0-9a-f]+|\d+/gi, "#").slice(0, 80)}`;
}

/** Runs one operation on `inst`, with budget probes and escape capture, returning its findings. */
export function step(inst: FuzzInstance, op: FuzzOp): Finding[] {
  const out: Finding[] = [];
  const r: Reporter = { report: (kind, detail) => void out.push({ kind, detail }) };
  const before = inst.budgets.map((b) => (b.reset !== undefined ? (b.reset(), 0) : b.read()));
  try {
    inst.apply(op, r);
  } catch (e) {
    out.push({ kind: "escape", detail: `${op[0]}: ${describeError(e)}` });
  }
  inst.budgets.forEach((b, i) => {
    const grew = b.read() - before[i]!;
    const lim = b.limit();
    if (grew > lim) out.push({ kind: "budget", detail: `${b.name}: ${b.reset !== undefined ? "reached" : "grew by"} ${grew} in one ${op[0]}, limit ${lim}` });
  });
  return out;
}

/**
 * Runs `opts.ops` seeded operations against a fresh instance of `target`.
 * @example
 * const r = runFuzz(targets.pci, { seed: 1, ops: 10_000 }); r.counts.escape === 0;
 */
export function runFuzz(target: FuzzTarget, opts: RunOptions): RunResult {
  const rng = new Rng(opts.seed);
  const inst = target.create();
  const counts = emptyCounts();
  const findings: IndexedFinding[] = [];
  const seen = new Set<string>();
  const max = opts.maxFindings ?? 20;
  let i = 0;
  for (; i < opts.ops; i++) {
    if ((i & 255) === 0 && opts.stop?.() === true) break;
    const op = inst.next(rng);
    for (const f of step(inst, op)) {
      counts[f.kind]++;
      const k = findingKey(f);
      if (!seen.has(k) && findings.length < max) {
        seen.add(k);
        findings.push({ ...f, op: i });
      }
    }
  }
  return { target: target.name, seed: String(opts.seed), ops: i, counts, findings };
}

/** The operations `runFuzz` drew for `seed`, up to and including index `last`. */
export function opsOf(target: FuzzTarget, seed: string | number, last: number): FuzzOp[] {
  const rng = new Rng(seed);
  const inst = target.create();
  const ops: FuzzOp[] = [];
  for (let i = 0; i <= last; i++) {
    const op = inst.next(rng);
    ops.push(op);
    step(inst, op);
  }
  return ops;
}

/** Replays `ops` on a fresh instance and returns every finding with its operation index. */
export function replay(target: FuzzTarget, ops: readonly FuzzOp[]): IndexedFinding[] {
  const inst = target.create();
  const out: IndexedFinding[] = [];
  ops.forEach((op, i) => {
    for (const f of step(inst, op)) out.push({ ...f, op: i });
  });
  return out;
}

/**
 * Shrinks `ops` while `replay` still shows a finding with `key` (see {@link findingKey}): the
 * sequence is cut after the failing operation, replaced by the shortest failing suffix of length
 * 4^i if there is one, then chunks are dropped, halving the chunk size down to single operations
 * (Zeller's ddmin, complement steps only). `maxReplays` bounds the work.
 */
export function minimize(target: FuzzTarget, ops: readonly FuzzOp[], key: string, maxReplays = 2000, stop?: () => boolean): FuzzOp[] {
  let replays = 0;
  const fails = (xs: readonly FuzzOp[]): number => {
    replays++;
    if (stop?.() === true) replays = maxReplays;
    const hit = replay(target, xs).find((f) => findingKey(f) === key);
    return hit === undefined ? -1 : hit.op;
  };
  let cur = [...ops];
  const first = fails(cur);
  if (first < 0) return cur;
  cur = cur.slice(0, first + 1);
  // most findings are local: first try ever longer suffixes on a fresh instance
  for (let k = 1; k < cur.length; k *= 4) {
    const tail = cur.slice(cur.length - k);
    const at = fails(tail);
    if (at >= 0) {
      cur = tail.slice(0, at + 1);
      break;
    }
  }
  let n = 2;
  while (cur.length >= 2 && replays < maxReplays) {
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let s = 0; s < cur.length && replays < maxReplays; s += chunk) {
      const cand = [...cur.slice(0, s), ...cur.slice(s + chunk)];
      const at = fails(cand);
      if (at >= 0) {
        cur = cand.slice(0, at + 1);
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (chunk <= 1) break;
      n = Math.min(n * 2, cur.length);
    }
  }
  return cur;
}

/** A minimized reproducer as stored under `test/fuzz-corpus/`. */
export interface CorpusEntry {
  readonly target: string;
  readonly seed: string;
  /** The finding it reproduced when it was saved. */
  readonly finding: Finding;
  readonly ops: FuzzOp[];
}

/** Checks a corpus file's parsed JSON; throws a plain message naming what is wrong. */
export function parseCorpusEntry(u: unknown): CorpusEntry {
  const o = u as Partial<CorpusEntry> | null;
  if (typeof o !== "object" || o === null || typeof o.target !== "string" || typeof o.seed !== "string" || !Array.isArray(o.ops)) {
    throw new TypeError("corpus entry: needs target, seed, ops");
  }
  for (const op of o.ops) {
    if (!Array.isArray(op) || typeof op[0] !== "string" || !op.slice(1).every((x) => typeof x === "number")) throw new TypeError("corpus entry: bad op");
  }
  const f = o.finding as Finding | undefined;
  return { target: o.target, seed: o.seed, finding: { kind: f?.kind ?? "escape", detail: f?.detail ?? "" }, ops: o.ops };
}

/** A short stable hash (FNV-1a, hex) of a reproducer's operations, for its file name. */
export function opsHash(ops: readonly FuzzOp[]): string {
  const s = JSON.stringify(ops);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}
