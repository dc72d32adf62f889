/**
 * Placing one received frame in the guest's receive buffers (virtio 1.2 section 5.1.6.3): the
 * header and the frame across one chain, or with MRG_RXBUF across as many chains as it needs
 * (`num_buffers`). Too few buffers now: the chains go back and the caller retries later. Work is
 * bounded: buffers so fragmented that one frame would read more than `budget` descriptors drop
 * the frame (counted as too big).
 * @module
 */
import type { VirtioContext } from "../virtio/pci-transport.js";
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
