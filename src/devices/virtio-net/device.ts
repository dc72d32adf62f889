/**
 * virtio-net (virtio 1.2 section 5.1), first cut: one RX/TX queue pair, MAC, STATUS (link up),
 * MTU, MRG_RXBUF, STANDBY (bit 62, offered only when configured as a failover standby), and the
 * transport's VERSION_1, EVENT_IDX and INDIRECT_DESC. Checksum and segmentation offloads, the
 * control queue and multiqueue are not offered yet (see the README's status table).
 *
 * TX: each chain is a 12-byte `virtio_net_hdr` followed by the frame; the frame goes to the backend.
 * RX: a frame from the backend is written with a header into the next RX chain (or, with
 * MRG_RXBUF, across as many chains as it needs, `num_buffers` telling how many). With no RX buffer
 * the frame is refused (the backend may hold it and retry on `rxReady`); a frame larger than the
 * buffers without MRG_RXBUF is dropped and counted.
 * @module
 */
import type { AccessSize } from "../../pci/function.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { readChain, writeChain, type DescriptorChain } from "../virtio/split-queue.js";
import { allocBytes, type QueueDirection } from "../virtio/virtqueue.js";
import { VIRTIO_F, type VirtioContext, type VirtioDevice } from "../virtio/pci-transport.js";

/** virtio-net feature bits. */
export const VIRTIO_NET_F = {
  CSUM: 0,
  GUEST_CSUM: 1,
  MTU: 3,
  MAC: 5,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  MQ: 22,
  STANDBY: 62,
} as const;

const HDR_LEN = 12;
const RX = 0;
const TX = 1;
/** The largest frame accepted from the guest (64 KiB + header), bounding work per chain. */
const MAX_TX_FRAME = 65_550;

/** Options of the device. */
export interface VirtioNetOptions {
  mac: Uint8Array;
  backend: NetBackend;
  /** Queue size (default 256). */
  queueSize?: number;
  mtu?: number;
  /** Offer VIRTIO_NET_F_STANDBY (a failover standby device). */
  standby?: boolean;
  /** Offer VIRTIO_F_RING_PACKED (the driver may then choose the packed ring layout). */
  packed?: boolean;
  /** Features to withhold (bit numbers). */
  withhold?: number[];
}

/** Counters of the device. */
export interface VirtioNetCounters {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  rxNoBuffer: number;
  rxTooBig: number;
  txErrors: number;
}

/** Saved device state. */
export interface VirtioNetState {
  version: 1;
  linkUp: boolean;
  counters: VirtioNetCounters;
}

/** The virtio-net device. */
export class VirtioNet implements VirtioDevice {
  readonly deviceId = 1;
  readonly features: bigint;
  readonly queueSizes: number[];
  readonly configSize = 12;
  readonly counters: VirtioNetCounters = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxNoBuffer: 0, rxTooBig: 0, txErrors: 0 };
  private readonly config = new Uint8Array(12);
  private ctx: VirtioContext | undefined;
  private mrg = false;
  linkUp = true;

  constructor(private readonly opts: VirtioNetOptions) {
    const bits: number[] = [VIRTIO_NET_F.MAC, VIRTIO_NET_F.STATUS, VIRTIO_NET_F.MRG_RXBUF, VIRTIO_F.VERSION_1, VIRTIO_F.EVENT_IDX, VIRTIO_F.INDIRECT_DESC];
    if (opts.mtu !== undefined) bits.push(VIRTIO_NET_F.MTU);
    if (opts.standby === true) bits.push(VIRTIO_NET_F.STANDBY);
    if (opts.packed === true) bits.push(VIRTIO_F.RING_PACKED);
    let f = 0n;
    for (const b of bits) if (!(opts.withhold ?? []).includes(b) || b === VIRTIO_F.VERSION_1) f |= 1n << BigInt(b);
    this.features = f;
    const qs = opts.queueSize ?? 256;
    this.queueSizes = [qs, qs];
    this.config.set(opts.mac.subarray(0, 6), 0);
    this.writeConfig16(6, 1);
    this.writeConfig16(8, 1); // max_virtqueue_pairs
    this.writeConfig16(10, opts.mtu ?? 1500);
    opts.backend.setReceiver((frame, meta) => this.receive(frame, meta));
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
    // The MAC is writable only on legacy devices; modern drivers use CTRL_MAC (not offered).
  }

  /** Sets the link state and raises a configuration change interrupt. */
  setLink(up: boolean): void {
    this.linkUp = up;
    this.writeConfig16(6, up ? 1 : 0);
    this.ctx?.signalConfig();
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.mrg = ((ctx.features >> BigInt(VIRTIO_NET_F.MRG_RXBUF)) & 1n) === 1n;
    this.opts.backend.rxReady?.();
  }

  reset(): void {
    this.ctx = undefined;
  }

  /**
   * RX queues (even) take device-writable buffers only, TX queues (odd) readable ones; the control
   * queue (2 × max_virtqueue_pairs with MQ, else 2, when CTRL_VQ is negotiated) and anything past it both.
   */
  queueDirection(i: number, features: bigint): QueueDirection {
    const has = (b: number): boolean => ((features >> BigInt(b)) & 1n) === 1n;
    const ctrl = has(VIRTIO_NET_F.CTRL_VQ) ? (has(VIRTIO_NET_F.MQ) ? 2 * (this.config[8]! | (this.config[9]! << 8)) : 2) : Infinity;
    if (i >= ctrl) return "any";
    return i % 2 === 0 ? "writable" : "readable";
  }

  queueNotify(i: number): void {
    if (i === TX) this.processTx();
    else if (i === RX) this.opts.backend.rxReady?.();
  }

  private processTx(): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const q = ctx.queues[TX]!;
    let done = 0;
    // At most one queue's worth of chains per kick: bounded work per notification.
    for (let n = 0; n < q.size; n++) {
      const chain = q.popChain(ctx.mem);
      if (chain === undefined) break;
      this.transmit(ctx, chain);
      q.addUsed(ctx.mem, chain.head, 0);
      done++;
    }
    if (done > 0) ctx.signalQueue(TX);
  }

  private transmit(ctx: VirtioContext, chain: DescriptorChain): void {
    if (chain.readableLen < HDR_LEN || chain.readableLen > MAX_TX_FRAME) {
      this.counters.txErrors++;
      return;
    }
    const bytes = readChain(ctx.mem, chain, MAX_TX_FRAME);
    if (bytes === undefined) {
      this.counters.txErrors++;
      return;
    }
    const frame = bytes.subarray(HDR_LEN); // readChain's result is a fresh array: no second copy
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    this.opts.backend.transmit(frame);
  }

  /** A frame for the guest. Returns false when it could not be delivered now. */
  receive(frame: Uint8Array, _meta?: FrameMeta): boolean {
    const ctx = this.ctx;
    if (ctx === undefined || !this.linkUp) return false;
    const q = ctx.queues[RX]!;
    if (!q.ready) return false;
    const data = allocBytes(HDR_LEN + frame.length);
    data.set(frame, HDR_LEN);
    try {
      const chains: DescriptorChain[] = [];
      let room = 0;
      while (room < data.length) {
        const c = q.popChain(ctx.mem);
        if (c === undefined) {
          // Not enough buffers now: give them back and let the backend retry on rxReady.
          for (let k = 0; k < chains.length; k++) q.undoPop();
          this.counters.rxNoBuffer++;
          return false;
        }
        chains.push(c);
        room += c.writableLen;
        if (!this.mrg && room < data.length) {
          // One buffer per frame without MRG_RXBUF: too small, so the frame is dropped and counted.
          q.addUsed(ctx.mem, c.head, 0);
          this.counters.rxTooBig++;
          ctx.signalQueue(RX);
          return true;
        }
      }
      data[10] = chains.length & 0xff; // num_buffers
      data[11] = (chains.length >>> 8) & 0xff;
      let off = 0;
      for (const c of chains) {
        const n = writeChain(ctx.mem, c, data.subarray(off));
        if (n < 0) return ctx.fail("RX buffer outside guest memory"), true;
        q.addUsed(ctx.mem, c.head, n);
        off += n;
      }
      this.counters.rxFrames++;
      this.counters.rxBytes += frame.length;
      ctx.signalQueue(RX);
      return true;
    } catch (e) {
      ctx.fail((e as Error).message);
      return true;
    }
  }

  save(): VirtioNetState {
    return { version: 1, linkUp: this.linkUp, counters: { ...this.counters } };
  }

  restore(s: VirtioNetState): void {
    if (typeof s !== "object" || s === null || s.version !== 1 || typeof s.linkUp !== "boolean") throw new TypeError("bad virtio-net state");
    this.linkUp = s.linkUp;
    this.writeConfig16(6, s.linkUp ? 1 : 0);
    Object.assign(this.counters, s.counters);
  }
}
