/**
 * A point-to-point link: two {@link NetBackend}s wired back to back, like a crossover cable. What
 * one side transmits arrives at the other side's receiver. Useful to connect a device straight to
 * an endpoint (the host stub, a test peer) without a switch.
 * @module
 */
import type { FrameMeta, FrameSink, NetBackend } from "./backend.js";
import { segmentTso } from "./segment.js";

/** Per-direction counters of a {@link createLink} end. */
export interface LinkEndCounters {
  /** Frames this end transmitted that the peer accepted. */
  txFrames: number;
  /** Frames this end transmitted that were dropped (no peer receiver, peer refused, offload failed). */
  txDropped: number;
}

/** One end of a link: a backend plus its counters. */
export interface LinkEnd extends NetBackend {
  /** Counters of what this end sent. */
  readonly counters: Readonly<LinkEndCounters>;
}

/** Options of {@link createLink}. */
export interface LinkOptions {
  /**
   * Pass offload metadata through unchanged (default `false`: offloads are completed in software
   * before delivery, so a receiver always sees finished frames).
   */
  passOffloads?: boolean;
}

/**
 * Creates two connected backends. Delivery is synchronous but never re-entrant: a frame sent from
 * inside a receiver is queued and delivered after the current delivery returns (bounded queue of
 * 1024 frames; overflow is dropped and counted).
 * @example
 * const [devSide, hostSide] = createLink();
 * const stub = new HostStub({ backend: hostSide });
 * device.attachBackend(devSide);
 */
export function createLink(options: LinkOptions = {}): [LinkEnd, LinkEnd] {
  const sinks: [FrameSink | undefined, FrameSink | undefined] = [undefined, undefined];
  const counters: [LinkEndCounters, LinkEndCounters] = [
    { txFrames: 0, txDropped: 0 },
    { txFrames: 0, txDropped: 0 },
  ];
  const queue: { from: 0 | 1; frame: Uint8Array; meta: FrameMeta | undefined }[] = [];
  let delivering = false;
  const pass = options.passOffloads === true;

  const deliverOne = (from: 0 | 1, frame: Uint8Array, meta: FrameMeta | undefined): void => {
    const sink = sinks[from === 0 ? 1 : 0];
    const c = counters[from];
    if (sink === undefined) {
      c.txDropped++;
      return;
    }
    if (pass || meta === undefined || (meta.gso === undefined && meta.needsCsum === undefined)) {
      if (sink(frame, meta)) c.txFrames++;
      else c.txDropped++;
      return;
    }
    const r = segmentTso(frame, meta);
    if (!r.ok) {
      c.txDropped++;
      return;
    }
    for (const f of r.frames) {
      if (sink(f, { csumValid: true })) c.txFrames++;
      else c.txDropped++;
    }
  };

  const send = (from: 0 | 1, frame: Uint8Array, meta: FrameMeta | undefined): void => {
    if (delivering) {
      if (queue.length >= 1024) counters[from].txDropped++;
      else queue.push({ from, frame, meta });
      return;
    }
    delivering = true;
    try {
      deliverOne(from, frame, meta);
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        deliverOne(item.from, item.frame, item.meta);
      }
    } finally {
      delivering = false;
    }
  };

  const end = (i: 0 | 1): LinkEnd => ({
    counters: counters[i],
    // Either passed through or completed in software: the sender may always hand over offloads.
    offloads: { csum: true, tso4: true, tso6: true },
    transmit(frame: Uint8Array, meta?: FrameMeta): void {
      send(i, frame, meta);
    },
    setReceiver(sink: FrameSink | undefined): void {
      sinks[i] = sink;
    },
  });
  return [end(0), end(1)];
}
