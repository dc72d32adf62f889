/**
 * Hears when a guest's MAC address has moved to another host on the segment, as a migration
 * source needs to: once the destination's RARP announce for the guest's MAC comes back through
 * this side's own backend, the segment's bridges have learnt the new place, so no later frame for
 * the guest reaches this side. Every frame sent to this side before the announce was queued ahead
 * of it (a bridge port's queue, a TAP's queue and a socket are each in order), so by the time the
 * announce is read, those frames have already been handed to the devices.
 * @module
 */
import type { FrameMeta, FrameSink, NetBackend, ReceiverOptions } from "./backend.js";

/** EtherType of RARP, the frame QEMU and nicvisor announce a migrated guest with. */
const ETHERTYPE_RARP = 0x8035;
/** The guest MACs remembered per backend (a NIC with many MAC filters still sends from a few). */
const MAX_MACS = 16;

/**
 * A {@link NetBackend} in front of another that remembers the source MACs of what the devices
 * send, and, once {@link AnnounceWatch.arm}ed, sets {@link AnnounceWatch.heard} when a RARP from
 * one of those MACs arrives from the segment (another host announcing the guest). Everything else
 * passes through unchanged. Its cost on the transmit path is one 6-byte compare per frame.
 * @example
 * ```ts
 * const watch = new AnnounceWatch(tap);
 * platform.add(nic, { name: "net0", slot: 4, backend: watch });
 * watch.arm();               // the guest stops here
 * // ... later: watch.heard === true once the destination's RARP came back through the TAP
 * ```
 */
export class AnnounceWatch implements NetBackend {
  readonly #inner: NetBackend;
  /** Source MACs seen on transmit, as 48-bit numbers. */
  readonly #macs: number[] = [];
  #last = -1;
  #armed = false;
  #heard = false;

  /** The inner backend's offloads, where it declares any (absent otherwise, as on the inner one). */
  declare readonly offloads?: { csum: boolean; tso4: boolean; tso6: boolean };

  constructor(inner: NetBackend) {
    this.#inner = inner;
    if (inner.offloads !== undefined) Object.defineProperty(this, "offloads", { get: () => inner.offloads, enumerable: true });
  }

  /** As the inner backend's: the watch reads a sent frame's source MAC before passing it on. */
  get copiesOnTransmit(): boolean {
    return this.#inner.copiesOnTransmit === true;
  }

  /** Whether the devices behind it have sent anything (a MAC to listen for). */
  get hasMacs(): boolean {
    return this.#macs.length > 0;
  }

  /** True once, since {@link AnnounceWatch.arm}, a RARP from one of the guest's MACs arrived from the segment. */
  get heard(): boolean {
    return this.#heard;
  }

  /** Starts listening (the guest is about to stop here); forgets an earlier announce. */
  arm(): void {
    this.#armed = true;
    this.#heard = false;
  }

  /** Stops listening (the migration failed: the guest runs here again). */
  disarm(): void {
    this.#armed = false;
    this.#heard = false;
  }

  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    // A group source address is never a station's own.
    if (frame.length >= 12 && (frame[6]! & 1) === 0) {
      const mac = macAt(frame, 6);
      if (mac !== this.#last) this.#remember(mac);
    }
    this.#inner.transmit(frame, meta);
  }

  setReceiver(sink: FrameSink | undefined, options?: ReceiverOptions): void {
    // The frame is only looked at during the call: whether it may be borrowed is the sink's to say.
    this.#inner.setReceiver(
      sink === undefined
        ? undefined
        : (frame, meta) => {
            const taken = sink(frame, meta);
            if (this.#armed && !this.#heard && isAnnounceFrom(frame, this.#macs)) this.#heard = true;
            return taken;
          },
      options,
    );
  }

  rxReady(): void {
    this.#inner.rxReady?.();
  }

  close(): void {
    this.#inner.close?.();
  }

  #remember(mac: number): void {
    this.#last = mac;
    if (this.#macs.includes(mac)) return;
    if (this.#macs.length >= MAX_MACS) this.#macs.shift();
    this.#macs.push(mac);
  }
}

/** The 6 bytes at `at` as a 48-bit number. */
function macAt(f: Uint8Array, at: number): number {
  return f[at]! * 2 ** 40 + f[at + 1]! * 2 ** 32 + ((f[at + 2]! << 24) >>> 0) + (f[at + 3]! << 16) + (f[at + 4]! << 8) + f[at + 5]!;
}

/** An untagged RARP whose Ethernet source is one of `macs`. */
function isAnnounceFrom(f: Uint8Array, macs: readonly number[]): boolean {
  if (f.length < 14 || ((f[12]! << 8) | f[13]!) !== ETHERTYPE_RARP) return false;
  return macs.includes(macAt(f, 6));
}
