/**
 * The 12-byte `virtio_net_hdr` (virtio 1.2 section 5.1.6) on both paths, and the small pure
 * helpers around it: reading a TX header into {@link FrameMeta}, handing a frame to a backend
 * (completing checksum and segmentation in software for a backend without the offloads),
 * building an RX header, and the flow hash that picks a receive queue pair.
 * @module
 */
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { le16 } from "../net/bytes.js";
import { segmentTso } from "../net/segment.js";
import { VIRTIO_NET_F, has } from "./features.js";
import type { VirtioNetCounters } from "./state.js";

/** Header length (with num_buffers, as VERSION_1 has it). */
export const HDR_LEN = 12;
/** The largest frame accepted from the guest (64 KiB + header), bounding work per chain. */
export const MAX_TX_FRAME = 65_550;

const HDR_F = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
const GSO = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, ECN: 0x80 } as const;

/** The offload request in a TX header under the `negotiated` features, or "bad" to drop the frame. */
export function parseTxHeader(h: Uint8Array, frameLen: number, negotiated: bigint): FrameMeta | undefined | "bad" {
  const flags = h[0]!;
  const gsoType = h[1]!;
  if (flags === 0 && gsoType === 0) return undefined;
  const meta: FrameMeta = {};
  if ((flags & HDR_F.NEEDS_CSUM) !== 0) {
    if (!has(negotiated, VIRTIO_NET_F.CSUM)) return "bad";
    const start = le16(h, 6);
    const offset = le16(h, 8);
    if (start + offset + 2 > frameLen) return "bad";
    meta.needsCsum = { start, offset };
  }
  const kind = gsoType & ~GSO.ECN;
  if (kind !== GSO.NONE) {
    const ecn = (gsoType & GSO.ECN) !== 0;
    const ok = (kind === GSO.TCPV4 && has(negotiated, VIRTIO_NET_F.HOST_TSO4)) || (kind === GSO.TCPV6 && has(negotiated, VIRTIO_NET_F.HOST_TSO6));
    if (!ok || (ecn && !has(negotiated, VIRTIO_NET_F.HOST_ECN)) || le16(h, 4) === 0) return "bad";
    meta.gso = { type: kind === GSO.TCPV4 ? "tcpv4" : "tcpv6", size: le16(h, 4), hdrLen: le16(h, 2), ...(ecn ? { ecn: true } : {}) };
  }
  return meta.needsCsum === undefined && meta.gso === undefined ? undefined : meta;
}

/** Hands a guest frame to `backend`, completing offloads it cannot take in software; counts. */
export function sendFrame(backend: NetBackend, counters: VirtioNetCounters, frame: Uint8Array, meta: FrameMeta | undefined): void {
  const caps = backend.offloads;
  const canTake =
    meta === undefined ||
    (caps !== undefined &&
      (meta.needsCsum === undefined || caps.csum) &&
      (meta.gso === undefined || (meta.gso.type === "tcpv4" ? caps.tso4 : meta.gso.type === "tcpv6" ? caps.tso6 : false)));
  if (canTake) {
    counters.txFrames++;
    counters.txBytes += frame.length;
    backend.transmit(frame, meta);
    return;
  }
  const r = segmentTso(frame, meta);
  if (!r.ok) {
    counters.txErrors++;
    return;
  }
  if (r.frames.length > 1) counters.swSegmented++;
  for (const f of r.frames) {
    counters.txFrames++;
    counters.txBytes += f.length;
    backend.transmit(f);
  }
}

/** Fills `data` (12 bytes) with the RX header for `meta`; `guestCsum`: the guest takes checksum offload. */
export function fillRxHeader(data: Uint8Array, meta: FrameMeta | undefined, guestCsum: boolean): void {
  data.fill(0);
  if (guestCsum) {
    if (meta?.needsCsum !== undefined) {
      data[0] = HDR_F.NEEDS_CSUM;
      data[6] = meta.needsCsum.start & 0xff;
      data[7] = meta.needsCsum.start >>> 8;
      data[8] = meta.needsCsum.offset & 0xff;
      data[9] = meta.needsCsum.offset >>> 8;
    } else if (meta?.csumValid === true) data[0] = HDR_F.DATA_VALID;
  }
  if (meta?.gso !== undefined) {
    data[1] = (meta.gso.type === "tcpv4" ? GSO.TCPV4 : GSO.TCPV6) | (meta.gso.ecn === true ? GSO.ECN : 0);
    data[2] = meta.gso.hdrLen & 0xff;
    data[3] = meta.gso.hdrLen >>> 8;
    data[4] = meta.gso.size & 0xff;
    data[5] = meta.gso.size >>> 8;
  }
}

/** The queue pair for a frame: a hash of the IPv4/IPv6 addresses and L4 ports, over `pairs`. */
export function flowPair(frame: Uint8Array, pairs: number): number {
  if (pairs <= 1) return 0;
  let from = 0;
  let to = 0;
  const et = (frame[12]! << 8) | frame[13]!;
  if (et === 0x0800 && frame.length >= 38) {
    from = 26;
    to = 14 + ((frame[14]! & 0x0f) << 2) + 4;
  } else if (et === 0x86dd && frame.length >= 58) {
    from = 22;
    to = 58;
  } else return 0;
  let h = 0x811c9dc5;
  for (let i = from; i < to && i < frame.length; i++) h = Math.imul(h ^ frame[i]!, 0x01000193);
  return (h >>> 0) % pairs;
}
