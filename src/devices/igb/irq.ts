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
import type { IgbRegName } from "./regnames.js";
import { arr, field, int, obj, onlyKeys } from "../../state/parse.js";
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

/** The longest moderation interval EITR can hold (its interval field, 8191 us), in ns. */
export const MAX_MODERATION_NS = (B.EITR_INTERVAL_MASK >>> 2) * 1000;

/** Saved interrupt state (the causes and masks are registers; this is the moderation). */
export interface IrqState {
  /** Per EICR bit: ns left (on the device clock) before the bit's next message may go. */
  readonly dueInNs: readonly number[];
  /** EICR bits whose message is owed (held back by moderation or by the data path's activity). */
  readonly held: number;
}

/** Checks a saved {@link IrqState} (untrusted). */
export function parseIrqState(u: unknown, path: string): IrqState {
  const o = obj(u, path);
  onlyKeys(o, path, ["dueInNs", "held"]);
  return {
    dueInNs: field(o, "dueInNs", path, (v, p) => arr(v, p, IGB_SIZES.eicrBits, (x, q) => int(x, q, 0, MAX_MODERATION_NS), true)),
    held: field(o, "held", path, (v, p) => int(v, p, 0, 2 ** IGB_SIZES.eicrBits - 1)),
  };
}

/**
 * The interrupt logic of one 82576. Register values live in the register file.
 *
 * A message is sent only while its owner (the PF, or the VF owning the EICR bit) may raise
 * interrupts (`gate`), the device clock is attached, and moderation is not frozen; otherwise the
 * cause stays latched in EICR/ICR and the message is owed until {@link IgbIrq.resume}.
 */
export class IgbIrq {
  /** Per bit: the time a message may go again (absolute on the clock; relative while detached or frozen). */
  private readonly until = new Array<number>(IGB_SIZES.eicrBits).fill(0);
  /** Bits waiting for moderation to end (a timer runs for each while attached). */
  private held = 0;
  /** Bits whose message was blocked by activity or a missing clock. */
  private deferred = 0;
  private legacyDeferred = false;
  private intxDeferred = false;
  private clock: Clock | undefined;
  private frozen = false;
  private readonly timers = new Array<TimerHandle | undefined>(IGB_SIZES.eicrBits).fill(undefined);
  /** Messages sent, per EICR bit (for tests and statistics). */
  readonly sent = new Array<number>(IGB_SIZES.eicrBits).fill(0);
  /** Slots of the registers a per-frame cause touches (resolved once; a lookup by name costs more than the access). */
  private readonly sEICR: number;
  private readonly sEIMS: number;
  private readonly sEIAC: number;
  private readonly sEIAM: number;
  private readonly sGPIE: number;
  private readonly sEITR: number;

  /**
   * @param regs - the register file
   * @param port - where messages go
   * @param numVfs - VFs enabled now
   * @param gate - whether `owner` (-1 = PF, n = VF n) may be sent a message now
   */
  constructor(
    private readonly regs: RegFile<unknown, IgbRegName>,
    private readonly port: IgbIrqPort,
    private readonly numVfs: () => number,
    private readonly gate: (owner: number) => boolean = () => true,
  ) {
    this.sEICR = regs.slotOf("EICR");
    this.sEIMS = regs.slotOf("EIMS");
    this.sEIAC = regs.slotOf("EIAC");
    this.sEIAM = regs.slotOf("EIAM");
    this.sGPIE = regs.slotOf("GPIE");
    this.sEITR = regs.slotOf("EITR");
  }

  /** Binds the device clock: moderation times become absolute on it and held messages are re-armed. */
  attach(clock: Clock): void {
    const relative = this.relative();
    this.cancelTimers();
    if (!relative && this.clock !== undefined) this.toRelative();
    this.clock = clock;
    if (!this.frozen) this.toAbsolute();
  }

  /** Stops moderation time ("stopped": timers change nothing); {@link thaw} starts it again. */
  freeze(): void {
    if (this.frozen) return;
    if (!this.relative()) this.toRelative();
    this.cancelTimers();
    this.frozen = true;
  }

  /** Undoes {@link freeze}. */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    if (this.clock !== undefined) this.toAbsolute();
  }

  private relative(): boolean {
    return this.clock === undefined || this.frozen;
  }

  private toRelative(): void {
    const now = this.clock?.now() ?? 0;
    for (let b = 0; b < this.until.length; b++) this.until[b] = Math.min(MAX_MODERATION_NS, Math.max(0, (this.until[b] ?? 0) - now));
  }

  private toAbsolute(): void {
    const clock = this.clock;
    if (clock === undefined) return;
    const now = clock.now();
    for (let b = 0; b < this.until.length; b++) {
      const due = this.until[b] ?? 0;
      this.until[b] = due > 0 ? now + due : 0;
      if ((this.held >>> b) & 1) this.arm(b, due);
    }
  }

  private cancelTimers(): void {
    for (const t of this.timers) t?.cancel();
    this.timers.fill(undefined);
  }

  private msix(): boolean {
    return ((this.regs.slots[this.sGPIE] ?? 0) & B.GPIE_MSIX_MODE) !== 0;
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
    } else if (this.clock === undefined || !this.gate(-1)) {
      this.legacyDeferred = true;
    } else {
      this.port.pf(0);
    }
  }

  /** Re-evaluates the legacy line after ICR or IMS lost bits. */
  lowerCheck(): void {
    const r = this.regs;
    if (this.msix() || (r.get("ICR") & r.get("IMS")) !== 0) return;
    if (this.clock === undefined || !this.gate(-1)) this.intxDeferred = true;
    else this.port.pfIntx(false);
  }

  /** EICR |= bits; sends a message for each newly pending, enabled vector. */
  raiseEicr(bits: number): void {
    const s = this.regs.slots;
    bits &= this.msix() ? B.EICR_MSIX_MASK : B.EICR_LEGACY_MASK;
    const eicr = s[this.sEICR] ?? 0;
    const eims = s[this.sEIMS] ?? 0;
    const now = (eicr | bits) >>> 0;
    s[this.sEICR] = now;
    // nothing newly pending and enabled (the usual case while a vector is auto-masked): no message
    const raised = now & eims & ~(eicr & eims);
    if (raised !== 0) this.sendPending(raised);
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

  /** Who receives EICR bit `bit`'s message: -1 = the PF, n = VF n. */
  ownerOf(bit: number): number {
    const vfs = this.numVfs();
    const vf = Math.floor((24 - bit) / 3);
    return vfs > 0 && bit >= vfEicrShift(vfs - 1) && vf < vfs ? vf : -1;
  }

  private deliver(bit: number): void {
    const m = 1 << bit;
    const clock = this.clock;
    const owner = this.ownerOf(bit);
    if (clock === undefined || this.frozen || !this.gate(owner)) {
      this.deferred |= m;
      return;
    }
    const now = clock.now();
    const s = this.regs.slots;
    const untilNs = this.until[bit] ?? 0;
    if (now < untilNs) {
      if ((this.held & m) === 0) {
        this.held |= m;
        this.arm(bit, untilNs - now);
      }
      return;
    }
    const interval = ((s[this.sEITR + bit] ?? 0) & B.EITR_INTERVAL_MASK) >>> 2; // microseconds
    this.until[bit] = interval > 0 ? now + interval * 1000 : 0;
    this.held &= ~m;
    this.deferred &= ~m;
    this.timers[bit]?.cancel();
    this.timers[bit] = undefined;
    // auto-clear and auto-mask on message send
    if ((s[this.sEIAC] ?? 0) & m) s[this.sEICR] = (s[this.sEICR] ?? 0) & ~m;
    if ((s[this.sGPIE] ?? 0) & B.GPIE_EIAME && (s[this.sEIAM] ?? 0) & m) s[this.sEIMS] = (s[this.sEIMS] ?? 0) & ~m;
    this.sent[bit] = (this.sent[bit] ?? 0) + 1;
    if (owner >= 0) this.port.vf(owner, bit - vfEicrShift(owner));
    else if (bit < IGB_SIZES.pfVectors) this.port.pf(bit);
  }

  private arm(bit: number, delay: number): void {
    this.timers[bit]?.cancel();
    this.timers[bit] = undefined;
    if (this.clock === undefined || this.frozen) return;
    this.timers[bit] = this.clock.schedule(delay, () => {
      this.timers[bit] = undefined;
      if ((this.held & (1 << bit)) === 0) return;
      this.held &= ~(1 << bit);
      const r = this.regs;
      if (r.get("EICR") & r.get("EIMS") & (1 << bit)) this.deliver(bit);
    });
  }

  /**
   * Sends the messages owed to owners that may receive them now (after a return to running). With
   * `all`, every pending unmasked cause is signalled again as well (after a restore: the messages
   * the source sent may not have reached this guest-facing function).
   */
  resume(all = false): void {
    const r = this.regs;
    let bits = this.deferred;
    this.deferred = 0;
    if (all) bits |= r.get("EICR") & r.get("EIMS");
    if (this.msix()) {
      for (let b = 0; b < IGB_SIZES.eicrBits; b++) if ((bits >>> b) & 1 && r.get("EICR") & r.get("EIMS") & (1 << b)) this.deliver(b);
      this.legacyDeferred = false;
      this.intxDeferred = false;
      return;
    }
    const pending = (r.get("ICR") & r.get("IMS")) !== 0;
    const legacy = this.legacyDeferred || (all && pending);
    this.legacyDeferred = false;
    const intx = this.intxDeferred;
    this.intxDeferred = false;
    if (legacy && pending) this.raiseLegacy();
    else if (intx && !pending) this.lowerCheck();
  }

  private raiseLegacy(): void {
    if (this.clock === undefined || !this.gate(-1)) this.legacyDeferred = true;
    else this.port.pf(0);
  }

  /** Messages owed (held back by moderation or activity), as EICR bits; plus whether a legacy one is owed. */
  owed(): { eicr: number; legacy: boolean } {
    return { eicr: (this.held | this.deferred) >>> 0, legacy: this.legacyDeferred };
  }

  /** Moderation of EICR bits `first .. first + n - 1` (a VF's vectors): ns left per bit, and the owed messages (bit i = first + i). */
  saveRange(first: number, n: number): { dueInNs: number[]; owed: number } {
    const s = this.save();
    return { dueInNs: s.dueInNs.slice(first, first + n), owed: (s.held >>> first) & ((1 << n) - 1) };
  }

  /** Loads {@link saveRange}'s output into bits `first ..` (another VF's vectors); other bits are untouched. */
  loadRange(first: number, dueInNs: readonly number[], owed: number): void {
    const rel = this.relative();
    const now = this.clock?.now() ?? 0;
    for (let i = 0; i < dueInNs.length; i++) {
      const b = first + i;
      if (b < 0 || b >= IGB_SIZES.eicrBits) continue;
      const m = 1 << b;
      this.timers[b]?.cancel();
      this.timers[b] = undefined;
      this.held &= ~m;
      this.deferred &= ~m;
      const due = Math.min(MAX_MODERATION_NS, Math.max(0, dueInNs[i] ?? 0));
      this.until[b] = rel ? due : due > 0 ? now + due : 0;
      if ((owed >>> i) & 1) {
        this.held |= m;
        if (!rel) this.arm(b, due);
      }
    }
  }

  /** Marks `bits`' messages as owed: they go out at the next {@link resume} (if still pending and unmasked). */
  owe(bits: number): void {
    this.deferred = (this.deferred | bits) >>> 0;
  }

  /** Forgets moderation state (device reset). */
  reset(): void {
    this.cancelTimers();
    this.until.fill(0);
    this.held = 0;
    this.deferred = 0;
    this.legacyDeferred = false;
    this.intxDeferred = false;
  }

  /** Saves moderation state, relative to the device clock. */
  save(): IrqState {
    const rel = this.relative();
    const now = this.clock?.now() ?? 0;
    const due = this.until.map((u) => Math.min(MAX_MODERATION_NS, Math.max(0, rel ? u : u - now)));
    return { dueInNs: due, held: (this.held | this.deferred) >>> 0 };
  }

  /** Loads a parsed state: moderation is re-armed relative to the clock now (or at attach). */
  restore(s: IrqState): void {
    this.reset();
    for (let b = 0; b < IGB_SIZES.eicrBits; b++) this.until[b] = s.dueInNs[b] ?? 0;
    this.held = s.held & (2 ** IGB_SIZES.eicrBits - 1);
    if (!this.relative()) this.toAbsolute();
  }
}
