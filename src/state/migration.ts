/**
 * Device migration states, after Linux's VFIO migration v2 uAPI (`include/uapi/linux/vfio.h`,
 * `enum vfio_device_mig_state`), shared by every device model and by the failover switch.
 *
 * - RUNNING: the device works normally.
 * - RUNNING_P2P / PRE_COPY_P2P: the device answers register accesses, but starts no new DMA and
 *   raises no new interrupt (work the guest asks for waits until RUNNING).
 * - STOP: frozen; its state does not change. STOP_COPY: frozen while its state is read out.
 *   RESUMING: frozen while a state is loaded into it.
 * - PRE_COPY: running while an early part of its state is read out (optional arcs).
 * - ERROR: a transition failed; only a reset leaves it.
 *
 * The arcs are the uAPI's: the required RUNNING<->STOP, STOP<->STOP_COPY, STOP<->RESUMING; the
 * optional P2P arcs (RUNNING<->RUNNING_P2P, RUNNING_P2P<->STOP, PRE_COPY<->PRE_COPY_P2P,
 * PRE_COPY_P2P->STOP_COPY) and PRE_COPY arcs (RUNNING<->PRE_COPY, PRE_COPY->STOP_COPY). Any other
 * requested move takes the shortest path of legal arcs whose intermediate states are never ERROR
 * nor a saving or loading state (STOP_COPY, RESUMING, PRE_COPY, PRE_COPY_P2P), as the kernel's
 * `vfio_mig_get_next_state()` chooses.
 *
 * Platform-neutral.
 * @module
 */

/** A device migration state. */
export type MigrationState = "RUNNING" | "STOP" | "STOP_COPY" | "RESUMING" | "RUNNING_P2P" | "PRE_COPY" | "PRE_COPY_P2P" | "ERROR";

/** Every state, in the uAPI's enum order. */
export const MIGRATION_STATES: readonly MigrationState[] = ["ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"];

/** What a device's data path may do in a migration state. */
export type Activity =
  /** Normal operation. */
  | "running"
  /** Registers answer; no new DMA, no new interrupt; guest requests wait (RUNNING_P2P, PRE_COPY_P2P). */
  | "quiesced"
  /** Frozen: nothing changes (STOP, STOP_COPY, RESUMING, ERROR). */
  | "stopped";

/** The data-path activity allowed in `s`. */
export function activityOf(s: MigrationState): Activity {
  switch (s) {
    case "RUNNING":
    case "PRE_COPY":
      return "running";
    case "RUNNING_P2P":
    case "PRE_COPY_P2P":
      return "quiesced";
    default:
      return "stopped";
  }
}

/** Which arcs a device supports beyond the required ones (VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY). */
export interface MigrationFlags {
  /** RUNNING_P2P and its arcs (default true: every nicvisor device supports it). */
  p2p?: boolean;
  /** PRE_COPY (and PRE_COPY_P2P with `p2p`) and their arcs (default false). */
  preCopy?: boolean;
}

const RUNNING_STOP: readonly (readonly [MigrationState, MigrationState])[] = [
  ["RUNNING", "STOP"],
  ["STOP", "RUNNING"],
];
const REQUIRED: readonly (readonly [MigrationState, MigrationState])[] = [
  ["STOP", "STOP_COPY"],
  ["STOP_COPY", "STOP"],
  ["STOP", "RESUMING"],
  ["RESUMING", "STOP"],
];
const P2P: readonly (readonly [MigrationState, MigrationState])[] = [
  ["RUNNING", "RUNNING_P2P"],
  ["RUNNING_P2P", "RUNNING"],
  ["RUNNING_P2P", "STOP"],
  ["STOP", "RUNNING_P2P"],
];
const PRE_COPY: readonly (readonly [MigrationState, MigrationState])[] = [
  ["RUNNING", "PRE_COPY"],
  ["PRE_COPY", "RUNNING"],
  ["PRE_COPY", "STOP_COPY"],
];
const PRE_COPY_P2P: readonly (readonly [MigrationState, MigrationState])[] = [
  ["PRE_COPY", "PRE_COPY_P2P"],
  ["PRE_COPY_P2P", "PRE_COPY"],
  ["PRE_COPY_P2P", "STOP_COPY"],
  ["RUNNING_P2P", "PRE_COPY_P2P"],
  ["PRE_COPY_P2P", "RUNNING_P2P"],
];

/**
 * The direct arcs a device with `flags` takes, as `from -> to` pairs. RUNNING <-> STOP is a
 * required arc, but a device that supports P2P takes it through RUNNING_P2P (the kernel's
 * next-state table does the same): the device quiesces before it stops, and resumes its own DMA
 * before it raises interrupts again.
 */
export function legalArcs(flags: MigrationFlags = {}): ReadonlyArray<readonly [MigrationState, MigrationState]> {
  const p2p = flags.p2p ?? true;
  const pre = flags.preCopy ?? false;
  return [...(p2p ? [] : RUNNING_STOP), ...REQUIRED, ...(p2p ? P2P : []), ...(pre ? PRE_COPY : []), ...(pre && p2p ? PRE_COPY_P2P : [])];
}

/** True when `from -> to` is a direct arc for a device with `flags`. */
export function isArc(from: MigrationState, to: MigrationState, flags: MigrationFlags = {}): boolean {
  return legalArcs(flags).some(([a, b]) => a === from && b === to);
}

/**
 * The states to pass through, in order, to go from `from` to `to` (excluding `from`, including
 * `to`), or undefined when there is no legal path (e.g. out of ERROR, or into a state the device
 * does not support). Intermediate states are never ERROR, nor STOP_COPY, RESUMING or a PRE_COPY state.
 */
export function migrationPath(from: MigrationState, to: MigrationState, flags: MigrationFlags = {}): MigrationState[] | undefined {
  if (from === to) return [];
  if (from === "ERROR" || to === "ERROR") return undefined;
  const arcs = legalArcs(flags);
  const transit = (s: MigrationState): boolean => s === "RUNNING" || s === "STOP" || s === "RUNNING_P2P";
  // Breadth-first: the graph has eight nodes, so this is cheap and gives the shortest path.
  const prev = new Map<MigrationState, MigrationState>();
  const queue: MigrationState[] = [from];
  const seen = new Set<MigrationState>([from]);
  while (queue.length > 0) {
    const s = queue.shift()!;
    for (const [a, b] of arcs) {
      if (a !== s || seen.has(b)) continue;
      if (b !== to && !transit(b)) continue;
      seen.add(b);
      prev.set(b, s);
      if (b === to) {
        const path: MigrationState[] = [to];
        let p = s;
        while (p !== from) {
          path.unshift(p);
          p = prev.get(p)!;
        }
        return path;
      }
      queue.push(b);
    }
  }
  return undefined;
}

/** A requested migration state could not be reached. */
export class MigrationStateError extends Error {
  override readonly name = "MigrationStateError";
  constructor(
    readonly from: MigrationState,
    readonly to: MigrationState,
    detail: string,
  ) {
    super(`migration state ${from} -> ${to}: ${detail}`);
  }
}

/** What a device does on each arc: it applies the new activity, and may refuse (then the machine enters ERROR). */
export interface MigrationHooks {
  /** The data path's allowed activity changed. Must not throw. */
  setActivity(a: Activity): void;
  /**
   * Called on every arc before the state changes; a thrown error refuses the arc (the state
   * machine then enters ERROR, as a VFIO device does when a transition fails).
   */
  onArc?(from: MigrationState, to: MigrationState): void;
}

/**
 * One device's migration state machine. `set(target)` walks the shortest legal path one arc at a
 * time, calling the hooks on each; a refused arc leaves the device in ERROR and is returned as an
 * error (never thrown into a guest access). `reset()` returns to RUNNING from anywhere, as a VFIO
 * device reset does.
 * @example
 * ```ts
 * const m = new MigrationControl({ setActivity: (a) => nic.setActivity(a) });
 * m.set("STOP_COPY"); // RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY
 * ```
 */
export class MigrationControl {
  #state: MigrationState = "RUNNING";
  /** Arcs taken so far (for tests and statistics). */
  arcs = 0;

  constructor(
    private readonly hooks: MigrationHooks,
    readonly flags: MigrationFlags = {},
  ) {}

  /** The current state. */
  get state(): MigrationState {
    return this.#state;
  }

  /**
   * Moves to `target` by legal arcs. Returns undefined on success, or the error: no path (the
   * state is unchanged) or a refused arc (the state is then ERROR).
   */
  set(target: MigrationState): MigrationStateError | undefined {
    const path = migrationPath(this.#state, target, this.flags);
    if (path === undefined) return new MigrationStateError(this.#state, target, "no legal path");
    for (const next of path) {
      const from = this.#state;
      try {
        this.hooks.onArc?.(from, next);
      } catch (e) {
        this.#state = "ERROR";
        this.hooks.setActivity("stopped");
        return new MigrationStateError(from, next, `refused: ${e instanceof Error ? e.message : String(e)}`);
      }
      this.#state = next;
      this.arcs++;
      this.hooks.setActivity(activityOf(next));
    }
    return undefined;
  }

  /** Like {@link MigrationControl.set}, but throws the error (for embedder code, not guest paths). */
  go(target: MigrationState): void {
    const e = this.set(target);
    if (e !== undefined) throw e;
  }

  /** Back to RUNNING from any state, ERROR included (a device reset). */
  reset(): void {
    this.#state = "RUNNING";
    this.hooks.setActivity("running");
  }
}
