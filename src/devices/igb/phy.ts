/**
 * The 82576 internal copper PHY as seen through MDIC: an IGP3-type PHY (id 0x02A80390) that Linux
 * igb recognises, auto-negotiation complete and link up at 1000/full.
 * @module
 */

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
  /** Format version. */
  readonly version: 1;
  /** 32 register values. */
  readonly regs: number[];
}

/** Raised when a saved PHY state is rejected. */
export class PhyStateError extends Error {
  override readonly name = "PhyStateError";
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
    const bmsrBase = 0x7949;
    this.regs[MII.BMSR] = up ? bmsrBase | BMSR_LSTATUS | BMSR_ANEGCOMPLETE : bmsrBase;
    // PORT_STATUS: link up (0x0400), full duplex (0x0200), 1000 Mb/s (0xC000), autoneg done (0x0010)
    this.regs[MII.PORT_STATUS] = up ? 0xc000 | 0x0400 | 0x0200 | 0x0010 : 0;
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
    return { version: 1, regs: Array.from(this.regs) };
  }

  /** Restores saved registers. */
  restore(s: PhyState): void {
    if (s === null || typeof s !== "object" || s.version !== 1 || !Array.isArray(s.regs) || s.regs.length !== 32) {
      throw new PhyStateError("phy state: bad shape");
    }
    for (const v of s.regs) if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new PhyStateError("phy state: bad register");
    this.regs.set(s.regs);
    this.linkUp = ((this.regs[MII.BMSR] ?? 0) & BMSR_LSTATUS) !== 0;
  }
}
