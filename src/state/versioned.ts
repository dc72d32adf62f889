/**
 * Versioned state types with an upgrade chain. Every saved state carries `version`; a parser
 * accepts the current version and every older one it has an upgrade for, lifting an old state one
 * version at a time (v1 -> v2 -> ... -> current) before the current version's checks run. An
 * upgrade reads untrusted input too: it checks what it reads, or leaves the check to the parser
 * of the next version.
 *
 * Platform-neutral.
 * @module
 */
import { StateError, int, obj } from "./parse.js";

/** Lifts a state of version `n` to version `n + 1` (input and output still untrusted). */
export type StateUpgrade = (old: Record<string, unknown>, path: string) => Record<string, unknown>;

/** A state type: its name, current version, the upgrades from older versions, and its parser. */
export interface StateType<S> {
  /** The type's name, as it appears in platform records and errors (e.g. `igb`, `virtio-net`). */
  readonly kind: string;
  /** The version `save()` writes now. */
  readonly version: number;
  /** The oldest version that still loads. */
  readonly oldest: number;
  /** Parses a state of any supported version; throws {@link StateError} naming the field. */
  parse(u: unknown, path?: string): S;
}

/**
 * Defines a versioned state type.
 * @param kind - the type's name
 * @param version - the current version
 * @param upgrades - `upgrades[n]` lifts version n to n + 1, for every n from the oldest supported up
 * @param parseCurrent - checks a state of the current version (the `version` field is already checked)
 * @example
 * ```ts
 * const Counter = defineState("counter", 2, { 1: (o) => ({ ...o, version: 2, extra: 0 }) }, (o, path) => ({
 *   version: 2 as const, n: int(o.n, `${path}.n`, 0, 100), extra: int(o.extra, `${path}.extra`, 0, 9),
 * }));
 * Counter.parse({ version: 1, n: 5 }); // { version: 2, n: 5, extra: 0 }
 * ```
 */
export function defineState<S>(
  kind: string,
  version: number,
  upgrades: Readonly<Record<number, StateUpgrade>>,
  parseCurrent: (o: Record<string, unknown>, path: string) => S,
): StateType<S> {
  let oldest = version;
  while (upgrades[oldest - 1] !== undefined) oldest--;
  return {
    kind,
    version,
    oldest,
    parse(u: unknown, path = kind): S {
      let o = obj(u, path);
      let v = int(o.version, `${path}.version`, oldest, version);
      while (v < version) {
        const up = upgrades[v];
        if (up === undefined) throw new StateError(`${path}.version`, `no upgrade from version ${v}`);
        o = obj(up(o, path), path);
        const next = int(o.version, `${path}.version`, 0, version);
        if (next !== v + 1) throw new StateError(`${path}.version`, `upgrade from ${v} produced version ${next}`);
        v = next;
      }
      return parseCurrent(o, path);
    },
  };
}
