/**
 * Structure-aware mutation of saved state (plain JSON-like data): pick a random path into the
 * tree and replace, delete, grow or shrink what is there with values that break parsers (wrong
 * types, NaN, infinities, 2^32, 2^53, -1, odd hex, unknown keys, emptied or extended arrays).
 * And byte-level mutation for the binary containers.
 * @module
 */
import type { Rng } from "./rng.js";

type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === "object" && v !== null;

/** A value that breaks parsers, related to `old` when that helps (off by one, flipped bit, cut string). */
function hostileValue(rng: Rng, old: unknown): unknown {
  if (typeof old === "number" && rng.chance(0.5)) {
    return rng.pick([old + 1, old - 1, -old, old * 2 ** 16, (old ^ (1 << rng.below(31))) >>> 0, old + 0.5]);
  }
  if (typeof old === "string" && old.length > 0 && rng.chance(0.6)) {
    const i = rng.below(old.length);
    return rng.pick([
      old.slice(0, i),
      old.slice(0, i) + rng.pick(["g", "0", "f", "-", "\u0000", "ff"]) + old.slice(i + 1),
      old + old,
      old.slice(0, i) + old.slice(i + 1),
    ]);
  }
  if (typeof old === "boolean" && rng.chance(0.5)) return !old;
  return rng.pick<unknown>([null, undefined, -1, 0, 1, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53, -(2 ** 53), 1e308, Number.NaN,
    Number.POSITIVE_INFINITY, -0, 0.5, "", "x", "0x10", "ffffffff", [], [0], {}, { version: 1 }, true, false, rng.u32()]);
}

/** Applies one random mutation somewhere in `root` (mutated in place); returns `root` or a replacement. */
export function mutateOnce(root: unknown, rng: Rng): unknown {
  if (!isContainer(root) || rng.chance(0.02)) return hostileValue(rng, root);
  let parent: Container = root;
  for (let depth = 0; depth < 12; depth++) {
    const keys: (string | number)[] = Array.isArray(parent) ? parent.map((_, i) => i) : Object.keys(parent);
    if (keys.length === 0) break;
    const k = rng.pick<string | number>(keys);
    const child = (parent as Record<string | number, unknown>)[k];
    if (isContainer(child) && rng.chance(0.75)) {
      parent = child;
      continue;
    }
    break;
  }
  const keys: (string | number)[] = Array.isArray(parent) ? parent.map((_, i) => i) : Object.keys(parent);
  const p = parent as Record<string | number, unknown>;
  const r = rng.below(10);
  if (Array.isArray(parent)) {
    if (r === 0) parent.push(parent.length > 0 ? structuredCloneSafe(parent[rng.below(parent.length)]) : 0);
    else if (r === 1) parent.length = rng.below(parent.length + 1);
    else if (r === 2) parent.splice(0, parent.length);
    else if (keys.length > 0) {
      const k = rng.pick(keys);
      p[k] = hostileValue(rng, p[k]);
    } else parent.push(hostileValue(rng, undefined));
    return root;
  }
  if (r === 0 || keys.length === 0) p[`x${rng.below(100)}`] = hostileValue(rng, undefined);
  else if (r === 1) delete p[rng.pick(keys)];
  else {
    const k = rng.pick(keys);
    p[k] = hostileValue(rng, p[k]);
  }
  return root;
}

function structuredCloneSafe(v: unknown): unknown {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v)) as unknown;
}

/** Flips, overwrites, cuts or extends bytes of `b` (returns a new array). */
export function mutateBytes(b: Uint8Array, rng: Rng, n: number): Uint8Array {
  let out = b.slice();
  for (let i = 0; i < n; i++) {
    const r = rng.below(6);
    if (out.length === 0 || r === 0) {
      const grown = new Uint8Array(out.length + 1 + rng.below(16));
      grown.set(out);
      out = grown;
    } else if (r === 1) out = out.slice(0, rng.below(out.length));
    else if (r === 2) out[rng.below(out.length)] = rng.pick([0, 0xff, 0x7f, 0x80]);
    else {
      const i = rng.below(out.length);
      out[i] = out[i]! ^ (1 << rng.below(8));
    }
  }
  return out;
}
