/**
 * Receiving a frame: offloads the guest did not take are completed in software (checksum,
 * segmentation), then each frame is placed in the guest's receive buffers (virtio 1.2 section 5.1.6.3): the
 * header and the frame across one chain, or with MRG_RXBUF across as many chains as it needs
 * (`num_buffers`). Too few buffers now: the chains go back and the caller retries later. Work is
 * bounded: buffers so fragmented that one frame would read more than `budget` descriptors drop
 * the frame (counted as too big).
 * @module
 */
import type { FrameMeta } from "../net/backend.js";
import { completeChecksum } from "../net/checksum.js";
import { segmentTso } from "../net/segment.js";
import type { VirtioContext } from "../virtio/pci-transport.js";
import { VIRTIO_NET_F } from "./features.js";
import { writeChainParts, type DescriptorChain } from "../virtio/virtqueue.js";
import type { VirtioNetCounters } from "./state.js";

/**
 * Writes `hdr` (12 bytes; num_buffers is filled here) then `frame` into receive queue `qi`.
 * Returns false when there are not enough buffers now (nothing used), true otherwise (delivered,
 * dropped and counted, or a guest error reported through `ctx.fail`). Never throws.
 */
export function placeFrame(ctx: VirtioContext, qi: number, hdr: Uint8Array, frame: Uint8Array, mrg: boolean, budget: number, counters: VirtioNetCounters): boolean {
  const q = ctx.queues[qi];
  if (q === undefined || !q.ready) return false;
  const total = hdr.length + frame.length;
  try {
    const chains: DescriptorChain[] = [];
    let room = 0;
    const start = q.visited;
    while (room < total) {
      if (q.visited - start > budget) {
        // Buffers so fragmented that one frame would cost more than a run: drop it (bounded work).
        for (let k = 0; k < chains.length; k++) q.undoPop();
        counters.rxTooBig++;
        return true;
      }
      const c = q.popChain(ctx.mem);
      if (c === undefined) {
        // Not enough buffers now: give them back and let the backend retry on rxReady.
        for (let k = 0; k < chains.length; k++) q.undoPop();
        counters.rxNoBuffer++;
        return false;
      }
      chains.push(c);
      room += c.writableLen;
      if (!mrg && room < total) {
        // One buffer per frame without MRG_RXBUF: too small, so the frame is dropped and counted.
        q.addUsed(ctx.mem, c.head, 0);
        counters.rxTooBig++;
        ctx.signalQueue(qi);
        return true;
      }
    }
    hdr[10] = chains.length & 0xff; // num_buffers
    hdr[11] = (chains.length >>> 8) & 0xff;
    let off = 0;
    for (const c of chains) {
      const n = writeChainParts(ctx.mem, c, hdr, frame, off);
      if (n < 0) return ctx.fail("RX buffer outside guest memory"), true;
      q.addUsed(ctx.mem, c.head, n);
      off += n;
    }
    counters.rxFrames++;
    counters.rxBytes += frame.length;
    ctx.signalQueue(qi);
    return true;
  } catch (e) {
    ctx.fail((e as Error).message);
    return true;
  }
}

/**
 * Delivers `frame` through `deliver`, completing in software what the guest does not take
 * (`takes(bit)`: GUEST_TSO4/6, GUEST_ECN, GUEST_CSUM negotiated and not switched off). Returns
 * `deliver`'s answer for the first (or only) frame: false asks the backend to retry.
 */
export function receiveOffloaded(
  frame: Uint8Array,
  meta: FrameMeta | undefined,
  takes: (bit: number) => boolean,
  deliver: (frame: Uint8Array, meta: FrameMeta | undefined) => boolean,
  counters: VirtioNetCounters,
): boolean {
  const gso = meta?.gso;
  if (gso !== undefined) {
    const ok = gso.type === "tcpv4" ? takes(VIRTIO_NET_F.GUEST_TSO4) : gso.type === "tcpv6" ? takes(VIRTIO_NET_F.GUEST_TSO6) : false;
    if (!ok || (gso.ecn === true && !takes(VIRTIO_NET_F.GUEST_ECN))) {
      const r = segmentTso(frame, meta);
      if (!r.ok) {
        counters.rxTooBig++;
        return true;
      }
      counters.swSegmented++;
      // Backpressure only while nothing has been delivered: once a segment is in the guest's
      // ring, a `false` would make the backend retry the whole frame and deliver that segment
      // twice. Segments that then find no buffer are dropped and counted (rxNoBuffer), as a NIC
      // drops what arrives with its ring empty; TCP retransmits them.
      for (let k = 0; k < r.frames.length; k++) {
        if (!deliver(r.frames[k]!, { csumValid: true })) {
          if (k === 0) return false;
          counters.rxNoBuffer += r.frames.length - k - 1;
          return true;
        }
      }
      return true;
    }
  }
  if (meta?.needsCsum !== undefined && !takes(VIRTIO_NET_F.GUEST_CSUM)) {
    if (!completeChecksum(frame, meta.needsCsum.start, meta.needsCsum.offset)) {
      counters.rxTooBig++;
      return true;
    }
    return deliver(frame, { csumValid: true });
  }
  return deliver(frame, meta);
}
