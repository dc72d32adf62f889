/**
 * Saved state of a virtqueue (either layout) and its parser. A parser takes untrusted input and
 * the queue's configuration (its largest size, the layout the negotiated features select, the
 * MSI-X table size) and checks every field, throwing a `StateError` that names it; the queue's
 * `restore` then applies the parsed state with nothing left to check.
 *
 * Checks: layout as the features select; size (a power of two up to the maximum for split, up to
 * the maximum and 2^15 for packed) and ring alignment on a ready queue; positions inside the ring
 * (u16 free-running for split, below the size with wrap counters for packed); in-flight chains
 * bounded and consistent with the distance between the avail and used positions; the MSI-X vector
 * below the table size or NO_VECTOR; a queue that is not ready is in its power-on positions.
 * @module
 */
import { StateError, arr, bool, field, int, obj, oneOf, onlyKeys, optField, u16 } from "../../state/parse.js";

/** Fields of both layouts. */
interface QueueStateCommon {
  /** Queue size as the driver set it (any u16 while the queue is not ready). */
  size: number;
  ready: boolean;
  /** queue_desc, queue_driver, queue_device (guest physical; below 2^64). */
  desc: number;
  driver: number;
  device: number;
  /** Split: next avail index (free-running u16). Packed: next ring position to read. */
  nextAvail: number;
  /** Split: next used index (free-running u16). Packed: next ring position to write. */
  nextUsed: number;
  /** MSI-X vector (below the table size, or 0xFFFF). */
  msixVector: number;
  /** Used positions since the last interrupt (absent: none signalled yet). */
  sinceSignal?: number;
}

/** Saved state of a split queue. */
export interface SplitQueueState extends QueueStateCommon {
  layout: "split";
  /** Heads popped and not yet used, oldest first (as many as nextAvail - nextUsed). */
  inflight: number[];
}

/** Saved state of a packed queue. */
export interface PackedQueueState extends QueueStateCommon {
  layout: "packed";
  /** Wrap counters of the avail and used positions. */
  availWrap: boolean;
  usedWrap: boolean;
  /** Chains popped and not yet used, oldest first: [buffer id, ring entries]. */
  inflight: [number, number][];
}

/** Saved state of a queue. */
export type VirtqueueState = SplitQueueState | PackedQueueState;

/** Largest packed queue size (positions are 15-bit). */
export const PACKED_MAX_SIZE = 0x8000;
/** "No vector". */
export const NO_VECTOR = 0xffff;
const ADDR_MAX = 2 ** 64;
/**
 * The end (exclusive) of the guest addresses a queue uses: 2^53 - 2^32, so that an address plus a
 * 32-bit length is still an exact JavaScript number. Guest memory ends far below it: a ring or a
 * buffer at or past it is outside guest memory, refused before any arithmetic on it.
 */
export const ADDR_EXACT_LIMIT = 2 ** 53 - 2 ** 32;

/** What a saved queue is checked against. */
export interface QueueConfig {
  /** The largest size the device allows for this queue. */
  maxSize: number;
  /** The layout the saved features select. */
  layout: "split" | "packed";
  /** MSI-X table entries. */
  msixVectors: number;
  /** Whether a queue may be ready (FEATURES_OK is set). */
  mayBeReady: boolean;
}

/** An MSI-X vector: below `n` or NO_VECTOR. */
export function vector(v: unknown, path: string, n: number): number {
  const x = u16(v, path);
  if (x !== NO_VECTOR && x >= n) throw new StateError(path, `vector ${x} is not below the table size ${n} nor NO_VECTOR`);
  return x;
}

const KEYS = ["layout", "size", "ready", "desc", "driver", "device", "nextAvail", "nextUsed", "msixVector", "sinceSignal", "inflight", "availWrap", "usedWrap"] as const;

/** Whether `s` is a legal queue size for `layout` up to `max`. */
export function legalSize(s: number, max: number, layout: "split" | "packed"): boolean {
  if (s < 1 || s > max) return false;
  return layout === "split" ? (s & (s - 1)) === 0 : s <= PACKED_MAX_SIZE;
}

/** Parses a saved queue (current version) against `cfg`. */
export function parseQueueState(u: unknown, path: string, cfg: QueueConfig): VirtqueueState {
  const o = obj(u, path);
  onlyKeys(o, path, KEYS);
  const layout = field(o, "layout", path, (v, p) => oneOf(v, p, ["split", "packed"] as const));
  if (layout !== cfg.layout) throw new StateError(`${path}.layout`, `${layout}, but the features select ${cfg.layout}`);
  const ready = field(o, "ready", path, bool);
  if (ready && !cfg.mayBeReady) throw new StateError(`${path}.ready`, "a queue is ready without FEATURES_OK");
  const size = field(o, "size", path, u16);
  const addr = (k: string): number => field(o, k, path, (v, p) => int(v, p, 0, ADDR_MAX));
  const desc = addr("desc");
  const driver = addr("driver");
  const device = addr("device");
  const msixVector = field(o, "msixVector", path, (v, p) => vector(v, p, cfg.msixVectors));
  const packed = layout === "packed";
  const nextAvail = field(o, "nextAvail", path, u16);
  const nextUsed = field(o, "nextUsed", path, u16);
  const sinceSignal = optField<number | undefined>(o, "sinceSignal", path, u16, undefined);
  if (ready) {
    if (!legalSize(size, cfg.maxSize, layout)) throw new StateError(`${path}.size`, `${size} is not a legal ${layout} queue size up to ${cfg.maxSize}`);
    const align: [string, number, number, number][] = packed
      ? [["desc", desc, 16, 16 * size], ["driver", driver, 4, 4], ["device", device, 4, 4]]
      : [["desc", desc, 16, 16 * size], ["driver", driver, 2, 6 + 2 * size], ["device", device, 4, 6 + 8 * size]];
    for (const [k, a, al, len] of align) {
      if (a % al !== 0) throw new StateError(`${path}.${k}`, `not aligned to ${al}`);
      if (a + len > ADDR_EXACT_LIMIT) throw new StateError(`${path}.${k}`, "the ring runs past 2^53 - 2^32 (outside guest memory; a device refuses to enable it)");
    }
    if (packed && nextAvail >= size) throw new StateError(`${path}.nextAvail`, `position ${nextAvail} outside a ring of ${size}`);
    if (packed && nextUsed >= size) throw new StateError(`${path}.nextUsed`, `position ${nextUsed} outside a ring of ${size}`);
  } else {
    if (nextAvail !== 0) throw new StateError(`${path}.nextAvail`, "not 0 on a queue that is not ready");
    if (nextUsed !== 0) throw new StateError(`${path}.nextUsed`, "not 0 on a queue that is not ready");
    if (sinceSignal !== undefined) throw new StateError(`${path}.sinceSignal`, "present on a queue that is not ready");
  }
  if (sinceSignal !== undefined && sinceSignal > size) throw new StateError(`${path}.sinceSignal`, `${sinceSignal} used entries since the last interrupt exceed the queue size ${size}`);
  const common = { size, ready, desc, driver, device, nextAvail, nextUsed, msixVector, ...(sinceSignal === undefined ? {} : { sinceSignal }) };
  if (!packed) {
    for (const k of ["availWrap", "usedWrap"]) if (o[k] !== undefined) throw new StateError(`${path}.${k}`, "a split queue has no wrap counters");
    const inflight = field(o, "inflight", path, (v, p) => arr(v, p, ready ? size : 0, (x, q) => int(x, q, 0, Math.max(0, size - 1))));
    const dist = (nextAvail - nextUsed) & 0xffff;
    if (inflight.length !== dist) throw new StateError(`${path}.inflight`, `${inflight.length} chains in flight, but nextAvail - nextUsed is ${dist}`);
    return { layout, ...common, inflight };
  }
  const availWrap = field(o, "availWrap", path, bool);
  const usedWrap = field(o, "usedWrap", path, bool);
  if (!ready && !(availWrap && usedWrap)) throw new StateError(`${path}.${availWrap ? "usedWrap" : "availWrap"}`, "not 1 on a queue that is not ready");
  const inflight = field(o, "inflight", path, (v, p) =>
    arr(v, p, ready ? size : 0, (x, q): [number, number] => {
      const e = arr(x, q, 2, (y, r) => int(y, r, 0, 0xffff), true);
      return [e[0]!, int(e[1], `${q}[1]`, 1, size)];
    }),
  );
  let sum = 0;
  for (const [, n] of inflight) sum += n;
  // In-order use: the in-flight entries are exactly the ring between the used and avail positions.
  const dist = ready ? (nextAvail + (availWrap ? 0 : size) - (nextUsed + (usedWrap ? 0 : size)) + 2 * size) % (2 * size) : 0;
  if (sum !== dist) throw new StateError(`${path}.inflight`, `${sum} ring entries in flight, but the avail position is ${dist} past the used one`);
  return { layout, ...common, availWrap, usedWrap, inflight };
}

/**
 * Lifts a version-1 queue (what the code before the portable state saved) to the current form:
 * `layout` defaults to split, and a split queue gets an empty in-flight list (the v1 code saved
 * none; the parser then checks that none was in flight).
 */
export function upgradeQueueV1(u: unknown, path: string): Record<string, unknown> {
  const o = obj(u, path);
  const layout = o.layout ?? "split";
  if (layout === "split" && o.inflight === undefined) return { ...o, layout, inflight: [] };
  return { ...o, layout };
}
