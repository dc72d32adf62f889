/**
 * What every virtqueue layout offers the transport and the devices: the split ring
 * ({@link SplitQueue}, virtio 1.2 section 2.7) and the packed ring ({@link PackedQueue}, section 2.8,
 * VIRTIO_F_RING_PACKED). A queue holds what the driver programmed and its own positions; guest
 * memory is an argument of every operation. Every guest error is a {@link VirtqueueError}.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import { ADDR_EXACT_LIMIT, type VirtqueueState } from "./queue-state.js";

export type { PackedQueueState, SplitQueueState, VirtqueueState } from "./queue-state.js";

/** A guest error in a queue: the device must go to NEEDS_RESET. */
export class VirtqueueError extends Error {
  override readonly name = "VirtqueueError";
}

/** One buffer of a chain. */
export interface Segment {
  addr: number;
  len: number;
}

/** A descriptor chain popped from a queue. */
export interface DescriptorChain {
  /** Head index (split) or buffer ID (packed): what `addUsed` hands back to the driver. */
  head: number;
  /** Device-readable buffers, in order. */
  readable: Segment[];
  /** Device-writable buffers, in order (they follow every readable one). */
  writable: Segment[];
  readableLen: number;
  writableLen: number;
}

/**
 * The shared empty segment list of chains with no readable (or no writable) buffer; a queue
 * replaces it with a fresh array before adding, so it is never written.
 */
export const NO_SEGMENTS: Segment[] = Object.freeze([]) as unknown as Segment[];

/** The largest total length of one chain. */
export const MAX_CHAIN_BYTES = 0x1_0000_0000;

/** See {@link Virtqueue.direction}. */
export type QueueDirection = "any" | "readable" | "writable";

/** Throws if `chain` has buffers `direction` forbids. */
export function checkDirection(chain: DescriptorChain, direction: QueueDirection): void {
  if (direction === "readable" && chain.writable.length > 0) throw new VirtqueueError("device-writable descriptor on a device-readable queue");
  if (direction === "writable" && chain.readable.length > 0) throw new VirtqueueError("device-readable descriptor on a device-writable queue");
}

/** Ring layout of a queue. */
export type RingLayout = "split" | "packed";

/** A virtqueue of either layout. */
export interface Virtqueue {
  readonly layout: RingLayout;
  /** The largest size the device allows. */
  readonly maxSize: number;
  /** Queue size as the driver set it. */
  size: number;
  ready: boolean;
  /** queue_desc / queue_driver / queue_device: descriptor table (ring), driver area, device area. */
  desc: number;
  driver: number;
  device: number;
  /** MSI-X vector (0xFFFF = none). */
  msixVector: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated: without it an INDIRECT descriptor is a guest error. */
  indirect: boolean;
  /** Descriptors read since the queue was created or reset (work accounting for tests). */
  readonly visited: number;
  /**
   * What the device's chains on this queue must hold: only device-readable buffers (a TX queue),
   * only device-writable ones (an RX queue), or both. A violation is a VirtqueueError.
   */
  direction: QueueDirection;
  /** Back to the power-on state. */
  reset(): void;
  /** Checks what the driver programmed (size, alignment); throws VirtqueueError. */
  validate(): void;
  /** Chains available now (at most the queue size); throws VirtqueueError on a bad ring. */
  pending(mem: DmaSpace): number;
  /** Pops the next available chain, or undefined. Throws VirtqueueError on a bad chain. */
  popChain(mem: DmaSpace): DescriptorChain | undefined;
  /** Gives back the chain popped last (it will be popped again). */
  undoPop(): void;
  /** Returns a popped chain (`head` as popped) with `len` bytes written. */
  addUsed(mem: DmaSpace, head: number, len: number): void;
  /** Whether the driver wants an interrupt for what was used since the last one. */
  needsNotification(mem: DmaSpace): boolean;
  /** Saves the programmed state, positions and in-flight chains. */
  save(): VirtqueueState;
  /**
   * Applies a state from `parseQueueState` (of this queue's layout and maximum size). Never
   * throws: everything was checked by the parser.
   */
  restore(s: VirtqueueState): void;
}

const SLAB = 256 * 1024;
const SLAB_MAX_ITEM = 16 * 1024;
let slab = new ArrayBuffer(SLAB);
let slabOff = 0;

/**
 * A fresh, zeroed byte array of length `n`. Small arrays are carved out of a shared 256 KiB slab
 * (a typed array over 64 bytes otherwise costs an off-heap allocation, about a microsecond):
 * each result owns its bytes, but its `.buffer` is shared, so use `byteOffset` with it.
 */
export function allocBytes(n: number): Uint8Array {
  if (n > SLAB_MAX_ITEM || n <= 64) return new Uint8Array(n);
  if (slabOff + n > SLAB) {
    slab = new ArrayBuffer(SLAB);
    slabOff = 0;
  }
  const out = new Uint8Array(slab, slabOff, n);
  slabOff += (n + 7) & ~7;
  return out;
}

/**
 * Copies a chain's readable bytes into one buffer (bounded by `max`); undefined on a fault. The
 * buffer is fresh, or the start of `into` when that is given and large enough (a caller whose
 * consumer is done with the bytes before the next call).
 */
export function readChain(mem: DmaSpace, chain: DescriptorChain, max: number, into?: Uint8Array): Uint8Array | undefined {
  const n = Math.min(chain.readableLen, max);
  const out = into !== undefined && into.length >= n ? into.subarray(0, n) : allocBytes(n);
  let off = 0;
  const ram = mem.linear?.();
  for (const s of chain.readable) {
    if (off >= n) break;
    const take = Math.min(s.len, n - off);
    const a = s.addr;
    const b = ram === undefined ? mem.read(a, take) : a >= 0 && a + take <= ram.length ? ram.subarray(a, a + take) : undefined;
    if (b === undefined) return undefined;
    out.set(b, off);
    off += take;
  }
  return out;
}

/**
 * Writes bytes `from` onwards of the concatenation `head` + `body` across a chain's writable
 * buffers, as many as fit; returns the bytes written, or -1 on a fault. A device places a header
 * and a payload in guest memory this way without first joining them in a buffer of its own.
 */
export function writeChainParts(mem: DmaSpace, chain: DescriptorChain, head: Uint8Array, body: Uint8Array, from: number): number {
  const total = head.length + body.length;
  let pos = from;
  let written = 0;
  const ram = mem.linear?.();
  for (const s of chain.writable) {
    if (pos >= total) break;
    let segOff = 0;
    while (segOff < s.len && pos < total) {
      const inHead = pos < head.length;
      const src = inHead ? head : body;
      const srcOff = inHead ? pos : pos - head.length;
      const take = Math.min(s.len - segOff, src.length - srcOff);
      const addr = s.addr + segOff;
      const piece = srcOff === 0 && take === src.length ? src : src.subarray(srcOff, srcOff + take);
      if (ram !== undefined) {
        if (!(addr >= 0 && addr + take <= ram.length)) return -1;
        ram.set(piece, addr);
      } else if (!mem.write(addr, piece)) return -1;
      segOff += take;
      pos += take;
      written += take;
    }
  }
  return written;
}

const NO_BYTES = new Uint8Array(0);

/** Writes `data` across a chain's writable buffers; returns the bytes written, or -1 on a fault. */
export function writeChain(mem: DmaSpace, chain: DescriptorChain, data: Uint8Array): number {
  return writeChainParts(mem, chain, NO_BYTES, data, 0);
}

/**
 * Guest-memory access shared by both ring layouts: a DataView over `DmaSpace.linear()` when the
 * space offers one (bound again at the start of each operation, since wasm memory may grow and
 * Bus Master may go off), otherwise bounded `DmaSpace` reads.
 */
export abstract class RingMemory {
  /** The view bound for the current operation, or undefined to go through `DmaSpace`. */
  protected v: DataView | undefined;
  private vBytes: Uint8Array | undefined;
  private vCache: DataView | undefined;

  protected bind(mem: DmaSpace): void {
    const b = mem.linear?.();
    if (b === undefined) {
      this.v = undefined;
      return;
    }
    if (b !== this.vBytes || this.vCache === undefined) {
      this.vBytes = b;
      this.vCache = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    this.v = this.vCache;
  }

  protected u16(mem: DmaSpace, addr: number): number {
    const v = this.v;
    if (v !== undefined) {
      if (addr >= 0 && addr + 2 <= v.byteLength) return v.getUint16(addr, true);
      throw new VirtqueueError(`ring address 0x${addr.toString(16)} outside guest memory`);
    }
    const b = mem.read(addr, 2);
    if (b === undefined) throw new VirtqueueError(`ring address 0x${addr.toString(16)} outside guest memory`);
    return b[0]! | (b[1]! << 8);
  }

  /** 16 bytes of scratch for descriptors and ring writes that go through `DmaSpace`. */
  protected readonly scratch = new Uint8Array(16);
  protected readonly sv = new DataView(this.scratch.buffer);
  /** Where {@link RingMemory.readDescriptor} left the descriptor: the guest-RAM view or `sv`. */
  protected dv: DataView = this.sv;

  /** Makes the 16-byte descriptor at `at` readable in `this.dv`; returns its offset there. */
  protected readDescriptor(mem: DmaSpace, at: number): number {
    const v = this.v;
    if (v !== undefined && at >= 0 && at + 16 <= v.byteLength) {
      this.dv = v;
      return at;
    }
    const d = mem.read(at, 16);
    if (d === undefined || d.length < 16) throw new VirtqueueError("descriptor outside guest memory");
    this.scratch.set(d);
    this.dv = this.sv;
    return 0;
  }

  /**
   * The buffer address of the 16-byte descriptor at `o` in `dv`. An address at or past
   * {@link ADDR_EXACT_LIMIT} (its high word at least 2^21 - 1) is outside guest memory: refused
   * with a VirtqueueError before it is formed, so no inexact number reaches `DmaSpace`.
   */
  protected descAddr(dv: DataView, o: number): number {
    const hi = dv.getUint32(o + 4, true);
    if (hi >= ADDR_EXACT_LIMIT / 0x1_0000_0000) throw new VirtqueueError(`buffer address 0x${hi.toString(16)}${dv.getUint32(o, true).toString(16).padStart(8, "0")} outside guest memory`);
    return dv.getUint32(o, true) + hi * 0x1_0000_0000;
  }

  /** Whether a ring of `len` bytes at `addr` (as the driver programmed it) ends below {@link ADDR_EXACT_LIMIT}. */
  protected static ringInRange(addr: number, len: number): boolean {
    return addr + len <= ADDR_EXACT_LIMIT;
  }

  /** Whether [addr, addr + len) is guest memory. */
  protected mapped(mem: DmaSpace, addr: number, len: number): boolean {
    const v = this.v;
    if (v !== undefined) return addr >= 0 && addr + len <= v.byteLength;
    return mem.read(addr, 1) !== undefined && mem.read(addr + len - 1, 1) !== undefined;
  }

  /**
   * Appends a buffer to `chain` after checking it lies in guest memory; device-readable buffers
   * must all come before the device-writable ones.
   */
  protected addSegment(mem: DmaSpace, chain: DescriptorChain, addr: number, len: number, writable: boolean): void {
    if (len > 0 && !this.mapped(mem, addr, len)) throw new VirtqueueError("buffer outside guest memory");
    if (writable) {
      if (chain.writable === NO_SEGMENTS) chain.writable = [{ addr, len }];
      else chain.writable.push({ addr, len });
      chain.writableLen += len;
    } else {
      if (chain.writable.length > 0) throw new VirtqueueError("readable descriptor after a writable one");
      if (chain.readable === NO_SEGMENTS) chain.readable = [{ addr, len }];
      else chain.readable.push({ addr, len });
      chain.readableLen += len;
    }
  }
}
