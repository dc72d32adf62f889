/**
 * The modern virtio-pci transport (virtio 1.2 section 4.1): a PCI Express function 1AF4:(0x1040 +
 * device id), revision 1, whose vendor capabilities point at the common, notify, ISR and
 * device-config structures in BAR 4 (64-bit, 16 KiB), with MSI-X (table and PBA in BAR 1).
 *
 * | BAR 4 offset | structure |
 * | --- | --- |
 * | 0x0000 | common configuration |
 * | 0x1000 | ISR status (read clears, lowers INTx) |
 * | 0x2000 | device configuration |
 * | 0x3000 | notifications: queue `i` at 0x3000 + 4 × i (notify_off_multiplier 4) |
 *
 * The device-status lifecycle is data ({@link VALID_STATUS_BITS}, FEATURES_OK re-checked). A guest
 * error in a queue sets NEEDS_RESET and raises a configuration interrupt; nothing throws out of an
 * access. Writing 0 to device_status resets the device.
 * @module
 */
import { addMsix } from "../../pci/caps/msix.js";
import { addPcie } from "../../pci/caps/pcie.js";
import { addVendorCap } from "../../pci/caps/vendor.js";
import type { AccessSize, BarHandler } from "../../pci/function.js";
import { PciFunction } from "../../pci/function.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { PackedQueue } from "./packed-queue.js";
import { SplitQueue } from "./split-queue.js";
import { VirtqueueError, type QueueDirection, type Virtqueue, type VirtqueueState } from "./virtqueue.js";

/** Device status bits. */
export const STATUS = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, NEEDS_RESET: 0x40, FAILED: 0x80 } as const;
/** Bits a driver may set. */
export const VALID_STATUS_BITS = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK | STATUS.FEATURES_OK | STATUS.FAILED;

/** Transport feature bits. */
export const VIRTIO_F = { INDIRECT_DESC: 28, EVENT_IDX: 29, VERSION_1: 32, RING_PACKED: 34 } as const;

/** "No vector". */
export const NO_VECTOR = 0xffff;

/** What a transport gives an active device. */
export interface VirtioContext {
  readonly queues: readonly Virtqueue[];
  /** Guest memory (fails while Bus Master is off). */
  readonly mem: DmaSpace;
  /** The negotiated features. */
  readonly features: bigint;
  /** Signals used buffers on queue `i` (honours EVENT_IDX / NO_INTERRUPT). */
  signalQueue(i: number): void;
  /** A configuration change interrupt. */
  signalConfig(): void;
  /** A guest error: NEEDS_RESET and a configuration interrupt. */
  fail(reason: string): void;
}

/** A virtio device behind the transport. */
export interface VirtioDevice {
  /** virtio device ID (1 = network). */
  readonly deviceId: number;
  /** Features the device offers (transport bits included). */
  readonly features: bigint;
  /** Maximum size of each queue. */
  readonly queueSizes: readonly number[];
  /** Bytes of device configuration. */
  readonly configSize: number;
  configRead(off: number, size: AccessSize): number;
  configWrite(off: number, size: AccessSize, value: number): void;
  /** DRIVER_OK: the device may use the queues. */
  activate(ctx: VirtioContext): void;
  /** The driver kicked queue `i`. */
  queueNotify(i: number): void;
  /** Device reset (device_status = 0, FLR). */
  reset(): void;
  /** What queue `i`'s chains must hold under the negotiated `features` (default "any"); the queue enforces it. */
  queueDirection?(i: number, features: bigint): QueueDirection;
}

/** Saved transport state. */
export interface VirtioTransportState {
  version: 1;
  status: number;
  driverFeatures: string;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  queueSelect: number;
  configVector: number;
  configGeneration: number;
  isr: number;
  queues: VirtqueueState[];
}

const NOTIFY_MULT = 4;

/** Counters of the transport. */
export interface VirtioTransportCounters {
  notifies: number;
  interrupts: number;
  guestErrors: number;
}

/** The transport. `fn` is the PCI function to attach to a bus. */
export class VirtioPciTransport {
  readonly fn: PciFunction;
  /** The queues; their layout follows the negotiated features (packed with VIRTIO_F_RING_PACKED). */
  readonly queues: Virtqueue[];
  status = 0;
  private driverFeatures = 0n;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private queueSelect = 0;
  private configVector = NO_VECTOR;
  private configGeneration = 0;
  private isr = 0;
  /** Why the device last went to NEEDS_RESET. */
  lastError: string | undefined;
  readonly counters: VirtioTransportCounters = { notifies: 0, interrupts: 0, guestErrors: 0 };

  constructor(readonly device: VirtioDevice) {
    this.queues = device.queueSizes.map((n, i) => this.makeQueue(n, i, false, 0n));
    const bar4: BarHandler = { read: (o, s) => this.bar4Read(o, s), write: (o, s, v) => this.bar4Write(o, s, v) };
    const fn = new PciFunction({
      vendorId: 0x1af4,
      deviceId: 0x1040 + device.deviceId,
      revision: 1,
      classCode: device.deviceId === 1 ? 0x020000 : 0xff0000,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      interruptPin: 1,
      express: true,
      bars: [
        { index: 1, kind: "mem32", size: 0x1000 },
        { index: 4, kind: "mem64", size: 0x4000, prefetchable: true, handler: bar4 },
      ],
    });
    const cap = (type: number, offset: number, length: number, extra?: number): void => {
      const body = new Uint8Array(extra === undefined ? 14 : 18);
      const v = new DataView(body.buffer);
      body[0] = body.length + 2; // cap_len
      body[1] = type;
      body[2] = 4; // bar
      v.setUint32(6, offset, true);
      v.setUint32(10, length, true);
      if (extra !== undefined) v.setUint32(14, extra, true);
      addVendorCap(fn, body);
    };
    cap(1, 0x0000, 0x3c);
    cap(3, 0x1000, 0x4);
    cap(4, 0x2000, Math.max(4, device.configSize));
    cap(2, 0x3000, NOTIFY_MULT * Math.max(1, this.queues.length), NOTIFY_MULT);
    addMsix(fn, { vectors: this.queues.length + 1, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 });
    addPcie(fn, { type: "endpoint", flr: true });
    fn.onReset = () => this.reset();
    fn.realize();
    this.fn = fn;
  }

  private reset(): void {
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = this.driverFeatureSelect = this.queueSelect = 0;
    this.configVector = NO_VECTOR;
    this.isr = 0;
    this.setLayout(false);
    this.fn.setIntx(false);
    this.device.reset();
  }

  /** Gives every queue the ring layout the features select (fresh queues, power-on state). */
  private setLayout(packed: boolean): void {
    this.device.queueSizes.forEach((n, i) => {
      this.queues[i] = this.makeQueue(n, i, packed, this.driverFeatures);
    });
  }

  private makeQueue(size: number, i: number, packed: boolean, features: bigint): Virtqueue {
    const q: Virtqueue = packed ? new PackedQueue(size) : new SplitQueue(size);
    q.direction = this.device.queueDirection?.(i, features) ?? "any";
    return q;
  }

  private get packed(): boolean {
    return ((this.driverFeatures >> BigInt(VIRTIO_F.RING_PACKED)) & 1n) === 1n;
  }

  private get q(): Virtqueue | undefined {
    return this.queues[this.queueSelect];
  }

  private bar4Read(off: number, size: AccessSize): number {
    if (off < 0x1000) return this.commonRead(off, size);
    if (off < 0x2000) {
      if (off !== 0x1000) return 0;
      const v = this.isr;
      this.isr = 0;
      this.fn.setIntx(false);
      return v;
    }
    if (off < 0x3000) return off - 0x2000 < this.device.configSize ? this.device.configRead(off - 0x2000, size) : 0;
    return 0;
  }

  private bar4Write(off: number, size: AccessSize, value: number): void {
    if (off < 0x1000) return this.commonWrite(off, size, value);
    if (off >= 0x2000 && off < 0x3000) {
      if (off - 0x2000 < this.device.configSize) this.device.configWrite(off - 0x2000, size, value);
      return;
    }
    if (off >= 0x3000) {
      const i = (off - 0x3000) / NOTIFY_MULT;
      if (Number.isInteger(i) && i < this.queues.length) this.notify(i);
    }
  }

  private commonReg(o: number): number {
    const q = this.q;
    switch (o) {
      case 0x00: return this.deviceFeatureSelect;
      case 0x04: return this.deviceFeatureSelect < 2 ? Number((this.device.features >> BigInt(32 * this.deviceFeatureSelect)) & 0xffffffffn) : 0;
      case 0x08: return this.driverFeatureSelect;
      case 0x0c: return this.driverFeatureSelect < 2 ? Number((this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & 0xffffffffn) : 0;
      case 0x10: return this.configVector;
      case 0x12: return this.queues.length;
      case 0x14: return this.status;
      case 0x15: return this.configGeneration & 0xff;
      case 0x16: return this.queueSelect;
      case 0x18: return q?.size ?? 0;
      case 0x1a: return q?.msixVector ?? NO_VECTOR;
      case 0x1c: return q?.ready === true ? 1 : 0;
      case 0x1e: return q === undefined ? 0 : this.queueSelect;
      case 0x20: return (q?.desc ?? 0) % 0x1_0000_0000;
      case 0x24: return Math.floor((q?.desc ?? 0) / 0x1_0000_0000);
      case 0x28: return (q?.driver ?? 0) % 0x1_0000_0000;
      case 0x2c: return Math.floor((q?.driver ?? 0) / 0x1_0000_0000);
      case 0x30: return (q?.device ?? 0) % 0x1_0000_0000;
      case 0x34: return Math.floor((q?.device ?? 0) / 0x1_0000_0000);
      default: return 0;
    }
  }

  /**
   * Reads common configuration byte by byte from the registers that hold each byte, so any access
   * width works (v86 splits a 16-bit MMIO read into two byte reads).
   */
  private commonRead(off: number, size: AccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = off + i;
      const start = o >= 0x14 && o < 0x16 ? o : o < 0x10 || o >= 0x20 ? o & ~3 : o & ~1;
      v = v * 256 + ((this.commonReg(start) >>> (8 * (o - start))) & 0xff);
    }
    return v >>> 0;
  }

  private commonWrite(off: number, size: AccessSize, value: number): void {
    const q = this.q;
    const live = (this.status & STATUS.DRIVER_OK) !== 0;
    const setAddr = (field: "desc" | "driver" | "device", hi: boolean): void => {
      if (q === undefined || q.ready) return;
      const cur = q[field];
      const lo = cur % 0x1_0000_0000;
      const h = Math.floor(cur / 0x1_0000_0000);
      q[field] = hi ? lo + (value >>> 0) * 0x1_0000_0000 : h * 0x1_0000_0000 + (value >>> 0);
    };
    switch (off) {
      case 0x00: this.deviceFeatureSelect = value >>> 0; return;
      case 0x08: this.driverFeatureSelect = value >>> 0; return;
      case 0x0c: {
        if ((this.status & STATUS.FEATURES_OK) !== 0 || this.driverFeatureSelect > 1) return;
        const sh = BigInt(32 * this.driverFeatureSelect);
        this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << sh)) | (BigInt(value >>> 0) << sh);
        return;
      }
      case 0x10: this.configVector = value & 0xffff; return;
      case 0x14: return this.writeStatus(value & 0xff);
      case 0x16: this.queueSelect = value & 0xffff; return;
      case 0x18: if (q !== undefined && !q.ready) q.size = value & 0xffff; return;
      case 0x1a: if (q !== undefined) q.msixVector = value & 0xffff; return;
      case 0x1c:
        if (q !== undefined && (value & 1) === 1 && !q.ready) {
          try {
            q.validate();
            q.eventIdx = (this.driverFeatures >> BigInt(VIRTIO_F.EVENT_IDX)) & 1n ? true : false;
            q.ready = true;
          } catch (e) {
            this.fail((e as Error).message);
          }
        }
        return;
      case 0x20: return setAddr("desc", false);
      case 0x24: return setAddr("desc", true);
      case 0x28: return setAddr("driver", false);
      case 0x2c: return setAddr("driver", true);
      case 0x30: return setAddr("device", false);
      case 0x34: return setAddr("device", true);
      default:
        void live;
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const next = (this.status & STATUS.NEEDS_RESET) | (v & VALID_STATUS_BITS);
    const adding = next & ~this.status;
    if ((adding & STATUS.FEATURES_OK) !== 0) {
      // FEATURES_OK stays clear if the driver asked for something the device does not offer.
      if ((this.driverFeatures & ~this.device.features) !== 0n || ((this.driverFeatures >> 32n) & 1n) === 0n) {
        this.status = next & ~STATUS.FEATURES_OK;
        return;
      }
    }
    if ((adding & STATUS.DRIVER_OK) !== 0 && (next & STATUS.FEATURES_OK) === 0) return;
    this.status = next;
    if ((adding & STATUS.FEATURES_OK) !== 0) this.setLayout(this.packed);
    if ((adding & STATUS.DRIVER_OK) !== 0) this.device.activate(this.context());
  }

  private context(): VirtioContext {
    return {
      queues: this.queues,
      mem: this.fn.dma,
      features: this.driverFeatures,
      signalQueue: (i) => this.signalQueue(i),
      signalConfig: () => this.signalConfig(),
      fail: (r) => this.fail(r),
    };
  }

  private notify(i: number): void {
    this.counters.notifies++;
    if ((this.status & STATUS.DRIVER_OK) === 0 || (this.status & STATUS.NEEDS_RESET) !== 0) return;
    try {
      this.device.queueNotify(i);
    } catch (e) {
      this.fail(e instanceof VirtqueueError ? e.message : `device error: ${(e as Error).message}`);
    }
  }

  private raise(vector: number, isrBit: number): void {
    this.counters.interrupts++;
    if (this.fn.msix?.enabled === true) {
      if (vector !== NO_VECTOR) this.fn.notify(vector);
      return;
    }
    this.isr |= isrBit;
    this.fn.setIntx(true);
  }

  /** Signals used buffers on queue `i` if the driver wants it. */
  signalQueue(i: number): void {
    const q = this.queues[i];
    if (q === undefined) return;
    let want: boolean;
    try {
      want = q.needsNotification(this.fn.dma);
    } catch (e) {
      return this.fail((e as Error).message);
    }
    if (want) this.raise(q.msixVector, 1);
  }

  /** Raises a configuration change interrupt. */
  signalConfig(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.raise(this.configVector, 2);
  }

  /** A guest error: NEEDS_RESET plus a configuration interrupt (once). */
  fail(reason: string): void {
    this.counters.guestErrors++;
    this.lastError = reason;
    if ((this.status & STATUS.NEEDS_RESET) !== 0) return;
    this.status |= STATUS.NEEDS_RESET;
    this.signalConfig();
  }

  /** Saves the transport (the device and the PCI function save themselves). */
  save(): VirtioTransportState {
    return {
      version: 1,
      status: this.status,
      driverFeatures: this.driverFeatures.toString(16),
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      configVector: this.configVector,
      configGeneration: this.configGeneration,
      isr: this.isr,
      queues: this.queues.map((q) => q.save()),
    };
  }

  /**
   * Restores {@link save}'s output. Everything is validated into fresh queues first, so a corrupt
   * state throws a {@link VirtqueueError} and changes nothing.
   */
  restore(s: VirtioTransportState): void {
    if (typeof s !== "object" || s === null || s.version !== 1 || !Array.isArray(s.queues) || s.queues.length !== this.queues.length) {
      throw new VirtqueueError("bad virtio transport state");
    }
    if (typeof s.driverFeatures !== "string" || !/^[0-9a-f]{1,16}$/.test(s.driverFeatures)) throw new VirtqueueError("bad driver features");
    const nums = [s.status, s.deviceFeatureSelect, s.driverFeatureSelect, s.queueSelect, s.configVector, s.configGeneration, s.isr];
    if (!nums.every((x) => Number.isSafeInteger(x) && x >= 0)) throw new VirtqueueError("bad virtio transport registers");
    const features = BigInt("0x" + s.driverFeatures);
    const packed = ((features >> BigInt(VIRTIO_F.RING_PACKED)) & 1n) === 1n && (s.status & STATUS.FEATURES_OK) !== 0;
    const eventIdx = ((features >> BigInt(VIRTIO_F.EVENT_IDX)) & 1n) === 1n;
    const fresh = this.device.queueSizes.map((n, i) => {
      const q = this.makeQueue(n, i, packed, features);
      q.restore(s.queues[i]!);
      q.eventIdx = eventIdx;
      return q;
    });
    fresh.forEach((q, i) => (this.queues[i] = q));
    this.status = s.status & 0xff;
    this.driverFeatures = features;
    this.deviceFeatureSelect = s.deviceFeatureSelect >>> 0;
    this.driverFeatureSelect = s.driverFeatureSelect >>> 0;
    this.queueSelect = s.queueSelect & 0xffff;
    this.configVector = s.configVector & 0xffff;
    this.configGeneration = s.configGeneration & 0xff;
    this.isr = s.isr & 3;
    if ((this.status & STATUS.DRIVER_OK) !== 0) this.device.activate(this.context());
  }
}
