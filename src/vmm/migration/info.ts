/**
 * What a migration reports while it runs and when it ends (`query-migrate`), and its errors.
 *
 * Platform-neutral.
 * @module
 */

/** A migration's status, as QEMU's `query-migrate` names them. */
export type MigrationStatus = "setup" | "wait-unplug" | "active" | "completed" | "failed";

/** Where a migration is. */
export type MigrationPhase = "hello" | "pre-copy" | "stop-and-copy" | "commit" | "done";

/** One pass over guest RAM. */
export interface RoundInfo {
  /** 1-based; the stop-and-copy pass is the last. */
  round: number;
  /** Pages found changed (with content or now zero). */
  dirtyPages: number;
  /** Of them, pages that are all zeros (sent as runs, no content). */
  zeroPages: number;
  /** Pages sent only because device DMA wrote them (their hash had not changed). */
  dmaOnlyPages: number;
  /** Stream bytes this pass sent. */
  bytes: number;
  /** Wall time of the pass in ms. */
  ms: number;
  /** Of it, ms spent hashing and copying pages (the rest: sending, and the guest between chunks). */
  scanMs: number;
  /** Whether the guest was paused (the stop-and-copy pass). */
  stopped: boolean;
}

/** A migration's figures (source or destination side). */
export interface MigrationInfo {
  role: "source" | "destination";
  status: MigrationStatus;
  phase: MigrationPhase;
  /** Why it failed. */
  error?: string;
  /** Stream bytes sent (source) or received (destination). */
  bytes: number;
  /** Pages sent with content. */
  pages: number;
  /** Pages sent as zero runs. */
  zeroPages: number;
  /** RAM passes made (pre-copy rounds plus the stop-and-copy pass). */
  iterations: number;
  /** Every pass. */
  rounds: RoundInfo[];
  /** Pages dirtied per second in the last pre-copy round, as bytes/s. */
  dirtyRate: number;
  /** Stream bytes per second so far. */
  throughput: number;
  /** What the stop-and-copy pass is expected to take, in ms (the last scan plus the last dirty set at the throughput so far). */
  expectedDowntimeMs: number;
  /** Guest paused on the source until it ran on the destination, in ms (source: pause to the destination's resume acknowledged). */
  downtimeMs?: number;
  /**
   * Where the downtime went, in ms (source side), in this order: `prepare` (transparent
   * failover's switch to emulation, guest still running), `pause` (CPU paused, devices stopped),
   * `engineSave`, `deviceSave`, `scan` (sending both, then the last pass over RAM, while the
   * destination loads them), `apply` (until the destination had acknowledged everything), `late`
   * (the frames that reached the stopped devices meanwhile), `commit` (COMMIT until the
   * destination ran the guest). `prepare` is outside `downtimeMs`.
   */
  downtimeParts?: { prepare: number; pause: number; scan: number; engineSave: number; deviceSave: number; apply: number; late: number; commit: number };
  /** Bytes of the LATE records (frames that reached the stopped devices after their save), 0 for none. */
  lateBytes: number;
  /**
   * What ended the late frames (source): "announce" (the destination's announce of the guest came
   * back through this side's backends), "quiet" (none came for `lateQuietMs`), "limit" (`lateMaxMs`).
   */
  lateEnd?: "announce" | "quiet" | "limit";
  /** Engine state bytes (without RAM, zero chunks left out). */
  engineBytes: number;
  /** Device state bytes (the state container). */
  deviceBytes: number;
  /** How the source hashed pages: "wasm" (in place in the engine's memory) or "ts". */
  pageHash?: "ts" | "wasm";
  /** From start to now or to the end, in ms. */
  totalMs: number;
}

/** A fresh info record. */
export function newInfo(role: "source" | "destination"): MigrationInfo {
  return { role, status: "setup", phase: "hello", bytes: 0, pages: 0, zeroPages: 0, iterations: 0, rounds: [], dirtyRate: 0, throughput: 0, expectedDowntimeMs: 0, engineBytes: 0, deviceBytes: 0, lateBytes: 0, totalMs: 0 };
}

/** The destination refused the migration (HELLO mismatch, or a state it rejected), or the source aborted it. */
export class MigrationRefusedError extends Error {
  override readonly name = "MigrationRefusedError";
}

/** The migration broke: the channel closed, the peer broke the protocol, a step failed. */
export class MigrationFailedError extends Error {
  override readonly name = "MigrationFailedError";
}
