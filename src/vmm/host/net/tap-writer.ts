/**
 * The TAP's transmit side on a thread of its own. A `write(2)` to a TAP runs the host kernel's
 * whole receive path for the frame (for a 64 KiB TCP frame: IP, TCP, the socket queue, waking the
 * reader) in the writer's context: 13-16 % of the VMM thread's time in a guest-to-host iperf3 run
 * (docs/networking.md). Done here, on another core, it overlaps the guest instead of taking turns
 * with it.
 *
 * The VMM thread copies each frame (with its vnet header) into a byte ring in shared memory, notes
 * its offset and length in the next slot and bumps the head; the writer thread writes slots in
 * order and bumps the tail. When the ring is full, the VMM thread waits for the writer (as it
 * waited for the kernel before this thread existed), up to {@link TAP_TX_FULL_WAIT_MS}; only then
 * is the frame dropped. Write failures are counted in shared memory.
 * @module
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";

/** Frames the ring holds at most (a power of two). */
export const TAP_TX_SLOTS = 1024;
/** Bytes of frame data the ring holds: about 64 full-size GSO frames, or 2700 wire-size ones. */
export const TAP_TX_BYTES = 4 << 20;
/** Largest write: a 12-byte vnet header and a frame of up to 64 KiB. */
export const TAP_TX_MAX = 12 + 65536;
/** How long a push waits for room in a full ring before it drops the frame. */
export const TAP_TX_FULL_WAIT_MS = 200;

// indices into the control words
const HEAD = 0;
const TAIL = 1;
const STOP = 2;
const FAILED = 3;

/**
 * The thread's code, run with `eval`: plain JavaScript, so it needs no loader for TypeScript
 * sources. It loads koffi by the path the VMM resolved.
 */
const WRITER_SOURCE = `
const { workerData } = require("node:worker_threads");
const koffi = require(workerData.koffi);
const write = koffi.load("libc.so.6").func("long write(int fd, const void *buf, unsigned long count)");
const ctrl = new Int32Array(workerData.ctrl);
const offs = new Int32Array(workerData.offs);
const lens = new Int32Array(workerData.lens);
const ring = new Uint8Array(workerData.ring);
const mask = workerData.slots - 1;
let tail = Atomics.load(ctrl, ${TAIL});
for (;;) {
  const head = Atomics.load(ctrl, ${HEAD});
  if (head === tail) {
    if (Atomics.load(ctrl, ${STOP}) !== 0) break;
    Atomics.wait(ctrl, ${HEAD}, head);
    continue;
  }
  while (tail !== head) {
    const i = tail & mask;
    const n = lens[i];
    if (write(workerData.fd, ring.subarray(offs[i], offs[i] + n), n) !== n) Atomics.add(ctrl, ${FAILED}, 1);
    tail = (tail + 1) | 0;
    Atomics.store(ctrl, ${TAIL}, tail);
    Atomics.notify(ctrl, ${TAIL});
  }
}
`;

/** The transmit ring and its thread. */
export class TapWriter {
  readonly #worker: Worker;
  readonly #ctrl: Int32Array;
  readonly #offs: Int32Array;
  readonly #lens: Int32Array;
  readonly #ring: Uint8Array;
  /** Frames queued so far (wraps at 2^31, as the tail does). */
  #head = 0;
  /** Where the next frame's bytes go in the ring. */
  #wpos = 0;
  #exited = false;
  readonly #onExit: Promise<void>;

  private constructor(fd: number, koffiPath: string) {
    const ctrl = new SharedArrayBuffer(4 * 4);
    const offs = new SharedArrayBuffer(4 * TAP_TX_SLOTS);
    const lens = new SharedArrayBuffer(4 * TAP_TX_SLOTS);
    const ring = new SharedArrayBuffer(TAP_TX_BYTES);
    this.#ctrl = new Int32Array(ctrl);
    this.#offs = new Int32Array(offs);
    this.#lens = new Int32Array(lens);
    this.#ring = new Uint8Array(ring);
    this.#worker = new Worker(WRITER_SOURCE, { eval: true, workerData: { fd, koffi: koffiPath, ctrl, offs, lens, ring, slots: TAP_TX_SLOTS } });
    // a TAP nobody closed does not keep the process alive (the kernel closes the fd at exit)
    this.#worker.unref();
    this.#onExit = new Promise((resolve) => {
      this.#worker.once("exit", () => {
        this.#exited = true;
        // frames queued but never written (the thread failed, e.g. at start) count as failed
        const lost = (this.#head - Atomics.load(this.#ctrl, TAIL)) | 0;
        if (lost > 0) Atomics.add(this.#ctrl, FAILED, lost);
        resolve();
      });
      this.#worker.once("error", () => undefined);
    });
  }

  /**
   * Starts the thread for `fd`, or returns undefined where it cannot run here (no worker threads,
   * no shared memory, koffi not resolvable): the TAP then writes on the calling thread.
   * `koffiPath`: where the thread loads koffi from (default: as this module resolves it). A thread
   * that fails to start ends at once; what was queued counts as failed.
   */
  static start(fd: number, koffiPath?: string): TapWriter | undefined {
    try {
      if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") return undefined;
      return new TapWriter(fd, koffiPath ?? createRequire(import.meta.url).resolve("koffi"));
    } catch {
      return undefined;
    }
  }

  /** Frames the thread failed to write (a short write or an error, e.g. a full kernel queue). */
  get failed(): number {
    return Atomics.load(this.#ctrl, FAILED);
  }

  /** Whether the thread has ended (it only does after {@link stop}, or if it failed to start). */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * Where `len` bytes can go now, or -1 if the ring has no room for them (too many frames queued,
   * or no free stretch that long).
   */
  #place(len: number): number {
    const tail = Atomics.load(this.#ctrl, TAIL);
    const queued = (this.#head - tail) | 0;
    if (queued === 0) return 0; // empty: start over at the front
    if (queued >= TAP_TX_SLOTS) return -1;
    // queued bytes run from the oldest frame's start to #wpos, maybe around the end
    const oldest = this.#offs[tail & (TAP_TX_SLOTS - 1)]!;
    const w = this.#wpos;
    if (oldest < w) {
      if (w + len <= TAP_TX_BYTES) return w;
      return len < oldest ? 0 : -1;
    }
    return w + len < oldest ? w : -1;
  }

  /**
   * Queues `header` (may be empty) and `frame` as one write. Waits for room while the ring is full
   * (up to {@link TAP_TX_FULL_WAIT_MS}); returns false, queuing nothing, if there is still none,
   * the frame is too large for one write, or the thread has ended.
   */
  push(header: Uint8Array, frame: Uint8Array): boolean {
    const len = header.length + frame.length;
    if (this.#exited || len > TAP_TX_MAX) return false;
    let at = this.#place(len);
    // A full ring: wait for the writer, which notifies TAIL after each frame it wrote. (A thread
    // that ends meanwhile is only seen by the event loop, so the wait's bound covers that too.)
    const until = at < 0 ? performance.now() + TAP_TX_FULL_WAIT_MS : 0;
    while (at < 0) {
      const left = until - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#ctrl, TAIL, Atomics.load(this.#ctrl, TAIL), left);
      at = this.#place(len);
    }
    if (header.length > 0) this.#ring.set(header, at);
    this.#ring.set(frame, at + header.length);
    const i = this.#head & (TAP_TX_SLOTS - 1);
    this.#offs[i] = at;
    this.#lens[i] = len;
    this.#wpos = at + len;
    this.#head = (this.#head + 1) | 0;
    Atomics.store(this.#ctrl, HEAD, this.#head);
    Atomics.notify(this.#ctrl, HEAD, 1);
    return true;
  }

  /** Writes what is queued, then ends the thread; resolves once it has ended. */
  stop(): Promise<void> {
    Atomics.store(this.#ctrl, STOP, 1);
    Atomics.notify(this.#ctrl, HEAD, 1);
    return this.#onExit;
  }
}
