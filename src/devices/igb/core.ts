/**
 * The 82576 device core: register file, NVM, PHY, interrupts, mailbox, reset, and the glue to the
 * data path (`tx.ts`, `rx.ts`, `switch.ts`). It knows nothing about PCI config space: the PCI
 * wiring (`pci.ts`) forwards BAR accesses here and tells it how many VFs are enabled.
 * @module
 */
import type { Clock, DmaSpace } from "../../pci/interfaces.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { segmentTso } from "../net/segment.js";
import { IgbIrq, type IgbIrqPort, type IrqState } from "./irq.js";
import { buildNvm } from "./nvm.js";
import { IgbPhy, PHY_ADDR, type PhyState } from "./phy.js";
import { RegFile, type RegFileState } from "./regfile.js";
import { B, IGB_SIZES } from "./regs.js";
import { igbRegisterTable } from "./table.js";
import { TxQueueState, processTx, type TxQueueSaved } from "./tx.js";
import { switchFromUplink, type SwitchCounters } from "./switch.js";

/** Options of an {@link IgbCore}. */
export interface IgbCoreOptions {
  /** The PF's permanent MAC address (goes into the NVM). */
  readonly mac: Uint8Array;
  /**
   * Guest memory for DMA of function `fn` (`-1` = PF, `0..7` = VF n). A queue owned by a VF's pool
   * uses that VF's space (its IOMMU domain), every other queue the PF's.
   */
  readonly dma: (fn: number) => DmaSpace;
  /** Interrupt delivery. */
  readonly irq: IgbIrqPort;
  /** Device time (EITR moderation). */
  readonly clock: Clock;
  /** The uplink (optional: without it, frames to the wire are counted and dropped). */
  readonly backend?: NetBackend;
  /** Receives one line per dropped guest access or frame (optional). */
  readonly trace?: (msg: string) => void;
}

/** Registers read on every frame (see {@link IgbCore.hot}). */
/** Registers whose slot bases {@link IgbCore.hot} keeps for the per-frame paths. */
export const HOT_REGS = ["TCTL", "TXDCTL", "VFTE", "TDLEN", "TDBAL", "TDBAH", "TDH", "TDT", "TDWBAL", "TDWBAH", "RAL", "RAH", "MRQC", "RSSRK"] as const;

/** Saved state of the whole device. */
export interface IgbCoreState {
  /** Format version. */
  readonly version: 1;
  /** Register slots. */
  readonly regs: RegFileState;
  /** PHY registers. */
  readonly phy: PhyState;
  /** NVM words. */
  readonly nvm: number[];
  /** Interrupt moderation. */
  readonly irq: IrqState;
  /** Transmit queues' in-flight state (contexts, partly assembled packet). */
  readonly tx: TxQueueSaved[];
  /** Number of VFs enabled. */
  readonly numVfs: number;
  /** The I/O BAR's IOADDR latch (optional, default 0). */
  readonly ioAddr?: number;
}

/** Raised when saved device state is rejected. */
export class IgbStateError extends Error {
  override readonly name = "IgbStateError";
}

/**
 * An Intel 82576-compatible NIC core.
 * @example
 * const core = new IgbCore({ mac, dma: () => mem, irq, clock });
 * core.mmioWrite(0x0, 4, 0x0400_0000); // CTRL.RST
 */
export class IgbCore {
  /** The PF register file (BAR0). */
  readonly regs: RegFile<IgbCore>;
  /** The internal PHY. */
  readonly phy = new IgbPhy();
  /** NVM image. */
  readonly nvm: Uint16Array;
  /** Interrupt logic. */
  readonly irq: IgbIrq;
  /** Per-queue transmit state. */
  readonly tx: TxQueueState[] = [];
  /** Switch and anti-spoof counters (not guest visible except through WVBR). */
  readonly counters: SwitchCounters = { spoofDrops: new Array<number>(IGB_SIZES.pools).fill(0), uplinkDrops: 0, uplinkOffloadErrors: 0, rxNoBuffer: 0, txErrors: 0 };
  /**
   * Slot bases (in `regs.slots`) of the registers the per-frame paths read, resolved once: a
   * lookup by name per access costs more than the access. Element i of row R is `slots[hot.R + i]`.
   */
  readonly hot: Readonly<Record<(typeof HOT_REGS)[number], number>>;
  private vfs = 0;
  private kicking = false;
  private kickPending = 0;

  constructor(readonly opts: IgbCoreOptions) {
    this.nvm = buildNvm(opts.mac);
    this.regs = new RegFile<IgbCore>(this, igbRegisterTable(), IGB_SIZES.pfBar0, opts.trace);
    const hot = {} as Record<(typeof HOT_REGS)[number], number>;
    for (const n of HOT_REGS) hot[n] = this.regs.slotOf(n);
    this.hot = hot;
    this.irq = new IgbIrq(this.regs as RegFile<unknown>, opts.irq, opts.clock, () => this.vfs);
    for (let q = 0; q < IGB_SIZES.queues; q++) this.tx.push(new TxQueueState());
    this.softReset();
    // The 82576 drops what no queue can take (counted in MPC/RNBC) and never pushes back on its
    // uplink: a backend that holds refused frames (a TAP) would otherwise stall every pool behind
    // one frame for a pool without buffers, a disabled queue or no filter match.
    opts.backend?.setReceiver((frame, meta) => {
      this.receive(frame, meta);
      return true;
    });
  }

  /** Number of VFs enabled (set by the SR-IOV capability's VF Enable / NumVFs). */
  get numVfs(): number {
    return this.vfs;
  }

  /** VF Enable changed: `n` VFs are now enabled (0 = none). */
  setNumVfs(n: number): void {
    const v = Math.max(0, Math.min(IGB_SIZES.pools, Math.floor(n)));
    if (v === this.vfs) return;
    for (let vf = v; vf < this.vfs; vf++) this.vfReset(vf);
    this.vfs = v;
  }

  /** EICR bits the PF may touch: all, minus the 3 bits of each enabled VF. */
  pfEicrMask(): number {
    let m = 0xffffffff;
    for (let vf = 0; vf < this.vfs; vf++) m &= ~(7 << this.vfShift(vf));
    return m >>> 0;
  }

  /** Whether pool `p` belongs to an enabled VF. */
  isVfPool(p: number): boolean {
    return p < this.vfs;
  }

  /** Whether VMDq pool filtering is on (MRQC mode VMDq or VMDq+RSS). */
  vtMode(): boolean {
    const m = (this.regs.slots[this.hot.MRQC] ?? 0) & B.MRQC_MODE_MASK;
    return m === B.MRQC_VMDQ || m === B.MRQC_VMDQ_RSS;
  }

  /** DMA space of queue `q`. */
  dmaForQueue(q: number): DmaSpace {
    const p = q % IGB_SIZES.pools;
    return this.opts.dma(this.isVfPool(p) ? p : -1);
  }

  /** Traces a dropped guest action. */
  trace(msg: string): void {
    this.opts.trace?.(msg);
  }

  // ---- BAR0 ----

  /** PF BAR0 read. */
  mmioRead(offset: number, size: 1 | 2 | 4): number {
    return this.regs.read(offset, size);
  }

  /** PF BAR0 write. */
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.regs.write(offset, size, value);
  }

  /** IOADDR latch of the I/O BAR (BAR2). */
  private ioAddr = 0;

  /**
   * PF I/O BAR (BAR2) read: IOADDR at 0 selects a register, IODATA at 4 accesses it. Other
   * offsets read all-ones.
   */
  ioRead(offset: number, size: 1 | 2 | 4): number {
    if (offset === 0 && size === 4) return this.ioAddr;
    if (offset === 4 && size === 4) return this.regs.read(this.ioAddr & 0x1fffc, 4);
    return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
  }

  /** PF I/O BAR (BAR2) write; see {@link ioRead}. Other offsets and sizes are dropped. */
  ioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    if (offset === 0) this.ioAddr = value & 0x1fffc;
    else if (offset === 4) this.regs.write(this.ioAddr, 4, value);
  }

  // ---- reset, status, NVM, PHY ----

  /** CTRL.RST (and PF FLR): everything but the NVM goes back to power-on state; VFs see RSTI. */
  softReset(): void {
    this.irq.reset();
    this.regs.resetAll();
    for (const t of this.tx) t.reset();
    this.phy.reset();
    // the hardware loads receive address 0 from the NVM on reset (Linux reads its MAC from RAL0/RAH0)
    const w = this.nvm;
    this.regs.set("RAL", 0, ((w[0] ?? 0) | ((w[1] ?? 0) << 16)) >>> 0);
    this.regs.set("RAH", 0, ((w[2] ?? 0) | B.RAH_AV) >>> 0);
  }

  /** PF driver set CTRL_EXT.PFRSTD: VFs see reset done (RSTD) instead of reset in progress. */
  pfResetDone(): void {
    for (let vf = 0; vf < IGB_SIZES.pools; vf++) {
      this.regs.set("V2PMAILBOX", vf, (this.regs.get("V2PMAILBOX", vf) & ~B.V2P_RSTI) | B.V2P_RSTD);
    }
  }

  /** STATUS as computed from link, VFs and the GIO master state. */
  status(): number {
    let s = B.STATUS_PF_RST_DONE;
    if (this.phy.link) s |= B.STATUS_LU | B.STATUS_FD | B.STATUS_SPEED_1000;
    if ((this.regs.get("CTRL") & B.CTRL_GIO_MASTER_DISABLE) === 0) s |= B.STATUS_GIO_MASTER_ENABLE;
    if (this.vfs > 0) s |= B.STATUS_IOV_MODE;
    return s;
  }

  /** EERD write: a read of NVM word `addr` completes at once. Returns the new EERD value. */
  nvmAccess(written: number): number {
    if ((written & B.EERD_START) === 0) return written & ~B.EERD_DONE;
    const addr = (written >>> B.EERD_ADDR_SHIFT) & 0x3fff;
    const data = addr < this.nvm.length ? (this.nvm[addr] ?? 0) : 0xffff;
    return ((data << B.EERD_DATA_SHIFT) | (addr << B.EERD_ADDR_SHIFT) | B.EERD_DONE) >>> 0;
  }

  /** MDIC write: the PHY access completes at once. Returns the new MDIC value. */
  mdicAccess(written: number): number {
    const reg = (written >>> B.MDIC_REG_SHIFT) & 0x1f;
    const phy = (written >>> B.MDIC_PHY_SHIFT) & 0x1f;
    let v = written & ~(B.MDIC_READY | B.MDIC_ERROR);
    if (phy !== PHY_ADDR) {
      v |= B.MDIC_ERROR;
    } else if (written & B.MDIC_OP_READ) {
      const d = this.phy.read(reg);
      v = d === undefined ? v | B.MDIC_ERROR : (v & ~B.MDIC_DATA_MASK) | d;
    } else if (written & B.MDIC_OP_WRITE) {
      if (!this.phy.write(reg, written & B.MDIC_DATA_MASK)) v |= B.MDIC_ERROR;
    }
    v |= B.MDIC_READY;
    if (written & B.MDIC_INT_EN) this.irq.raiseIcr(B.ICR_MDAC);
    return v >>> 0;
  }

  /** Link state of the cable; a change raises ICR.LSC. */
  setLink(up: boolean): void {
    if (this.phy.link === up) return;
    this.phy.setLink(up);
    this.irq.raiseIcr(B.ICR_LSC);
  }

  // ---- interrupts ----

  /** ICR read: returns the causes (with INT_ASSERTED) and clears them; IAM auto-masks. */
  readIcr(): number {
    const r = this.regs;
    let icr = r.get("ICR");
    const ims = r.get("IMS");
    if (icr & ims) icr |= B.ICR_INT_ASSERTED;
    if (r.get("GPIE") & B.GPIE_NSICR || icr & B.ICR_INT_ASSERTED) r.set("IMS", 0, ims & ~r.get("IAM"));
    r.set("ICR", 0, 0);
    this.irq.lowerCheck();
    return icr >>> 0;
  }

  /** IMS gained bits: signal causes that were already pending. */
  icrEnabled(oldIms: number): void {
    const r = this.regs;
    const was = r.get("ICR") & oldIms;
    const now = r.get("ICR") & r.get("IMS");
    if (now & ~was) {
      const pending = r.get("ICR");
      r.set("ICR", 0, pending & was);
      this.irq.raiseIcr(pending & ~was);
    }
  }

  // ---- mailbox ----

  /** PF writes P2VMAILBOX(vf). Returns the value to store. */
  pfMailboxWrite(vf: number, w: number, old: number): number {
    const r = this.regs;
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
    if (signal) this.mailboxToVf(vf);
    return p2v;
  }

  /** VF writes its mailbox register (V2PMAILBOX(vf)). Returns the value to store. */
  vfMailboxWrite(vf: number, w: number, old: number): number {
    const r = this.regs;
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
      this.mailboxToPf(vf);
    }
    return v2p;
  }

  private mailboxToVf(vf: number): void {
    const ent = this.regs.get("VTIVAR_MISC", vf) & 0xff;
    if (ent & B.IVAR_VALID && (ent & 3) < 3) this.irq.raiseEicr(1 << (this.vfShift(vf) + (ent & 3)));
  }

  private vfShift(vf: number): number {
    return 22 - 3 * vf;
  }

  private mailboxToPf(vf: number): void {
    if (this.regs.get("MBVFIMR") & (1 << vf)) this.irq.raiseIcr(B.ICR_VMMB);
  }

  /** VF `vf` reset (its CTRL.RST or its FLR): its queues stop, its pool is disabled, the PF is told. */
  vfReset(vf: number): void {
    const r = this.regs;
    for (const q of [vf, vf + IGB_SIZES.pools]) {
      r.set("RXDCTL", q, r.get("RXDCTL", q) & ~B.RXDCTL_ENABLE);
      r.set("TXDCTL", q, r.get("TXDCTL", q) & ~B.TXDCTL_ENABLE);
      this.tx[q]?.reset();
    }
    r.set("VFRE", 0, r.get("VFRE") & ~(1 << vf));
    r.set("VFTE", 0, r.get("VFTE") & ~(1 << vf));
    const vbits = 7 << this.vfShift(vf);
    r.set("EIMS", 0, r.get("EIMS") & ~vbits);
    r.set("EICR", 0, r.get("EICR") & ~vbits);
    // the VF's mailbox lock and pending flags go; a reset-done indication stays if the PF is up
    const pfUp = (r.get("CTRL_EXT") & B.CTRL_EXT_PFRSTD) !== 0;
    r.set("V2PMAILBOX", vf, pfUp ? B.V2P_RSTD : B.V2P_RSTI);
    r.set("P2VMAILBOX", vf, 0);
    r.set("VFLRE", 0, r.get("VFLRE") | (1 << vf));
    this.irq.raiseIcr(B.ICR_VMMB);
  }

  /**
   * Function-level reset of VF `vf` (PCIe FLR through the VF's Device Control): a {@link vfReset}
   * plus the VF's own register state (its queues' configuration, vector mapping, moderation,
   * auto-clear/mask bits, mailbox memory) back to power-on values. Other VFs and the PF's
   * filters are untouched.
   */
  vfFlr(vf: number): void {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) return;
    const r = this.regs;
    const queueRegs = ["RDBAL", "RDBAH", "RDLEN", "SRRCTL", "RDH", "RXCTL", "RDT", "RXDCTL", "RQDPC",
      "TDBAL", "TDBAH", "TDLEN", "TDH", "TXCTL", "TDT", "TXDCTL", "TDWBAL", "TDWBAH"];
    for (const q of [vf, vf + IGB_SIZES.pools]) {
      for (const n of queueRegs) r.set(n, q, n === "SRRCTL" ? 2 : n === "RXDCTL" ? 0x10000 : 0);
    }
    r.set("VTIVAR", vf, 0);
    r.set("VTIVAR_MISC", vf, 0);
    r.set("PSRTYPE", vf, 0);
    const sh = this.vfShift(vf);
    for (let i = 0; i < 3; i++) r.set("EITR", sh + i, 0);
    r.set("EIAC", 0, r.get("EIAC") & ~(7 << sh));
    r.set("EIAM", 0, r.get("EIAM") & ~(7 << sh));
    for (let i = 0; i < 16; i++) r.set("VMBMEM", 16 * vf + i, 0);
    r.set("MBVFICR", 0, r.get("MBVFICR") & ~((1 << vf) | (1 << (vf + 16))));
    this.vfReset(vf);
  }

  /** PF function-level reset: the whole device resets (VF Enable is cleared by the PCI side). */
  pfFlr(): void {
    this.softReset();
  }

  // ---- data path ----

  /**
   * Restarts transmission on queue `q` (TDT, TXDCTL, TCTL or VFTE changed). A kick that arrives
   * while a queue is being processed (an interrupt handler writing TDT synchronously) is queued
   * and served afterwards, not re-entered.
   */
  txKick(q: number): void {
    this.kickPending |= 1 << q;
    if (this.kicking) return;
    this.kicking = true;
    try {
      for (let round = 0; round < 64 && this.kickPending !== 0; round++) {
        const pend = this.kickPending;
        this.kickPending = 0;
        for (let i = 0; i < IGB_SIZES.queues; i++) if ((pend >>> i) & 1) processTx(this, i);
      }
      this.kickPending = 0;
    } finally {
      this.kicking = false;
    }
  }

  /** A queue finished work: raise its cause (EICR per IVAR/VTIVAR in MSI-X mode, ICR for the PF). */
  queueInterrupt(q: number, tx: boolean): void {
    const r = this.regs;
    const pool = q % IGB_SIZES.pools;
    const byte = (q >= IGB_SIZES.pools ? 2 : 0) + (tx ? 1 : 0);
    if (this.isVfPool(pool)) {
      const ent = (r.get("VTIVAR", pool) >>> (8 * byte)) & 0xff;
      if (ent & B.IVAR_VALID && (ent & 3) < 3) this.irq.raiseEicr(1 << (this.vfShift(pool) + (ent & 3)));
      return;
    }
    if (r.get("GPIE") & B.GPIE_MSIX_MODE) {
      const ent = (r.get("IVAR0", q % IGB_SIZES.pools) >>> (8 * byte)) & 0xff;
      if (ent & B.IVAR_VALID) this.irq.raiseEicr(1 << (ent & 0x1f));
    }
    this.irq.raiseIcr(tx ? B.ICR_TXDW : B.ICR_RXDW);
  }

  /** Restarts all transmit queues. */
  txKickAll(): void {
    for (let q = 0; q < IGB_SIZES.queues; q++) this.txKick(q);
  }

  /** Receive buffers appeared on queue `q`: tell the backend it may deliver queued frames. */
  rxKick(_q: number): void {
    this.opts.backend?.rxReady?.();
  }

  /** Receive filters changed. */
  rxKickAll(): void {
    this.opts.backend?.rxReady?.();
  }

  /**
   * A frame from the uplink. Returns false if no queue took it (or any part of it). Offloads still
   * pending on it are done in software first: a TAP with a vnet header hands over GSO frames of up
   * to 64 KiB and partial checksums, and the 82576, which has no receive coalescing, fills its rings
   * with wire-size frames whose checksums are complete. A frame whose offload request cannot be
   * carried out is dropped and counted (`counters.uplinkOffloadErrors`).
   */
  receive(frame: Uint8Array, meta?: FrameMeta): boolean {
    if (meta === undefined || (meta.gso === undefined && meta.needsCsum === undefined)) return switchFromUplink(this, frame);
    const r = segmentTso(frame, meta);
    if (!r.ok) {
      this.counters.uplinkOffloadErrors++;
      this.trace(`igb: uplink frame dropped: its offload request cannot be done (${r.error})`);
      return false;
    }
    let taken = false;
    for (const f of r.frames) taken = switchFromUplink(this, f) || taken;
    return taken;
  }

  /** Adds to a statistics register (wrapping at 2^32). */
  bump(name: string, i: number, add: number): void {
    this.regs.set(name, i, (this.regs.get(name, i) + add) >>> 0);
  }

  /** Adds to a 64-bit statistics pair (low/high registers). */
  bump64(lo: string, hi: string, add: number): void {
    const l = this.regs.get(lo) + add;
    this.regs.set(lo, 0, l >>> 0);
    if (l > 0xffffffff) this.bump(hi, 0, Math.floor(l / 0x1_0000_0000));
  }

  // ---- snapshot ----

  /** Saves the whole device. In-flight transmit state is saved as is (it resumes at the same descriptor). */
  save(): IgbCoreState {
    return {
      version: 1,
      regs: this.regs.save(),
      phy: this.phy.save(),
      nvm: Array.from(this.nvm),
      irq: this.irq.save(),
      tx: this.tx.map((t) => t.save()),
      numVfs: this.vfs,
      ioAddr: this.ioAddr,
    };
  }

  /** Restores a saved device; rejects bad input with a typed error and leaves the device unchanged. */
  restore(s: IgbCoreState): void {
    if (s === null || typeof s !== "object" || s.version !== 1) throw new IgbStateError("igb state: bad header");
    if (!Array.isArray(s.nvm) || s.nvm.length !== this.nvm.length || !s.nvm.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff)) {
      throw new IgbStateError("igb state: bad NVM");
    }
    if (!Array.isArray(s.tx) || s.tx.length !== IGB_SIZES.queues) throw new IgbStateError("igb state: bad tx queues");
    if (!Number.isInteger(s.numVfs) || s.numVfs < 0 || s.numVfs > IGB_SIZES.pools) throw new IgbStateError("igb state: bad numVfs");
    const ioAddr = s.ioAddr ?? 0;
    if (!Number.isInteger(ioAddr) || ioAddr < 0 || ioAddr >= IGB_SIZES.pfBar0) throw new IgbStateError("igb state: bad ioAddr");
    const tx = s.tx.map((t) => TxQueueState.fromSaved(t));
    const regsBefore = this.regs.save();
    const phyBefore = this.phy.save();
    try {
      this.regs.restore(s.regs);
      this.phy.restore(s.phy);
      this.irq.restore(s.irq);
    } catch (e) {
      this.regs.restore(regsBefore);
      this.phy.restore(phyBefore);
      throw new IgbStateError(`igb state: ${(e as Error).message}`);
    }
    this.nvm.set(s.nvm);
    tx.forEach((t, q) => this.tx[q]?.copyFrom(t));
    this.vfs = s.numVfs;
    this.ioAddr = ioAddr & ~3;
  }
}
