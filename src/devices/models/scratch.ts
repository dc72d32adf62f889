/**
 * Interim state parsing for device classes that do not have a parser of their own yet: the state
 * is applied to a scratch twin built from the same configuration, and whatever that refuses is a
 * {@link StateError}. The live device is not touched until the state passed. Device classes with
 * their own `StateType` do not use this.
 * @module
 */
import { StateError } from "../state/parse.js";
import { defineState, type StateType } from "../state/versioned.js";

/** A state type whose parser applies the state to a fresh twin (`twin()`), and rejects what the twin refuses. */
export function scratchStateType<S>(kind: string, version: number, twin: () => { restore(s: S): void }): StateType<S> {
  return defineState<S>(kind, version, {}, (o, path) => {
    try {
      twin().restore(o as S);
    } catch (e) {
      throw new StateError(path, e instanceof Error ? e.message : String(e));
    }
    return o as S;
  });
}
