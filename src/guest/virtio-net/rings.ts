/**
 * The driver side of both virtqueue layouts, written from the virtio 1.2 spec (sections 2.7 and
 * 2.8): the simulated guest owns its RAM as a byte array, so rings are plain typed-array accesses.
 * @module
 */

/** A driver-side virtqueue. Buffers are identified by the ID `add` returns. */
export interface DriverRing {
  readonly size: number;
  /** queue_desc, queue_driver, queue_device addresses. */
  readonly desc: number;
  readonly driverArea: number;
  readonly deviceArea: number;
  /** Free descriptors. */
  readonly free: number;
  /** Makes a one-descriptor buffer available; returns its ID or -1 when the ring is full. */
  add1(addr: number, len: number, write: boolean): number;
  /** Makes a chain available (`write[i]`: device-writable); returns its ID or -1 when full. */
  add(addrs: readonly number[], lens: readonly number[], write: readonly boolean[]): number;
  /** Takes the next used buffer: its ID in `usedId` and length in `usedLen`; false when none. */
  getUsed(): boolean;
  usedId: number;
  usedLen: number;
  /** Whether the device wants a notification for what was added since the last call. */
  kickNeeded(): boolean;
}

/** Allocator of the simulated guest. */
export type Alloc = (size: number, align: number) => number;

/** A split ring (descriptor table, avail ring, used ring). */
export class SplitDriverRing implements DriverRing {
  readonly desc: number;
  readonly driverArea: number;
  readonly deviceArea: number;
  usedId = 0;
  usedLen = 0;
  private readonly v: DataView;
  private freeHead = 0;
  private nfree: number;
  private availIdx = 0;
  private lastUsed = 0;
  private kickedAt = 0;
  /** Descriptors per buffer ID (chain length), to return them to the free list. */
  private readonly chainLen: Uint16Array;

  constructor(ram: Uint8Array, alloc: Alloc, readonly size: number, private readonly eventIdx: boolean) {
    this.v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.desc = alloc(16 * size, 16);
    this.driverArea = alloc(6 + 2 * size, 2);
    this.deviceArea = alloc(6 + 8 * size, 4);
    ram.fill(0, this.desc, this.desc + 16 * size);
    ram.fill(0, this.driverArea, this.driverArea + 6 + 2 * size);
    ram.fill(0, this.deviceArea, this.deviceArea + 6 + 8 * size);
    for (let i = 0; i < size; i++) this.v.setUint16(this.desc + 16 * i + 14, (i + 1) % size, true);
    this.nfree = size;
    this.chainLen = new Uint16Array(size);
  }

  get free(): number {
    return this.nfree;
  }

  private publish(head: number): void {
    const v = this.v;
    v.setUint16(this.driverArea + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    v.setUint16(this.driverArea + 2, this.availIdx, true);
  }

  add1(addr: number, len: number, write: boolean): number {
    if (this.nfree === 0) return -1;
    const v = this.v;
    const head = this.freeHead;
    const o = this.desc + 16 * head;
    this.freeHead = v.getUint16(o + 14, true);
    this.nfree--;
    v.setUint32(o, addr, true);
    v.setUint32(o + 4, 0, true);
    v.setUint32(o + 8, len, true);
    v.setUint16(o + 12, write ? 2 : 0, true);
    this.chainLen[head] = 1;
    this.publish(head);
    return head;
  }

  add(addrs: readonly number[], lens: readonly number[], write: readonly boolean[]): number {
    const n = addrs.length;
    if (n === 0 || this.nfree < n) return -1;
    const v = this.v;
    const head = this.freeHead;
    let i = head;
    for (let k = 0; k < n; k++) {
      const o = this.desc + 16 * i;
      const next = v.getUint16(o + 14, true);
      v.setUint32(o, addrs[k]!, true);
      v.setUint32(o + 4, 0, true);
      v.setUint32(o + 8, lens[k]!, true);
      v.setUint16(o + 12, (write[k] === true ? 2 : 0) | (k < n - 1 ? 1 : 0), true);
      if (k < n - 1) i = next;
      else this.freeHead = next;
    }
    this.nfree -= n;
    this.chainLen[head] = n;
    this.publish(head);
    return head;
  }

  getUsed(): boolean {
    const v = this.v;
    if (v.getUint16(this.deviceArea + 2, true) === this.lastUsed) return false;
    const e = this.deviceArea + 4 + 8 * (this.lastUsed % this.size);
    const id = v.getUint32(e, true);
    this.usedLen = v.getUint32(e + 4, true);
    this.usedId = id;
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    if (this.eventIdx) v.setUint16(this.driverArea + 4 + 2 * this.size, this.lastUsed, true); // used_event
    if (id < this.size) {
      // Walk the chain to its tail and splice it onto the free list.
      const n = this.chainLen[id]!;
      let tail = id;
      for (let k = 1; k < n; k++) tail = v.getUint16(this.desc + 16 * tail + 14, true);
      v.setUint16(this.desc + 16 * tail + 14, this.freeHead, true);
      this.freeHead = id;
      this.nfree += n;
    }
    return true;
  }

  kickNeeded(): boolean {
    const now = this.availIdx;
    const old = this.kickedAt;
    this.kickedAt = now;
    if (this.eventIdx) {
      const ev = this.v.getUint16(this.deviceArea + 4 + 8 * this.size, true); // avail_event
      return ((now - ev - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.v.getUint16(this.deviceArea, true) & 1) === 0; // VRING_USED_F_NO_NOTIFY
  }
}

const F_NEXT = 1;
const F_WRITE = 2;
const F_AVAIL = 1 << 7;
const F_USED = 1 << 15;

/** A packed ring (descriptor ring, driver and device event suppression areas). */
export class PackedDriverRing implements DriverRing {
  readonly desc: number;
  readonly driverArea: number;
  readonly deviceArea: number;
  usedId = 0;
  usedLen = 0;
  private readonly v: DataView;
  private pos = 0;
  private wrap = true;
  private usedPos = 0;
  private usedWrap = true;
  private nfree: number;
  private readonly freeIds: Uint16Array;
  private nFreeIds: number;
  private readonly idCount: Uint16Array;
  private addedSinceKick = 0;

  constructor(ram: Uint8Array, alloc: Alloc, readonly size: number, private readonly eventIdx: boolean) {
    this.v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.desc = alloc(16 * size, 16);
    this.driverArea = alloc(4, 4);
    this.deviceArea = alloc(4, 4);
    ram.fill(0, this.desc, this.desc + 16 * size);
    ram.fill(0, this.driverArea, this.driverArea + 4);
    ram.fill(0, this.deviceArea, this.deviceArea + 4);
    this.nfree = size;
    this.freeIds = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.freeIds[i] = size - 1 - i;
    this.nFreeIds = size;
    this.idCount = new Uint16Array(size);
  }

  get free(): number {
    return this.nfree;
  }

  private flags(write: boolean, next: boolean): number {
    return (write ? F_WRITE : 0) | (next ? F_NEXT : 0) | (this.wrap ? F_AVAIL : F_USED);
  }

  add1(addr: number, len: number, write: boolean): number {
    if (this.nfree === 0) return -1;
    const id = this.freeIds[--this.nFreeIds]!;
    const v = this.v;
    const o = this.desc + 16 * this.pos;
    v.setUint32(o, addr, true);
    v.setUint32(o + 4, 0, true);
    v.setUint32(o + 8, len, true);
    v.setUint16(o + 12, id, true);
    v.setUint16(o + 14, this.flags(write, false), true); // flags last: hands it to the device
    this.idCount[id] = 1;
    this.nfree--;
    this.addedSinceKick++;
    if (++this.pos === this.size) {
      this.pos = 0;
      this.wrap = !this.wrap;
    }
    return id;
  }

  add(addrs: readonly number[], lens: readonly number[], write: readonly boolean[]): number {
    const n = addrs.length;
    if (n === 0 || this.nfree < n) return -1;
    const id = this.freeIds[--this.nFreeIds]!;
    const v = this.v;
    const headOff = this.desc + 16 * this.pos;
    let headFlags = 0;
    for (let k = 0; k < n; k++) {
      const o = this.desc + 16 * this.pos;
      v.setUint32(o, addrs[k]!, true);
      v.setUint32(o + 4, 0, true);
      v.setUint32(o + 8, lens[k]!, true);
      v.setUint16(o + 12, id, true);
      const f = this.flags(write[k] === true, k < n - 1);
      if (k === 0) headFlags = f;
      else v.setUint16(o + 14, f, true);
      if (++this.pos === this.size) {
        this.pos = 0;
        this.wrap = !this.wrap;
      }
    }
    v.setUint16(headOff + 14, headFlags, true); // the head last: the whole chain appears at once
    this.idCount[id] = n;
    this.nfree -= n;
    this.addedSinceKick += n;
    return id;
  }

  getUsed(): boolean {
    const v = this.v;
    const o = this.desc + 16 * this.usedPos;
    const f = v.getUint16(o + 14, true);
    const a = (f & F_AVAIL) !== 0;
    const u = (f & F_USED) !== 0;
    if (a !== this.usedWrap || u !== this.usedWrap) return false;
    const id = v.getUint16(o + 12, true);
    this.usedId = id;
    this.usedLen = v.getUint32(o + 8, true);
    const n = id < this.size && this.idCount[id]! > 0 ? this.idCount[id]! : 1;
    if (id < this.size && this.idCount[id]! > 0) {
      this.idCount[id] = 0;
      this.freeIds[this.nFreeIds++] = id;
    }
    this.nfree += n;
    this.usedPos += n;
    if (this.usedPos >= this.size) {
      this.usedPos -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    return true;
  }

  kickNeeded(): boolean {
    const added = this.addedSinceKick;
    this.addedSinceKick = 0;
    const v = this.v;
    const flags = v.getUint16(this.deviceArea + 2, true) & 3;
    if (flags === 1) return false; // DISABLE
    if (flags !== 2 || !this.eventIdx) return added > 0;
    const offWrap = v.getUint16(this.deviceArea, true);
    let off = offWrap & 0x7fff;
    if ((offWrap & 0x8000) !== 0 !== this.wrap) off -= this.size;
    const now = this.pos;
    const old = now - added;
    return ((now - off - 1) & 0xffff) < ((now - old) & 0xffff);
  }
}
