/**
 * The TAP's transmit side on a thread of its own. A `write(2)` to a TAP runs the host kernel's
 * whole receive path for the frame (for a 64 KiB TCP frame: IP, TCP, the socket queue, waking the
 * reader) in the writer's context: 13-16 % of the VMM thread's time in a guest-to-host iperf3 run
 * (docs/networking.md). Done here, on another core, it overlaps the guest instead of taking turns
 * with it.
 *
 * The VMM thread copies each frame (with its vnet header) into a slot of a ring in shared memory
 * and bumps the head; the writer thread writes slots in order and bumps the tail. A full ring drops
 * the frame, as a full device queue does. Write failures are counted in shared memory.
 * @module
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";

/** Slots in the ring (a power of two). */
export const TAP_TX_SLOTS = 64;
/** Bytes per slot: a 12-byte vnet header and a frame of up to 64 KiB, rounded up. */
export const TAP_TX_SLOT = 65664;

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
const lens = new Int32Array(workerData.lens);
const slots = [];
for (let i = 0; i < workerData.slots; i++) slots.push(new Uint8Array(workerData.ring, i * workerData.slot, workerData.slot));
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
    if (write(workerData.fd, slots[i], n) !== n) Atomics.add(ctrl, ${FAILED}, 1);
    tail = (tail + 1) | 0;
    Atomics.store(ctrl, ${TAIL}, tail);
  }
}
`;

/** The transmit ring and its thread. */
export class TapWriter {
  readonly #worker: Worker;
  readonly #ctrl: Int32Array;
  readonly #lens: Int32Array;
  readonly #ring: Uint8Array;
  #head = 0;
  #exited = false;
  readonly #onExit: Promise<void>;

  private constructor(fd: number, koffiPath: string) {
    const ctrl = new SharedArrayBuffer(4 * 4);
    const lens = new SharedArrayBuffer(4 * TAP_TX_SLOTS);
    const ring = new SharedArrayBuffer(TAP_TX_SLOTS * TAP_TX_SLOT);
    this.#ctrl = new Int32Array(ctrl);
    this.#lens = new Int32Array(lens);
    this.#ring = new Uint8Array(ring);
    this.#worker = new Worker(WRITER_SOURCE, { eval: true, workerData: { fd, koffi: koffiPath, ctrl, lens, ring, slots: TAP_TX_SLOTS, slot: TAP_TX_SLOT } });
    // a TAP nobody closed does not keep the process alive (the kernel closes the fd at exit)
    this.#worker.unref();
    this.#onExit = new Promise((resolve) => {
      this.#worker.once("exit", () => {
        this.#exited = true;
        resolve();
      });
      this.#worker.once("error", () => undefined);
    });
  }

  /**
   * Starts the thread for `fd`, or returns undefined where it cannot run here (no worker threads,
   * no shared memory, koffi not resolvable): the TAP then writes on the calling thread.
   */
  static start(fd: number): TapWriter | undefined {
    try {
      if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") return undefined;
      const koffiPath = createRequire(import.meta.url).resolve("koffi");
      return new TapWriter(fd, koffiPath);
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
   * Queues `header` (may be empty) and `frame` as one write. Returns false, queuing nothing, if
   * the ring is full, the frame does not fit a slot, or the thread has ended.
   */
  push(header: Uint8Array, frame: Uint8Array): boolean {
    const len = header.length + frame.length;
    if (this.#exited || len > TAP_TX_SLOT) return false;
    const head = this.#head;
    if (((head - Atomics.load(this.#ctrl, TAIL)) | 0) >= TAP_TX_SLOTS) return false;
    const i = head & (TAP_TX_SLOTS - 1);
    const at = i * TAP_TX_SLOT;
    if (header.length > 0) this.#ring.set(header, at);
    this.#ring.set(frame, at + header.length);
    this.#lens[i] = len;
    this.#head = (head + 1) | 0;
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
