/**
 * Closing and re-opening one VF's pool in an 82576's internal switch, for the failover switch: a
 * backing that does not serve the guest must take no frame for it (no receive enable, no receive
 * address, so that its other pools' frames to the guest's MAC go out to the wire) and must not
 * answer its mailbox (no pending request for its PF agent). What was cleared is kept, so that a
 * switch that fails can put it back exactly.
 *
 * Platform-neutral.
 * @module
 */
import type { IgbCore } from "../../devices/igb/core.js";
import { B, IGB_SIZES } from "../../devices/igb/regs.js";

/** What {@link closePool} cleared. */
export interface PoolGate {
  /** The VF. */
  readonly vf: number;
  /** Its VFRE and VFTE bits. */
  readonly vfre: boolean;
  readonly vfte: boolean;
  /** Receive-address rows that included the pool: [row, RAL, RAH] as they were. */
  readonly rars: readonly (readonly [number, number, number])[];
  /** Its MBVFICR request and ack bits, and its VFLRE bit. */
  readonly mbReq: boolean;
  readonly mbAck: boolean;
  readonly vflre: boolean;
}

const bit = (v: number, b: number): boolean => ((v >>> b) & 1) === 1;
const put = (v: number, b: number, on: boolean): number => (on ? v | (1 << b) : v & ~(1 << b)) >>> 0;

/**
 * Closes VF `vf`'s pool of `core`: clears its VFRE/VFTE bits, takes it out of every receive-address
 * row (a row left with no pool is disabled), and clears its pending mailbox events. Returns what
 * was cleared. Cannot fail.
 */
export function closePool(core: IgbCore, vf: number): PoolGate {
  const r = core.regs;
  const rars: [number, number, number][] = [];
  const poolBit = (1 << vf) << B.RAH_POOL_SHIFT;
  for (let i = 0; i < IGB_SIZES.rar; i++) {
    const rah = r.get("RAH", i);
    if ((rah & B.RAH_AV) === 0 || (rah & poolBit) === 0) continue;
    rars.push([i, r.get("RAL", i), rah]);
    const rest = (rah & ~poolBit) >>> 0;
    if ((rest & B.RAH_POOL_MASK) === 0) {
      r.set("RAH", i, 0);
      r.set("RAL", i, 0);
    } else {
      r.set("RAH", i, rest);
    }
  }
  const mb = r.get("MBVFICR");
  const gate: PoolGate = {
    vf,
    vfre: bit(r.get("VFRE"), vf),
    vfte: bit(r.get("VFTE"), vf),
    rars,
    mbReq: bit(mb, vf),
    mbAck: bit(mb, vf + 16),
    vflre: bit(r.get("VFLRE"), vf),
  };
  r.set("VFRE", 0, put(r.get("VFRE"), vf, false));
  r.set("VFTE", 0, put(r.get("VFTE"), vf, false));
  r.set("MBVFICR", 0, put(put(mb, vf, false), vf + 16, false));
  r.set("VFLRE", 0, put(r.get("VFLRE"), vf, false));
  return gate;
}

/** Puts back what {@link closePool} cleared (nothing else touched the pool meanwhile). Cannot fail. */
export function openPool(core: IgbCore, g: PoolGate): void {
  const r = core.regs;
  const vf = g.vf;
  for (const [i, ral, rah] of g.rars) {
    r.set("RAL", i, ral);
    r.set("RAH", i, rah);
  }
  r.set("VFRE", 0, put(r.get("VFRE"), vf, g.vfre));
  r.set("VFTE", 0, put(r.get("VFTE"), vf, g.vfte));
  r.set("MBVFICR", 0, put(put(r.get("MBVFICR"), vf, g.mbReq), vf + 16, g.mbAck));
  r.set("VFLRE", 0, put(r.get("VFLRE"), vf, g.vflre));
}

/** The unicast MACs of the rows a gate holds (the addresses the pool receives on). */
export function gateMacs(g: PoolGate): Uint8Array[] {
  return g.rars.map(([, ral, rah]) => Uint8Array.of(ral & 0xff, (ral >>> 8) & 0xff, (ral >>> 16) & 0xff, ral >>> 24, rah & 0xff, (rah >>> 8) & 0xff)).filter((m) => ((m[0] ?? 1) & 1) === 0);
}
