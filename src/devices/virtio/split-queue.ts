/**
 * A split virtqueue (virtio 1.2 section 2.7), in rust-vmm's shape: the queue holds what the driver
 * programmed (size, ring addresses, positions) and guest memory is an argument of every operation.
 *
 * - `popChain(mem)` walks the next available descriptor chain, direct or indirect, and returns its
 *   readable and writable segments. A chain is bounded by 2^32 bytes and by one count of the
 *   descriptors it reads, direct and indirect together: at most the queue size direct ones, then
 *   at most one indirect table of at most the queue size (virtio 1.2 2.7.5.3). An INDIRECT
 *   descriptor without VIRTIO_F_INDIRECT_DESC, with NEXT, or inside an indirect table is a
 *   guest error. Every bad descriptor is a {@link VirtqueueError}, never a loop.
 * - `addUsed(mem, head, len)` publishes a used element; `needsNotification(mem)` applies
 *   VIRTIO_F_EVENT_IDX (used_event) or VRING_AVAIL_F_NO_INTERRUPT.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";

import type { SplitQueueState } from "./queue-state.js";
import {
  MAX_CHAIN_BYTES, NO_SEGMENTS, RingMemory, VirtqueueError, checkDirection, type QueueDirection, type DescriptorChain, type Virtqueue,
} from "./virtqueue.js";

export { VirtqueueError, allocBytes, readChain, writeChain, type DescriptorChain, type Segment } from "./virtqueue.js";

/** Descriptor flags. */
export const VIRTQ_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;

export type { SplitQueueState } from "./queue-state.js";

/** A split virtqueue. */
export class SplitQueue extends RingMemory implements Virtqueue {
  readonly layout = "split";
  visited = 0;
  direction: QueueDirection = "any";
  /** Queue size as the driver set it (power of two, at most `maxSize`). */
  size: number;
  ready = false;
  /** Descriptor table, driver (avail) and device (used) ring addresses. */
  desc = 0;
  driver = 0;
  device = 0;
  /** Next available ring index to consume (free-running u16). */
  nextAvail = 0;
  /** Next used ring index to fill (free-running u16). */
  nextUsed = 0;
  /** MSI-X vector for this queue (0xFFFF = none). */
  msixVector = 0xffff;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx = false;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect = false;
  private signalledUsed: number | undefined;
  /** Heads popped and not yet used, oldest first. */
  private inflight: number[] = [];

  constructor(readonly maxSize: number) {
    super();
    this.size = maxSize;
  }

  /** Back to the power-on state (device reset). */
  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.desc = this.driver = this.device = 0;
    this.nextAvail = this.nextUsed = 0;
    this.msixVector = 0xffff;
    this.eventIdx = false;
    this.indirect = false;
    this.signalledUsed = undefined;
    this.inflight = [];
    this.visited = 0;
    this.shadowAvail = -1;
  }

  /** Checks what the driver programmed before use (size, alignment); throws VirtqueueError. */
  validate(): void {
    const s = this.size;
    if (s === 0 || s > this.maxSize || (s & (s - 1)) !== 0) throw new VirtqueueError(`bad queue size ${s}`);
    if (this.desc % 16 !== 0 || this.driver % 2 !== 0 || this.device % 4 !== 0) throw new VirtqueueError("misaligned ring");
    if (!RingMemory.ringInRange(this.desc, 16 * s) || !RingMemory.ringInRange(this.driver, 6 + 2 * s) || !RingMemory.ringInRange(this.device, 6 + 8 * s)) {
      throw new VirtqueueError("ring outside guest memory (at or past 2^53 - 2^32)");
    }
  }

  /** The driver's avail index as last read (-1: unknown). */
  private shadowAvail = -1;


  private w16(mem: DmaSpace, addr: number, val: number): void {
    const v = this.v;
    if (v !== undefined) {
      if (addr >= 0 && addr + 2 <= v.byteLength) return v.setUint16(addr, val, true);
      throw new VirtqueueError("used ring outside guest memory");
    }
    this.sv.setUint16(0, val, true);
    if (!mem.write(addr, this.scratch.subarray(0, 2))) throw new VirtqueueError("used ring outside guest memory");
  }

  /** Number of chains the driver has made available and the device not yet consumed. */
  pending(mem: DmaSpace): number {
    if (!this.ready) return 0;
    this.bind(mem);
    const avail = this.u16(mem, this.driver + 2);
    const n = (avail - this.nextAvail) & 0xffff;
    if (n > this.size) throw new VirtqueueError(`available index moved by ${n} > queue size ${this.size}`);
    this.shadowAvail = avail;
    return n;
  }

  /** Pops the next available chain, or returns undefined when there is none. */
  popChain(mem: DmaSpace): DescriptorChain | undefined {
    if (!this.ready) return undefined;
    // The avail index read last time still covers this pop: no need to read it again.
    if (this.shadowAvail === this.nextAvail || this.shadowAvail < 0) {
      if (this.pending(mem) === 0) return undefined;
    } else this.bind(mem);
    if (this.inflight.length >= this.size) throw new VirtqueueError("more buffers in flight than the queue size");
    const head = this.u16(mem, this.driver + 4 + 2 * (this.nextAvail % this.size));
    if (head >= this.size) throw new VirtqueueError(`head ${head} out of range`);
    const chain = this.walk(mem, head);
    // Only a chain that walked cleanly moves the avail position.
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    this.inflight.push(head);
    if (this.eventIdx) this.w16(mem, this.device + 4 + 8 * this.size, this.nextAvail); // avail_event
    return chain;
  }

  private walk(mem: DmaSpace, head: number): DescriptorChain {
    const chain: DescriptorChain = { head, readable: NO_SEGMENTS, writable: NO_SEGMENTS, readableLen: 0, writableLen: 0 };
    let table = this.desc;
    let tableSize = this.size;
    let index = head;
    // One count for the whole chain: the direct descriptors may use the queue size, the indirect
    // table (read only after the last direct one) adds its own length, itself at most the size.
    let budget = this.size;
    let indirect = false;
    let total = 0;
    for (;;) {
      this.visited++;
      if (budget-- <= 0) throw new VirtqueueError("descriptor chain longer than its table (loop?)");
      if (index >= tableSize) throw new VirtqueueError(`descriptor index ${index} out of range`);
      const o = this.readDescriptor(mem, table + 16 * index);
      const v = this.dv;
      const addr = this.descAddr(v, o);
      const len = v.getUint32(o + 8, true);
      const flags = v.getUint16(o + 12, true);
      const next = v.getUint16(o + 14, true);
      if ((flags & VIRTQ_DESC_F.INDIRECT) !== 0) {
        if (!this.indirect) throw new VirtqueueError("INDIRECT descriptor without VIRTIO_F_INDIRECT_DESC");
        if (indirect) throw new VirtqueueError("indirect descriptor inside an indirect table");
        if ((flags & VIRTQ_DESC_F.NEXT) !== 0) throw new VirtqueueError("indirect descriptor with NEXT");
        if (len === 0 || len % 16 !== 0 || len / 16 > this.size) throw new VirtqueueError(`indirect table length ${len}`);
        indirect = true;
        table = addr;
        tableSize = len / 16;
        budget += tableSize; // what is left of the direct part's count, plus the table
        index = 0;
        continue;
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) throw new VirtqueueError("descriptor chain exceeds 4 GiB");
      this.addSegment(mem, chain, addr, len, (flags & VIRTQ_DESC_F.WRITE) !== 0);
      if ((flags & VIRTQ_DESC_F.NEXT) === 0) {
        checkDirection(chain, this.direction);
        return chain;
      }
      index = next;
    }
  }

  /** Puts a chain back (the device could not use it now; it will pop it again later). */
  undoPop(): void {
    if (this.inflight.pop() === undefined) return;
    this.nextAvail = (this.nextAvail - 1) & 0xffff;
  }

  /** Publishes a used element for `head` with `len` bytes written. */
  addUsed(mem: DmaSpace, head: number, len: number): void {
    this.bind(mem);
    const slot = this.device + 4 + 8 * (this.nextUsed % this.size);
    const v = this.v;
    if (v !== undefined && slot >= 0 && slot + 8 <= v.byteLength) {
      v.setUint32(slot, head, true);
      v.setUint32(slot + 4, len >>> 0, true);
    } else {
      this.sv.setUint32(0, head, true);
      this.sv.setUint32(4, len >>> 0, true);
      if (!mem.write(slot, this.scratch.subarray(0, 8))) throw new VirtqueueError("used ring outside guest memory");
    }
    this.w16(mem, this.device + 2, (this.nextUsed + 1) & 0xffff);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // The chain as popped (the oldest with this head: a device using in order finds it first).
    const k = this.inflight[0] === head ? 0 : this.inflight.indexOf(head);
    if (k === 0) this.inflight.shift();
    else if (k > 0) this.inflight.splice(k, 1);
    else this.inflight.shift(); // a head never popped (a device bug): keep the count in step
  }

  /** Whether the driver wants an interrupt for the used elements added since the last one. */
  needsNotification(mem: DmaSpace): boolean {
    this.bind(mem);
    const now = this.nextUsed;
    const old = this.signalledUsed;
    this.signalledUsed = now;
    if (this.eventIdx) {
      const ev = this.u16(mem, this.driver + 4 + 2 * this.size); // used_event
      if (old === undefined) return true;
      return ((now - ev - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.u16(mem, this.driver) & 1) === 0; // VRING_AVAIL_F_NO_INTERRUPT
  }

  /** Saves the queue's programmed state, positions and in-flight heads. */
  save(): SplitQueueState {
    const st: SplitQueueState = {
      layout: "split",
      size: this.size,
      ready: this.ready,
      desc: this.desc,
      driver: this.driver,
      device: this.device,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      msixVector: this.msixVector,
      inflight: [...this.inflight],
    };
    if (this.signalledUsed !== undefined) st.sinceSignal = (this.nextUsed - this.signalledUsed) & 0xffff;
    return st;
  }

  /** Applies a state from `parseQueueState` (split layout, this queue's maximum size). Never throws. */
  restore(s: SplitQueueState): void {
    this.size = s.size;
    this.ready = s.ready;
    this.desc = s.desc;
    this.driver = s.driver;
    this.device = s.device;
    this.nextAvail = s.nextAvail;
    this.nextUsed = s.nextUsed;
    this.msixVector = s.msixVector;
    this.inflight = [...s.inflight];
    this.signalledUsed = s.sinceSignal === undefined ? undefined : (s.nextUsed - s.sinceSignal) & 0xffff;
    this.shadowAvail = -1;
  }
}
