/**
 * Power Management capability (PCI PM 1.2): D0 and D3hot, No_Soft_Reset, PME status.
 * @module
 */
import { StateError } from "../../state/parse.js";
import type { PciFunction } from "../function.js";
import { configPath, le16 } from "../function-state.js";
import { CAP_ID } from "../regs.js";

/** PMCSR power-state values. */
const D0 = 0;
const D3HOT = 3;

/**
 * Adds a PM capability. Only D0 and D3hot are supported; a write of D1/D2 is ignored (the state
 * stays). In D3hot the function does not decode memory or I/O. `noSoftReset` (default true) means a
 * D3hot->D0 transition keeps the function's state, as most devices do.
 * Returns the capability offset.
 */
export function addPm(fn: PciFunction, opts: { noSoftReset?: boolean } = {}): number {
  const cs = fn.config;
  const off = cs.addCapability(CAP_ID.PM, 8);
  cs.set16(off + 2, 0x0003); // PMC: version 1.2, no D1/D2, no PME from any state
  cs.checkBytes(off + 2, 2);
  const nsr = opts.noSoftReset ?? true;
  cs.set16(off + 4, nsr ? 0x0008 : 0);
  cs.setMasks(off + 4, 2, { w: 0x0103, w1c: 0x8000 }); // power state, PME_En; PME_Status RW1C
  fn.addConfigCheck((config, path) => {
    const ps = le16(config, off + 4) & 3;
    if (ps !== D0 && ps !== D3HOT) throw new StateError(configPath(path, off + 4, "PM Control/Status"), `power state D${ps} is not supported (D0 and D3hot only)`);
  });
  let old = D0;
  fn.decodeGate = chainGate(fn.decodeGate, () => (cs.get16(off + 4) & 3) === D0);
  fn.addHook({
    start: off + 4,
    end: off + 5,
    before: () => {
      old = cs.get16(off + 4) & 3;
    },
    after: (_reg, _size, _value, effects) => {
      const now = cs.get16(off + 4) & 3;
      if (now !== D0 && now !== D3HOT) {
        cs.set16(off + 4, (cs.get16(off + 4) & ~3) | old);
        return;
      }
      if (now === old) return;
      effects.push({ kind: "decodeChanged" });
      if (old === D3HOT && now === D0 && !nsr) {
        fn.reset("power");
        effects.push({ kind: "flr" });
      }
    },
  });
  return off;
}

function chainGate(prev: (() => boolean) | undefined, next: () => boolean): () => boolean {
  return prev === undefined ? next : () => prev() && next();
}
