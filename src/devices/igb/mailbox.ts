/**
 * The PF<->VF mailbox (P2VMAILBOX, V2PMAILBOX, VMBMEM, MBVFICR) and the per-VF resets (a VF's
 * CTRL.RST and its FLR), acting on an {@link IgbCore}'s registers.
 * @module
 */
import type { IgbCore } from "./core.js";
import { vfEicrShift } from "./irq.js";
import { B, IGB_SIZES } from "./regs.js";

/** PF writes P2VMAILBOX(vf). Returns the value to store. */
export function pfMailboxWrite(core: IgbCore, vf: number, w: number, old: number): number {
  const r = core.regs;
  let v2p = r.get("V2PMAILBOX", vf);
  let p2v = old & B.P2V_VFU; // VFU is a mirror the PF cannot write
  if (w & B.P2V_PFU) {
    if ((old & B.P2V_VFU) === 0) {
      p2v |= B.P2V_PFU;
      v2p |= B.V2P_PFU;
    }
  } else {
    v2p &= ~B.V2P_PFU;
  }
  if (w & B.P2V_RVFU) {
    v2p &= ~B.V2P_VFU;
    p2v &= ~B.P2V_VFU;
    r.set("MBVFICR", 0, r.get("MBVFICR") & ~((1 << vf) | (1 << (vf + 16))));
  }
  let signal = false;
  if (w & B.P2V_STS) {
    v2p |= B.V2P_PFSTS;
    signal = true;
  }
  if (w & B.P2V_ACK) {
    v2p |= B.V2P_PFACK;
    signal = true;
  }
  r.set("V2PMAILBOX", vf, v2p);
  if (signal) mailboxToVf(core, vf);
  return p2v;
}

/** VF writes its mailbox register (V2PMAILBOX(vf)). Returns the value to store. */
export function vfMailboxWrite(core: IgbCore, vf: number, w: number, old: number): number {
  const r = core.regs;
  let v2p = old & ~(B.V2P_VFU | B.V2P_REQ | B.V2P_ACK);
  let p2v = r.get("P2VMAILBOX", vf) & ~B.P2V_VFU;
  if (w & B.V2P_VFU && (old & B.V2P_PFU) === 0) {
    v2p |= B.V2P_VFU;
    p2v |= B.P2V_VFU;
  }
  r.set("P2VMAILBOX", vf, p2v);
  let causes = 0;
  if (w & B.V2P_REQ) causes |= 1 << vf;
  if (w & B.V2P_ACK) causes |= 1 << (vf + 16);
  if (causes) {
    r.set("MBVFICR", 0, r.get("MBVFICR") | causes);
    mailboxToPf(core, vf);
  }
  return v2p;
}

function mailboxToVf(core: IgbCore, vf: number): void {
  const ent = core.regs.get("VTIVAR_MISC", vf) & 0xff;
  if (ent & B.IVAR_VALID && (ent & 3) < 3) core.irq.raiseEicr(1 << (vfEicrShift(vf) + (ent & 3)));
}


function mailboxToPf(core: IgbCore, vf: number): void {
  if (core.regs.get("MBVFIMR") & (1 << vf)) core.irq.raiseIcr(B.ICR_VMMB);
}

/** VF `vf` reset (its CTRL.RST or its FLR): its queues stop, its pool is disabled, the PF is told. */
export function vfReset(core: IgbCore, vf: number): void {
  const r = core.regs;
  for (const q of [vf, vf + IGB_SIZES.pools]) {
    r.set("RXDCTL", q, r.get("RXDCTL", q) & ~B.RXDCTL_ENABLE);
    r.set("TXDCTL", q, r.get("TXDCTL", q) & ~B.TXDCTL_ENABLE);
    core.tx[q]?.reset();
  }
  r.set("VFRE", 0, r.get("VFRE") & ~(1 << vf));
  r.set("VFTE", 0, r.get("VFTE") & ~(1 << vf));
  const vbits = 7 << vfEicrShift(vf);
  r.set("EIMS", 0, r.get("EIMS") & ~vbits);
  r.set("EICR", 0, r.get("EICR") & ~vbits);
  // the VF's mailbox lock and pending flags go; a reset-done indication stays if the PF is up
  const pfUp = (r.get("CTRL_EXT") & B.CTRL_EXT_PFRSTD) !== 0;
  r.set("V2PMAILBOX", vf, pfUp ? B.V2P_RSTD : B.V2P_RSTI);
  r.set("P2VMAILBOX", vf, 0);
  r.set("VFLRE", 0, r.get("VFLRE") | (1 << vf));
  core.irq.raiseIcr(B.ICR_VMMB);
}

/**
 * Function-level reset of VF `vf` (PCIe FLR through the VF's Device Control): a {@link vfReset}
 * plus the VF's own register state (its queues' configuration, vector mapping, moderation,
 * auto-clear/mask bits, mailbox memory) back to power-on values. Other VFs and the PF's
 * filters are untouched.
 */
export function vfFlr(core: IgbCore, vf: number): void {
  if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) return;
  const r = core.regs;
  const queueRegs = ["RDBAL", "RDBAH", "RDLEN", "SRRCTL", "RDH", "RXCTL", "RDT", "RXDCTL", "RQDPC",
    "TDBAL", "TDBAH", "TDLEN", "TDH", "TXCTL", "TDT", "TXDCTL", "TDWBAL", "TDWBAH"] as const;
  for (const q of [vf, vf + IGB_SIZES.pools]) {
    for (const n of queueRegs) r.set(n, q, n === "SRRCTL" ? 2 : n === "RXDCTL" ? 0x10000 : 0);
  }
  r.set("VTIVAR", vf, 0);
  r.set("VTIVAR_MISC", vf, 0);
  r.set("PSRTYPE", vf, 0);
  const sh = vfEicrShift(vf);
  for (let i = 0; i < 3; i++) r.set("EITR", sh + i, 0);
  r.set("EIAC", 0, r.get("EIAC") & ~(7 << sh));
  r.set("EIAM", 0, r.get("EIAM") & ~(7 << sh));
  for (let i = 0; i < 16; i++) r.set("VMBMEM", 16 * vf + i, 0);
  r.set("MBVFICR", 0, r.get("MBVFICR") & ~((1 << vf) | (1 << (vf + 16))));
  vfReset(core, vf);
}
