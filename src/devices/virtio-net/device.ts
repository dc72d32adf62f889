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
 * try several variants by reloading its driver. Work per notification is bounded by the queue
 * size; nothing throws out of a notification (a guest error puts the device in NEEDS_RESET).
 * @module
 */
import type { AccessSize } from "../../pci/function.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { segmentTso } from "../net/segment.js";
import { completeChecksum } from "../net/checksum.js";
import { readChain, writeChain, type DescriptorChain } from "../virtio/split-queue.js";
import { writeChainParts } from "../virtio/virtqueue.js";
import type { VirtioContext, VirtioDevice } from "../virtio/pci-transport.js";
import type { QueueDirection, Virtqueue } from "../virtio/virtqueue.js";
import { VIRTIO_NET_F, has, offeredFeatures, type OfferOptions } from "./features.js";
import { RxFilter, macHex, type RxFilterState } from "./rx-filter.js";
import { le16, le32 } from "../net/bytes.js";

export { VIRTIO_NET_F } from "./features.js";

const HDR_LEN = 12;
/** The largest frame accepted from the guest (64 KiB + header), bounding work per chain. */
const MAX_TX_FRAME = 65_550;
/** The largest control command accepted (two full MAC tables fit many times over). */
const MAX_CTRL_CMD = 16_384;
/** Most queue pairs a device may be built with. */
export const MAX_QUEUE_PAIRS = 16;

const HDR_F = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
const GSO = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, ECN: 0x80 } as const;
const CTRL = { RX: 0, MAC: 1, VLAN: 2, ANNOUNCE: 3, MQ: 4, GUEST_OFFLOADS: 5 } as const;
const ACK_OK = 0;
const ACK_ERR = 1;
const STATUS_LINK_UP = 1;
const STATUS_ANNOUNCE = 2;
/** Guest offload bits CTRL_GUEST_OFFLOADS may switch (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO). */
const GUEST_OFFLOAD_BITS = (1n << 1n) | (1n << 7n) | (1n << 8n) | (1n << 9n) | (1n << 10n);

/** Options of the device. */
export interface VirtioNetOptions {
  mac: Uint8Array;
  backend: NetBackend;
  /** Queue size (default 256). */
  queueSize?: number;
  /** MTU to offer (VIRTIO_NET_F_MTU); not offered when absent. */
  mtu?: number;
  /** Offer VIRTIO_NET_F_STANDBY (a failover standby device). */
  standby?: boolean;
  /** Feature bits to withhold (see `VIRTIO_NET_FEATURE_NAMES`). */
  withhold?: number[];
  /** Offer VIRTIO_F_RING_PACKED (the driver may then choose the packed ring layout). */
  packed?: boolean;
  /** Queue pairs (default 1; MQ lets the driver use up to this many). */
  maxPairs?: number;
  /** Link speed in Mb/s for SPEED_DUPLEX (default 10000, full duplex). */
  speedMbps?: number;
}

/** Counters of the device. */
export interface VirtioNetCounters {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /**
   * Frames that found no receive buffer: handed back to the backend to retry, or (for segments of
   * a frame segmented in software after its first segment went in) dropped.
   */
  rxNoBuffer: number;
  rxTooBig: number;
  txErrors: number;
  /** Frames the receive filter dropped. */
  rxFiltered: number;
  /** Large frames segmented in software (TX for a backend without TSO, RX for a guest without GUEST_TSO). */
  swSegmented: number;
  ctrlCommands: number;
  /** Control commands answered with VIRTIO_NET_ERR. */
  ctrlErrors: number;
}

/** Saved device state. */
export interface VirtioNetState {
  version: 2;
  linkUp: boolean;
  counters: VirtioNetCounters;
  /** The current MAC (12 hex digits; ADDR_SET may have changed it). */
  mac: string;
  offer: OfferOptions & { withhold: number[] };
  filter: RxFilterState;
  pairs: number;
  announce: boolean;
  /** Guest offload bits switched off through CTRL_GUEST_OFFLOADS (hex). */
  guestOffloadsOff: string;
}

/** A saved virtio-net state was rejected. */
export class VirtioNetStateError extends Error {
  override readonly name = "VirtioNetStateError";
}

const emptyCounters = (): VirtioNetCounters => ({
  txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxNoBuffer: 0, rxTooBig: 0, txErrors: 0, rxFiltered: 0, swSegmented: 0, ctrlCommands: 0, ctrlErrors: 0,
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
    opts.backend.setReceiver((frame, meta) => this.receive(frame, meta));
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

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.setFeatures(ctx.features, this.guestOffloadsOff);
    this.opts.backend.rxReady?.();
  }

  reset(): void {
    this.ctx = undefined;
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

  queueNotify(i: number): void {
    if (i === this.ctrlIndexFor(this.negotiated)) this.processCtrl();
    else if (i < 2 * this.maxPairs && (i & 1) === 1) this.processTx(i);
    else if (i < 2 * this.maxPairs) this.opts.backend.rxReady?.();
  }

  // ------------------------------------------------------------------------------------------
  // TX

  /**
   * Pops at most one queue's worth of chains from queue `qi` (bounded work per notification),
   * hands each to `use` (which returns false to stop), and signals the queue if any were used.
   */
  private drain(qi: number, use: (ctx: VirtioContext, q: Virtqueue, chain: DescriptorChain) => boolean): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const q = ctx.queues[qi];
    if (q === undefined || !q.ready) return;
    let done = 0;
    for (let n = 0; n < q.size; n++) {
      const chain = q.popChain(ctx.mem);
      if (chain === undefined) break;
      done++;
      if (!use(ctx, q, chain)) break;
    }
    if (done > 0) ctx.signalQueue(qi);
  }

  private processTx(qi: number): void {
    this.drain(qi, (ctx, q, chain) => {
      this.transmit(ctx, chain);
      q.addUsed(ctx.mem, chain.head, 0);
      return true;
    });
  }

  /** The offload request in a TX header, or a reason to drop the frame. */
  private txMeta(h: Uint8Array, frameLen: number): FrameMeta | undefined | "bad" {
    const flags = h[0]!;
    const gsoType = h[1]!;
    if (flags === 0 && gsoType === 0) return undefined;
    const meta: FrameMeta = {};
    if ((flags & HDR_F.NEEDS_CSUM) !== 0) {
      if (!has(this.negotiated, VIRTIO_NET_F.CSUM)) return "bad";
      const start = le16(h, 6);
      const offset = le16(h, 8);
      if (start + offset + 2 > frameLen) return "bad";
      meta.needsCsum = { start, offset };
    }
    const kind = gsoType & ~GSO.ECN;
    if (kind !== GSO.NONE) {
      const ecn = (gsoType & GSO.ECN) !== 0;
      const ok =
        (kind === GSO.TCPV4 && has(this.negotiated, VIRTIO_NET_F.HOST_TSO4)) ||
        (kind === GSO.TCPV6 && has(this.negotiated, VIRTIO_NET_F.HOST_TSO6));
      if (!ok || (ecn && !has(this.negotiated, VIRTIO_NET_F.HOST_ECN)) || le16(h, 4) === 0) return "bad";
      meta.gso = { type: kind === GSO.TCPV4 ? "tcpv4" : "tcpv6", size: le16(h, 4), hdrLen: le16(h, 2), ...(ecn ? { ecn: true } : {}) };
    }
    return meta.needsCsum === undefined && meta.gso === undefined ? undefined : meta;
  }

  private transmit(ctx: VirtioContext, chain: DescriptorChain): void {
    if (chain.readableLen < HDR_LEN || chain.readableLen > MAX_TX_FRAME) {
      this.counters.txErrors++;
      return;
    }
    // One copy out of guest memory (into a fresh slab buffer); the backend gets a view past the header.
    const bytes = readChain(ctx.mem, chain, MAX_TX_FRAME);
    if (bytes === undefined) {
      this.counters.txErrors++;
      return;
    }
    const frame = bytes.subarray(HDR_LEN);
    const meta = this.txMeta(bytes, frame.length);
    if (meta === "bad") {
      this.counters.txErrors++;
      return;
    }
    const caps = this.opts.backend.offloads;
    const canTake =
      meta === undefined ||
      (caps !== undefined &&
        (meta.needsCsum === undefined || caps.csum) &&
        (meta.gso === undefined || (meta.gso.type === "tcpv4" ? caps.tso4 : meta.gso.type === "tcpv6" ? caps.tso6 : false)));
    if (canTake) {
      this.counters.txFrames++;
      this.counters.txBytes += frame.length;
      this.opts.backend.transmit(frame, meta);
      return;
    }
    const r = segmentTso(frame, meta);
    if (!r.ok) {
      this.counters.txErrors++;
      return;
    }
    if (r.frames.length > 1) this.counters.swSegmented++;
    for (const f of r.frames) {
      this.counters.txFrames++;
      this.counters.txBytes += f.length;
      this.opts.backend.transmit(f);
    }
  }

  // ------------------------------------------------------------------------------------------
  // RX

  /** The queue pair for a frame: a hash of the IPv4/IPv6 addresses and L4 ports, over the pairs in use. */
  private pairFor(frame: Uint8Array): number {
    if (this.pairs <= 1) return 0;
    let from = 0;
    let to = 0;
    const et = (frame[12]! << 8) | frame[13]!;
    if (et === 0x0800 && frame.length >= 38) {
      from = 26;
      to = 14 + ((frame[14]! & 0x0f) << 2) + 4;
    } else if (et === 0x86dd && frame.length >= 58) {
      from = 22;
      to = 58;
    } else return 0;
    let h = 0x811c9dc5;
    for (let i = from; i < to && i < frame.length; i++) h = Math.imul(h ^ frame[i]!, 0x01000193);
    return (h >>> 0) % this.pairs;
  }

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

  /** A frame for the guest. Returns false when it could not be delivered now. */
  receive(frame: Uint8Array, meta?: FrameMeta): boolean {
    const ctx = this.ctx;
    if (ctx === undefined || !this.linkUp) return false;
    if (!this.filter.accepts(frame, this.mac, ((this.low >>> VIRTIO_NET_F.CTRL_VLAN) & 1) === 1)) {
      this.counters.rxFiltered++;
      return true;
    }
    const gso = meta?.gso;
    if (gso !== undefined) {
      const takes = gso.type === "tcpv4" ? this.guestTakes(VIRTIO_NET_F.GUEST_TSO4) : gso.type === "tcpv6" ? this.guestTakes(VIRTIO_NET_F.GUEST_TSO6) : false;
      if (!takes || (gso.ecn === true && !this.guestTakes(VIRTIO_NET_F.GUEST_ECN))) {
        const r = segmentTso(frame, meta);
        if (!r.ok) {
          this.counters.rxTooBig++;
          return true;
        }
        this.counters.swSegmented++;
        // Backpressure only while nothing has been delivered: once a segment is in the guest's
        // ring, a `false` would make the backend retry the whole frame and deliver that segment
        // twice. Segments that then find no buffer are dropped and counted (rxNoBuffer), as a NIC
        // drops what arrives with its ring empty; TCP retransmits them.
        for (let k = 0; k < r.frames.length; k++) {
          if (!this.deliver(ctx, r.frames[k]!, { csumValid: true })) {
            if (k === 0) return false;
            this.counters.rxNoBuffer += r.frames.length - k - 1;
            return true;
          }
        }
        return true;
      }
    }
    if (meta?.needsCsum !== undefined && !this.guestTakes(VIRTIO_NET_F.GUEST_CSUM)) {
      if (!completeChecksum(frame, meta.needsCsum.start, meta.needsCsum.offset)) {
        this.counters.rxTooBig++;
        return true;
      }
      return this.deliver(ctx, frame, { csumValid: true });
    }
    return this.deliver(ctx, frame, meta);
  }

  /** The virtio_net_hdr of the frame being delivered. */
  private readonly rxHdr = new Uint8Array(HDR_LEN);

  private deliver(ctx: VirtioContext, frame: Uint8Array, meta: FrameMeta | undefined): boolean {
    const qi = 2 * this.pairFor(frame);
    const q = ctx.queues[qi];
    if (q === undefined || !q.ready) return false;
    // The header is built in a scratch array and written in front of the frame: no joined copy.
    const data = this.rxHdr;
    data.fill(0);
    const total = HDR_LEN + frame.length;
    if (this.guestTakes(VIRTIO_NET_F.GUEST_CSUM)) {
      if (meta?.needsCsum !== undefined) {
        data[0] = HDR_F.NEEDS_CSUM;
        data[6] = meta.needsCsum.start & 0xff;
        data[7] = meta.needsCsum.start >>> 8;
        data[8] = meta.needsCsum.offset & 0xff;
        data[9] = meta.needsCsum.offset >>> 8;
      } else if (meta?.csumValid === true) data[0] = HDR_F.DATA_VALID;
    }
    if (meta?.gso !== undefined) {
      data[1] = (meta.gso.type === "tcpv4" ? GSO.TCPV4 : GSO.TCPV6) | (meta.gso.ecn === true ? GSO.ECN : 0);
      data[2] = meta.gso.hdrLen & 0xff;
      data[3] = meta.gso.hdrLen >>> 8;
      data[4] = meta.gso.size & 0xff;
      data[5] = meta.gso.size >>> 8;
    }
    const mrg = ((this.low >>> VIRTIO_NET_F.MRG_RXBUF) & 1) === 1;
    try {
      const chains: DescriptorChain[] = [];
      let room = 0;
      while (room < total) {
        const c = q.popChain(ctx.mem);
        if (c === undefined) {
          // Not enough buffers now: give them back and let the backend retry on rxReady.
          for (let k = 0; k < chains.length; k++) q.undoPop();
          this.counters.rxNoBuffer++;
          return false;
        }
        chains.push(c);
        room += c.writableLen;
        if (!mrg && room < total) {
          // One buffer per frame without MRG_RXBUF: too small, so the frame is dropped and counted.
          q.addUsed(ctx.mem, c.head, 0);
          this.counters.rxTooBig++;
          ctx.signalQueue(qi);
          return true;
        }
      }
      data[10] = chains.length & 0xff; // num_buffers
      data[11] = (chains.length >>> 8) & 0xff;
      let off = 0;
      for (const c of chains) {
        const n = writeChainParts(ctx.mem, c, data, frame, off);
        if (n < 0) return ctx.fail("RX buffer outside guest memory"), true;
        q.addUsed(ctx.mem, c.head, n);
        off += n;
      }
      this.counters.rxFrames++;
      this.counters.rxBytes += frame.length;
      ctx.signalQueue(qi);
      return true;
    } catch (e) {
      ctx.fail((e as Error).message);
      return true;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Control queue

  private processCtrl(): void {
    this.drain(this.ctrlIndexFor(this.negotiated), (ctx, q, chain) => {
      this.counters.ctrlCommands++;
      if (chain.writableLen < 1 || chain.readableLen < 2 || chain.readableLen > MAX_CTRL_CMD) {
        this.counters.ctrlErrors++;
        q.addUsed(ctx.mem, chain.head, 0);
        return true;
      }
      const cmd = readChain(ctx.mem, chain, MAX_CTRL_CMD);
      const ack = cmd === undefined ? ACK_ERR : this.command(cmd[0]!, cmd[1]!, cmd.subarray(2));
      if (ack !== ACK_OK) this.counters.ctrlErrors++;
      if (writeChain(ctx.mem, chain, Uint8Array.of(ack)) < 0) {
        ctx.fail("control ack buffer outside guest memory");
        return false;
      }
      q.addUsed(ctx.mem, chain.head, 1);
      return true;
    });
  }

  /** Executes one control command; returns VIRTIO_NET_OK or VIRTIO_NET_ERR. */
  private command(cls: number, cmd: number, d: Uint8Array): number {
    const f = this.negotiated;
    switch (cls) {
      case CTRL.RX: {
        if (!has(f, VIRTIO_NET_F.CTRL_RX) || d.length !== 1) return ACK_ERR;
        if (cmd > 1 && !has(f, VIRTIO_NET_F.CTRL_RX_EXTRA)) return ACK_ERR;
        return this.filter.setMode(cmd, d[0] !== 0) ? ACK_OK : ACK_ERR;
      }
      case CTRL.MAC: {
        if (cmd === 0) {
          // Two tables back to back: le32 entries, then entries x 6 bytes.
          if (d.length < 4) return ACK_ERR;
          const n1 = le32(d, 0);
          const end1 = 4 + 6 * n1;
          if (n1 > MAX_CTRL_CMD || end1 + 4 > d.length) return ACK_ERR;
          const n2 = le32(d, end1);
          const end2 = end1 + 4 + 6 * n2;
          if (n2 > MAX_CTRL_CMD || end2 !== d.length) return ACK_ERR;
          this.filter.setTable("unicast", d.subarray(4, end1), n1);
          this.filter.setTable("multicast", d.subarray(end1 + 4, end2), n2);
          return ACK_OK;
        }
        if (cmd === 1) {
          if (!has(f, VIRTIO_NET_F.CTRL_MAC_ADDR) || d.length !== 6 || (d[0]! & 1) === 1) return ACK_ERR;
          this.mac.set(d);
          return ACK_OK;
        }
        return ACK_ERR;
      }
      case CTRL.VLAN: {
        if (!has(f, VIRTIO_NET_F.CTRL_VLAN) || d.length !== 2 || cmd > 1) return ACK_ERR;
        const vid = le16(d, 0);
        if (vid >= 4096) return ACK_ERR;
        this.filter.setVlan(vid, cmd === 0);
        return ACK_OK;
      }
      case CTRL.ANNOUNCE: {
        if (!has(f, VIRTIO_NET_F.GUEST_ANNOUNCE) || cmd !== 0) return ACK_ERR;
        this.announcing = false;
        this.updateStatus();
        return ACK_OK;
      }
      case CTRL.MQ: {
        if (!has(f, VIRTIO_NET_F.MQ) || cmd !== 0 || d.length !== 2) return ACK_ERR;
        const n = le16(d, 0);
        if (n < 1 || n > this.maxPairs) return ACK_ERR;
        this.pairs = n;
        this.opts.backend.rxReady?.();
        return ACK_OK;
      }
      case CTRL.GUEST_OFFLOADS: {
        if (!has(f, VIRTIO_NET_F.CTRL_GUEST_OFFLOADS) || cmd !== 0 || d.length !== 8) return ACK_ERR;
        const want = BigInt(le32(d, 0)) | (BigInt(le32(d, 4)) << 32n);
        const switchable = f & GUEST_OFFLOAD_BITS;
        if ((want & ~switchable) !== 0n) return ACK_ERR;
        this.setFeatures(this.negotiated, switchable & ~want);
        return ACK_OK;
      }
      default:
        return ACK_ERR;
    }
  }

  // ------------------------------------------------------------------------------------------
  // State

  save(): VirtioNetState {
    return {
      version: 2,
      linkUp: this.linkUp,
      counters: { ...this.counters },
      mac: macHex(this.mac),
      offer: { ...(this.offer.mtu !== undefined ? { mtu: this.offer.mtu } : {}), standby: this.offer.standby === true, packed: this.offer.packed === true, withhold: [...this.offer.withhold] },
      filter: this.filter.save(),
      pairs: this.pairs,
      announce: this.announcing,
      guestOffloadsOff: this.guestOffloadsOff.toString(16),
    };
  }

  /** Restores {@link save}'s output, all or nothing. @throws VirtioNetStateError (or RxFilterStateError) */
  restore(s: VirtioNetState): void {
    if (typeof s !== "object" || s === null || s.version !== 2 || typeof s.linkUp !== "boolean" || typeof s.announce !== "boolean") {
      throw new VirtioNetStateError("bad virtio-net state");
    }
    if (typeof s.mac !== "string" || !/^[0-9a-f]{12}$/.test(s.mac)) throw new VirtioNetStateError("bad MAC");
    if (!Number.isInteger(s.pairs) || s.pairs < 1 || s.pairs > this.maxPairs) throw new VirtioNetStateError("bad queue pair count");
    if (typeof s.guestOffloadsOff !== "string" || !/^[0-9a-f]{1,16}$/.test(s.guestOffloadsOff)) throw new VirtioNetStateError("bad guest offloads");
    const o = s.offer;
    if (typeof o !== "object" || o === null || !Array.isArray(o.withhold) || !o.withhold.every((b) => Number.isInteger(b) && b >= 0 && b < 64)) {
      throw new VirtioNetStateError("bad offer");
    }
    if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)) throw new VirtioNetStateError("bad MTU");
    const c = s.counters as unknown as Record<string, unknown>;
    if (typeof c !== "object" || c === null || !Object.keys(emptyCounters()).every((k) => typeof c[k] === "number")) throw new VirtioNetStateError("bad counters");
    // RxFilter.restore checks everything before it changes anything, and nothing here has changed yet.
    this.filter.restore(s.filter);
    this.linkUp = s.linkUp;
    this.announcing = s.announce;
    for (let i = 0; i < 6; i++) this.mac[i] = parseInt(s.mac.slice(2 * i, 2 * i + 2), 16);
    this.pairs = s.pairs;
    this.setFeatures(this.negotiated, BigInt("0x" + s.guestOffloadsOff));
    this.offer = { mtu: o.mtu, standby: o.standby === true, packed: o.packed === true, withhold: [...o.withhold] };
    this.offered = offeredFeatures(this.offer);
    if (o.mtu !== undefined) this.writeConfig16(10, o.mtu);
    this.updateStatus();
    Object.assign(this.counters, s.counters);
  }
}
