/**
 * Packet capture in the libpcap file format (the classic `.pcap`, not pcapng): a byte encoder
 * ({@link PcapEncoder}), a tap ({@link PcapTap}) that attaches to an {@link L2Switch} or wraps a
 * backend, and a bounded in-memory sink ({@link PcapBuffer}). Platform-neutral: bytes go to a
 * callback; `src/vmm/host/net/pcap-file.ts` writes them to a file.
 *
 * Format (all fields in the writer's byte order, here little-endian): a 24-byte global header
 * (magic 0xa1b2c3d4 for microsecond or 0xa1b23c4d for nanosecond timestamps, version 2.4,
 * thiszone 0, sigfigs 0, snaplen, link type 1 = Ethernet), then per packet a 16-byte record header
 * (seconds, micro/nanoseconds, captured length, original length) followed by the captured bytes.
 * @module
 */
import type { Clock } from "../../pci/interfaces.js";
import type { FrameMeta, FrameSink, NetBackend } from "./backend.js";
import type { L2Switch } from "./switch.js";

/** LINKTYPE_ETHERNET. */
export const LINKTYPE_ETHERNET = 1;

/** Options of {@link PcapEncoder}. */
export interface PcapEncoderOptions {
  /** Bytes kept per packet (default 65535). */
  snaplen?: number;
  /** Nanosecond timestamps (default false: microseconds, readable by every tool). */
  nanosecond?: boolean;
}

/** Encodes the pcap global header and packet records. Stateless apart from its options. */
export class PcapEncoder {
  /** Bytes kept per packet. */
  readonly snaplen: number;
  /** Whether timestamps have nanosecond resolution. */
  readonly nanosecond: boolean;

  /** Creates an encoder. */
  constructor(options: PcapEncoderOptions = {}) {
    const s = Math.floor(options.snaplen ?? 65535);
    this.snaplen = Number.isFinite(s) && s >= 1 ? Math.min(s, 0x40000) : 65535;
    this.nanosecond = options.nanosecond ?? false;
  }

  /** The 24-byte global header. */
  header(): Uint8Array {
    const b = new Uint8Array(24);
    const v = new DataView(b.buffer);
    v.setUint32(0, this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true);
    v.setUint32(12, 0, true);
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, LINKTYPE_ETHERNET, true);
    return b;
  }

  /** One record: header plus the first `snaplen` bytes of `frame`, stamped `timeNs` (ns since the epoch or any origin). */
  record(frame: Uint8Array, timeNs: number): Uint8Array {
    const cap = Math.min(frame.length, this.snaplen);
    const b = new Uint8Array(16 + cap);
    const v = new DataView(b.buffer);
    const t = Number.isFinite(timeNs) && timeNs > 0 ? timeNs : 0;
    const sec = Math.floor(t / 1e9);
    const frac = this.nanosecond ? Math.floor(t - sec * 1e9) : Math.floor((t - sec * 1e9) / 1e3);
    v.setUint32(0, sec >>> 0, true);
    v.setUint32(4, frac >>> 0, true);
    v.setUint32(8, cap, true);
    v.setUint32(12, frame.length, true);
    b.set(frame.subarray(0, cap), 16);
    return b;
  }
}

/** Options of {@link PcapTap}. */
export interface PcapTapOptions extends PcapEncoderOptions {
  /** Timestamps come from this clock. */
  clock: Clock;
  /** Receives the encoded bytes: first the global header, then one chunk per packet. */
  write: (chunk: Uint8Array) => void;
  /** Added to the clock's time for timestamps (e.g. the wall-clock epoch in ns; default 0). */
  epochNs?: number;
  /** Stop capturing after this many bytes of output (default unbounded); later packets are counted as dropped. */
  maxBytes?: number;
}

/** Counters of a {@link PcapTap}. */
export interface PcapTapCounters {
  packets: number;
  bytes: number;
  /** Packets cut to the snap length. */
  truncated: number;
  /** Packets not written because `maxBytes` was reached. */
  dropped: number;
}

/**
 * Captures frames into pcap. Attach it to a switch ({@link PcapTap.attachTo}) to see every frame
 * entering the switch, or wrap a backend ({@link PcapTap.wrap}) to see both directions of one
 * device's traffic.
 * @example
 * const buf = new PcapBuffer();
 * const tap = new PcapTap({ clock, write: buf.write });
 * tap.attachTo(sw);
 * // ... later: buf.bytes() is a complete .pcap file
 */
export class PcapTap {
  readonly #enc: PcapEncoder;
  readonly #clock: Clock;
  readonly #write: (chunk: Uint8Array) => void;
  readonly #epoch: number;
  readonly #max: number;
  readonly #counters: PcapTapCounters = { packets: 0, bytes: 0, truncated: 0, dropped: 0 };

  /** Creates the tap and writes the global header. */
  constructor(options: PcapTapOptions) {
    this.#enc = new PcapEncoder(options);
    this.#clock = options.clock;
    this.#write = options.write;
    this.#epoch = options.epochNs ?? 0;
    this.#max = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const h = this.#enc.header();
    this.#counters.bytes += h.length;
    this.#write(h);
  }

  /** Live counters. */
  get counters(): Readonly<PcapTapCounters> {
    return this.#counters;
  }

  /** Records one frame now. */
  capture(frame: Uint8Array): void {
    const rec = this.#enc.record(frame, this.#clock.now() + this.#epoch);
    if (this.#counters.bytes + rec.length > this.#max) {
      this.#counters.dropped++;
      return;
    }
    if (frame.length > this.#enc.snaplen) this.#counters.truncated++;
    this.#counters.packets++;
    this.#counters.bytes += rec.length;
    this.#write(rec);
  }

  /** Captures every frame entering `sw`. Returns a function that stops it. */
  attachTo(sw: L2Switch): () => void {
    return sw.addTap((frame) => this.capture(frame));
  }

  /**
   * Returns a backend that forwards to `inner` and captures what passes in both directions (frames
   * the device transmits, and frames delivered to it that it accepts).
   */
  wrap(inner: NetBackend): NetBackend {
    const wrapped: NetBackend = {
      transmit: (frame: Uint8Array, meta?: FrameMeta): void => {
        this.capture(frame);
        inner.transmit(frame, meta);
      },
      setReceiver: (sink: FrameSink | undefined): void => {
        inner.setReceiver(
          sink === undefined
            ? undefined
            : (frame, meta) => {
                const ok = sink(frame, meta);
                if (ok) this.capture(frame);
                return ok;
              },
        );
      },
      rxReady: () => inner.rxReady?.(),
      close: () => inner.close?.(),
    };
    if (inner.offloads !== undefined) Object.assign(wrapped, { offloads: inner.offloads });
    return wrapped;
  }
}

/** A bounded in-memory pcap sink: collects chunks; {@link PcapBuffer.bytes} concatenates them. */
export class PcapBuffer {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;
  readonly #max: number;

  /** Keeps at most `maxBytes` (default 64 MiB); chunks beyond are discarded. */
  constructor(maxBytes = 64 << 20) {
    this.#max = maxBytes;
  }
  /** The write callback to give to {@link PcapTap}. */
  readonly write = (chunk: Uint8Array): void => {
    if (this.#length + chunk.length > this.#max) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  };
  /** Bytes collected so far. */
  get length(): number {
    return this.#length;
  }
  /** The capture as one file image. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
