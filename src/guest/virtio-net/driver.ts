/**
 * A simulated virtio-net guest driver, written from the virtio 1.2 specification (sections 4.1
 * and 5.1), for in-process tests and benchmarks: it walks the PCI capability list for the virtio
 * structures, negotiates features, sets up split rings (rx0, tx0 and, when negotiated, the control
 * queue), keeps receive buffers posted, sends and receives frames with the 12-byte
 * `virtio_net_hdr`, and issues control commands.
 *
 * Split ring only for now (no packed ring in the device yet), one queue pair.
 * @module
 */
import type { PciFunction } from "../../pci/function.js";
import type { DmaSpace } from "../../pci/interfaces.js";

/** Guest memory the driver allocates its rings and buffers in. */
export interface DriverMemory {
  readonly bytes: Uint8Array;
  /** Base guest-physical address of `bytes`. */
  readonly base: number;
}

/** Driver options. */
export interface VirtioNetDriverOptions {
  /** Queue size (power of two). Default 256. */
  queueSize?: number;
  /** Features the driver is willing to use (default: VERSION_1, MRG_RXBUF, CTRL_VQ, CTRL_RX, MAC, STATUS). */
  want?: bigint;
  /** Receive buffer size. Default 2048. */
  rxBufSize?: number;
}

/** The device did not behave as the specification requires. */
export class VirtioDriverError extends Error {
  override readonly name = "VirtioDriverError";
}

const VERSION_1 = 1n << 32n;
const F_MRG = 1n << 15n;
const F_CTRL_VQ = 1n << 17n;
const F_MQ = 1n << 22n;
const DEFAULT_WANT = VERSION_1 | F_MRG | F_CTRL_VQ | (1n << 18n) | (1n << 5n) | (1n << 16n);
const HDR = 12;

interface Ring {
  index: number;
  size: number;
  desc: number;
  avail: number;
  used: number;
  notifyOff: number;
  /** Next free descriptor (descriptors are used round-robin, one per buffer). */
  nextDesc: number;
  lastUsed: number;
  inFlight: number;
  /** Buffer address per descriptor. */
  bufs: number[];
}

/** The driver. Create it, then {@link VirtioNetDriver.init}. */
export class VirtioNetDriver {
  readonly queueSize: number;
  private readonly view: DataView;
  private readonly mem: DmaSpace;
  private heap: number;
  private commonOff = 0;
  private notifyBase = 0;
  private notifyMult = 0;
  private deviceOff = 0;
  private bar = 0;
  features = 0n;
  private rx!: Ring;
  private tx!: Ring;
  private ctrlq: Ring | undefined;
  private readonly rxBufSize: number;
  /** Frames received, oldest first (drained by {@link VirtioNetDriver.receive}). */
  private readonly inbox: Uint8Array[] = [];

  constructor(
    private readonly fn: PciFunction,
    private readonly memory: DriverMemory,
    private readonly opts: VirtioNetDriverOptions = {},
  ) {
    this.queueSize = opts.queueSize ?? 256;
    this.rxBufSize = opts.rxBufSize ?? 2048;
    this.view = new DataView(memory.bytes.buffer, memory.bytes.byteOffset, memory.bytes.byteLength);
    this.mem = {
      read: (a, l) => (a >= memory.base && a + l <= memory.base + memory.bytes.length ? memory.bytes.subarray(a - memory.base, a - memory.base + l) : undefined),
      write: (a, d) => (a >= memory.base && a + d.length <= memory.base + memory.bytes.length ? (memory.bytes.set(d, a - memory.base), true) : false),
    };
    this.heap = memory.base;
  }

  /** Guest memory as a DmaSpace (to attach the device to). */
  get dma(): DmaSpace {
    return this.mem;
  }

  private alloc(size: number, align: number): number {
    this.heap = Math.ceil(this.heap / align) * align;
    const a = this.heap;
    this.heap += size;
    if (this.heap > this.memory.base + this.memory.bytes.length) throw new VirtioDriverError("out of driver memory");
    return a;
  }

  private w(off: number, size: 1 | 2 | 4, v: number): void {
    this.fn.barWrite(this.bar, off, size, v);
  }

  private r(off: number, size: 1 | 2 | 4): number {
    return this.fn.barRead(this.bar, off, size);
  }

  /** Finds the virtio vendor capabilities in config space. */
  private probe(): void {
    let found = 0;
    for (let p = this.fn.configRead(0x34, 1) & 0xfc, n = 0; p !== 0 && n < 48; p = this.fn.configRead(p + 1, 1) & 0xfc, n++) {
      if (this.fn.configRead(p, 1) !== 0x09) continue;
      const type = this.fn.configRead(p + 3, 1);
      const bar = this.fn.configRead(p + 4, 1);
      const off = this.fn.configRead(p + 8, 4);
      if (type === 1) (this.commonOff = off), (this.bar = bar), (found |= 1);
      if (type === 2) (this.notifyBase = off), (this.notifyMult = this.fn.configRead(p + 16, 4)), (found |= 2);
      if (type === 4) (this.deviceOff = off), (found |= 4);
    }
    if (found !== 7) throw new VirtioDriverError("virtio capabilities missing (common, notify or device config)");
  }

  private setupQueue(index: number): Ring {
    const c = this.commonOff;
    this.w(c + 0x16, 2, index);
    const max = this.r(c + 0x18, 2);
    if (max === 0) throw new VirtioDriverError(`queue ${index} does not exist`);
    const size = Math.min(max, this.queueSize);
    this.w(c + 0x18, 2, size);
    const desc = this.alloc(16 * size, 16);
    const avail = this.alloc(6 + 2 * size, 2);
    const used = this.alloc(6 + 8 * size, 4);
    this.memory.bytes.fill(0, desc - this.memory.base, this.heap - this.memory.base);
    this.w(c + 0x20, 4, desc);
    this.w(c + 0x24, 4, 0);
    this.w(c + 0x28, 4, avail);
    this.w(c + 0x2c, 4, 0);
    this.w(c + 0x30, 4, used);
    this.w(c + 0x34, 4, 0);
    const notifyOff = this.r(c + 0x1e, 2);
    this.w(c + 0x1c, 2, 1);
    return { index, size, desc, avail, used, notifyOff, nextDesc: 0, lastUsed: 0, inFlight: 0, bufs: new Array<number>(size).fill(0) };
  }

  /** Resets the device, negotiates features and brings up the queues. @throws VirtioDriverError */
  init(): void {
    this.probe();
    this.fn.configWrite(0x04, 2, this.fn.configRead(0x04, 2) | 0x6);
    const c = this.commonOff;
    this.w(c + 0x14, 1, 0);
    this.w(c + 0x14, 1, 1 | 2);
    let offered = 0n;
    for (const sel of [0, 1]) {
      this.w(c + 0x00, 4, sel);
      offered |= BigInt(this.r(c + 0x04, 4) >>> 0) << BigInt(32 * sel);
    }
    const want = this.opts.want ?? DEFAULT_WANT;
    this.features = offered & want & ~F_MQ;
    if ((this.features & VERSION_1) === 0n) throw new VirtioDriverError("device does not offer VERSION_1");
    for (const sel of [0, 1]) {
      this.w(c + 0x08, 4, sel);
      this.w(c + 0x0c, 4, Number((this.features >> BigInt(32 * sel)) & 0xffffffffn));
    }
    this.w(c + 0x14, 1, 1 | 2 | 8);
    if ((this.r(c + 0x14, 1) & 8) === 0) throw new VirtioDriverError("device refused the features (FEATURES_OK clear)");
    this.rx = this.setupQueue(0);
    this.tx = this.setupQueue(1);
    if ((this.features & F_CTRL_VQ) !== 0n) this.ctrlq = this.setupQueue(2);
    for (let i = 0; i < this.rx.size; i++) this.rx.bufs[i] = this.alloc(this.rxBufSize, 64);
    for (let i = 0; i < this.tx.size; i++) this.tx.bufs[i] = this.alloc(HDR + 65536, 64);
    if (this.ctrlq !== undefined) for (let i = 0; i < this.ctrlq.size; i++) this.ctrlq.bufs[i] = this.alloc(4096, 64);
    this.w(c + 0x14, 1, 1 | 2 | 8 | 4);
    this.refillRx();
  }

  /** The device's MAC from its configuration. */
  mac(): Uint8Array {
    return Uint8Array.from({ length: 6 }, (_, i) => this.r(this.deviceOff + i, 1));
  }

  private notify(q: Ring): void {
    this.w(this.notifyBase + q.notifyOff * this.notifyMult, 2, q.index);
  }

  private publish(q: Ring, head: number): void {
    const idx = this.view.getUint16(q.avail - this.memory.base + 2, true);
    this.view.setUint16(q.avail - this.memory.base + 4 + 2 * (idx % q.size), head, true);
    this.view.setUint16(q.avail - this.memory.base + 2, (idx + 1) & 0xffff, true);
    q.inFlight++;
  }

  private putDesc(q: Ring, i: number, addr: number, len: number, flags: number, next: number): void {
    const o = q.desc - this.memory.base + 16 * i;
    this.view.setUint32(o, addr, true);
    this.view.setUint32(o + 4, 0, true);
    this.view.setUint32(o + 8, len, true);
    this.view.setUint16(o + 12, flags, true);
    this.view.setUint16(o + 14, next, true);
  }

  /** Posts receive buffers in every free descriptor. */
  refillRx(): void {
    const q = this.rx;
    let posted = 0;
    while (q.inFlight < q.size) {
      const i = q.nextDesc;
      q.nextDesc = (i + 1) % q.size;
      this.putDesc(q, i, q.bufs[i]!, this.rxBufSize, 2, 0);
      this.publish(q, i);
      posted++;
    }
    if (posted > 0) this.notify(q);
  }

  /** Reclaims used entries of `q`; calls `each(id, len)`. */
  private reap(q: Ring, each?: (id: number, len: number) => void): number {
    const usedIdx = this.view.getUint16(q.used - this.memory.base + 2, true);
    let n = 0;
    while (q.lastUsed !== usedIdx) {
      const e = q.used - this.memory.base + 4 + 8 * (q.lastUsed % q.size);
      each?.(this.view.getUint32(e, true), this.view.getUint32(e + 4, true));
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
      q.inFlight--;
      n++;
    }
    return n;
  }

  /**
   * Queues `frames` on tx0 (each as one descriptor: header + frame), then notifies once. Returns how
   * many were queued (fewer when the ring is full; call {@link VirtioNetDriver.reclaimTx}).
   */
  send(frames: readonly Uint8Array[], hdr?: Uint8Array): number {
    const q = this.tx;
    let n = 0;
    for (const f of frames) {
      if (q.inFlight >= q.size) break;
      const i = q.nextDesc;
      q.nextDesc = (i + 1) % q.size;
      const at = q.bufs[i]! - this.memory.base;
      if (hdr !== undefined) this.memory.bytes.set(hdr.subarray(0, HDR), at);
      else this.memory.bytes.fill(0, at, at + HDR);
      this.memory.bytes.set(f, at + HDR);
      this.putDesc(q, i, q.bufs[i]!, HDR + f.length, 0, 0);
      this.publish(q, i);
      n++;
    }
    if (n > 0) this.notify(q);
    return n;
  }

  /** Reclaims transmitted buffers; returns how many. */
  reclaimTx(): number {
    return this.reap(this.tx);
  }

  /** Collects received frames (merging MRG_RXBUF buffers), reposts buffers, and returns the frames. */
  receive(): Uint8Array[] {
    const parts: Array<{ id: number; len: number }> = [];
    this.reap(this.rx, (id, len) => parts.push({ id, len }));
    for (let k = 0; k < parts.length; ) {
      const first = parts[k]!;
      const base = this.rx.bufs[first.id]! - this.memory.base;
      const count = (this.features & F_MRG) !== 0n ? Math.max(1, this.view.getUint16(base + 10, true)) : 1;
      const chunks: Uint8Array[] = [this.memory.bytes.slice(base + HDR, base + first.len)];
      for (let j = 1; j < count && k + j < parts.length; j++) {
        const p = parts[k + j]!;
        const b = this.rx.bufs[p.id]! - this.memory.base;
        chunks.push(this.memory.bytes.slice(b, b + p.len));
      }
      const total = chunks.reduce((s, c) => s + c.length, 0);
      const frame = new Uint8Array(total);
      let o = 0;
      for (const c of chunks) (frame.set(c, o), (o += c.length));
      this.inbox.push(frame);
      k += count;
    }
    if (parts.length > 0) this.refillRx();
    return this.inbox.splice(0);
  }

  /**
   * Sends a control command and returns the device's ack (0 = OK, 1 = ERR).
   * @throws VirtioDriverError without a control queue, or when the device does not answer.
   */
  ctrl(cls: number, cmd: number, data: Uint8Array): number {
    const q = this.ctrlq;
    if (q === undefined) throw new VirtioDriverError("no control queue (CTRL_VQ not negotiated)");
    const i = q.nextDesc;
    const j = (i + 1) % q.size;
    q.nextDesc = (i + 2) % q.size;
    const cmdAddr = q.bufs[i]!;
    const ackAddr = q.bufs[j]!;
    this.memory.bytes.set([cls, cmd, ...data], cmdAddr - this.memory.base);
    this.memory.bytes[ackAddr - this.memory.base] = 0xff;
    this.putDesc(q, i, cmdAddr, 2 + data.length, 1, j);
    this.putDesc(q, j, ackAddr, 1, 2, 0);
    this.publish(q, i);
    this.notify(q);
    if (this.reap(q) !== 1) throw new VirtioDriverError("control command not answered");
    return this.memory.bytes[ackAddr - this.memory.base]!;
  }
}
