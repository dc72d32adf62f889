/**
 * virtio-net (virtio 1.2 section 5.1).
 *
 * | area | what the device does |
 * | --- | --- |
 * | queues | `maxPairs` RX/TX pairs then the control queue: rx0, tx0, rx1, tx1, ..., ctrl (with MQ not negotiated the control queue is index 2) |
 * | TX | a 12-byte `virtio_net_hdr` then the frame; NEEDS_CSUM and GSO (TCPv4/TCPv6, ECN) become {@link FrameMeta} for backends that take offloads, or are completed in software (checksum, segmentation) for those that do not |
 * | RX | filtered ({@link RxFilter}), steered to a queue pair by a flow hash, written with a header into one chain or, with MRG_RXBUF, across several (`num_buffers`); DATA_VALID when the checksum is known good, NEEDS_CSUM / GSO passed up when the guest negotiated GUEST_CSUM / GUEST_TSO*, else completed or segmented in software |
 * | control queue | CTRL_RX (6 modes), CTRL_MAC (table set, address set), CTRL_VLAN, ANNOUNCE ack, MQ pairs set, guest offloads set; a malformed command gets VIRTIO_NET_ERR and is counted |
 * | config | MAC, STATUS (link up, ANNOUNCE), max pairs, MTU, speed and duplex |
 *
 * The offer is every implemented feature minus what the VMM withholds (see `features.ts`); it may
 * be changed while the driver has the device reset ({@link VirtioNet.setOffer}), so one guest can
 * try several variants by reloading its driver. Nothing throws out of a notification (a guest
 * error puts the device in NEEDS_RESET).
 *
 * Work per notification is bounded: a run of the TX or control queue stops popping chains once it
 * has read `notifyBudget` descriptors (default 4 x the queue size; a chain itself costs at most
 * the queue size plus one indirect table), and the rest continues in a later run on the device
 * clock ({@link VirtioNet.work} counts units and the largest run).
 *
 * I/O is attached, not captured: a device can be created without a backend or clock, restored
 * from a saved state, then attached ({@link VirtioNet.attach}). Activity
 * ({@link VirtioNet.setActivity}): while not running, notifications are latched (no descriptor is
 * read) and frames from the backend wait in a bounded FIFO; back to running, the FIFO is
 * delivered in order, then the latched notifications run.
 * @module
 */
import type { AccessSize } from "../../pci/function.js";
import type { Clock, TimerHandle } from "../../pci/interfaces.js";
import type { DeviceIo } from "../lifecycle/device.js";
import type { Activity } from "../../state/migration.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { hexBytes, toHex } from "../../state/parse.js";
import { ACK_ERR, ACK_OK, MAX_CTRL_CMD, runCommand, type CtrlHost } from "./ctrl.js";
import { placeFrame, receiveOffloaded } from "./rx-place.js";
import { HDR_LEN, MAX_TX_FRAME, fillRxHeader, flowPair, parseTxHeader, sendFrame } from "./net-hdr.js";
import { readChain, writeChain, type DescriptorChain } from "../virtio/split-queue.js";
import type { VirtioContext, VirtioDevice } from "../virtio/pci-transport.js";
import type { QueueDirection, Virtqueue } from "../virtio/virtqueue.js";
import { VIRTIO_NET_F, featureRuleBroken, has, offeredFeatures, type OfferOptions } from "./features.js";
import { RxFilter, macHex } from "./rx-filter.js";
import { MAX_FIFO_FRAME, emptyCounters, type VirtioNetCounters, type VirtioNetSavedFrame, type VirtioNetState } from "./state.js";

import type { VirtioNetOptions, VirtioNetWork } from "./options.js";

export { VIRTIO_NET_F } from "./features.js";
export type { VirtioNetOptions, VirtioNetWork } from "./options.js";
export type { VirtioNetSavedFrame, VirtioNetCounters, VirtioNetState } from "./state.js";

/** Most queue pairs a device may be built with. */
export const MAX_QUEUE_PAIRS = 16;

const STATUS_LINK_UP = 1;
const STATUS_ANNOUNCE = 2;
/** The clock of a device attached without one: nothing is scheduled on it. */
const NO_CLOCK: Clock = Object.freeze({ now: () => 0, schedule: () => ({ cancel: () => undefined }) });
/** Delay of a run that continues work a budget cut short. */
const CONTINUE_NS = 10_000;

const fromSaved = (f: VirtioNetSavedFrame): { frame: Uint8Array; meta: FrameMeta | undefined } => ({
  frame: hexBytes(f.frame, "frame", MAX_FIFO_FRAME, false),
  meta: f.meta === undefined ? undefined : structuredClone(f.meta),
});

/** The virtio-net device. */
export class VirtioNet implements VirtioDevice {
  readonly deviceId = 1;
  readonly queueSizes: number[];
  readonly configSize = 24;
  readonly counters: VirtioNetCounters = emptyCounters();
  /** The receive filter (rx modes, MAC and VLAN tables). */
  readonly filter = new RxFilter();
  readonly maxPairs: number;
  private readonly config = new Uint8Array(24);
  /** The current MAC: the config space's first six bytes (ADDR_SET rewrites them). */
  private readonly mac = this.config.subarray(0, 6);
  private offer: OfferOptions & { withhold: number[] };
  private offered: bigint;
  private ctx: VirtioContext | undefined;
  private negotiated = 0n;
  private guestOffloadsOff = 0n;
  /**
   * The low 32 bits of `negotiated`, and of what the guest takes (negotiated minus the offloads it
   * switched off), as plain numbers: the receive path tests several bits per frame, and a BigInt
   * test costs about 40 ns. Kept in step by {@link setFeatures}; every bit tested is below 32.
   */
  private low = 0;
  private takes = 0;
  /** Queue pairs in use (VQ_PAIRS_SET). */
  pairs = 1;
  linkUp = true;
  private announcing = false;
  private backend: NetBackend | undefined;
  private clock: Clock | undefined;
  private activityNow: Activity = "running";
  /** I/O was attached: the data path runs only then (before, notifications latch). */
  private attached = false;
  /** Queues with a latched notification or deferred work, in arrival order. */
  private pending = new Set<number>();
  private continueTimer: TimerHandle | undefined;
  /** Frames from the backend waiting for the data path, oldest first. */
  private fifo: { frame: Uint8Array; meta: FrameMeta | undefined }[] = [];
  /** Frames the FIFO holds. */
  readonly fifoFrames: number;
  /** Work accounting of the notification runs. */
  readonly work: VirtioNetWork;

  /**
   * Creates the device; with `backend` or `clock` in the options it is attached at once (the
   * shorthand for `new VirtioNet(opts)` then `attach({ clock, backend })`).
   */
  constructor(private readonly opts: VirtioNetOptions) {
    const p = opts.maxPairs ?? 1;
    if (!Number.isInteger(p) || p < 1 || p > MAX_QUEUE_PAIRS) throw new RangeError(`maxPairs ${p} must be 1-${MAX_QUEUE_PAIRS}`);
    this.maxPairs = p;
    this.offer = { mtu: opts.mtu, standby: opts.standby, packed: opts.packed, withhold: [...(opts.withhold ?? [])] };
    this.offered = offeredFeatures(this.offer);
    const qs = opts.queueSize ?? 256;
    this.queueSizes = Array.from({ length: 2 * p + 1 }, () => qs);
    this.mac.set(opts.mac.subarray(0, 6));
    this.writeConfig16(6, STATUS_LINK_UP);
    this.writeConfig16(8, p);
    this.writeConfig16(10, opts.mtu ?? 1500);
    const speed = opts.speedMbps ?? 10_000;
    new DataView(this.config.buffer).setUint32(12, speed >>> 0, true);
    this.config[16] = 1; // full duplex
    this.fifoFrames = Math.max(1, Math.floor(opts.rxFifoFrames ?? 256));
    this.work = { budget: Math.max(1, Math.floor(opts.notifyBudget ?? 4 * qs)), runs: 0, lastUnits: 0, maxUnits: 0, deferrals: 0 };
    if (opts.backend !== undefined || opts.clock !== undefined) {
      this.attach({ clock: opts.clock ?? NO_CLOCK, ...(opts.backend === undefined ? {} : { backend: opts.backend }) });
    }
  }

  /**
   * Binds the device's I/O: the clock (continued work) and the backend (frames in and out; the
   * receive path is installed on it, and taken off a backend attached before). A live, running
   * device then picks up work left pending (for example by a restore) and asks for frames.
   */
  attach(io: DeviceIo): void {
    if (this.backend !== undefined && this.backend !== io.backend) this.backend.setReceiver(undefined);
    this.backend = io.backend;
    this.clock = io.clock === NO_CLOCK ? undefined : io.clock;
    this.continueTimer?.cancel();
    this.continueTimer = undefined;
    this.attached = true;
    // Borrowed frames: the FIFO keeps copies, everything else is placed in guest memory at once.
    this.backend?.setReceiver((frame, meta) => this.receive(frame, meta), { borrows: true });
    if (this.ctx !== undefined && this.canRun) this.resume();
  }

  /** The data path runs: attached and running. */
  private get canRun(): boolean {
    return this.attached && this.activityNow === "running";
  }

  /** What the data path may do now. */
  get activity(): Activity {
    return this.activityNow;
  }

  /**
   * Sets the data path's activity. "quiesced" and "stopped": notifications are latched and no
   * descriptor is read; frames from the backend wait in the FIFO (bounded; overflow counted in
   * `counters.rxFifoOverflow` and refused). Back to "running": the FIFO is delivered in order,
   * then the latched notifications run (interrupts are the transport's).
   */
  setActivity(a: Activity): void {
    const was = this.activityNow;
    this.activityNow = a;
    if (a !== "running") {
      this.continueTimer?.cancel();
      this.continueTimer = undefined;
      return;
    }
    if (was !== "running" && this.ctx !== undefined && this.canRun) this.resume();
  }

  /** Delivers the FIFO, runs pending queues within one budget, and asks the backend for frames. */
  private resume(): void {
    this.guarded(() => this.runPending());
    this.backend?.rxReady?.();
  }

  /** The features offered now. */
  get features(): bigint {
    return this.offered;
  }

  /** The features the driver negotiated (0 while reset). */
  get negotiatedFeatures(): bigint {
    return this.negotiated;
  }

  /**
   * Changes the offer. Only while the driver has the device reset (no DRIVER_OK): a driver sees the
   * new offer when it next probes. Fields left out keep their current values (pass `withhold: []`
   * to offer every feature again). Returns false (and changes nothing) while the device is live.
   */
  setOffer(o: { withhold?: number[]; mtu?: number; standby?: boolean; packed?: boolean }): boolean {
    if (this.ctx !== undefined) return false;
    this.offer = { mtu: o.mtu ?? this.offer.mtu, standby: o.standby ?? this.offer.standby, packed: o.packed ?? this.offer.packed, withhold: [...(o.withhold ?? this.offer.withhold)] };
    this.offered = offeredFeatures(this.offer);
    if (this.offer.mtu !== undefined) this.writeConfig16(10, this.offer.mtu);
    return true;
  }

  private writeConfig16(off: number, v: number): void {
    this.config[off] = v & 0xff;
    this.config[off + 1] = (v >>> 8) & 0xff;
  }

  configRead(off: number, size: AccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (this.config[off + i] ?? 0);
    return v >>> 0;
  }

  configWrite(): void {
    // Read-only for modern drivers: the MAC changes through CTRL_MAC ADDR_SET.
  }

  private updateStatus(): void {
    this.writeConfig16(6, (this.linkUp ? STATUS_LINK_UP : 0) | (this.announcing ? STATUS_ANNOUNCE : 0));
  }

  /** Sets the link state and raises a configuration change interrupt. */
  setLink(up: boolean): void {
    this.linkUp = up;
    this.updateStatus();
    this.ctx?.signalConfig();
  }

  /**
   * Asks the guest to announce itself (gratuitous ARP / unsolicited NA), as after a live migration:
   * sets STATUS.ANNOUNCE and raises a configuration interrupt. Returns false if the driver did not
   * negotiate GUEST_ANNOUNCE.
   */
  announce(): boolean {
    if (this.ctx === undefined || !has(this.negotiated, VIRTIO_NET_F.GUEST_ANNOUNCE)) return false;
    this.announcing = true;
    this.updateStatus();
    this.ctx.signalConfig();
    return true;
  }

  /** STATUS.ANNOUNCE is set (not yet acknowledged by the driver). */
  get announcePending(): boolean {
    return this.announcing;
  }

  /** The device's current MAC (the configured one, or what ADDR_SET set). */
  get currentMac(): Uint8Array {
    return this.mac.slice();
  }

  activate(ctx: VirtioContext, restored = false): void {
    this.ctx = ctx;
    this.setFeatures(ctx.features, this.guestOffloadsOff);
    if (!restored && this.canRun) this.backend?.rxReady?.();
    try {
      this.onActivate?.(ctx.features, restored);
    } catch {
      /* the VMM's listener: its failure is not the guest's */
    }
  }

  /**
   * Called when the driver sets DRIVER_OK (or a restore brings the device back live), with the
   * negotiated features: the standby failover platform plugs the VF once the guest took STANDBY.
   */
  onActivate: ((features: bigint, restored: boolean) => void) | undefined;

  deactivate(): void {
    this.ctx = undefined;
    this.setFeatures(0n, this.guestOffloadsOff);
  }

  /** The spec's feature dependencies (virtio 1.2 5.1.3.1) hold in `f`: a reason if not. */
  checkFeatures(f: bigint): string | undefined {
    return featureRuleBroken(f);
  }

  reset(): void {
    this.ctx = undefined;
    this.pending.clear();
    this.continueTimer?.cancel();
    this.continueTimer = undefined;
    this.fifo = [];
    this.setFeatures(0n, 0n);
    this.pairs = 1;
    this.announcing = false;
    this.filter.reset();
    this.mac.set(this.opts.mac.subarray(0, 6));
    this.updateStatus();
  }

  /** The control queue's index under `features` (-1 without CTRL_VQ): after the pairs with MQ, else 2. */
  private ctrlIndexFor(features: bigint): number {
    if (!has(features, VIRTIO_NET_F.CTRL_VQ)) return -1;
    return has(features, VIRTIO_NET_F.MQ) ? 2 * this.maxPairs : 2;
  }

  /**
   * What queue `i` may hold: RX queues (even) device-writable buffers only, TX queues (odd)
   * readable ones, the control queue both. Where the control queue is depends on whether MQ is
   * negotiated, so the transport asks again with the driver's features at FEATURES_OK.
   */
  queueDirection(i: number, driverFeatures = 0n): QueueDirection {
    if (i === this.ctrlIndexFor(driverFeatures)) return "any";
    if (i >= 2 * this.maxPairs) return "any";
    return i % 2 === 0 ? "writable" : "readable";
  }

  /** The driver kicked queue `i`: latched while not running, else run within one budget. */
  queueNotify(i: number): void {
    if (this.ctx === undefined || i < 0 || i >= this.queueSizes.length) return;
    this.pending.delete(i);
    this.pending.add(i);
    if (!this.canRun) return;
    this.guarded(() => this.runPending());
  }

  /** Runs `f`; a queue error puts the device in NEEDS_RESET (nothing throws to the caller). */
  private guarded(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.ctx?.fail(e instanceof Error ? e.message : String(e));
    }
  }

  /** Descriptors read so far on every queue (work units). */
  private visitedNow(ctx: VirtioContext): number {
    let n = 0;
    for (const q of ctx.queues) n += q.visited;
    return n;
  }

  /**
   * One run: the FIFO in order, then the pending queues in order, sharing one budget of
   * descriptors; what is left continues on the clock.
   */
  private runPending(): void {
    const ctx = this.ctx;
    if (ctx === undefined || ctx.failed() || !this.canRun || (this.pending.size === 0 && this.fifo.length === 0)) return;
    const start = this.visitedNow(ctx);
    const left = (): number => this.work.budget - (this.visitedNow(ctx) - start);
    let cut = false;
    try {
      cut = this.flushFifo(left);
      for (const qi of [...this.pending]) {
        if (cut || left() <= 0) {
          cut = true;
          break;
        }
        this.pending.delete(qi);
        if (!this.runQueue(qi, left)) {
          this.pending = new Set([qi, ...this.pending]);
          cut = true;
        }
      }
    } finally {
      const units = this.visitedNow(ctx) - start;
      const w = this.work;
      w.runs++;
      w.lastUnits = units;
      if (units > w.maxUnits) w.maxUnits = units;
    }
    if (cut) {
      this.work.deferrals++;
      this.scheduleContinue();
    }
  }

  /**
   * Continues cut-short work later: on the device clock, or, attached without one, in a
   * microtask (after the current guest access returns), so that a guest waiting for used
   * buffers never waits for a notification that will not come.
   */
  private scheduleContinue(): void {
    if (this.continueTimer !== undefined || !this.canRun) return;
    const run = (): void => {
      this.continueTimer = undefined;
      if (this.canRun && this.ctx !== undefined) this.resume();
    };
    if (this.clock !== undefined) {
      this.continueTimer = this.clock.schedule(CONTINUE_NS, run);
      return;
    }
    let live = true;
    this.continueTimer = { cancel: () => void (live = false) };
    queueMicrotask(() => {
      if (live) run();
    });
  }

  /** One queue's work within `left()` descriptors; false when the budget cut it short. */
  private runQueue(i: number, left: () => number): boolean {
    if (i === this.ctrlIndexFor(this.negotiated)) return this.processCtrl(left());
    if (i < 2 * this.maxPairs && (i & 1) === 1) return this.processTx(i, left());
    if (i < 2 * this.maxPairs) {
      // New receive buffers: waiting frames first, then the backend's.
      if (this.flushFifo(left)) return false;
      this.backend?.rxReady?.();
    }
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // TX

  /**
   * Pops chains from queue `qi` until none is left, at most one queue's worth, or `budget`
   * descriptors were read; hands each to `use` (which returns false to stop) and signals the
   * queue if any were used. Returns false when the budget stopped it with chains left.
   */
  private drain(qi: number, budget: number, use: (ctx: VirtioContext, q: Virtqueue, chain: DescriptorChain) => boolean): boolean {
    const ctx = this.ctx;
    if (ctx === undefined) return true;
    const q = ctx.queues[qi];
    if (q === undefined || !q.ready) return true;
    const start = q.visited;
    let done = 0;
    let cut = false;
    try {
      for (let n = 0; n < q.size; n++) {
        if (q.visited - start >= budget) {
          cut = q.pending(ctx.mem) > 0;
          break;
        }
        const chain = q.popChain(ctx.mem);
        if (chain === undefined) break;
        done++;
        if (!use(ctx, q, chain)) break;
        if (n + 1 === q.size) cut = q.pending(ctx.mem) > 0;
      }
    } finally {
      if (done > 0) ctx.signalQueue(qi);
    }
    return !cut;
  }

  private processTx(qi: number, budget: number): boolean {
    return this.drain(qi, budget, (ctx, q, chain) => {
      this.transmit(ctx, chain);
      q.addUsed(ctx.mem, chain.head, 0);
      return true;
    });
  }

  private transmit(ctx: VirtioContext, chain: DescriptorChain): void {
    if (chain.readableLen < HDR_LEN || chain.readableLen > MAX_TX_FRAME) {
      this.counters.txErrors++;
      return;
    }
    // One copy out of guest memory, into a fresh buffer, or into the reused one when the backend is
    // done with a frame once transmit returns; the backend gets a view past the header.
    const bytes = readChain(ctx.mem, chain, MAX_TX_FRAME, this.backend?.copiesOnTransmit === true ? (this.txScratch ??= new Uint8Array(MAX_TX_FRAME)) : undefined);
    if (bytes === undefined) {
      this.counters.txErrors++;
      return;
    }
    const frame = bytes.subarray(HDR_LEN);
    const meta = parseTxHeader(bytes, frame.length, this.negotiated);
    if (meta === "bad") {
      this.counters.txErrors++;
      return;
    }
    const backend = this.backend;
    if (backend === undefined) {
      this.counters.txErrors++;
      return;
    }
    sendFrame(backend, this.counters, frame, meta);
  }

  // ------------------------------------------------------------------------------------------
  // RX

  private setFeatures(negotiated: bigint, guestOffloadsOff: bigint): void {
    this.negotiated = negotiated;
    this.guestOffloadsOff = guestOffloadsOff;
    this.low = Number(negotiated & 0xffff_ffffn);
    this.takes = Number(negotiated & ~guestOffloadsOff & 0xffff_ffffn);
  }

  /** Whether the guest negotiated receive offload `bit` (below 32) and has not switched it off. */
  private guestTakes(bit: number): boolean {
    return ((this.takes >>> bit) & 1) === 1;
  }

  /**
   * A frame for the guest. Returns false when it could not be delivered now. While not running
   * (or while earlier frames still wait) it joins the FIFO, in order; a full FIFO refuses it.
   */
  receive(frame: Uint8Array, meta?: FrameMeta): boolean {
    if (this.ctx === undefined || !this.linkUp) return false;
    if (!this.canRun || this.fifo.length > 0) {
      if (this.fifo.length >= this.fifoFrames || frame.length < 14 || frame.length > MAX_FIFO_FRAME) {
        this.counters.rxFifoOverflow++;
        return false;
      }
      this.fifo.push({ frame: frame.slice(), meta });
      if (this.canRun) this.guarded(() => this.runPending());
      return true;
    }
    return this.receiveNow(frame, meta);
  }

  /**
   * Delivers waiting frames in order while the data path runs, the guest has buffers and `left()`
   * descriptors remain; true when the budget stopped it with frames left.
   */
  private flushFifo(left: () => number): boolean {
    while (this.fifo.length > 0 && this.canRun && this.ctx !== undefined && !this.ctx.failed()) {
      if (left() <= 0) return true;
      const f = this.fifo[0]!;
      if (!this.receiveNow(f.frame, f.meta)) return false;
      this.fifo.shift();
    }
    return false;
  }

  private receiveNow(frame: Uint8Array, meta?: FrameMeta): boolean {
    const ctx = this.ctx;
    if (ctx === undefined || !this.linkUp) return false;
    if (!this.filter.accepts(frame, this.mac, ((this.low >>> VIRTIO_NET_F.CTRL_VLAN) & 1) === 1)) {
      this.counters.rxFiltered++;
      return true;
    }
    return receiveOffloaded(frame, meta, (bit) => this.guestTakes(bit), (f, m) => this.deliver(ctx, f, m), this.counters);
  }

  /** The virtio_net_hdr of the frame being delivered. */
  private readonly rxHdr = new Uint8Array(HDR_LEN);
  /** Reused for transmitted frames when the backend copies them (`copiesOnTransmit`). */
  private txScratch: Uint8Array | undefined;

  private deliver(ctx: VirtioContext, frame: Uint8Array, meta: FrameMeta | undefined): boolean {
    const qi = 2 * flowPair(frame, this.pairs);
    const q = ctx.queues[qi];
    if (q === undefined || !q.ready) return false;
    // The header is built in a scratch array and written in front of the frame: no joined copy.
    const data = this.rxHdr;
    fillRxHeader(data, meta, this.guestTakes(VIRTIO_NET_F.GUEST_CSUM));
    const mrg = ((this.low >>> VIRTIO_NET_F.MRG_RXBUF) & 1) === 1;
    return placeFrame(ctx, qi, data, frame, mrg, this.work.budget, this.counters);
  }

  // ------------------------------------------------------------------------------------------
  // Control queue

  /** What the control commands may change. */
  private readonly ctrlHost: CtrlHost = {
    negotiated: () => this.negotiated,
    filter: this.filter,
    maxPairs: () => this.maxPairs,
    setMac: (d) => this.mac.set(d),
    ackAnnounce: () => {
      this.announcing = false;
      this.updateStatus();
    },
    setPairs: (n) => {
      this.pairs = n;
      this.backend?.rxReady?.();
    },
    setGuestOffloadsOff: (off) => this.setFeatures(this.negotiated, off),
  };

  private processCtrl(budget: number): boolean {
    return this.drain(this.ctrlIndexFor(this.negotiated), budget, (ctx, q, chain) => {
      this.counters.ctrlCommands++;
      if (chain.writableLen < 1 || chain.readableLen < 2 || chain.readableLen > MAX_CTRL_CMD) {
        this.counters.ctrlErrors++;
        q.addUsed(ctx.mem, chain.head, 0);
        return true;
      }
      const cmd = readChain(ctx.mem, chain, MAX_CTRL_CMD);
      const ack = cmd === undefined ? ACK_ERR : runCommand(this.ctrlHost, cmd[0]!, cmd[1]!, cmd.subarray(2));
      if (ack !== ACK_OK) this.counters.ctrlErrors++;
      if (writeChain(ctx.mem, chain, Uint8Array.of(ack)) < 0) {
        ctx.fail("control ack buffer outside guest memory");
        return false;
      }
      q.addUsed(ctx.mem, chain.head, 1);
      return true;
    });
  }

  // ------------------------------------------------------------------------------------------
  // State

  /** The device's state (the transport saves its own; see `VirtioNetPci` for both together). */
  save(): VirtioNetState {
    return {
      linkUp: this.linkUp,
      counters: { ...this.counters },
      mac: macHex(this.mac),
      offer: { ...(this.offer.mtu !== undefined ? { mtu: this.offer.mtu } : {}), standby: this.offer.standby === true, packed: this.offer.packed === true, withhold: [...this.offer.withhold] },
      filter: this.filter.save(),
      pairs: this.pairs,
      announce: this.announcing,
      guestOffloadsOff: this.guestOffloadsOff.toString(16),
      pendingQueues: [...this.pending],
      rxFifo: this.savedFrames(this.fifo),
    };
  }

  /** The MAC the device was created with (12 hex digits). */
  get configuredMac(): string {
    return macHex(this.opts.mac);
  }

  private savedFrames(list: readonly { frame: Uint8Array; meta: FrameMeta | undefined }[]): VirtioNetSavedFrame[] {
    return list.map((f) => (f.meta === undefined ? { frame: toHex(f.frame) } : { frame: toHex(f.frame), meta: structuredClone(f.meta) }));
  }

  /** Frames waiting for the guest (while the device does not run), oldest first. */
  get heldFrames(): number {
    return this.fifo.length;
  }

  /** The waiting frames from position `from` on, as a state carries them (for a migration's late frames). */
  heldFrom(from: number): VirtioNetSavedFrame[] {
    return this.savedFrames(this.fifo.slice(Math.max(0, from)));
  }

  /**
   * Puts parsed frames (`parseSavedFrames`) among the waiting ones at position `at`, ahead of what
   * arrived after it; what does not fit in the FIFO is counted in `rxFifoOverflow`. Never throws.
   */
  insertHeld(at: number, frames: readonly VirtioNetSavedFrame[]): void {
    const all = [...this.fifo.slice(0, at), ...frames.map(fromSaved), ...this.fifo.slice(at)];
    this.fifo = all.slice(0, this.fifoFrames);
    this.counters.rxFifoOverflow += all.length - this.fifo.length;
    if (this.fifo.length > 0) this.scheduleContinue();
  }

  /**
   * Applies a parsed state (see `parseNetState`, or `VirtioNetPci.stateType`). Never throws. The
   * negotiated features come from the transport's restore, before or after this one.
   */
  restore(s: VirtioNetState): void {
    this.filter.restore(s.filter);
    this.linkUp = s.linkUp;
    this.announcing = s.announce;
    for (let i = 0; i < 6; i++) this.mac[i] = parseInt(s.mac.slice(2 * i, 2 * i + 2), 16);
    this.pairs = s.pairs;
    this.setFeatures(this.negotiated, BigInt(`0x${s.guestOffloadsOff}`));
    this.offer = { mtu: s.offer.mtu, standby: s.offer.standby === true, packed: s.offer.packed === true, withhold: [...s.offer.withhold] };
    this.offered = offeredFeatures(this.offer);
    if (s.offer.mtu !== undefined) this.writeConfig16(10, s.offer.mtu);
    this.updateStatus();
    Object.assign(this.counters, s.counters);
    this.pending = new Set(s.pendingQueues);
    this.continueTimer?.cancel();
    this.continueTimer = undefined;
    this.fifo = s.rxFifo.map(fromSaved);
    // Work the state carries runs once the device is running on a clock (or at the next notification).
    if (this.pending.size > 0 || this.fifo.length > 0) this.scheduleContinue();
  }
}
