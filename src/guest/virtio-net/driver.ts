/**
 * A simulated virtio-net guest driver for in-process tests and benchmarks, written from the virtio
 * 1.2 spec (sections 3.1, 4.1.4 and 5.1): it finds the virtio capabilities by walking the PCI
 * function's config space, resets the device, negotiates features (split or packed ring), sets up
 * the queues (rx0, tx0, rx1, tx1, ..., ctrl), posts receive buffers (mergeable, or one big chain
 * per packet), and sends and receives frames behind the 12-byte `virtio_net_hdr`.
 *
 * It polls: interrupts are left to the device's event suppression logic and not waited for.
 * @module
 */
import { PackedDriverRing, SplitDriverRing, type Alloc, type DriverRing } from "./rings.js";

/** What the driver needs of the PCI function (a `PciFunction` has all of it). */
export interface VirtioPciFunctionPort {
  configRead(reg: number, size: number): number;
  configWrite(reg: number, size: number, value: number): unknown;
  barRead(bar: number, offset: number, size: 1 | 2 | 4): number;
  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void;
}

/** The simulated guest around the driver. */
export interface VirtioNetDriverEnv {
  readonly fn: VirtioPciFunctionPort;
  /** Guest RAM: guest physical address = index. */
  readonly ram: Uint8Array;
  /** Allocates guest memory. */
  readonly alloc: Alloc;
}

/** Driver options. */
export interface VirtioNetDriverOptions {
  /** Ask for VIRTIO_F_RING_PACKED (used when offered). Default false. */
  readonly packed?: boolean;
  /** Queue size to program (at most the device's; a power of two for split). Default: the device's. */
  readonly ringSize?: number;
  /** Accept MRG_RXBUF when offered. Default true. */
  readonly mergeable?: boolean;
  /** Accept EVENT_IDX when offered. Default true. */
  readonly eventIdx?: boolean;
  /** Queue pairs to use when MQ is offered. Default 1. */
  readonly pairs?: number;
  /** Mergeable receive buffer size. Default 1536. */
  readonly rxBufSize?: number;
  /** Largest frame to send (sizes the TX buffers). Default 1514. */
  readonly maxTxFrame?: number;
  /** Extra feature bits to accept when offered. */
  readonly accept?: readonly number[];
}

/** Raised when the device does not behave as the spec says. */
export class VirtioDriverError extends Error {
  override readonly name = "VirtioDriverError";
}

/** Capability locations found in config space. */
export interface VirtioCaps {
  common: { bar: number; offset: number };
  notify: { bar: number; offset: number; multiplier: number };
  isr: { bar: number; offset: number };
  device: { bar: number; offset: number };
}

/** What probing found. */
export interface VirtioNetProbe {
  readonly features: bigint;
  readonly layout: "split" | "packed";
  readonly mac: Uint8Array;
  readonly linkUp: boolean;
  readonly mtu: number;
  readonly pairs: number;
  readonly ctrl: boolean;
}

/** Feature bits the driver knows. */
export const NET_F = { MTU: 3, MAC: 5, MRG_RXBUF: 15, STATUS: 16, CTRL_VQ: 17, MQ: 22 } as const;
const F_INDIRECT = 28;
const F_EVENT_IDX = 29;
const F_VERSION_1 = 32;
const F_RING_PACKED = 34;
const S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8;
const HDR = 12;
const BIG_BUF = 65_550;
/** Control classes/commands the driver itself uses. */
export const CTRL = { MQ: 4, MQ_VQ_PAIRS_SET: 0, OK: 0, ERR: 1 } as const;

interface RxQueue {
  ring: DriverRing;
  /** Buffer address per buffer ID. */
  bufs: Float64Array;
}
interface TxQueue {
  ring: DriverRing;
  bufs: Float64Array;
  /** Slots (buffer addresses) not in flight. */
  spare: number[];
  pending: number;
}

/**
 * The driver.
 * @example
 * const d = new SimVirtioNet({ fn: transport.fn, ram, alloc }, { packed: true });
 * d.probe(); d.open(); d.send(frame); d.flush(); d.receive();
 */
export class SimVirtioNet {
  caps: VirtioCaps | undefined;
  features = 0n;
  private rx: RxQueue[] = [];
  private tx: TxQueue[] = [];
  private ctrlq: { ring: DriverRing; buf: number } | undefined;
  private mrg = false;
  private rxSize = 1536;
  private readonly v: DataView;
  private queueIndex = 0;
  /** The virtio_net_hdr of the last multi-buffer frame `drain` delivered (overwritten by the next one). */
  readonly lastHeader = new Uint8Array(HDR);
  /** Frames dropped by the driver (bad header, too short). */
  rxErrors = 0;

  constructor(private env: VirtioNetDriverEnv, private readonly opts: VirtioNetDriverOptions = {}) {
    this.v = new DataView(env.ram.buffer, env.ram.byteOffset, env.ram.byteLength);
  }

  /** Continues on another function (the device was migrated: same guest RAM, new device object). */
  rebind(fn: VirtioPciFunctionPort): void {
    this.env = { ...this.env, fn };
  }

  /** Walks the capability list for the virtio vendor capabilities (cfg_type 1..4). */
  findCaps(): VirtioCaps {
    const fn = this.env.fn;
    if ((fn.configRead(0x06, 2) & 0x10) === 0) throw new VirtioDriverError("no capability list");
    const found: Partial<VirtioCaps> = {};
    let p = fn.configRead(0x34, 1) & 0xfc;
    for (let n = 0; p !== 0 && n < 48; n++) {
      if (fn.configRead(p, 1) === 0x09) {
        const type = fn.configRead(p + 3, 1);
        const bar = fn.configRead(p + 4, 1);
        const offset = fn.configRead(p + 8, 4);
        if (type === 1 && found.common === undefined) found.common = { bar, offset };
        if (type === 2 && found.notify === undefined) found.notify = { bar, offset, multiplier: fn.configRead(p + 16, 4) };
        if (type === 3 && found.isr === undefined) found.isr = { bar, offset };
        if (type === 4 && found.device === undefined) found.device = { bar, offset };
      }
      p = fn.configRead(p + 1, 1) & 0xfc;
    }
    if (found.common === undefined || found.notify === undefined || found.isr === undefined || found.device === undefined) {
      throw new VirtioDriverError("virtio capabilities missing");
    }
    this.caps = found as VirtioCaps;
    return this.caps;
  }

  private get c(): VirtioCaps {
    if (this.caps === undefined) throw new VirtioDriverError("probe first");
    return this.caps;
  }
  private cr(off: number, size: 1 | 2 | 4): number {
    return this.env.fn.barRead(this.c.common.bar, this.c.common.offset + off, size);
  }
  private cw(off: number, size: 1 | 2 | 4, v: number): void {
    this.env.fn.barWrite(this.c.common.bar, this.c.common.offset + off, size, v >>> 0);
  }
  private cfg(off: number, size: 1 | 2 | 4): number {
    return this.env.fn.barRead(this.c.device.bar, this.c.device.offset + off, size);
  }

  /** device_status. */
  get status(): number {
    return this.cr(0x14, 1);
  }

  /** Resets the device (status 0) and waits for it to read back 0. */
  reset(): void {
    this.cw(0x14, 1, 0);
    for (let i = 0; i < 100 && this.cr(0x14, 1) !== 0; i++);
    if (this.cr(0x14, 1) !== 0) throw new VirtioDriverError("device did not reset");
    this.rx = [];
    this.tx = [];
    this.ctrlq = undefined;
  }

  /** Enables memory decode and bus mastering, resets and negotiates features (through FEATURES_OK). */
  probe(): VirtioNetProbe {
    const fn = this.env.fn;
    fn.configWrite(0x04, 2, fn.configRead(0x04, 2) | 0x6);
    this.findCaps();
    this.reset();
    this.cw(0x14, 1, S_ACK);
    this.cw(0x14, 1, S_ACK | S_DRIVER);
    this.cw(0x00, 4, 0);
    let offered = BigInt(this.cr(0x04, 4));
    this.cw(0x00, 4, 1);
    offered |= BigInt(this.cr(0x04, 4)) << 32n;
    if (((offered >> BigInt(F_VERSION_1)) & 1n) === 0n) throw new VirtioDriverError("device is not virtio 1");
    const want = [F_VERSION_1, NET_F.MAC, NET_F.STATUS, NET_F.MTU, NET_F.CTRL_VQ, NET_F.MQ, F_INDIRECT, ...(this.opts.accept ?? [])];
    if (this.opts.mergeable !== false) want.push(NET_F.MRG_RXBUF);
    if (this.opts.eventIdx !== false) want.push(F_EVENT_IDX);
    if (this.opts.packed === true) want.push(F_RING_PACKED);
    let f = 0n;
    for (const b of want) f |= (1n << BigInt(b)) & offered;
    this.cw(0x08, 4, 0);
    this.cw(0x0c, 4, Number(f & 0xffffffffn));
    this.cw(0x08, 4, 1);
    this.cw(0x0c, 4, Number(f >> 32n));
    this.cw(0x14, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    if ((this.cr(0x14, 1) & S_FEATURES_OK) === 0) throw new VirtioDriverError("FEATURES_OK refused");
    this.features = f;
    this.mrg = this.has(NET_F.MRG_RXBUF);
    const mac = new Uint8Array(6);
    for (let i = 0; i < 6; i++) mac[i] = this.cfg(i, 1);
    const maxPairs = this.has(NET_F.MQ) ? Math.max(1, this.cfg(8, 2)) : 1;
    return {
      features: f,
      layout: this.has(F_RING_PACKED) ? "packed" : "split",
      mac,
      linkUp: !this.has(NET_F.STATUS) || (this.cfg(6, 2) & 1) === 1,
      mtu: this.has(NET_F.MTU) ? this.cfg(10, 2) : 1500,
      pairs: Math.min(maxPairs, this.opts.pairs ?? 1),
      ctrl: this.has(NET_F.CTRL_VQ),
    };
  }

  /** Whether feature `bit` was negotiated. */
  has(bit: number): boolean {
    return ((this.features >> BigInt(bit)) & 1n) === 1n;
  }

  private setupQueue(index: number): DriverRing {
    this.cw(0x16, 2, index);
    const max = this.cr(0x18, 2);
    if (max === 0) throw new VirtioDriverError(`queue ${index} does not exist`);
    const size = Math.min(max, this.opts.ringSize ?? max);
    this.cw(0x18, 2, size);
    const evt = this.has(F_EVENT_IDX);
    const ring = this.has(F_RING_PACKED)
      ? new PackedDriverRing(this.env.ram, this.env.alloc, size, evt)
      : new SplitDriverRing(this.env.ram, this.env.alloc, size, evt);
    const a64 = (off: number, a: number): void => {
      this.cw(off, 4, a % 0x1_0000_0000);
      this.cw(off + 4, 4, Math.floor(a / 0x1_0000_0000));
    };
    a64(0x20, ring.desc);
    a64(0x28, ring.driverArea);
    a64(0x30, ring.deviceArea);
    this.cw(0x1c, 2, 1);
    return ring;
  }

  /** Sets up the queues, posts receive buffers and sets DRIVER_OK. */
  open(): void {
    const p = this.probeInfoPairs();
    const alloc = this.env.alloc;
    this.rxSize = this.mrg ? (this.opts.rxBufSize ?? 1536) : BIG_BUF + HDR;
    const txBuf = HDR + (this.opts.maxTxFrame ?? 1514);
    this.queueIndex = 0;
    const nq = this.cr(0x12, 2);
    for (let i = 0; i < p; i++) {
      const rr = this.setupQueue(2 * i);
      const rxq: RxQueue = { ring: rr, bufs: new Float64Array(rr.size) };
      this.rx.push(rxq);
      const tr = this.setupQueue(2 * i + 1);
      const txq: TxQueue = { ring: tr, bufs: new Float64Array(tr.size), spare: [], pending: 0 };
      for (let k = 0; k < tr.size; k++) txq.spare.push(alloc(txBuf, 64));
      this.tx.push(txq);
    }
    if (this.has(NET_F.CTRL_VQ)) {
      const maxPairs = this.has(NET_F.MQ) ? Math.max(1, this.cfg(8, 2)) : 1;
      const ci = 2 * maxPairs;
      if (ci < nq) this.ctrlq = { ring: this.setupQueue(ci), buf: alloc(4096, 64) };
    }
    for (const q of this.rx) this.fillRx(q);
    this.cw(0x14, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    if (p > 1) {
      const b = new Uint8Array(2);
      b[0] = p & 0xff;
      b[1] = p >>> 8;
      if (this.ctrl(CTRL.MQ, CTRL.MQ_VQ_PAIRS_SET, b) !== CTRL.OK) throw new VirtioDriverError("VQ_PAIRS_SET refused");
    }
    for (let i = 0; i < this.rx.length; i++) this.kick(2 * i, this.rx[i]!.ring, true);
  }

  private probeInfoPairs(): number {
    const maxPairs = this.has(NET_F.MQ) ? Math.max(1, this.cfg(8, 2)) : 1;
    return Math.max(1, Math.min(maxPairs, this.opts.pairs ?? 1));
  }

  /** Queue pairs in use. */
  get pairs(): number {
    return this.rx.length;
  }

  private fillRx(q: RxQueue): void {
    const r = q.ring;
    for (;;) {
      let id: number;
      if (this.mrg) {
        if (r.free < 1) return;
        const a = this.env.alloc(this.rxSize, 64);
        id = r.add1(a, this.rxSize, true);
        q.bufs[id] = a;
      } else {
        // "Big" packets: one chain of header + 64 KiB data per packet.
        if (r.free < 2) return;
        const a = this.env.alloc(this.rxSize, 64);
        id = r.add([a, a + HDR], [HDR, BIG_BUF], [true, true]);
        q.bufs[id] = a;
      }
    }
  }

  private repost(q: RxQueue, addr: number): void {
    if (this.mrg) q.bufs[q.ring.add1(addr, this.rxSize, true)] = addr;
    else q.bufs[q.ring.add([addr, addr + HDR], [HDR, BIG_BUF], [true, true])] = addr;
  }

  private kick(index: number, ring: DriverRing, force = false): void {
    if (ring.kickNeeded() || force) {
      const n = this.c.notify;
      this.env.fn.barWrite(n.bar, n.offset + this.notifyOff(index) * n.multiplier, 2, index);
    }
  }

  private readonly notifyOffs = new Map<number, number>();
  private notifyOff(index: number): number {
    let o = this.notifyOffs.get(index);
    if (o === undefined) {
      this.cw(0x16, 2, index);
      o = this.cr(0x1e, 2);
      this.notifyOffs.set(index, o);
    }
    return o;
  }

  /** Queues a frame on TX queue `pair` (no kick). False when the ring is full. */
  queue(frame: Uint8Array, pair = 0): boolean {
    const q = this.tx[pair];
    if (q === undefined) throw new VirtioDriverError("not open");
    const a = q.spare.pop();
    if (a === undefined) return false;
    const ram = this.env.ram;
    ram.fill(0, a, a + HDR);
    ram.set(frame, a + HDR);
    const id = q.ring.add1(a, HDR + frame.length, false);
    if (id < 0) {
      q.spare.push(a);
      return false;
    }
    q.bufs[id] = a;
    q.pending++;
    return true;
  }

  /** Notifies the device of queued frames (if its event suppression wants it). */
  flush(pair = 0): void {
    const q = this.tx[pair];
    if (q === undefined || q.pending === 0) return;
    q.pending = 0;
    this.kick(2 * pair + 1, q.ring);
  }

  /** Takes back transmitted buffers; returns how many. */
  reclaim(pair = 0): number {
    const q = this.tx[pair];
    if (q === undefined) return 0;
    let n = 0;
    while (q.ring.getUsed()) {
      q.spare.push(q.bufs[q.ring.usedId]!);
      n++;
    }
    return n;
  }

  /** Queues, flushes and reclaims one frame. */
  send(frame: Uint8Array, pair = 0): boolean {
    this.reclaim(pair);
    const ok = this.queue(frame, pair);
    this.flush(pair);
    return ok;
  }

  /**
   * Calls `onFrame` for every received frame on RX queue `pair` (a view into guest RAM, or into the
   * driver's reassembly array for a multi-buffer frame, valid only during the call, header
   * excluded; `hdrAddr` is the guest address of its virtio_net_hdr, or -1 when the header was
   * copied out with a multi-buffer frame: see `lastHeader`), re-posts the buffers and returns the
   * number of frames. A frame claiming more buffers than the ring holds is counted in `rxErrors`.
   */
  drain(onFrame: (frame: Uint8Array, hdrAddr: number) => void, pair = 0): number {
    const q = this.rx[pair];
    if (q === undefined) return 0;
    const r = q.ring;
    const ram = this.env.ram;
    let frames = 0;
    let used = 0;
    while (r.getUsed()) {
      used++;
      const a = q.bufs[r.usedId]!;
      const len = r.usedLen;
      if (len < HDR || len > this.rxSize) {
        this.rxErrors++;
        this.repost(q, a);
        continue;
      }
      const nb = this.mrg ? this.v.getUint16(a + 10, true) : 1;
      if (nb > r.size) {
        // More buffers than the ring has: a device error, and no reassembly array that large.
        this.rxErrors++;
        this.repost(q, a);
        continue;
      }
      if (nb <= 1) {
        onFrame(ram.subarray(a + HDR, a + len), a);
        this.repost(q, a);
      } else {
        this.lastHeader.set(ram.subarray(a, a + HDR));
        // One copy into the driver's reassembly array (grown, never shrunk, so a stream of big
        // frames allocates nothing: a fresh 64 KiB array per frame cost more than the device's
        // whole receive path); the frame handed on is a view valid only during the call.
        const out = this.reassembly(nb * this.rxSize);
        out.set(ram.subarray(a + HDR, a + len), 0);
        let o = len - HDR;
        this.repost(q, a);
        for (let k = 1; k < nb; k++) {
          if (!r.getUsed()) {
            this.rxErrors++;
            break;
          }
          used++;
          const b = q.bufs[r.usedId]!;
          const l = Math.min(r.usedLen, this.rxSize);
          out.set(ram.subarray(b, b + l), o);
          o += l;
          this.repost(q, b);
        }
        onFrame(out.subarray(0, o), -1);
      }
      frames++;
    }
    if (used > 0) this.kick(2 * pair, r);
    return frames;
  }

  private reasm = new Uint8Array(0);
  private reassembly(n: number): Uint8Array {
    if (this.reasm.length < n) this.reasm = new Uint8Array(Math.max(n, 2 * this.reasm.length));
    return this.reasm;
  }

  /** Received frames on RX queue `pair` (copies). */
  receive(pair = 0): Uint8Array[] {
    return this.receiveWithHeaders(pair).map((r) => r.frame);
  }

  /** Received frames on RX queue `pair` with their 12-byte virtio_net_hdr (copies). */
  receiveWithHeaders(pair = 0): { frame: Uint8Array; hdr: Uint8Array }[] {
    const out: { frame: Uint8Array; hdr: Uint8Array }[] = [];
    const ram = this.env.ram;
    this.drain((f, h) => out.push({ frame: f.slice(), hdr: h < 0 ? this.lastHeader.slice() : ram.slice(h, h + HDR) }), pair);
    return out;
  }

  /**
   * Sends a control command (`class`, `cmd`, payload) on the control queue and returns the ack
   * byte (0 = OK, 1 = ERR), or -1 when there is no control queue or the device did not answer.
   */
  ctrl(cls: number, cmd: number, payload: Uint8Array): number {
    const c = this.ctrlq;
    if (c === undefined || payload.length > 4000) return -1;
    const ram = this.env.ram;
    ram[c.buf] = cls;
    ram[c.buf + 1] = cmd;
    ram.set(payload, c.buf + 2);
    const ack = c.buf + 4032;
    ram[ack] = 0xff;
    if (c.ring.add([c.buf, ack], [2 + payload.length, 1], [false, true]) < 0) return -1;
    const maxPairs = this.has(NET_F.MQ) ? Math.max(1, this.cfg(8, 2)) : 1;
    this.kick(2 * maxPairs, c.ring, true);
    for (let i = 0; i < 1000; i++) if (c.ring.getUsed()) return ram[ack] === 0xff ? -1 : ram[ack]!;
    return -1;
  }

  /** The ISR status register (read clears it). */
  readIsr(): number {
    return this.env.fn.barRead(this.c.isr.bar, this.c.isr.offset, 1);
  }
}
