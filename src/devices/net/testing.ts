/**
 * Small helpers for tests and benches of network code: a manual clock, a recording receiver and a
 * counting backend.
 * Platform-neutral.
 * @module
 */
import type { FrameMeta, FrameSink, NetBackend, ReceiverOptions } from "./backend.js";
import { BROADCAST_MAC, buildArp, buildEcho, buildEthernet, buildIpv6, finishFrame, ipFrame, parseIpv6 } from "./frames.js";
import { EtherType, IpProto } from "./parse.js";

/**
 * A backend that counts what the device transmits (and keeps nothing) and holds the device's
 * receive sink, so a test or bench can inject frames with `sink(frame)`.
 */
export class CountingBackend implements NetBackend {
  /** Frames transmitted by the device. */
  sent = 0;
  /** The device's receive path, once installed. */
  sink: FrameSink | undefined;
  transmit(): void {
    this.sent++;
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
}

/**
 * A backend that records what the device transmits (frames and their offload metadata) and holds
 * the device's receive sink, so a test can inject frames with {@link RecordingBackend.inject}.
 * Declare `offloads` to look like an uplink that takes checksum or TSO offloads whole.
 */
export class RecordingBackend implements NetBackend {
  /** Frames transmitted by the device, in order. */
  readonly sent: Uint8Array[] = [];
  /** The offload metadata of each frame in {@link RecordingBackend.sent}. */
  readonly metas: (FrameMeta | undefined)[] = [];
  /** The device's receive path, once installed. */
  sink: FrameSink | undefined;
  readonly offloads?: { csum: boolean; tso4: boolean; tso6: boolean };
  /** With `copies`, it says `copiesOnTransmit` and records a copy, as the TAP does. */
  readonly copiesOnTransmit: boolean;
  /** With `copies`: the arrays it was handed, as they were (not copies). */
  readonly handed: Uint8Array[] = [];
  constructor(offloads?: { csum: boolean; tso4: boolean; tso6: boolean }, o: { copies?: boolean } = {}) {
    if (offloads !== undefined) this.offloads = offloads;
    this.copiesOnTransmit = o.copies === true;
  }
  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    if (this.copiesOnTransmit) this.handed.push(frame);
    this.sent.push(this.copiesOnTransmit ? frame.slice() : frame);
    this.metas.push(meta);
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
  /** Hands `frame` to the device as if it came from the wire; false when refused or unattached. */
  inject(frame: Uint8Array, meta?: FrameMeta): boolean {
    return this.sink?.(frame, meta) ?? false;
  }
}

/**
 * A backend with one receive buffer that it reads every frame into and overwrites with 0xee once the
 * device took the frame, as the TAP does for a receiver that borrows (`ReceiverOptions.borrows`):
 * whatever the device kept without copying shows up as 0xee.
 */
export class ReusingBackend implements NetBackend {
  sink: FrameSink | undefined;
  /** The options the device installed its receiver with. */
  options: ReceiverOptions | undefined;
  readonly buf = new Uint8Array(1514);
  transmit(): void {}
  setReceiver(s: FrameSink | undefined, o?: ReceiverOptions): void {
    this.sink = s;
    this.options = o;
  }
  /**
   * Builds a `len`-byte frame in the buffer (`fill` writes it), hands it to the device, and
   * overwrites the buffer if the device took it (a refused frame stays the backend's). True if taken.
   */
  push(len: number, fill: (f: Uint8Array) => void): boolean {
    const f = this.buf.subarray(0, len);
    fill(f);
    const taken = this.sink?.(f) ?? false;
    if (taken) this.buf.fill(0xee);
    return taken;
  }
}

export { ManualClock } from "../testing.js";

/** A receiver that records what it gets; `accept` decides whether it has buffers. */
export class FrameRecorder {
  /** Frames received, in order. */
  readonly frames: { frame: Uint8Array; meta: FrameMeta | undefined }[] = [];
  /** Whether the next frames are accepted (simulates RX buffers). */
  accept = true;
  /** The sink to install with `setReceiver`. */
  readonly sink: FrameSink = (frame, meta) => {
    if (!this.accept) return false;
    this.frames.push({ frame, meta });
    return true;
  };
  /** Installs the sink on `backend` and returns this recorder. */
  attach(backend: NetBackend): this {
    backend.setReceiver(this.sink);
    return this;
  }
}

/** Frames a simulated guest sends to ping a host: ARP request, ICMP echo, NS, ICMPv6 echo. */
export const guestFrames = {
  /** ARP "who has `targetIp`? tell `srcIp`", broadcast. */
  arpRequest(srcMac: Uint8Array, srcIp: Uint8Array, targetIp: Uint8Array): Uint8Array {
    return buildEthernet({
      dst: BROADCAST_MAC, src: srcMac, etherType: EtherType.ARP, pad: true,
      payload: buildArp(1, srcMac, srcIp, new Uint8Array(6), targetIp),
    });
  },
  /** ICMP echo request. */
  echoRequest(srcMac: Uint8Array, dstMac: Uint8Array, src: Uint8Array, dst: Uint8Array, id: number, seq: number, size = 56): Uint8Array {
    const data = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
    return ipFrame({ srcMac, dstMac, src, dst, proto: IpProto.ICMP, l4: buildEcho(8, id, seq, data), id: seq });
  },
  /** ICMPv6 neighbour solicitation for `target`, sent to its solicited-node multicast group. */
  neighborSolicitation(srcMac: Uint8Array, src: Uint8Array, target: Uint8Array): Uint8Array {
    const group = parseIpv6("ff02::1:ff00:0");
    group.set(target.subarray(13, 16), 13);
    const ns = new Uint8Array(32);
    ns[0] = 135;
    ns.set(target, 8);
    ns[24] = 1; // source link-layer address option
    ns[25] = 1;
    ns.set(srcMac, 26);
    const ip = buildIpv6({ src, dst: group, next: IpProto.ICMPv6, payload: ns, hopLimit: 255 });
    const dstMac = Uint8Array.of(0x33, 0x33, 0xff, target[13]!, target[14]!, target[15]!);
    return finishFrame(buildEthernet({ dst: dstMac, src: srcMac, etherType: EtherType.IPv6, payload: ip }));
  },
  /** ICMPv6 echo request. */
  echo6Request(srcMac: Uint8Array, dstMac: Uint8Array, src: Uint8Array, dst: Uint8Array, id: number, seq: number): Uint8Array {
    return ipFrame({ srcMac, dstMac, src, dst, proto: IpProto.ICMPv6, l4: buildEcho(128, id, seq, new Uint8Array(16).fill(0xab)) });
  },
};
