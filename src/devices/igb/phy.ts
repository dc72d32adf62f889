/**
 * The 82576 internal copper PHY as seen through MDIC: an IGP3-type PHY (id 0x02A80390) that Linux
 * igb recognises, auto-negotiation complete and link up at 1000/full.
 * @module
 */

import { StateError, arr, field, obj, onlyKeys, u16 } from "../../state/parse.js";

/** PHY address MDIC must name. */
export const PHY_ADDR = 1;
/** PHY identifier the igb driver matches (IGP03E1000_E_PHY_ID). */
export const PHY_ID = 0x02a80390;

/** MII register numbers used here. */
export const MII = {
  BMCR: 0x00,
  BMSR: 0x01,
  PHYID1: 0x02,
  PHYID2: 0x03,
  ANAR: 0x04,
  ANLPAR: 0x05,
  ANER: 0x06,
  ANNP: 0x07,
  ANLPRNP: 0x08,
  CTRL1000: 0x09,
  STAT1000: 0x0a,
  EXTSTAT: 0x0f,
  PORT_CONFIG: 0x10,
  PORT_STATUS: 0x11,
  PORT_CTRL: 0x12,
  LINK_HEALTH: 0x13,
  POWER_MGMT: 0x19,
  PAGE_SELECT: 0x1f,
} as const;

const BMCR_RESET = 0x8000;
const BMCR_ANRESTART = 0x0200;
const BMSR_LSTATUS = 0x0004;
const BMSR_ANEGCOMPLETE = 0x0020;

/** Access rights per register: 1 = read, 2 = write. */
const CAP: Record<number, number> = {
  [MII.BMCR]: 3, [MII.BMSR]: 1, [MII.PHYID1]: 1, [MII.PHYID2]: 1, [MII.ANAR]: 3, [MII.ANLPAR]: 1,
  [MII.ANER]: 1, [MII.ANNP]: 3, [MII.ANLPRNP]: 1, [MII.CTRL1000]: 3, [MII.STAT1000]: 1, [MII.EXTSTAT]: 1,
  [MII.PORT_CONFIG]: 3, [MII.PORT_STATUS]: 1, [MII.PORT_CTRL]: 3, [MII.LINK_HEALTH]: 1,
  [MII.POWER_MGMT]: 3, [MII.PAGE_SELECT]: 2,
};

/** Saved PHY state. */
export interface PhyState {
  /** The 32 register values. */
  readonly regs: readonly number[];
}

/** BMSR with the link down, and up (autoneg complete). */
const BMSR_DOWN = 0x7949;
const BMSR_UP = BMSR_DOWN | BMSR_LSTATUS | BMSR_ANEGCOMPLETE;
/** PORT_STATUS with the link up: 1000 Mb/s, full duplex, link, autoneg done. */
const PORT_STATUS_UP = 0xc000 | 0x0400 | 0x0200 | 0x0010;

/** Read-only registers and the one value each can hold. */
const FIXED: Record<number, number> = {
  [MII.PHYID1]: PHY_ID >>> 16, [MII.PHYID2]: PHY_ID & 0xffff, [MII.ANLPAR]: 0x7de1, [MII.ANER]: 0x000f,
  [MII.STAT1000]: 0x3c00, [MII.EXTSTAT]: 0x3000, [MII.LINK_HEALTH]: 0,
};

/**
 * Checks a saved PHY state (untrusted): 32 u16 registers; registers the PHY does not implement
 * hold 0, read-only ones their fixed value, BMCR no self-clearing bit, and BMSR/PORT_STATUS one
 * of the two link states.
 */
export function parsePhyState(u: unknown, path: string): PhyState {
  const o = obj(u, path);
  onlyKeys(o, path, ["regs"]);
  const regs = field(o, "regs", path, (v, p) => arr(v, p, 32, (x, q) => u16(x, q), true));
  regs.forEach((v, i) => {
    const p = `${path}.regs[${i}]`;
    if (CAP[i] === undefined && v !== 0) throw new StateError(p, "register not implemented by the PHY must be 0");
    const fixed = FIXED[i];
    if (fixed !== undefined && v !== fixed) throw new StateError(p, `read-only register must be 0x${fixed.toString(16)}`);
  });
  if ((regs[MII.BMCR]! & (BMCR_RESET | BMCR_ANRESTART | 0x3f)) !== 0) throw new StateError(`${path}.regs[0]`, "BMCR holds a self-clearing or reserved bit");
  const bmsr = regs[MII.BMSR]!;
  if (bmsr !== BMSR_UP && bmsr !== BMSR_DOWN) throw new StateError(`${path}.regs[1]`, "BMSR is neither link-up nor link-down");
  if (regs[MII.PORT_STATUS] !== (bmsr === BMSR_UP ? PORT_STATUS_UP : 0)) throw new StateError(`${path}.regs[17]`, "PORT_STATUS disagrees with BMSR's link state");
  return { regs };
}

/** The PHY register file. */
export class IgbPhy {
  /** 32 16-bit registers. */
  readonly regs = new Uint16Array(32);
  private linkUp = true;

  constructor() {
    this.reset();
  }

  /** Power-on values: autoneg complete, link up (if the cable is in). */
  reset(): void {
    this.regs.fill(0);
    this.regs[MII.BMCR] = 0x1140;
    this.regs[MII.PHYID1] = PHY_ID >>> 16;
    this.regs[MII.PHYID2] = PHY_ID & 0xffff;
    this.regs[MII.ANAR] = 0x0de1;
    this.regs[MII.ANLPAR] = 0x7de1;
    this.regs[MII.ANER] = 0x000f;
    this.regs[MII.ANNP] = 0x2001;
    this.regs[MII.CTRL1000] = 0x0e00;
    this.regs[MII.STAT1000] = 0x3c00;
    this.regs[MII.EXTSTAT] = 0x3000;
    this.regs[MII.PORT_CONFIG] = 0x0000;
    this.regs[MII.PORT_CTRL] = 0x0000;
    this.setLink(this.linkUp);
  }

  /** Cable in (autoneg completes at once) or out. */
  setLink(up: boolean): void {
    this.linkUp = up;
    this.regs[MII.BMSR] = up ? BMSR_UP : BMSR_DOWN;
    this.regs[MII.PORT_STATUS] = up ? PORT_STATUS_UP : 0;
  }

  /** Whether the link is up. */
  get link(): boolean {
    return this.linkUp;
  }

  /** MDIC read of `reg`; `undefined` means the access fails (MDIC.E). */
  read(reg: number): number | undefined {
    if (((CAP[reg] ?? 0) & 1) === 0) return undefined;
    return this.regs[reg] ?? 0;
  }

  /** MDIC write; returns false if the access fails (MDIC.E). */
  write(reg: number, value: number): boolean {
    if (((CAP[reg] ?? 0) & 2) === 0) return false;
    if (reg === MII.BMCR) {
      if (value & BMCR_RESET) {
        this.reset();
        return true;
      }
      // reset and autoneg-restart self-clear; autoneg completes at once in this model
      this.regs[MII.BMCR] = value & ~(BMCR_RESET | BMCR_ANRESTART | 0x3f);
      if (value & BMCR_ANRESTART) this.setLink(this.linkUp);
      return true;
    }
    this.regs[reg] = value & 0xffff;
    return true;
  }

  /** Saves the registers. */
  save(): PhyState {
    return { regs: Array.from(this.regs) };
  }

  /** Loads a state from {@link parsePhyState}. */
  restore(s: PhyState): void {
    for (let i = 0; i < 32; i++) this.regs[i] = s.regs[i] ?? 0;
    this.linkUp = ((this.regs[MII.BMSR] ?? 0) & BMSR_LSTATUS) !== 0;
  }
}
