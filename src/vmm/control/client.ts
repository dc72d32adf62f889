/**
 * The client side of the control protocol, independent of any transport: feed it the server's
 * bytes, it reads the greeting, matches replies to requests and hands events on. The Node socket
 * client (`connectControl` in `./socket.ts`) wraps it.
 *
 * Platform-neutral: no `node:*` imports.
 * @module
 */
import {
  CONTROL_MAX_LINE, ControlCommandError, ControlProtocolError, LineSplitter,
  type ControlEvent, type ControlGreeting,
} from "./protocol.js";

interface Pending {
  id: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * A control client over any byte transport.
 * @example
 * ```ts
 * const c = new ControlClientCore((line) => sock.write(line + "\n"));
 * sock.on("data", (d) => c.receive(d));
 * await c.greeting;
 * await c.execute("qmp_capabilities");
 * const status = await c.execute("query-status");
 * ```
 */
export class ControlClientCore {
  readonly #send: (line: string) => void;
  readonly #lines: LineSplitter;
  readonly #pending: Pending[] = [];
  readonly #listeners = new Set<(e: ControlEvent) => void>();
  #nextId = 1;
  #failed: Error | undefined;
  #greeted = false;
  #greet!: { resolve: (g: ControlGreeting) => void; reject: (e: Error) => void };
  /** Resolves with the server's greeting; rejects if the server refuses the client or the line is not a greeting. */
  readonly greeting: Promise<ControlGreeting>;

  /** @param send - writes one line (the transport appends the newline) */
  constructor(send: (line: string) => void, maxLine = CONTROL_MAX_LINE) {
    this.#send = send;
    this.#lines = new LineSplitter(maxLine);
    this.greeting = new Promise((resolve, reject) => (this.#greet = { resolve, reject }));
    this.greeting.catch(() => undefined);
  }

  /** Subscribes to events; returns an unsubscribe. */
  onEvent(cb: (e: ControlEvent) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /**
   * Sends a command; resolves with its `return`.
   * @throws ControlCommandError on an error reply; ControlProtocolError when the connection failed
   */
  execute(name: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.push({ id, resolve, reject });
      this.#send(JSON.stringify(args === undefined ? { execute: name, id } : { execute: name, arguments: args, id }));
    });
  }

  /** Takes bytes from the server. */
  receive(chunk: Uint8Array): void {
    for (const l of this.#lines.push(chunk)) {
      if (typeof l !== "string") return this.fail(new ControlProtocolError("the server sent an overlong or non-UTF-8 line"));
      if (l.trim() === "") continue;
      let msg: unknown;
      try {
        msg = JSON.parse(l);
      } catch {
        return this.fail(new ControlProtocolError(`the server sent a line that is not JSON: ${l.slice(0, 80)}`));
      }
      this.#take(msg);
    }
  }

  /** The connection ended or broke: every waiting request (and the greeting) fails with `err`. */
  fail(err: Error): void {
    if (this.#failed !== undefined) return;
    this.#failed = err;
    if (!this.#greeted) this.#greet.reject(err);
    for (const p of this.#pending.splice(0)) p.reject(err);
  }

  #take(msg: unknown): void {
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return this.fail(new ControlProtocolError("the server sent a line that is not an object"));
    const o = msg as Record<string, unknown>;
    if (!this.#greeted) {
      if ("QMP" in o) {
        this.#greeted = true;
        this.#greet.resolve(o as unknown as ControlGreeting);
        return;
      }
      const err = "error" in o ? errorOf(o.error) : new ControlProtocolError("the server did not greet");
      this.#greeted = true;
      this.#greet.reject(err);
      return this.fail(err);
    }
    if (typeof o.event === "string") {
      for (const cb of [...this.#listeners]) cb(o as unknown as ControlEvent);
      return;
    }
    // Replies come in order; one without an id (a line the server could not parse) is the oldest's.
    const at = o.id === undefined ? 0 : this.#pending.findIndex((p) => p.id === o.id);
    const p = at < 0 ? undefined : this.#pending.splice(at, 1)[0];
    if (p === undefined) return;
    if ("return" in o) p.resolve(o.return);
    else if ("error" in o) p.reject(errorOf(o.error));
    else p.reject(new ControlProtocolError("a reply with neither return nor error"));
  }
}

function errorOf(e: unknown): ControlCommandError {
  const o = (typeof e === "object" && e !== null ? e : {}) as Record<string, unknown>;
  return new ControlCommandError(typeof o.class === "string" ? o.class : "GenericError", typeof o.desc === "string" ? o.desc : "error without a description");
}
