/**
 * The 82576 interrupt logic: ICR/IMS (legacy and "other" causes), EICR/EIMS/EIAC/EIAM (MSI-X
 * vectors shared by the PF and the VFs), GPIE, IVAR_MISC, and EITR moderation on the device Clock.
 *
 * EICR has 25 cause bits. VF n owns bits `22 - 3n .. 24 - 3n` (its MSI-X vectors 0..2); the PF
 * owns the rest (its vectors 0..9). This is the layout QEMU's igb uses too.
 * @module
 */
import type { Clock, TimerHandle } from "../../pci/interfaces.js";
import type { RegFile } from "./regfile.js";
import { B, IGB_SIZES } from "./regs.js";

/** Where the NIC's interrupts go (the PCI functions decide between MSI-X, MSI and INTx). */
export interface IgbIrqPort {
  /** Raise PF vector `vector` (0 in MSI/INTx mode). */
  pf(vector: number): void;
  /** Level of the PF's INTx line (deassert when nothing is pending). */
  pfIntx(level: boolean): void;
  /** Raise VF `vf`'s MSI-X vector `vector` (0..2). */
  vf(vf: number, vector: number): void;
}

/** First EICR bit of VF `vf`. */
export function vfEicrShift(vf: number): number {
  return 22 - 3 * vf;
}

/** Saved moderation state. */
export interface IrqState {
  /** Format version. */
  readonly version: 1;
  /** Per EICR bit: time (ns) before which the next message is held back. */
  readonly until: number[];
  /** EICR bits whose message is held back by moderation. */
  readonly held: number;
}

/** Raised when saved interrupt state is rejected. */
export class IrqStateError extends Error {
  override readonly name = "IrqStateError";
}

/** The interrupt logic of one 82576. Register values live in the register file. */
export class IgbIrq {
  private readonly until = new Array<number>(IGB_SIZES.eicrBits).fill(0);
  private held = 0;
  private readonly timers = new Array<TimerHandle | undefined>(IGB_SIZES.eicrBits).fill(undefined);
  /** Messages sent, per EICR bit (for tests and statistics). */
  readonly sent = new Array<number>(IGB_SIZES.eicrBits).fill(0);

  constructor(
    private readonly regs: RegFile<unknown>,
    private readonly port: IgbIrqPort,
    private readonly clock: Clock,
    private readonly numVfs: () => number,
  ) {}

  private msix(): boolean {
    return (this.regs.get("GPIE") & B.GPIE_MSIX_MODE) !== 0;
  }

  /** ICR |= causes; signals what became pending and enabled. */
  raiseIcr(causes: number): void {
    const r = this.regs;
    const old = r.get("ICR") & r.get("IMS");
    r.set("ICR", 0, r.get("ICR") | causes);
    const raised = r.get("ICR") & r.get("IMS") & ~old;
    if (raised === 0) return;
    if (this.msix()) {
      const misc = r.get("IVAR_MISC");
      const other = (misc >>> 8) & 0xff;
      if (other & B.IVAR_VALID) this.raiseEicr(1 << (other & 0x1f));
    } else {
      this.port.pf(0);
    }
  }

  /** Re-evaluates the legacy line after ICR or IMS lost bits. */
  lowerCheck(): void {
    const r = this.regs;
    if (!this.msix() && (r.get("ICR") & r.get("IMS")) === 0) this.port.pfIntx(false);
  }

  /** EICR |= bits; sends a message for each newly pending, enabled vector. */
  raiseEicr(bits: number): void {
    const r = this.regs;
    bits &= this.msix() ? B.EICR_MSIX_MASK : B.EICR_LEGACY_MASK;
    const old = r.get("EICR") & r.get("EIMS");
    r.set("EICR", 0, r.get("EICR") | bits);
    this.sendPending(r.get("EICR") & r.get("EIMS") & ~old);
  }

  /** EIMS |= bits (and sends what was already pending). */
  enable(bits: number): void {
    const r = this.regs;
    bits &= this.msix() ? B.EICR_MSIX_MASK : B.EICR_LEGACY_MASK;
    const old = r.get("EICR") & r.get("EIMS");
    r.set("EIMS", 0, r.get("EIMS") | bits);
    this.sendPending(r.get("EICR") & r.get("EIMS") & ~old);
  }

  private sendPending(bits: number): void {
    if (!this.msix()) return;
    for (let b = 0; b < IGB_SIZES.eicrBits && bits !== 0; b++) {
      if (((bits >>> b) & 1) === 0) continue;
      bits &= ~(1 << b);
      this.deliver(b);
    }
  }

  private deliver(bit: number): void {
    const now = this.clock.now();
    const r = this.regs;
    const untilNs = this.until[bit] ?? 0;
    if (now < untilNs) {
      if ((this.held & (1 << bit)) === 0) {
        this.held |= 1 << bit;
        this.arm(bit, untilNs - now);
      }
      return;
    }
    const interval = (r.get("EITR", bit) & B.EITR_INTERVAL_MASK) >>> 2; // microseconds
    this.until[bit] = interval > 0 ? now + interval * 1000 : 0;
    // auto-clear and auto-mask on message send
    const m = 1 << bit;
    if (r.get("EIAC") & m) r.set("EICR", 0, r.get("EICR") & ~m);
    if (r.get("GPIE") & B.GPIE_EIAME && r.get("EIAM") & m) r.set("EIMS", 0, r.get("EIMS") & ~m);
    this.sent[bit] = (this.sent[bit] ?? 0) + 1;
    const vfs = this.numVfs();
    const vf = Math.floor((24 - bit) / 3);
    if (vfs > 0 && bit >= vfEicrShift(vfs - 1) && vf < vfs) {
      this.port.vf(vf, bit - vfEicrShift(vf));
    } else if (bit < IGB_SIZES.pfVectors) {
      this.port.pf(bit);
    }
  }

  private arm(bit: number, delay: number): void {
    this.timers[bit]?.cancel();
    this.timers[bit] = this.clock.schedule(delay, () => {
      this.timers[bit] = undefined;
      if ((this.held & (1 << bit)) === 0) return;
      this.held &= ~(1 << bit);
      const r = this.regs;
      if (r.get("EICR") & r.get("EIMS") & (1 << bit)) this.deliver(bit);
    });
  }

  /** Forgets moderation state (device reset). */
  reset(): void {
    for (const t of this.timers) t?.cancel();
    this.timers.fill(undefined);
    this.until.fill(0);
    this.held = 0;
  }

  /** Saves moderation state. */
  save(): IrqState {
    return { version: 1, until: [...this.until], held: this.held };
  }

  /** Restores moderation state and re-arms held messages. */
  restore(s: IrqState): void {
    if (s === null || typeof s !== "object" || s.version !== 1 || !Array.isArray(s.until)) throw new IrqStateError("irq state: bad shape");
    if (s.until.length !== IGB_SIZES.eicrBits || !s.until.every((v) => typeof v === "number" && Number.isFinite(v) && v >= 0)) {
      throw new IrqStateError("irq state: bad moderation times");
    }
    if (!Number.isInteger(s.held) || s.held < 0 || s.held >= 2 ** IGB_SIZES.eicrBits) throw new IrqStateError("irq state: bad held mask");
    this.reset();
    this.until.splice(0, this.until.length, ...s.until);
    const now = this.clock.now();
    for (let b = 0; b < IGB_SIZES.eicrBits; b++) {
      if ((s.held >>> b) & 1) {
        this.held |= 1 << b;
        this.arm(b, Math.max(0, (this.until[b] ?? 0) - now));
      }
    }
  }
}
