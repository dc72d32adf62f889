/**
 * Advanced Error Reporting extended capability, version 2 (PCIe Base 4.0 section 7.8.4): status
 * registers RW1C, masks and severity read-write, the header log read-only; root ports add Root
 * Error Command/Status and the Error Source Identification.
 * @module
 */
import type { PciFunction } from "../function.js";
import { EXT_CAP_ID } from "../regs.js";

/** Uncorrectable error bits defined by the spec (DLP .. Uncorrectable Internal Error). */
const UNCOR = 0x007ff030;
/** Correctable error bits (Receiver Error .. Header Log Overflow). */
const COR = 0x0000f1c1;

/** Register offsets inside the AER capability. */
export const AER = {
  UNCOR_STATUS: 0x04,
  UNCOR_MASK: 0x08,
  UNCOR_SEVERITY: 0x0c,
  COR_STATUS: 0x10,
  COR_MASK: 0x14,
  CAP_CTL: 0x18,
  HEADER_LOG: 0x1c,
  ROOT_CMD: 0x2c,
  ROOT_STATUS: 0x30,
  SOURCE_ID: 0x34,
} as const;

/** Adds an AER capability (with the root-port registers when `rootPort`). Returns its offset. */
export function addAer(fn: PciFunction, opts: { rootPort?: boolean } = {}): number {
  const cs = fn.config;
  const root = opts.rootPort === true;
  const off = cs.addExtCapability(EXT_CAP_ID.AER, 2, root ? 0x38 : 0x2c);
  cs.setMasks(off + AER.UNCOR_STATUS, 4, { w1c: UNCOR });
  cs.setMasks(off + AER.UNCOR_MASK, 4, { w: UNCOR });
  cs.set32(off + AER.UNCOR_SEVERITY, 0x00462030);
  cs.setMasks(off + AER.UNCOR_SEVERITY, 4, { w: UNCOR });
  cs.setMasks(off + AER.COR_STATUS, 4, { w1c: COR });
  cs.set32(off + AER.COR_MASK, 0x00002000); // Advisory Non-Fatal masked by default
  cs.setMasks(off + AER.COR_MASK, 4, { w: COR });
  // Capabilities and Control: ECRC generation/check capable = 0; the enables are RW only if capable.
  if (root) {
    cs.setMasks(off + AER.ROOT_CMD, 4, { w: 0x7 });
    cs.setMasks(off + AER.ROOT_STATUS, 4, { w1c: 0x7f });
  }
  return off;
}
