/**
 * Alternative Routing-ID Interpretation extended capability (PCIe Base 4.0 section 7.8.8).
 * @module
 */
import type { PciFunction } from "../function.js";
import { EXT_CAP_ID } from "../regs.js";

/** Adds an ARI capability; `nextFunction` is the next function number of the device (0 = last). */
export function addAri(fn: PciFunction, opts: { nextFunction?: number } = {}): number {
  const cs = fn.config;
  const off = cs.addExtCapability(EXT_CAP_ID.ARI, 1, 8);
  cs.set16(off + 4, ((opts.nextFunction ?? 0) & 0xff) << 8);
  cs.checkBytes(off + 4, 2);
  return off;
}
