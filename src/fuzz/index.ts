/**
 * The fuzzer's targets by name (the snapshot target needs the saved-state fixtures, so it is
 * built by {@link fuzzTargets}). Platform-neutral; the Node CLI is `scripts/fuzz.ts`.
 * @module
 */
import type { FuzzTarget } from "./engine.js";
import { igbPfTarget } from "./targets/igb-pf.js";
import { igbVfTarget } from "./targets/igb-vf.js";
import { pciTarget } from "./targets/pci.js";
import { createSnapshotTarget } from "./targets/snapshot.js";
import { virtioPackedTarget, virtioSplitTarget } from "./targets/virtio.js";

export * from "./engine.js";
export { Rng } from "./rng.js";

/** Every target, in the order the CLI runs them; `fixtures` are parsed `Machine.save()` files. */
export function fuzzTargets(fixtures: readonly unknown[]): FuzzTarget[] {
  return [pciTarget, virtioSplitTarget, virtioPackedTarget, igbPfTarget, igbVfTarget, createSnapshotTarget(fixtures)];
}
