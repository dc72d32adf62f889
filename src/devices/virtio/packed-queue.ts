/**
 * A packed virtqueue (virtio 1.2 section 2.8, VIRTIO_F_RING_PACKED): one ring of 16-byte
 * descriptors `{ addr: u64, len: u32, id: u16, flags: u16 }` that the driver makes available and
 * the device marks used in place, with a wrap counter on each side.
 *
 * - A descriptor is available when its AVAIL flag equals the device's avail wrap counter and its
 *   USED flag differs from it. A chain is consecutive ring entries linked by NEXT; its buffer ID is
 *   the last descriptor's. An INDIRECT descriptor (alone, no NEXT, only with VIRTIO_F_INDIRECT_DESC)
 *   points at a table of at most the queue size descriptors.
 * - Used: the device writes `{ id, len, flags: AVAIL=USED=used wrap }` at its used position and
 *   advances it by the number of ring entries the buffer took (the driver does the same).
 * - Event suppression: the driver event area (queue_driver) says when the device should interrupt
 *   (ENABLE, DISABLE, or DESC with an offset+wrap when EVENT_IDX is negotiated); the device event
 *   area (queue_device) is where this device tells the driver where to notify (DESC at its next
 *   avail position with EVENT_IDX, ENABLE otherwise).
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import { InflightRing } from "./inflight-ring.js";
import { PACKED_MAX_SIZE, type PackedQueueState } from "./queue-state.js";
import {
  MAX_CHAIN_BYTES, NO_SEGMENTS, RingMemory, VirtqueueError, checkDirection, type QueueDirection, type DescriptorChain, type Virtqueue,
} from "./virtqueue.js";

export { PACKED_MAX_SIZE } from "./queue-state.js";
export type { PackedQueueState } from "./queue-state.js";

/** Packed descriptor flags. */
export const PACKED_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4, AVAIL: 1 << 7, USED: 1 << 15 } as const;
/** Event suppression flags. */
export const RING_EVENT_FLAGS = { ENABLE: 0, DISABLE: 1, DESC: 2 } as const;


/** A packed virtqueue. */
export class PackedQueue extends RingMemory implements Virtqueue {
  readonly layout = "packed";
  size: number;
  ready = false;
  desc = 0;
  driver = 0;
  device = 0;
  msixVector = 0xffff;
  eventIdx = false;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect = false;
  visited = 0;
  direction: QueueDirection = "any";
  /** Next ring position to read, and the wrap counter it expects. */
  nextAvail = 0;
  availWrap = true;
  /** Next ring position to write a used descriptor at, and its wrap counter. */
  nextUsed = 0;
  usedWrap = true;
  /** Ring entries used since the last interrupt (undefined: none yet). */
  private sinceSignal: number | undefined;
  /** Popped, not yet used chains, oldest first: buffer id, ring entries, position popped at. */
  private readonly inflight: InflightRing;

  constructor(readonly maxSize: number) {
    super();
    this.size = Math.min(maxSize, PACKED_MAX_SIZE);
    this.inflight = new InflightRing(this.size);
  }

  reset(): void {
    this.size = Math.min(this.maxSize, PACKED_MAX_SIZE);
    this.ready = false;
    this.desc = this.driver = this.device = 0;
    this.msixVector = 0xffff;
    this.eventIdx = false;
    this.indirect = false;
    this.nextAvail = this.nextUsed = 0;
    this.availWrap = this.usedWrap = true;
    this.sinceSignal = undefined;
    this.inflight.clear();
    this.visited = 0;
  }

  validate(): void {
    const s = this.size;
    if (s === 0 || s > this.maxSize || s > PACKED_MAX_SIZE) throw new VirtqueueError(`bad queue size ${s}`);
    if (this.desc % 16 !== 0 || this.driver % 4 !== 0 || this.device % 4 !== 0) throw new VirtqueueError("misaligned ring");
    if (!RingMemory.ringInRange(this.desc, 16 * s) || !RingMemory.ringInRange(this.driver, 4) || !RingMemory.ringInRange(this.device, 4)) {
      throw new VirtqueueError("ring outside guest memory (at or past 2^53 - 2^32)");
    }
  }

  private flagsAt(mem: DmaSpace, pos: number): number {
    return this.u16(mem, this.desc + 16 * pos + 14);
  }

  private isAvail(flags: number, wrap: boolean): boolean {
    const a = (flags & PACKED_DESC_F.AVAIL) !== 0;
    const u = (flags & PACKED_DESC_F.USED) !== 0;
    return a === wrap && u !== wrap;
  }

  /** Chains available now (walks at most the ring once). */
  pending(mem: DmaSpace): number {
    if (!this.ready) return 0;
    this.bind(mem);
    let pos = this.nextAvail;
    let wrap = this.availWrap;
    let n = 0;
    for (let seen = 0; seen < this.size; seen++) {
      const f = this.flagsAt(mem, pos);
      if (!this.isAvail(f, wrap)) break;
      if ((f & PACKED_DESC_F.NEXT) === 0) n++;
      if (++pos === this.size) {
        pos = 0;
        wrap = !wrap;
      }
    }
    return n;
  }

  popChain(mem: DmaSpace): DescriptorChain | undefined {
    if (!this.ready) return undefined;
    this.bind(mem);
    if (!this.isAvail(this.flagsAt(mem, this.nextAvail), this.availWrap)) return undefined;
    if (this.inflight.length >= this.size) throw new VirtqueueError("more buffers in flight than the queue size");
    const chain: DescriptorChain = { head: 0, readable: NO_SEGMENTS, writable: NO_SEGMENTS, readableLen: 0, writableLen: 0 };
    let pos = this.nextAvail;
    let wrap = this.availWrap;
    let count = 0;
    let total = 0;
    let id = 0;
    for (;;) {
      if (count >= this.size) throw new VirtqueueError("descriptor chain longer than the queue");
      const o = this.readDescriptor(mem, this.desc + 16 * pos);
      const dv = this.dv;
      const flags = dv.getUint16(o + 14, true);
      if (count > 0 && !this.isAvail(flags, wrap)) throw new VirtqueueError("chain continues into a descriptor that is not available");
      count++;
      this.visited++;
      const addr = this.descAddr(dv, o);
      const len = dv.getUint32(o + 8, true);
      id = dv.getUint16(o + 12, true);
      if (++pos === this.size) {
        pos = 0;
        wrap = !wrap;
      }
      if ((flags & PACKED_DESC_F.INDIRECT) !== 0) {
        if (!this.indirect) throw new VirtqueueError("INDIRECT descriptor without VIRTIO_F_INDIRECT_DESC");
        if ((flags & PACKED_DESC_F.NEXT) !== 0 || count > 1) throw new VirtqueueError("indirect descriptor inside a chain");
        this.walkIndirect(mem, addr, len, chain);
        break;
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) throw new VirtqueueError("descriptor chain exceeds 4 GiB");
      this.addSegment(mem, chain, addr, len, (flags & PACKED_DESC_F.WRITE) !== 0);
      if ((flags & PACKED_DESC_F.NEXT) === 0) break;
    }
    checkDirection(chain, this.direction);
    chain.head = id;
    this.inflight.push(id, count, this.nextAvail, this.availWrap); // room: checked above
    this.nextAvail = pos;
    this.availWrap = wrap;
    if (this.eventIdx) this.writeDeviceEvent(mem);
    return chain;
  }

  private walkIndirect(mem: DmaSpace, table: number, len: number, chain: DescriptorChain): void {
    if (len === 0 || len % 16 !== 0 || len / 16 > this.size) throw new VirtqueueError(`indirect table length ${len}`);
    const n = len / 16;
    const t = mem.read(table, len);
    if (t === undefined) throw new VirtqueueError("indirect table outside guest memory");
    const v = new DataView(t.buffer, t.byteOffset, len);
    let total = 0;
    for (let i = 0; i < n; i++) {
      this.visited++;
      const o = 16 * i;
      const addr = this.descAddr(v, o);
      const l = v.getUint32(o + 8, true);
      const flags = v.getUint16(o + 14, true);
      if ((flags & PACKED_DESC_F.INDIRECT) !== 0) throw new VirtqueueError("indirect descriptor inside an indirect table");
      total += l;
      if (total > MAX_CHAIN_BYTES) throw new VirtqueueError("descriptor chain exceeds 4 GiB");
      this.addSegment(mem, chain, addr, l, (flags & PACKED_DESC_F.WRITE) !== 0);
    }
  }

  private writeDeviceEvent(mem: DmaSpace): void {
    const offWrap = this.nextAvail | (this.availWrap ? 0x8000 : 0);
    const v = this.v;
    if (v !== undefined && this.device >= 0 && this.device + 4 <= v.byteLength) {
      v.setUint16(this.device, offWrap, true);
      v.setUint16(this.device + 2, RING_EVENT_FLAGS.DESC, true);
      return;
    }
    this.sv.setUint16(0, offWrap, true);
    this.sv.setUint16(2, RING_EVENT_FLAGS.DESC, true);
    if (!mem.write(this.device, this.scratch.subarray(0, 4))) throw new VirtqueueError("device event area outside guest memory");
  }

  undoPop(): void {
    if (!this.inflight.pop()) return;
    this.nextAvail = this.inflight.poppedPos;
    this.availWrap = this.inflight.poppedWrap;
  }

  addUsed(mem: DmaSpace, head: number, len: number): void {
    // The buffer as popped: the oldest in-flight one with this ID (a device using them in order
    // finds it first). An ID never popped is a device bug; it still takes one entry.
    this.bind(mem);
    const k = this.inflight.indexOf(head);
    const count = k < 0 ? 1 : this.inflight.countAt(k);
    const slot = this.desc + 16 * this.nextUsed;
    const flags = this.usedWrap ? PACKED_DESC_F.AVAIL | PACKED_DESC_F.USED : 0;
    const gv = this.v;
    const direct = gv !== undefined && slot >= 0 && slot + 16 <= gv.byteLength;
    const dv = direct ? gv : this.sv;
    const o = direct ? slot : 0;
    // id and len first, then the flags that hand the descriptor to the driver.
    dv.setUint32(o + 8, len >>> 0, true);
    dv.setUint16(o + 12, head & 0xffff, true);
    dv.setUint16(o + 14, flags, true);
    if (!direct && (!mem.write(slot + 8, this.scratch.subarray(8, 14)) || !mem.write(slot + 14, this.scratch.subarray(14, 16)))) {
      throw new VirtqueueError("used descriptor outside guest memory");
    }
    // Written: now the buffer leaves the in-flight list and the used position moves.
    this.inflight.removeAt(k);
    this.nextUsed += count;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.sinceSignal = this.sinceSignal === undefined ? undefined : this.sinceSignal + count;
    this.usedSinceSignal += count;
  }

  private usedSinceSignal = 0;

  needsNotification(mem: DmaSpace): boolean {
    this.bind(mem);
    const added = this.usedSinceSignal;
    const first = this.sinceSignal === undefined;
    this.usedSinceSignal = 0;
    this.sinceSignal = 0;
    const flags = this.u16(mem, this.driver + 2) & 3;
    if (flags === RING_EVENT_FLAGS.DISABLE) return false;
    if (flags !== RING_EVENT_FLAGS.DESC || !this.eventIdx) return true;
    if (first) return true;
    const offWrap = this.u16(mem, this.driver);
    let off = offWrap & 0x7fff;
    const wrap = (offWrap & 0x8000) !== 0;
    const now = this.nextUsed;
    if (wrap !== this.usedWrap) off -= this.size;
    const old = now - added;
    // "event" lies in (old, now]: the driver asked to be told once the device passes it.
    return ((now - off - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  save(): PackedQueueState {
    const st: PackedQueueState = {
      layout: "packed",
      size: this.size,
      ready: this.ready,
      desc: this.desc,
      driver: this.driver,
      device: this.device,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      msixVector: this.msixVector,
      availWrap: this.availWrap,
      usedWrap: this.usedWrap,
      inflight: Array.from({ length: this.inflight.length }, (_, k): [number, number] => [this.inflight.idAt(k), this.inflight.countAt(k)]),
    };
    if (this.sinceSignal !== undefined) st.sinceSignal = this.usedSinceSignal;
    return st;
  }

  /** Applies a state from `parseQueueState` (packed layout, this queue's maximum size). Never throws. */
  restore(s: PackedQueueState): void {
    this.size = s.size;
    this.ready = s.ready;
    this.desc = s.desc;
    this.driver = s.driver;
    this.device = s.device;
    this.nextAvail = s.nextAvail;
    this.nextUsed = s.nextUsed;
    this.msixVector = s.msixVector;
    this.availWrap = s.availWrap;
    this.usedWrap = s.usedWrap;
    // Popped positions of in-flight chains are not needed after a restore (undoPop only follows a pop).
    this.inflight.clear();
    for (const [id, count] of s.inflight) this.inflight.push(id, count, this.nextAvail, this.availWrap); // at most the size: parsed
    this.sinceSignal = s.sinceSignal === undefined ? undefined : 0;
    this.usedSinceSignal = s.sinceSignal ?? 0;
  }
}
