/**
 * The 82576 device core: register file, NVM, PHY, interrupts, mailbox, reset, and the glue to the
 * data path (`tx.ts`, `rx.ts`, `switch.ts`). It knows nothing about PCI config space: the PCI
 * wiring (`pci.ts`) forwards BAR accesses here and tells it how many VFs are enabled.
 *
 * Lifecycle (see `lifecycle/device.ts`): a core can be built without a clock or uplink, restored
 * from a parsed state, then {@link IgbCore.attach}ed; {@link IgbCore.setActivity} and
 * {@link IgbCore.setVfActivity} hold the data path of the NIC or of one VF's pool.
 * @module
 */
import type { Clock, DmaSpace, TimerHandle } from "../../pci/interfaces.js";
import type { DeviceIo, StatefulDevice } from "../lifecycle/device.js";
import type { Activity } from "../../state/migration.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { segmentTso } from "../net/segment.js";
import { ByteSlab } from "../net/bytes.js";
import type { StateType } from "../../state/versioned.js";
import { toHex } from "../../state/parse.js";
import { IGB_CONTINUE_NS, IgbActivity, WorkMeter, bytesFromHex } from "./activity.js";
import { IgbIrq, vfEicrShift, type IgbIrqPort } from "./irq.js";
import { buildNvm } from "./nvm.js";
import { IgbPhy, PHY_ADDR } from "./phy.js";
import { RegFile, RegTableError } from "./regfile.js";
import { IGB_REG_NAMES, type IgbRegName } from "./regnames.js";
import { B, IGB_SIZES } from "./regs.js";
import { rxEnabled, rxWrite } from "./rx.js";
import { igbStateType, type IgbCoreState } from "./state.js";
import { pfMailboxWrite, vfFlr, vfMailboxWrite, vfReset } from "./mailbox.js";
import { igbRegisterTable } from "./table.js";
import { TxQueueState, processTx } from "./tx.js";
import { switchFromUplink, type SwitchCounters } from "./switch.js";
import { parseFrame, type KnownL4Csum } from "./offload.js";
import { hotSlots, type IgbHotSlots } from "./hot.js";

export type { IgbCoreState } from "./state.js";

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
  /** Device time (EITR moderation, continuation tasks). Given here, the core is attached at once; else see {@link IgbCore.attach}. */
  readonly clock?: Clock;
  /** The uplink (optional: without it, frames to the wire are counted and dropped). */
  readonly backend?: NetBackend;
  /** Most VFs that can be enabled (the SR-IOV TotalVFs; default 8). Saved states are checked against it. */
  readonly maxVfs?: number;
  /** Receives one line per dropped guest access or frame (optional). */
  readonly trace?: (msg: string) => void;
}

export { HOT_REGS, type HotReg, type IgbHotSlots } from "./hot.js";

/**
 * An Intel 82576-compatible NIC core.
 * @example
 * const core = new IgbCore({ mac, dma: () => mem, irq, clock });
 * core.mmioWrite(0x0, 4, 0x0400_0000); // CTRL.RST
 * // or, for a restore: build without I/O, load, then attach
 * const fresh = new IgbCore({ mac, dma: () => mem, irq });
 * fresh.restore(fresh.stateType.parse(saved));
 * fresh.attach({ clock, backend });
 */
export class IgbCore implements StatefulDevice<IgbCoreState> {
  /** The PF register file (BAR0). */
  readonly regs: RegFile<IgbCore, IgbRegName>;
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
  readonly hot: IgbHotSlots;
  /** The data path's activity and the frames held while it does not run. */
  readonly activity = new IgbActivity();
  /** The work meter; `work.counters` holds the units spent per write (see {@link IgbWorkCounters}). */
  readonly work = new WorkMeter();
  /** Where transmitted frames are copied to (the backend owns each one after `transmit`). */
  readonly slab = new ByteSlab();
  private rarGen = -1;
  private readonly rarIdx = new Uint8Array(IGB_SIZES.rar);
  private rarN = 0;
  /** Parses untrusted saved state against this instance's table and VF count. */
  readonly stateType: StateType<IgbCoreState>;
  private vfs = 0;
  private kicking = false;
  private kickPending = 0;
  /** Queues whose transmit work waits: for activity, a clock, or budget (a continuation). */
  private txLatched = 0;
  private continuation: TimerHandle | undefined;
  private clock: Clock | undefined;
  private uplink: NetBackend | undefined;
  /** A restore happened: on the next resume every pending unmasked cause is signalled again. */
  private restoredPending = false;

  constructor(readonly opts: IgbCoreOptions) {
    this.nvm = buildNvm(opts.mac);
    this.regs = new RegFile<IgbCore, IgbRegName>(this, igbRegisterTable(), IGB_SIZES.pfBar0, opts.trace);
    const names = this.regs.names;
    if (names.length !== IGB_REG_NAMES.length || names.some((n, i) => n !== IGB_REG_NAMES[i])) {
      throw new RegTableError("igb: the register table and IGB_REG_NAMES disagree");
    }
    this.hot = hotSlots(this.regs as RegFile<unknown, IgbRegName>);
    this.irq = new IgbIrq(this.regs as RegFile<unknown, IgbRegName>, opts.irq, () => this.vfs, (owner) => this.irqAllowed(owner));
    for (let q = 0; q < IGB_SIZES.queues; q++) this.tx.push(new TxQueueState());
    this.stateType = igbStateType({ regs: this.regs as RegFile<unknown, IgbRegName>, maxVfs: opts.maxVfs ?? IGB_SIZES.pools });
    this.softReset();
    if (opts.clock !== undefined) this.attach({ clock: opts.clock, ...(opts.backend !== undefined ? { backend: opts.backend } : {}) });
    else if (opts.backend !== undefined) this.setUplink(opts.backend);
  }

  /** The uplink, if one is attached. */
  get backend(): NetBackend | undefined {
    return this.uplink;
  }

  /**
   * Binds the device clock and the uplink. Moderation times and held messages are re-armed on the
   * clock; transmit work and interrupts that waited for it go ahead if the data path runs.
   */
  attach(io: DeviceIo): void {
    this.clock = io.clock;
    this.irq.attach(io.clock);
    if (io.backend !== undefined) this.setUplink(io.backend);
    this.resume();
  }

  private setUplink(be: NetBackend): void {
    this.uplink = be;
    // The 82576 drops what no queue can take (counted in MPC/RNBC) and never pushes back on its
    // uplink: a backend that holds refused frames (a TAP) would otherwise stall every pool behind
    // one frame for a pool without buffers, a disabled queue or no filter match.
    // Borrowed frames: the hold FIFOs keep copies, the rings get the bytes by DMA at once.
    be.setReceiver(
      (frame, meta) => {
        this.receive(frame, meta);
        return true;
      },
      { borrows: true },
    );
  }

  // ---- activity ----

  /**
   * The whole NIC's activity. "quiesced": registers answer, TDT/RDT writes are latched, no DMA
   * starts, no interrupt message goes out (causes still latch), frames from the uplink wait in a
   * bounded FIFO (`activity.counters.heldDrops` counts the overflow). "stopped": the same, and
   * moderation time stands still. Back to "running": held frames are delivered in order, then
   * latched transmit work runs, then owed interrupts are sent.
   */
  setActivity(a: Activity): void {
    if (this.activity.nic === a) return;
    this.activity.nic = a;
    if (a === "stopped") this.irq.freeze();
    else this.irq.thaw();
    if (a === "running") this.resume();
  }

  /**
   * One VF's pool's activity (the failover switch freezes one VF while the rest of the NIC runs):
   * as {@link setActivity}, for the VF's queues, its frames and its interrupt vectors only.
   */
  setVfActivity(vf: number, a: Activity): void {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) return;
    if (this.activity.pools[vf] === a) return;
    this.activity.pools[vf] = a;
    if (a === "running") this.resume();
  }

  /**
   * Signals VF `vf`'s pending unmasked causes again (after its state was installed by `applyVf`,
   * as the failover switch does): at once if its pool runs, else when it does.
   */
  resendVfInterrupts(vf: number): void {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) return;
    const bits = (7 << vfEicrShift(vf)) & this.regs.get("EICR") & this.regs.get("EIMS");
    this.irq.owe(bits);
    this.resume();
  }

  /**
   * VF `vf`'s transmit queues were installed from a saved state (`applyVf`): the descriptors
   * between their head and tail are latched, so they run when the pool next resumes, as work
   * latched here would, without waiting for the guest's next TDT write. The source of a failover
   * switch may have had such work latched (a TDT write while quiesced) or left to a continuation
   * (work budget) when its state was captured; that latch does not travel with the state.
   * Nothing runs here; a queue with head = tail has nothing to do.
   */
  latchVfTx(vf: number): void {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) return;
    this.txLatched |= (1 << vf) | (1 << (vf + IGB_SIZES.pools));
  }

  /** Whether the data path of pool `p` may run now (activity and an attached clock). */
  poolRuns(p: number): boolean {
    return this.clock !== undefined && this.activity.poolRuns(p);
  }

  private irqAllowed(owner: number): boolean {
    if (this.activity.nic !== "running") return false;
    return owner < 0 || this.activity.pools[owner] === "running";
  }

  /** Delivers what waited, in order: held frames, then transmit work, then owed interrupts. */
  private resume(): void {
    if (this.clock === undefined || this.activity.nic !== "running") return;
    this.work.begin();
    try {
      const act = this.activity;
      for (let p = 0; p < IGB_SIZES.pools; p++) {
        const fifo = act.poolFifo[p]!;
        if (fifo.length === 0 || !act.poolRuns(p)) continue;
        act.poolFifo[p] = [];
        for (const h of fifo) {
          act.counters.replayed++;
          // the queue may have been disabled meanwhile: then the frame is missed, as on arrival
          if (!rxEnabled(this, h.q)) this.bump("MPC", 0, 1);
          else rxWrite(this, h.q, h.frame, { info: parseFrame(h.frame, this.regs.get("VET") & 0xffff), rssHash: h.rssHash, rssType: h.rssType, loopback: h.loopback });
        }
      }
      this.drainNicFifo();
      let pend = this.txLatched;
      if (this.restoredPending) for (let q = 0; q < IGB_SIZES.queues; q++) pend |= 1 << q;
      this.txLatched = 0;
      for (let q = 0; q < IGB_SIZES.queues; q++) if ((pend >>> q) & 1) this.txKick(q);
      const all = this.restoredPending;
      this.restoredPending = false;
      this.irq.resume(all);
    } finally {
      this.work.end();
    }
    if (this.activity.nicFifo.length > 0) this.scheduleContinuation();
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
    for (let vf = 0; vf < this.vfs; vf++) m &= ~(7 << vfEicrShift(vf));
    return m >>> 0;
  }

  /**
   * The receive-address (RAL/RAH) entries whose Address Valid bit is set, in table order: their
   * indexes in `rarValid()[0 .. n)`, n returned. Rebuilt when the register file's
   * {@link RegFile.generation} moved (a guest write, a reset, a restore): the per-frame filters
   * then scan the few valid entries instead of all 24. Callers still read RAL/RAH themselves.
   */
  rarValid(): { readonly idx: Uint8Array; readonly n: number } {
    const g = this.regs.generation;
    if (g !== this.rarGen) {
      const s = this.regs.slots;
      const rah = this.hot.RAH;
      let n = 0;
      for (let i = 0; i < IGB_SIZES.rar; i++) if (((s[rah + i] ?? 0) & B.RAH_AV) !== 0) this.rarIdx[n++] = i;
      this.rarN = n;
      this.rarGen = g;
    }
    this.rarView.n = this.rarN;
    return this.rarView;
  }
  private readonly rarView = { idx: this.rarIdx, n: 0 };

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

  /** PF BAR0 write (its work is metered: see {@link work}). */
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.work.begin();
    try {
      this.regs.write(offset, size, value);
    } finally {
      this.work.end();
    }
  }

  /** A write through VF `vf`'s BAR0, already translated to PF offset `pfOffset` (metered like {@link mmioWrite}). */
  vfWrite(pfOffset: number, size: 1 | 2 | 4, value: number): void {
    this.mmioWrite(pfOffset, size, value);
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
    else if (offset === 4) this.mmioWrite(this.ioAddr, 4, value);
  }

  // ---- reset, status, NVM, PHY ----

  /** CTRL.RST (and PF FLR): everything but the NVM goes back to power-on state; VFs see RSTI. */
  softReset(): void {
    this.irq.reset();
    this.regs.resetAll();
    for (const t of this.tx) t.reset();
    this.activity.clear();
    this.txLatched = 0;
    this.kickPending = 0;
    this.continuation?.cancel();
    this.continuation = undefined;
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

  // ---- mailbox and VF resets (mailbox.ts) ----

  /** PF writes P2VMAILBOX(vf). Returns the value to store. */
  pfMailboxWrite(vf: number, w: number, old: number): number {
    return pfMailboxWrite(this, vf, w, old);
  }

  /** VF writes its mailbox register (V2PMAILBOX(vf)). Returns the value to store. */
  vfMailboxWrite(vf: number, w: number, old: number): number {
    return vfMailboxWrite(this, vf, w, old);
  }

  /** VF `vf` reset (its CTRL.RST or its FLR): its queues stop, its pool is disabled, the PF is told. */
  vfReset(vf: number): void {
    vfReset(this, vf);
  }

  /** Function-level reset of VF `vf`: see {@link vfFlr} in `mailbox.ts`. */
  vfFlr(vf: number): void {
    vfFlr(this, vf);
  }

  /**
   * PF function-level reset: the whole device resets, and VF Enable (which a PF FLR clears in the
   * SR-IOV capability) leaves the core with no VF, so no queue keeps a VF's DMA space.
   */
  pfFlr(): void {
    this.vfs = 0;
    this.softReset();
  }

  // ---- data path ----

  /**
   * Restarts transmission on queue `q` (TDT, TXDCTL, TCTL or VFTE changed). A kick that arrives
   * while a queue is being processed (an interrupt handler writing TDT synchronously) is queued
   * and served afterwards, not re-entered. While the queue's pool does not run the kick is
   * latched; when the write's work budget runs out, the rest continues in a task on the clock.
   */
  txKick(q: number): void {
    if (!(Number.isInteger(q) && q >= 0 && q < IGB_SIZES.queues)) return;
    if (!this.poolRuns(q % IGB_SIZES.pools)) {
      this.txLatched |= 1 << q;
      return;
    }
    this.kickPending |= 1 << q;
    if (this.kicking) return;
    this.kicking = true;
    this.work.begin();
    try {
      for (let round = 0; round < 64 && this.kickPending !== 0; round++) {
        const pend = this.kickPending;
        this.kickPending = 0;
        for (let i = 0; i < IGB_SIZES.queues; i++) {
          if (((pend >>> i) & 1) === 0) continue;
          if (!this.poolRuns(i % IGB_SIZES.pools)) this.txLatched |= 1 << i;
          else if (!this.work.left() || processTx(this, i)) this.txLatched |= 1 << i;
        }
        if (!this.work.left()) break;
      }
      this.txLatched |= this.kickPending;
      this.kickPending = 0;
    } finally {
      this.kicking = false;
      this.work.end();
    }
    let runnable = 0;
    for (let i = 0; i < IGB_SIZES.queues; i++) if ((this.txLatched >>> i) & 1 && this.poolRuns(i % IGB_SIZES.pools)) runnable |= 1 << i;
    if (runnable !== 0) this.scheduleContinuation();
  }

  /** Work was left for later: one task on the device clock carries on with it. */
  private scheduleContinuation(): void {
    if (this.continuation !== undefined || this.clock === undefined) return;
    this.work.counters.continuations++;
    this.continuation = this.clock.schedule(IGB_CONTINUE_NS, () => {
      this.continuation = undefined;
      if (this.activity.nic !== "running") return; // latched; resume() carries on
      const pend = this.txLatched;
      this.txLatched = 0;
      this.work.begin();
      try {
        this.drainNicFifo();
        for (let q = 0; q < IGB_SIZES.queues; q++) if ((pend >>> q) & 1) this.txKick(q);
      } finally {
        this.work.end();
      }
      if (this.activity.nicFifo.length > 0) this.scheduleContinuation();
    });
  }

  /** Frames from the uplink that waited (for activity or budget) go through the switch while budget lasts. */
  private drainNicFifo(): void {
    const act = this.activity;
    let i = 0;
    while (i < act.nicFifo.length && this.work.left()) {
      const f = act.nicFifo[i++]!;
      act.counters.replayed++;
      switchFromUplink(this, f);
    }
    if (i > 0) act.nicFifo = act.nicFifo.slice(i);
  }

  /** A queue finished work: raise its cause (EICR per IVAR/VTIVAR in MSI-X mode, ICR for the PF). */
  queueInterrupt(q: number, tx: boolean): void {
    const s = this.regs.slots;
    const h = this.hot;
    const pool = q % IGB_SIZES.pools;
    const byte = (q >= IGB_SIZES.pools ? 2 : 0) + (tx ? 1 : 0);
    if (this.isVfPool(pool)) {
      const ent = ((s[h.VTIVAR + pool] ?? 0) >>> (8 * byte)) & 0xff;
      if (ent & B.IVAR_VALID && (ent & 3) < 3) this.irq.raiseEicr(1 << (vfEicrShift(pool) + (ent & 3)));
      return;
    }
    if ((s[h.GPIE] ?? 0) & B.GPIE_MSIX_MODE) {
      const ent = ((s[h.IVAR0 + pool] ?? 0) >>> (8 * byte)) & 0xff;
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
    this.uplink?.rxReady?.();
  }

  /** Receive filters changed. */
  rxKickAll(): void {
    this.uplink?.rxReady?.();
  }

  /**
   * A frame from the uplink. Returns false if no queue took it (or any part of it). Offloads still
   * pending on it are done in software first: a TAP with a vnet header hands over GSO frames of up
   * to 64 KiB and partial checksums, and the 82576, which has no receive coalescing, fills its rings
   * with wire-size frames whose checksums are complete. A frame whose offload request cannot be
   * carried out is dropped and counted (`counters.uplinkOffloadErrors`). While the NIC does not
   * run, frames wait in its hold FIFO (true if held).
   */
  receive(frame: Uint8Array, meta?: FrameMeta): boolean {
    this.work.begin();
    try {
      if (meta === undefined) return this.receiveNow(frame);
      if (meta.gso === undefined && meta.needsCsum === undefined) return this.receiveNow(frame, meta.csumValid === true);
      const r = segmentTso(frame, meta);
      if (!r.ok) {
        this.counters.uplinkOffloadErrors++;
        this.trace(`igb: uplink frame dropped: its offload request cannot be done (${r.error})`);
        return false;
      }
      // TCP segments cut here, and a partial TCP/UDP checksum completed here, carry checksums
      // computed here: the receive write-back need not sum them again (one pass over each frame
      // fewer). UDP GSO leaves IP fragments, whose UDP checksum the 82576 does not check.
      // (a completion is checked against the switch's own parse of the frame)
      const known: KnownL4Csum = meta.gso !== undefined ? meta.gso.type !== "udp" : r.frames.length === 1 && meta.needsCsum !== undefined ? meta.needsCsum : false;
      let taken = false;
      for (const f of r.frames) taken = this.receiveNow(f, known) || taken;
      return taken;
    } finally {
      this.work.end();
    }
  }

  /** One wire frame into the switch, or into the NIC's hold FIFO while the NIC does not run. */
  private receiveNow(f: Uint8Array, known: KnownL4Csum = false): boolean {
    const act = this.activity;
    if (this.clock === undefined || act.nic !== "running") return act.holdNic(f);
    // A register write whose budget is spent (a backend delivering a flood from rxReady inside an
    // RDT write) and frames already waiting: this one waits behind them, for a task on the clock.
    if (!this.work.left() || act.nicFifo.length > 0) {
      const held = act.holdNic(f);
      this.scheduleContinuation();
      return held;
    }
    return switchFromUplink(this, f, known);
  }

  /**
   * A frame the switch chose for queue `q` of a pool that does not run: it waits in the pool's
   * hold FIFO. Returns false (counted) if the FIFO is full.
   */
  holdRx(q: number, frame: Uint8Array, rssHash: number, rssType: number, loopback: boolean): boolean {
    return this.activity.holdPool(q % IGB_SIZES.pools, { q, frame, rssHash, rssType, loopback });
  }

  /** Adds to a statistics register (wrapping at 2^32). */
  bump(name: IgbRegName, i: number, add: number): void {
    this.regs.set(name, i, (this.regs.get(name, i) + add) >>> 0);
  }

  /** Adds to a 64-bit statistics pair (low/high registers). */
  bump64(lo: IgbRegName, hi: IgbRegName, add: number): void {
    const l = this.regs.get(lo) + add;
    this.regs.set(lo, 0, l >>> 0);
    if (l > 0xffffffff) this.bump(hi, 0, Math.floor(l / 0x1_0000_0000));
  }

  /** {@link bump} for the per-frame paths: the register element at slot `k` (`hot.NAME + i`). */
  bumpSlot(k: number, add: number): void {
    const s = this.regs.slots;
    s[k] = ((s[k] ?? 0) + add) >>> 0;
  }

  /** {@link bump64} for the per-frame paths: the pair at slots `lo` and `hi`. */
  bump64Slot(lo: number, hi: number, add: number): void {
    const s = this.regs.slots;
    const l = (s[lo] ?? 0) + add;
    s[lo] = l >>> 0;
    if (l > 0xffffffff) s[hi] = ((s[hi] ?? 0) + Math.floor(l / 0x1_0000_0000)) >>> 0;
  }

  // ---- snapshot ----

  /**
   * Saves the whole device. In-flight transmit state is saved as is (it resumes at the same
   * descriptor); moderation times are relative to the device clock; held frames are included.
   */
  save(): IgbCoreState {
    const act = this.activity;
    return {
      version: 2,
      regs: this.regs.saveNamed(),
      phy: this.phy.save(),
      nvm: Array.from(this.nvm),
      irq: this.irq.save(),
      tx: this.tx.map((t) => t.save()),
      numVfs: this.vfs,
      ioAddr: this.ioAddr,
      held: {
        nic: act.nicFifo.map((f) => toHex(f)),
        pools: act.poolFifo.map((fifo) => fifo.map((h) => ({ q: h.q, frame: toHex(h.frame), rssHash: h.rssHash, rssType: h.rssType, loopback: h.loopback }))),
      },
    };
  }

  /**
   * Applies a state from {@link stateType}'s parser. Cannot fail. Pending timers and latched work
   * of the old state are dropped; moderation is re-armed relative to the clock (now, or at
   * attach). When the data path next runs, latched transmit work goes ahead and every pending
   * unmasked interrupt cause is signalled again.
   */
  restore(s: IgbCoreState): void {
    this.continuation?.cancel();
    this.continuation = undefined;
    this.kickPending = 0;
    this.txLatched = 0;
    this.regs.applyNamed(s.regs);
    this.phy.restore(s.phy);
    for (let i = 0; i < this.nvm.length; i++) this.nvm[i] = (s.nvm[i] ?? 0) & 0xffff;
    this.irq.restore(s.irq);
    this.tx.forEach((t, q) => {
      const saved = s.tx[q];
      if (saved !== undefined) t.load(saved);
      else t.reset();
    });
    this.vfs = Math.max(0, Math.min(IGB_SIZES.pools, Math.floor(s.numVfs) || 0));
    this.ioAddr = (s.ioAddr >>> 0) & 0x1fffc;
    const act = this.activity;
    act.nicFifo = s.held.nic.map((h) => bytesFromHex(h));
    act.poolFifo = Array.from({ length: IGB_SIZES.pools }, (_, p) =>
      (s.held.pools[p] ?? []).map((h) => ({ q: h.q, frame: bytesFromHex(h.frame), rssHash: h.rssHash, rssType: h.rssType, loopback: h.loopback })),
    );
    this.restoredPending = true;
    this.resume();
  }
}
