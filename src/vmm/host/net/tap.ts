/**
 * A TAP device as a {@link NetBackend} (Linux, Node only), through koffi calls into libc: open
 * `/dev/net/tun`, `TUNSETIFF` with `IFF_TAP | IFF_NO_PI` (plus `IFF_VNET_HDR` when available, then
 * `TUNSETVNETHDRSZ` 12 and `TUNSETOFFLOAD` csum/TSO4/TSO6/ECN), non-blocking `read`/`write`.
 *
 * Receiving does not spin the event loop: a `poll(2)` with a short timeout runs on koffi's async
 * worker thread; when it reports the fd readable, the main thread drains it with non-blocking reads
 * (bounded per wake-up) and re-arms the poll. A frame the receiver refuses (no RX buffers) is held
 * and reading pauses, leaving later frames in the kernel's queue, until `rxReady()` or a retry
 * one poll interval later takes it. Closing waits for the outstanding poll to return (at
 * most one timeout) before closing the fd, so the fd number is never reused under a running poll.
 *
 * Transmitting copies the frame into a ring that a writer thread of its own drains with `write`
 * calls (`tap-writer.ts`): a write runs the host kernel's receive path for the frame, which then
 * overlaps the guest instead of stopping it. `txThread: false`, or a host without worker
 * threads, writes on the calling thread instead.
 *
 * With a vnet header, frames carry `struct virtio_net_hdr` (native little-endian, 12 bytes with
 * `num_buffers`): transmit metadata becomes NEEDS_CSUM / GSO fields for the kernel, and the
 * kernel's NEEDS_CSUM / GSO / DATA_VALID become {@link FrameMeta} on receive.
 * @module
 */
import koffi from "koffi";
import { existsSync } from "node:fs";
import type { FrameMeta, FrameSink, NetBackend, ReceiverOptions } from "../../../devices/net/backend.js";
import { segmentTso } from "../../../devices/net/segment.js";
import { TapWriter } from "./tap-writer.js";

// linux/if_tun.h
const TUNSETIFF = 0x400454ca;
const TUNGETFEATURES = 0x800454cf;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_TSO_ECN = 0x08;
// fcntl.h / poll.h (x86-64 and arm64 Linux)
const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const POLLIN = 0x1;
const EAGAIN = 11;
// linux/virtio_net.h
const VNET_HDR_LEN = 12;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_F_DATA_VALID = 2;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_UDP = 3;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;

const NO_BYTES = new Uint8Array(0);

/** Largest frame read from the TAP (a 64 KiB GSO frame plus headers). */
export const TAP_READ_BUFFER = 65536 + 4096;
/**
 * Frames are read straight into a slab of this size and handed to the receiver as views of it:
 * no copy and no allocation per frame. A receiver that borrows frames (`ReceiverOptions.borrows`)
 * gets every frame in the same bytes; for any other, each frame goes after the last and the slab
 * is replaced when fewer than {@link TAP_READ_BUFFER} bytes are left (a receiver that keeps a
 * frame keeps its slab alive). Reusing the bytes matters: at 1 Gbit/s, fresh receive buffers are
 * 100 MB/s of off-heap memory, and V8 answers that with scavenges for "external memory pressure"
 * and a mark-compact every few hundred milliseconds (10-12 % of a real guest's host time).
 */
const TAP_SLAB = 8 * TAP_READ_BUFFER;

/** Opening or configuring the TAP failed. `code` is the errno where there is one. */
export class TapError extends Error {
  override readonly name = "TapError";
  /** errno of the failing call, if any. */
  readonly code: number | undefined;
  /** Creates the error. */
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/** Options of {@link TapBackend.open}. */
export interface TapOptions {
  /** Interface name, up to 15 bytes; `%d` lets the kernel number it (default `nvtap%d`). */
  name?: string;
  /** Ask for IFF_VNET_HDR and offloads (default true; silently off if the kernel refuses). */
  vnetHdr?: boolean;
  /** poll(2) timeout in ms: the longest {@link TapBackend.close} waits (default 50). */
  pollTimeoutMs?: number;
  /** Frames read per wake-up before yielding to the event loop (default 256). */
  maxFramesPerWake?: number;
  /** Write frames on a thread of their own (default true; see the module notes). */
  txThread?: boolean;
}

/** Counters of a {@link TapBackend}. */
export interface TapCounters {
  txFrames: number;
  txBytes: number;
  /** Frames not written: EAGAIN (kernel queue full), error, closed, offload failure, writer ring full. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames read with no receiver installed, malformed vnet header, or held at close. */
  rxDropped: number;
  /** Read errors other than EAGAIN. */
  rxErrors: number;
}

type KoffiFn = ReturnType<ReturnType<typeof koffi.load>["func"]>;

interface Libc {
  open: KoffiFn;
  close: KoffiFn;
  ioctlPtr: KoffiFn;
  ioctlInt: KoffiFn;
  read: KoffiFn;
  write: KoffiFn;
  poll: KoffiFn;
}

function loadLibc(): Libc {
  const lib = koffi.load("libc.so.6");
  return {
    open: lib.func("int open(const char *path, int flags)"),
    close: lib.func("int close(int fd)"),
    // ioctl is variadic in C; these fixed prototypes match the x86-64/arm64 calling convention.
    ioctlPtr: lib.func("ioctl", "int", ["int", "unsigned long", "void *"]),
    ioctlInt: lib.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]),
    read: lib.func("long read(int fd, void *buf, unsigned long count)"),
    write: lib.func("long write(int fd, const void *buf, unsigned long count)"),
    poll: lib.func("int poll(void *fds, unsigned long nfds, int timeout)"),
  };
}

/**
 * Why a TAP cannot be used here, or `undefined` if it can be tried: checks Linux, root and
 * `/dev/net/tun`.
 */
export function tapUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "not root";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  return undefined;
}

/** A TAP interface as a backend. */
export class TapBackend implements NetBackend {
  /** The interface name the kernel assigned. */
  readonly name: string;
  /** {@link TapBackend.transmit} is done with the frame when it returns (written, or copied into the writer's ring). */
  readonly copiesOnTransmit = true;
  /** Offloads the kernel accepts from us (all false without a vnet header). */
  readonly offloads: { csum: boolean; tso4: boolean; tso6: boolean };
  readonly #libc: Libc;
  #fd: number;
  readonly #vnet: boolean;
  readonly #timeout: number;
  readonly #perWake: number;
  readonly #pollfd: Buffer;
  /** Where frames are read (see {@link TAP_SLAB}), and the offset of the next read in it. */
  #slab = new Uint8Array(TAP_SLAB);
  #slabOff = 0;
  /** Reused for what is written: the vnet header, then the frame (no allocation per frame). */
  #wbuf = new Uint8Array(VNET_HDR_LEN + TAP_READ_BUFFER);
  #sink: FrameSink | undefined;
  /** The sink borrows frames (see {@link TAP_SLAB}). */
  #borrows = false;
  #closing = false;
  #polling = false;
  /** A frame the receiver refused; reading pauses until it is taken. */
  #held: { frame: Uint8Array; meta: FrameMeta | undefined } | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  readonly #counters: TapCounters = { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, rxErrors: 0 };
  /** The writer thread, if transmit runs on one. */
  readonly #writer: TapWriter | undefined;
  /** The writer's failures already moved from `txFrames` to `txDropped`. */
  #writerFailed = 0;
  #fdClosing = false;

  private constructor(libc: Libc, fd: number, name: string, vnet: boolean, options: TapOptions) {
    this.#libc = libc;
    this.#fd = fd;
    this.name = name;
    this.#vnet = vnet;
    this.offloads = { csum: vnet, tso4: vnet, tso6: vnet };
    this.#timeout = Math.max(1, Math.floor(options.pollTimeoutMs ?? 50));
    this.#perWake = Math.max(1, Math.floor(options.maxFramesPerWake ?? 256));
    this.#pollfd = Buffer.alloc(8);
    this.#pollfd.writeInt32LE(fd, 0);
    this.#pollfd.writeInt16LE(POLLIN, 4);
    this.#writer = options.txThread === false ? undefined : TapWriter.start(fd);
    this.#arm();
  }

  /**
   * Opens (creates) a TAP interface. The interface is removed when the backend is closed. Throws
   * {@link TapError} if the device cannot be opened or configured.
   * @example
   * const tap = TapBackend.open({ name: "nvtap0" });
   * sw.connect(tap, { name: "tap" });
   */
  static open(options: TapOptions = {}): TapBackend {
    const reason = tapUnavailableReason();
    if (reason !== undefined) throw new TapError(`TAP unavailable: ${reason}`);
    const libc = loadLibc();
    const fd = libc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC) as number;
    if (fd < 0) throw new TapError("open /dev/net/tun failed", koffi.errno());
    try {
      const want = options.vnetHdr ?? true;
      const feat = Buffer.alloc(4);
      const hasVnet = want && (libc.ioctlPtr(fd, TUNGETFEATURES, feat) as number) === 0 && (feat.readUInt32LE(0) & IFF_VNET_HDR) !== 0;
      const name = options.name ?? "nvtap%d";
      if (Buffer.byteLength(name) > 15) throw new TapError(`interface name too long: ${name}`);
      const ifr = Buffer.alloc(40);
      ifr.write(name, 0, "utf8");
      ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | (hasVnet ? IFF_VNET_HDR : 0), 16);
      if ((libc.ioctlPtr(fd, TUNSETIFF, ifr) as number) !== 0) throw new TapError("TUNSETIFF failed", koffi.errno());
      const actual = ifr.toString("utf8", 0, 16).replace(/\0.*$/s, "");
      let vnet = hasVnet;
      if (vnet) {
        const sz = Buffer.alloc(4);
        sz.writeInt32LE(VNET_HDR_LEN, 0);
        const okSize = (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, sz) as number) === 0;
        const okOffload = okSize && (libc.ioctlInt(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) as number) === 0;
        if (!okSize) throw new TapError("TUNSETVNETHDRSZ failed", koffi.errno());
        vnet = okOffload || vnet; // the header stays even if offloads were refused
      }
      return new TapBackend(libc, fd, actual, vnet, options);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /** Live counters (frames the writer thread failed to write move from `txFrames` to `txDropped` when read). */
  get counters(): Readonly<TapCounters> {
    const failed = this.#writer?.failed ?? 0;
    if (failed !== this.#writerFailed) {
      const d = failed - this.#writerFailed;
      this.#counters.txFrames -= d;
      this.#counters.txDropped += d;
      this.#writerFailed = failed;
    }
    return this.#counters;
  }

  /** Installs the receiver; one that borrows frames gets them all in the same bytes (see {@link TAP_SLAB}). */
  setReceiver(sink: FrameSink | undefined, options?: ReceiverOptions): void {
    this.#sink = sink;
    this.#borrows = options?.borrows === true;
  }

  /** Writes one frame to the TAP. Never blocks: a full kernel queue drops the frame (counted). */
  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    if (this.#fd < 0 || this.#closing) {
      this.#counters.txDropped++;
      return;
    }
    if (this.#vnet) {
      if (this.#txHeader(meta)) return this.#write(frame, true);
      const r = segmentTso(frame, meta);
      if (!r.ok) return void this.#counters.txDropped++;
      for (const f of r.frames) {
        this.#wbuf.fill(0, 0, VNET_HDR_LEN);
        this.#write(f, true);
      }
      return;
    }
    if (meta?.gso !== undefined || meta?.needsCsum !== undefined) {
      const r = segmentTso(frame, meta);
      if (!r.ok) return void this.#counters.txDropped++;
      for (const f of r.frames) this.#write(f, false);
      return;
    }
    this.#write(frame, false);
  }

  /** Writes `f`, after the vnet header already in the write buffer when `hdr`. */
  #write(f: Uint8Array, hdr: boolean): void {
    const w = this.#writer;
    if (w !== undefined && !w.exited) {
      if (w.push(hdr ? this.#wbuf.subarray(0, VNET_HDR_LEN) : NO_BYTES, f)) {
        this.#counters.txFrames++;
        this.#counters.txBytes += f.length;
      } else {
        this.#counters.txDropped++;
      }
      return;
    }
    let out = f;
    if (hdr) {
      if (this.#wbuf.length < VNET_HDR_LEN + f.length) {
        const b = new Uint8Array(VNET_HDR_LEN + f.length);
        b.set(this.#wbuf.subarray(0, VNET_HDR_LEN));
        this.#wbuf = b;
      }
      this.#wbuf.set(f, VNET_HDR_LEN);
      out = this.#wbuf.subarray(0, VNET_HDR_LEN + f.length);
    }
    const n = this.#libc.write(this.#fd, out, out.length) as number;
    if (n === out.length) {
      this.#counters.txFrames++;
      this.#counters.txBytes += f.length;
    } else {
      this.#counters.txDropped++;
    }
  }

  /**
   * Writes the vnet header for `meta` at the start of the write buffer; false if the kernel
   * cannot take the frame as is (then the frame is segmented in software).
   */
  #txHeader(meta: FrameMeta | undefined): boolean {
    const h = this.#wbuf;
    h.fill(0, 0, VNET_HDR_LEN);
    const put16 = (o: number, v: number): void => {
      h[o] = v & 0xff;
      h[o + 1] = (v >>> 8) & 0xff;
    };
    if (meta?.needsCsum !== undefined) {
      const { start, offset } = meta.needsCsum;
      if (!(start >= 0 && start <= 0xffff && offset >= 0 && offset <= 0xffff)) return false;
      h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      put16(6, start);
      put16(8, offset);
    }
    const g = meta?.gso;
    if (g !== undefined) {
      // UDP fragmentation and GSO without a partial checksum are done in software.
      if (g.type === "udp" || meta?.needsCsum === undefined) return false;
      h[1] = (g.type === "tcpv4" ? GSO_TCPV4 : GSO_TCPV6) | (g.ecn === true ? GSO_ECN : 0);
      put16(2, Math.max(0, Math.min(0xffff, g.hdrLen)));
      put16(4, Math.max(0, Math.min(0xffff, g.size)));
    }
    return true;
  }

  #arm(): void {
    if (this.#closing) return this.#finishClose();
    if (this.#polling || this.#held !== undefined) return;
    this.#polling = true;
    this.#pollfd.writeInt16LE(0, 6);
    this.#libc.poll.async(this.#pollfd, 1, this.#timeout, (err: unknown, res: number) => {
      this.#polling = false;
      if (this.#closing) return this.#finishClose();
      if (err === null && res > 0) this.#drain();
      if (this.#held !== undefined) {
        // The receiver is out of buffers: leave further frames in the kernel's queue (as a NIC
        // that stops reading does) and retry on rxReady() or after a poll interval.
        this.#retry ??= setTimeout(() => this.#retryHeld(), this.#timeout);
        return;
      }
      // Re-arm from a fresh macrotask so a flood cannot starve the event loop.
      setImmediate(() => this.#arm());
    });
  }

  #drain(): void {
    for (let i = 0; i < this.#perWake && !this.#closing && this.#held === undefined; i++) {
      if (this.#slab.length - this.#slabOff < TAP_READ_BUFFER) {
        this.#slab = new Uint8Array(TAP_SLAB);
        this.#slabOff = 0;
      }
      const at = this.#slabOff;
      const n = this.#libc.read(this.#fd, this.#slab.subarray(at, at + TAP_READ_BUFFER), TAP_READ_BUFFER) as number;
      if (n < 0) {
        if (koffi.errno() !== EAGAIN) this.#counters.rxErrors++;
        return;
      }
      if (n === 0) return;
      this.#receive(at, n);
    }
  }

  /** The frame read into the slab at `at`, `n` bytes with the vnet header. */
  #receive(at: number, n: number): void {
    const hl = this.#vnet ? VNET_HDR_LEN : 0;
    if (n < hl + 14) return void this.#counters.rxDropped++;
    const b = this.#slab;
    let meta: FrameMeta | undefined;
    if (this.#vnet) {
      const u16 = (o: number): number => b[at + o]! | (b[at + o + 1]! << 8);
      const flags = b[at]!;
      const gso = b[at + 1]! & ~GSO_ECN;
      meta = {};
      if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) meta.needsCsum = { start: u16(6), offset: u16(8) };
      if (flags & VIRTIO_NET_HDR_F_DATA_VALID) meta.csumValid = true;
      if (gso === GSO_TCPV4 || gso === GSO_TCPV6) {
        meta.gso = { type: gso === GSO_TCPV4 ? "tcpv4" : "tcpv6", size: u16(4), hdrLen: u16(2), ecn: (b[at + 1]! & GSO_ECN) !== 0 };
      } else if (gso === GSO_UDP) {
        meta.gso = { type: "udp", size: u16(4), hdrLen: u16(2) };
      } else if (gso !== GSO_NONE) {
        return void this.#counters.rxDropped++;
      }
      if (meta.needsCsum === undefined && meta.gso === undefined && meta.csumValid === undefined) meta = undefined;
    }
    if (this.#sink === undefined) return void this.#counters.rxDropped++;
    // A frame the receiver may keep, or one held here, is not read over: later reads go past it.
    const past = (at + n + 7) & ~7;
    if (!this.#borrows) this.#slabOff = past;
    const frame = b.subarray(at + hl, at + n);
    if (this.#sink(frame, meta)) {
      this.#counters.rxFrames++;
      this.#counters.rxBytes += frame.length;
    } else {
      this.#slabOff = Math.max(this.#slabOff, past);
      this.#held = { frame, meta };
    }
  }

  /** The receiver has buffers again: delivers the held frame and resumes reading. */
  rxReady(): void {
    if (this.#held !== undefined) this.#retryHeld();
  }

  #retryHeld(): void {
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    const h = this.#held;
    if (h === undefined || this.#closing) return;
    if (this.#sink === undefined) {
      this.#counters.rxDropped++;
    } else if (this.#sink(h.frame, h.meta)) {
      this.#counters.rxFrames++;
      this.#counters.rxBytes += h.frame.length;
    } else {
      this.#retry = setTimeout(() => this.#retryHeld(), this.#timeout);
      return;
    }
    this.#held = undefined;
    setImmediate(() => this.#arm());
  }

  /** Closes the TAP (the interface disappears). Idempotent; the fd closes once the current poll returns. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#sink = undefined;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.#held !== undefined) this.#counters.rxDropped++;
    this.#held = undefined;
    if (!this.#polling) this.#finishClose();
  }

  /** Resolves once the fd is really closed (after {@link TapBackend.close}). */
  closed(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => (this.#fd < 0 ? resolve() : void setTimeout(check, this.#timeout / 2));
      check();
    });
  }

  #finishClose(): void {
    if (this.#fd < 0 || this.#fdClosing) return;
    this.#fdClosing = true;
    const closeFd = (): void => {
      this.#libc.close(this.#fd);
      this.#fd = -1;
    };
    // the writer writes what it holds first; the fd must outlive its last write
    if (this.#writer !== undefined) void this.#writer.stop().then(closeFd);
    else closeFd();
  }
}
