/**
 * Enough of a simulated igb PF guest driver for in-process tests and benchmarks, following the
 * probe sequence Linux igb uses: master disable, CTRL.RST, wait for the NVM auto-read, validate
 * the NVM checksum, read the MAC from RAL0/RAH0, identify the PHY over MDIC, then bring up queue 0
 * (advanced descriptors) with MSI-X. Rings and send/receive are the igbvf driver's: queue 0's
 * legacy register aliases on the PF sit at the same offsets as a VF's queue 0.
 * @module
 */
import { B, R } from "../../devices/igb/regs.js";
import { SimIgbvf, VfDriverError, type VfDriverEnv, type VfDriverOptions } from "../igbvf/driver.js";

/** What the probe found. */
export interface PfProbe {
  /** NVM words 0..0x3F sum to 0xBABA. */
  readonly nvmValid: boolean;
  /** MAC from RAL0/RAH0. */
  readonly mac: Uint8Array;
  /** PHY identifier read over MDIC. */
  readonly phyId: number;
  /** STATUS.LU. */
  readonly linkUp: boolean;
}

/**
 * The PF driver.
 * @example
 * const pf = new SimIgbPf(env); const p = pf.probe(); pf.open(); pf.rings.send(frame);
 */
export class SimIgbPf {
  /** Queue 0's rings (send/receive/reclaim). */
  readonly rings: SimIgbvf;

  constructor(private readonly env: VfDriverEnv, opts: VfDriverOptions = {}) {
    this.rings = new SimIgbvf(env, opts);
  }

  private rd(off: number): number {
    return this.env.bar.read(off, 4) >>> 0;
  }
  private wr(off: number, v: number): void {
    this.env.bar.write(off, 4, v >>> 0);
  }

  private mdicRead(reg: number): number {
    this.wr(R.MDIC, B.MDIC_OP_READ | (1 << B.MDIC_PHY_SHIFT) | (reg << B.MDIC_REG_SHIFT));
    for (let i = 0; i < 1000; i++) {
      const v = this.rd(R.MDIC);
      if (v & B.MDIC_READY) {
        if (v & B.MDIC_ERROR) throw new VfDriverError(`MDIC read of PHY register ${reg} failed`);
        return v & 0xffff;
      }
      this.env.delay(50);
    }
    throw new VfDriverError("MDIC timeout");
  }

  private nvmRead(addr: number): number {
    this.wr(R.EERD, (addr << B.EERD_ADDR_SHIFT) | B.EERD_START);
    for (let i = 0; i < 1000; i++) {
      const v = this.rd(R.EERD);
      if (v & B.EERD_DONE) return v >>> B.EERD_DATA_SHIFT;
      this.env.delay(5);
    }
    throw new VfDriverError("EERD timeout");
  }

  /** Resets and identifies the device. Throws {@link VfDriverError} if it does not respond. */
  probe(): PfProbe {
    this.wr(R.CTRL, this.rd(R.CTRL) | B.CTRL_GIO_MASTER_DISABLE);
    for (let i = 0; i < 800 && this.rd(R.STATUS) & B.STATUS_GIO_MASTER_ENABLE; i++) this.env.delay(100);
    this.wr(R.IMC, 0xffffffff);
    this.wr(R.CTRL, this.rd(R.CTRL) | B.CTRL_RST);
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) {
      ok = (this.rd(R.EECD) & B.EECD_AUTO_RD) !== 0;
      if (!ok) this.env.delay(1000);
    }
    if (!ok) throw new VfDriverError("NVM auto-read did not complete");
    this.wr(R.IMC, 0xffffffff);
    this.rd(R.ICR);
    let sum = 0;
    for (let i = 0; i < 0x40; i++) sum = (sum + this.nvmRead(i)) & 0xffff;
    const lo = this.rd(R.RAL(0));
    const hi = this.rd(R.RAH(0));
    const mac = Uint8Array.from([lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff]);
    const phyId = ((this.mdicRead(2) << 16) | this.mdicRead(3)) >>> 0;
    return { nvmValid: sum === 0xbaba, mac, phyId, linkUp: (this.rd(R.STATUS) & B.STATUS_LU) !== 0 };
  }

  /** Enables receive and transmit, MSI-X mode (vector 0: queue 0 RX, 1: TX, 2: other) and queue 0. */
  open(): void {
    this.wr(R.GPIE, B.GPIE_MSIX_MODE | B.GPIE_EIAME | B.GPIE_PBA | B.GPIE_NSICR);
    this.rings.open();
    this.wr(R.IVAR_MISC, (2 | B.IVAR_VALID) << 8); // PF: "other" causes are byte 1
    this.wr(R.IMS, B.ICR_LSC);
    this.wr(R.RCTL, B.RCTL_EN | B.RCTL_BAM | B.RCTL_SECRC);
    this.wr(R.TCTL, this.rd(R.TCTL) | B.TCTL_EN);
  }
}
