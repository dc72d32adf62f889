/**
 * The byte channel a migration runs over, injected into source and destination: a socket in Node
 * (`socket.ts`), a WebSocket or a MessagePort elsewhere, an in-memory pair in tests
 * ({@link memoryChannelPair}).
 *
 * Platform-neutral.
 * @module
 */

/** A duplex, ordered, reliable byte channel. */
export interface ByteChannel {
  /**
   * Sends bytes (the caller may reuse the buffer once this returns). Resolves when the channel
   * took them (flow control); rejects once the channel is closed or broken.
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Starts delivery of received bytes: chunks in order, then `onEnd` exactly once, with the error
   * when the channel broke rather than closed. Call once.
   */
  start(onData: (chunk: Uint8Array) => void, onEnd: (error?: Error) => void): void;
  /**
   * Closes both directions. Idempotent. May settle later: a socket keeps reading until its peer
   * has closed too, so that the peer reads everything sent before (see `socket.ts`).
   */
  close(): void | Promise<void>;
}

/** The channel is closed or broke. */
export class ChannelClosedError extends Error {
  override readonly name = "ChannelClosedError";
}

/** What a tamper hook may do with a chunk on its way: pass it (maybe changed), or break the channel. */
export type TamperResult = Uint8Array | "break";

/** Options of {@link memoryChannelPair}. */
export interface MemoryChannelOptions {
  /**
   * Sees every chunk written by side `from` (0 or 1) before the other side gets it, and the count
   * of bytes that side wrote before it. Returning `"break"` breaks the channel at that point, as a
   * peer process dying would (both sides' `onEnd` get an error).
   */
  tamper?: (from: 0 | 1, chunk: Uint8Array, offset: number) => TamperResult;
}

/**
 * Two connected in-memory channels. Delivery is asynchronous (a later task), as a socket's is.
 * @example
 * ```ts
 * const [a, b] = memoryChannelPair();
 * const source = new MigrationSource(srcEndpoint, a);
 * const dest = new MigrationDestination(dstEndpoint, b);
 * await Promise.all([dest.run(), source.run()]);
 * ```
 */
export function memoryChannelPair(opts: MemoryChannelOptions = {}): [ByteChannel, ByteChannel] {
  interface Side {
    onData?: (c: Uint8Array) => void;
    onEnd?: ((e?: Error) => void) | undefined;
    pending: Uint8Array[];
    ended: Error | null | undefined;
    written: number;
  }
  const sides: [Side, Side] = [
    { pending: [], ended: undefined, written: 0 },
    { pending: [], ended: undefined, written: 0 },
  ];
  let closed: Error | null | undefined;
  const finish = (e: Error | null): void => {
    if (closed !== undefined) return;
    closed = e;
    for (const s of sides) {
      s.ended = e;
      setTimeout(() => deliver(s), 0);
    }
  };
  const deliver = (s: Side): void => {
    if (s.onData === undefined) return;
    while (s.pending.length > 0) s.onData(s.pending.shift()!);
    if (s.ended !== undefined) {
      const cb = s.onEnd;
      s.onEnd = undefined;
      cb?.(s.ended ?? undefined);
    }
  };
  const make = (me: 0 | 1): ByteChannel => ({
    write(bytes: Uint8Array): Promise<void> {
      if (closed !== undefined) return Promise.reject(new ChannelClosedError(closed?.message ?? "channel closed"));
      let chunk: TamperResult = bytes.slice();
      const at = sides[me].written;
      sides[me].written += bytes.length;
      if (opts.tamper !== undefined) chunk = opts.tamper(me, chunk, at);
      if (chunk === "break") {
        finish(new ChannelClosedError("the peer went away (simulated)"));
        return Promise.reject(new ChannelClosedError("the peer went away (simulated)"));
      }
      const other = sides[me === 0 ? 1 : 0];
      other.pending.push(chunk);
      setTimeout(() => deliver(other), 0);
      // A little flow control: let the other side's task run before the next write.
      return new Promise((r) => setTimeout(r, 0));
    },
    start(onData, onEnd): void {
      const s = sides[me];
      s.onData = onData;
      s.onEnd = onEnd;
      setTimeout(() => deliver(s), 0);
    },
    close(): void {
      finish(null);
    },
  });
  return [make(0), make(1)];
}
