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
 * The device-status lifecycle follows virtio 1.2 sections 2.1 and 3.1: the driver only adds status
 * bits (a write that clears one, other than writing 0 to reset, is a guest error: NEEDS_RESET and
 * nothing changes); FEATURES_OK is refused for features not offered or inconsistent; DRIVER_OK
 * needs FEATURES_OK. Feature writes after FEATURES_OK and queue configuration outside
 * FEATURES_OK..DRIVER_OK are ignored; an MSI-X vector beyond the table reads back NO_VECTOR.
 * A guest error in a queue sets NEEDS_RESET and raises a configuration interrupt; nothing throws
 * out of an access.
 *
 * Activity ({@link VirtioPciTransport.setActivity}): while not running, interrupts are held
 * (coalesced per vector) and sent on return to running; while stopped, register writes are
 * dropped and ISR reads do not clear it. Queue notifications reach the device, which latches them.
 * @module
 */
import { addMsix } from "../../pci/caps/msix.js";
import { addPcie } from "../../pci/caps/pcie.js";
import { addVendorCap } from "../../pci/caps/vendor.js";
import type { AccessSize, BarHandler } from "../../pci/function.js";
import { PciFunction } from "../../pci/function.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import type { Activity } from "../../state/migration.js";
import { PackedQueue } from "./packed-queue.js";
import { NO_VECTOR, legalSize } from "./queue-state.js";
import { SplitQueue } from "./split-queue.js";
import {
  STATUS, VALID_STATUS_BITS, VIRTIO_F, featureProblem, hasBit, parseTransportState, type VirtioTransportState,
} from "./transport-state.js";
import { VirtqueueError, type QueueDirection, type Virtqueue } from "./virtqueue.js";

export { NO_VECTOR } from "./queue-state.js";
export { STATUS, VALID_STATUS_BITS, VIRTIO_F, type VirtioTransportState } from "./transport-state.js";

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
  /** Whether the device is in NEEDS_RESET (it must not touch the queues). */
  failed(): boolean;
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
  /**
   * DRIVER_OK: the device may use the queues. `restored` is true when a saved state brought the
   * device back live (it then asks its backend for nothing until it is attached and running).
   */
  activate(ctx: VirtioContext, restored?: boolean): void;
  /** The device is not live (a restored state without DRIVER_OK); its own state is kept. */
  deactivate?(): void;
  /** The driver kicked queue `i`. */
  queueNotify(i: number): void;
  /** Device reset (device_status = 0, FLR). */
  reset(): void;
  /** What queue `i`'s chains must hold under the negotiated `features` (default "any"); the queue enforces it. */
  queueDirection?(i: number, features: bigint): QueueDirection;
  /** The device's own rules for a feature set (spec dependencies): a reason to refuse it, or undefined. */
  checkFeatures?(features: bigint): string | undefined;
}

const NOTIFY_MULT = 4;

/** Counters of the transport. */
export interface VirtioTransportCounters {
  notifies: number;
  /** Interrupts sent (held ones count when they are sent). */
  interrupts: number;
  guestErrors: number;
  /** Register writes dropped because the device was stopped. */
  frozenWrites: number;
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
  readonly counters: VirtioTransportCounters = { notifies: 0, interrupts: 0, guestErrors: 0, frozenWrites: 0 };
  /** MSI-X table entries (one per queue plus the configuration vector). */
  readonly msixVectors: number;
  private activityNow: Activity = "running";
  /** Interrupts raised while not running: MSI-X vectors (coalesced) and INTx ISR bits. */
  private pendingVectors = new Set<number>();
  private pendingIsr = 0;

  constructor(readonly device: VirtioDevice) {
    this.queues = device.queueSizes.map((n, i) => this.makeQueue(n, i, false, 0n));
    this.msixVectors = this.queues.length + 1;
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
    addMsix(fn, { vectors: this.msixVectors, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 });
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
    this.pendingVectors.clear();
    this.pendingIsr = 0;
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
    q.eventIdx = hasBit(features, VIRTIO_F.EVENT_IDX);
    q.indirect = hasBit(features, VIRTIO_F.INDIRECT_DESC);
    return q;
  }

  private get packed(): boolean {
    return hasBit(this.driverFeatures, VIRTIO_F.RING_PACKED);
  }

  /** What the data path may do now (see {@link VirtioPciTransport.setActivity}). */
  get activity(): Activity {
    return this.activityNow;
  }

  /**
   * Sets the activity. Not running: interrupts are held (one per vector) and INTx is not raised;
   * stopped also drops register writes (counted) and keeps the ISR on read. Back to running, the
   * held interrupts are sent.
   */
  setActivity(a: Activity): void {
    this.activityNow = a;
    if (a !== "running") return;
    const vectors = [...this.pendingVectors];
    this.pendingVectors.clear();
    const isr = this.pendingIsr;
    this.pendingIsr = 0;
    for (const v of vectors) {
      this.counters.interrupts++;
      this.fn.notify(v);
    }
    if (isr !== 0) this.raise(NO_VECTOR, isr);
  }

  private get q(): Virtqueue | undefined {
    return this.queues[this.queueSelect];
  }

  private bar4Read(off: number, size: AccessSize): number {
    if (off < 0x1000) return this.commonRead(off, size);
    if (off < 0x2000) {
      if (off !== 0x1000) return 0;
      const v = this.isr;
      if (this.activityNow === "stopped") return v;
      this.isr = 0;
      this.fn.setIntx(false);
      return v;
    }
    if (off < 0x3000) return off - 0x2000 < this.device.configSize ? this.device.configRead(off - 0x2000, size) : 0;
    return 0;
  }

  private bar4Write(off: number, size: AccessSize, value: number): void {
    if (this.activityNow === "stopped" && off < 0x3000) {
      this.counters.frozenWrites++;
      return;
    }
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

  /** Queue configuration is accepted between FEATURES_OK and DRIVER_OK (virtio 1.2 3.1.1), on a queue not yet enabled. */
  private configurable(q: Virtqueue | undefined): q is Virtqueue {
    return q !== undefined && !q.ready && (this.status & (STATUS.FEATURES_OK | STATUS.DRIVER_OK)) === STATUS.FEATURES_OK;
  }

  /** An MSI-X vector as the device maps it: beyond the table it reads back NO_VECTOR (virtio 1.2 4.1.4.3). */
  private mapVector(v: number): number {
    return v < this.msixVectors ? v : NO_VECTOR;
  }

  private commonWrite(off: number, size: AccessSize, value: number): void {
    const q = this.q;
    const setAddr = (field: "desc" | "driver" | "device", hi: boolean): void => {
      if (!this.configurable(q)) return;
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
      case 0x10: this.configVector = this.mapVector(value & 0xffff); return;
      case 0x14: return this.writeStatus(value & 0xff);
      case 0x16: this.queueSelect = value & 0xffff; return;
      case 0x18: if (this.configurable(q)) q.size = value & 0xffff; return;
      case 0x1a: if (q !== undefined) q.msixVector = this.mapVector(value & 0xffff); return;
      case 0x1c:
        if (this.configurable(q) && (value & 1) === 1) {
          try {
            q.validate();
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
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const have = this.status & VALID_STATUS_BITS;
    const want = v & VALID_STATUS_BITS;
    const cleared = have & ~want;
    if (cleared !== 0) {
      // The driver never clears a bit but by a reset (virtio 1.2 2.1.1): a guest error.
      this.fail(`device_status write clears bits 0x${cleared.toString(16)}`);
      return;
    }
    const adding = want & ~have;
    if ((adding & STATUS.FEATURES_OK) !== 0) {
      // FEATURES_OK stays clear for features not offered, without VERSION_1, or inconsistent.
      if (featureProblem(this.driverFeatures, this.device.features, (f) => this.device.checkFeatures?.(f)) !== undefined) {
        this.status |= adding & ~STATUS.FEATURES_OK & ~STATUS.DRIVER_OK;
        return;
      }
    }
    if ((adding & STATUS.DRIVER_OK) !== 0 && (want & STATUS.FEATURES_OK) === 0) return;
    this.status |= adding;
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
      failed: () => (this.status & STATUS.NEEDS_RESET) !== 0,
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
    if (this.activityNow !== "running") {
      if (this.fn.msix?.enabled === true) {
        if (vector !== NO_VECTOR) this.pendingVectors.add(vector);
      } else this.pendingIsr |= isrBit;
      return;
    }
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
    const st: VirtioTransportState = {
      status: this.status,
      driverFeatures: this.driverFeatures.toString(16),
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      configVector: this.configVector,
      configGeneration: this.configGeneration,
      isr: this.isr,
      queues: this.queues.map((q) => q.save()),
      pendingVectors: [...this.pendingVectors],
      pendingIsr: this.pendingIsr,
    };
    if (this.lastError !== undefined) st.lastError = this.lastError.slice(0, 200);
    return st;
  }

  /**
   * Parses a saved transport (current form) against this transport's queues and MSI-X table,
   * with `offered` the features the device offers in the same saved state.
   * @throws StateError naming the field
   */
  parseState(u: unknown, path: string, offered: bigint): VirtioTransportState {
    return parseTransportState(u, path, {
      queueSizes: this.device.queueSizes,
      msixVectors: this.msixVectors,
      offered,
      checkFeatures: (f) => this.device.checkFeatures?.(f),
    });
  }

  /**
   * Applies a state from {@link VirtioPciTransport.parseState}: fresh queues of the saved layout,
   * then the registers; a live device is activated again. Never throws.
   */
  restore(s: VirtioTransportState): void {
    const features = BigInt(`0x${s.driverFeatures}`);
    s.queues.forEach((qs, i) => {
      const q = this.makeQueue(this.device.queueSizes[i]!, i, qs.layout === "packed", features);
      (q.restore as (x: typeof qs) => void)(qs);
      this.queues[i] = q;
    });
    this.status = s.status;
    this.driverFeatures = features;
    this.deviceFeatureSelect = s.deviceFeatureSelect;
    this.driverFeatureSelect = s.driverFeatureSelect;
    this.queueSelect = s.queueSelect;
    this.configVector = s.configVector;
    this.configGeneration = s.configGeneration;
    this.isr = s.isr;
    this.pendingVectors = new Set(s.pendingVectors);
    this.pendingIsr = s.pendingIsr;
    this.lastError = s.lastError;
    if ((this.status & STATUS.DRIVER_OK) !== 0) this.device.activate(this.context(), true);
    else this.device.deactivate?.();
  }
}
