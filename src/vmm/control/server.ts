/**
 * The control server's core: a registry of commands and the QMP-shaped session logic (greeting,
 * capabilities negotiation, one request per line, replies in order, events), independent of any
 * transport. A transport (the Node socket in `./socket.ts`, a test, a browser port) hands each
 * client's bytes to {@link ControlSession.receive} and writes the lines the session sends.
 *
 * Bounded: a line over {@link CONTROL_MAX_LINE} bytes is refused and skipped; at most
 * `maxClients` sessions; at most `maxQueued` requests waiting per session (then a transport that
 * can pause is paused until half of them are answered; one that cannot is closed). A
 * handler that throws or rejects is answered with an error; the server and the session go on.
 *
 * Platform-neutral: no `node:*` imports.
 * @module
 */
import { StateError } from "../../state/parse.js";
import {
  CONTROL_MAX_LINE, ControlCommandError, LineSplitter, controlTimestamp,
  type ControlErrorClass, type ControlEvent, type ControlGreeting,
} from "./protocol.js";

/** Runs a command: receives its parsed arguments; returns (or resolves to) the JSON-safe result. */
export type CommandHandler<A = unknown> = (args: A, ctx: CommandContext) => unknown;

/** What a handler learns about the request. */
export interface CommandContext {
  /** The session the request came on (undefined for {@link ControlServer.execute}). */
  session: ControlSession | undefined;
}

/** How a command is described and its arguments checked. */
export interface CommandInfo<A = unknown> {
  /** One line for `query-commands` and the docs. */
  help?: string;
  /**
   * Checks the `arguments` object (`{}` when the request had none) and returns the typed
   * arguments; throws (a `StateError` naming the field, or any error) to refuse them with a
   * `GenericError`. Without it the command takes no arguments and any given are refused.
   */
  parse?: (args: Record<string, unknown>) => A;
}

/** A command as {@link ControlServer.commands} lists it. */
export interface CommandDescription {
  name: string;
  help: string;
}

/** Registering a command went wrong (a name taken or malformed): a programming error. */
export class ControlRegistryError extends Error {
  override readonly name = "ControlRegistryError";
}

/** A transport's side of one client: where the session writes lines, and how it hangs up. */
export interface ControlTransport {
  /** Writes one line (the session adds no newline: the transport appends `\n`). */
  send(line: string): void;
  /** Closes the connection (after the lines already sent). */
  close(): void;
  /**
   * Stops reading from the client (flow control). A transport that has it is paused while
   * `maxQueued` requests wait, instead of the session being closed; {@link ControlTransport.resume}
   * follows once half of them are answered.
   */
  pause?(): void;
  /** Starts reading again. */
  resume?(): void;
}

/** Options of {@link ControlServer}. */
export interface ControlServerOptions {
  /** Most sessions at once (default 16); a client beyond is told so and closed. */
  maxClients?: number;
  /** Most bytes in a request line (default {@link CONTROL_MAX_LINE}). */
  maxLine?: number;
  /**
   * Most requests waiting per session while one runs (default 64): then a transport with `pause`
   * is paused; one without is closed.
   */
  maxQueued?: number;
  /** Milliseconds since the epoch, for event timestamps (default `Date.now`). */
  now?: () => number;
  /** The version string in the greeting and `query-version` (default "0"). */
  version?: string;
}

interface Entry {
  help: string;
  parse: ((args: Record<string, unknown>) => unknown) | undefined;
  handler: CommandHandler<unknown>;
}

const NAME = /^[a-z][a-z0-9_-]{0,63}$/i;

/** The desc of an error a handler or parser threw. */
function describe(e: unknown): string {
  if (e instanceof StateError) return `Invalid parameter '${e.path}': ${e.detail}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * The control server: register commands, connect transports, push events.
 * @example
 * ```ts
 * const server = new ControlServer();
 * server.register("query-answer", () => ({ answer: 42 }), { help: "the answer" });
 * const session = server.connect({ send: (l) => console.log(l), close: () => {} });
 * session?.receive(new TextEncoder().encode('{"execute":"qmp_capabilities"}\n{"execute":"query-answer"}\n'));
 * // {"QMP":{...}}  {"return":{}}  {"return":{"answer":42}}
 * ```
 */
export class ControlServer {
  readonly #commands = new Map<string, Entry>();
  readonly #sessions = new Set<ControlSession>();
  readonly #maxClients: number;
  /** @internal */ readonly maxLine: number;
  /** @internal */ readonly maxQueued: number;
  readonly #now: () => number;
  readonly #version: string;
  /** Clients refused because `maxClients` were connected. */
  refusedClients = 0;

  constructor(opts: ControlServerOptions = {}) {
    this.#maxClients = opts.maxClients ?? 16;
    this.maxLine = opts.maxLine ?? CONTROL_MAX_LINE;
    this.maxQueued = opts.maxQueued ?? 64;
    this.#now = opts.now ?? Date.now;
    this.#version = opts.version ?? "0";
    this.register("query-commands", () => [...this.#commands.keys()].map((name) => ({ name })), { help: "list the commands" });
    this.register("query-version", () => ({ nicvisor: this.#version, qemu: { major: 0, minor: 0, micro: 0 }, package: `nicvisor ${this.#version}` }), {
      help: "the server's version",
    });
  }

  /**
   * Adds a command. `qmp_capabilities` is built in and cannot be registered.
   * @throws ControlRegistryError when the name is malformed or already taken
   */
  register<A = Record<string, unknown>>(name: string, handler: CommandHandler<A>, info: CommandInfo<A> = {}): void {
    if (!NAME.test(name) || name === "qmp_capabilities") throw new ControlRegistryError(`bad command name '${name}'`);
    if (this.#commands.has(name)) throw new ControlRegistryError(`command '${name}' is already registered`);
    this.#commands.set(name, { help: info.help ?? "", parse: info.parse, handler: handler as CommandHandler<unknown> });
  }

  /** Removes a command; returns whether it was there. */
  unregister(name: string): boolean {
    return this.#commands.delete(name);
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.#commands.has(name);
  }

  /** The registered commands with their help lines. */
  commands(): CommandDescription[] {
    return [...this.#commands].map(([name, e]) => ({ name, help: e.help }));
  }

  /** Sessions connected now. */
  get clientCount(): number {
    return this.#sessions.size;
  }

  /**
   * Runs a command in-process (the library API, no session): resolves to its result.
   * @throws ControlCommandError with the class a client would see
   */
  async execute(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
    return this.run(name, args, undefined);
  }

  /** @internal Parses arguments and runs a command; every failure is a ControlCommandError. */
  async run(name: string, args: Record<string, unknown>, session: ControlSession | undefined): Promise<unknown> {
    const e = this.#commands.get(name);
    if (e === undefined) throw new ControlCommandError("CommandNotFound", `The command ${name} has not been found`);
    let parsed: unknown = args;
    if (e.parse !== undefined) {
      try {
        parsed = e.parse(args);
      } catch (err) {
        throw new ControlCommandError("GenericError", describe(err));
      }
    } else {
      const extra = Object.keys(args)[0];
      if (extra !== undefined) throw new ControlCommandError("GenericError", `Parameter '${extra}' is unexpected (${name} takes no arguments)`);
    }
    let result: unknown;
    try {
      result = await e.handler(parsed, { session });
    } catch (err) {
      if (err instanceof ControlCommandError) throw err;
      throw new ControlCommandError("GenericError", describe(err));
    }
    return result === undefined ? {} : result;
  }

  /**
   * Connects a client: sends the greeting and returns its session, or, when `maxClients` are
   * connected, sends an error line, closes the transport and returns undefined.
   */
  connect(transport: ControlTransport): ControlSession | undefined {
    if (this.#sessions.size >= this.#maxClients) {
      this.refusedClients++;
      transport.send(JSON.stringify({ error: { class: "GenericError", desc: `too many clients (at most ${this.#maxClients})` } }));
      transport.close();
      return undefined;
    }
    const s = new ControlSession(this, transport, () => this.#sessions.delete(s));
    this.#sessions.add(s);
    const greeting: ControlGreeting = {
      QMP: { version: { nicvisor: this.#version, qemu: { major: 0, minor: 0, micro: 0 }, package: `nicvisor ${this.#version}` }, capabilities: [] },
    };
    transport.send(JSON.stringify(greeting));
    return s;
  }

  /** Pushes an event to every session past capabilities negotiation (as QMP does). */
  emit(event: string, data?: unknown): void {
    const ev: ControlEvent = { event, timestamp: controlTimestamp(this.#now()) };
    if (data !== undefined) ev.data = data;
    let line: string;
    try {
      line = JSON.stringify(ev);
    } catch {
      return;
    }
    for (const s of this.#sessions) if (s.negotiated) s.sendLine(line);
  }

  /** Closes every session. */
  closeAll(): void {
    for (const s of [...this.#sessions]) s.close();
  }
}

type Request = string | { tooLong: true } | { badUtf8: true };

/** One client's session: feed it the client's bytes; it writes replies through its transport. */
export class ControlSession {
  readonly #server: ControlServer;
  readonly #transport: ControlTransport;
  readonly #onClose: () => void;
  readonly #lines: LineSplitter;
  readonly #queue: Request[] = [];
  #busy = false;
  #closed = false;
  #paused = false;
  /** Whether `qmp_capabilities` has been accepted. */
  negotiated = false;
  /** Requests answered so far (results and errors). */
  answered = 0;

  /** @internal */
  constructor(server: ControlServer, transport: ControlTransport, onClose: () => void) {
    this.#server = server;
    this.#transport = transport;
    this.#onClose = onClose;
    this.#lines = new LineSplitter(server.maxLine);
  }

  /** Whether the session is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Takes bytes from the client. Requests run one at a time, in order. */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    const canPause = this.#transport.pause !== undefined;
    for (const l of this.#lines.push(chunk)) {
      if (typeof l === "string" && l.trim() === "") continue;
      // With flow control the lines of a chunk already read are kept (a chunk is bounded).
      if (this.#queue.length >= this.#server.maxQueued && !canPause) {
        this.#reply(undefined, "GenericError", `too many requests waiting (at most ${this.#server.maxQueued}); closing`);
        this.close();
        return;
      }
      this.#queue.push(l);
    }
    if (canPause && !this.#paused && this.#queue.length >= this.#server.maxQueued) {
      this.#paused = true;
      this.#transport.pause!();
    }
    void this.#drain();
  }

  /** Closes the session (the transport too). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#onClose();
    this.#transport.close();
  }

  /** The transport went away: forget the session without writing to it. */
  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#onClose();
  }

  /** @internal */
  sendLine(line: string): void {
    if (!this.#closed) this.#transport.send(line);
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (!this.#closed && this.#queue.length > 0) {
        await this.#handle(this.#queue.shift()!);
        if (this.#paused && !this.#closed && this.#queue.length <= this.#server.maxQueued >> 1) {
          this.#paused = false;
          this.#transport.resume?.();
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  #reply(id: unknown, cls: ControlErrorClass | undefined, payload: unknown): void {
    this.answered++;
    const msg: Record<string, unknown> = cls === undefined ? { return: payload } : { error: { class: cls, desc: payload } };
    if (id !== undefined) msg.id = id;
    let line: string;
    try {
      line = JSON.stringify(msg);
    } catch (e) {
      line = JSON.stringify({ error: { class: "GenericError", desc: `the result cannot be encoded as JSON: ${describe(e)}` }, ...(id !== undefined ? { id } : {}) });
    }
    this.sendLine(line);
  }

  async #handle(req: Request): Promise<void> {
    if (typeof req !== "string") {
      const desc = "tooLong" in req ? `request line longer than ${this.#server.maxLine} bytes, skipped` : "request line is not valid UTF-8";
      this.#reply(undefined, "GenericError", desc);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(req);
    } catch (e) {
      this.#reply(undefined, "GenericError", `JSON parse error: ${describe(e)}`);
      return;
    }
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
      this.#reply(undefined, "GenericError", "QMP input must be a JSON object");
      return;
    }
    const o = msg as Record<string, unknown>;
    const id = o.id;
    for (const k of Object.keys(o)) {
      if (k !== "execute" && k !== "arguments" && k !== "id") {
        this.#reply(id, "GenericError", `QMP input member '${k}' is unexpected`);
        return;
      }
    }
    if (typeof o.execute !== "string") {
      this.#reply(id, "GenericError", o.execute === undefined ? "QMP input lacks member 'execute'" : "QMP input member 'execute' must be a string");
      return;
    }
    const args = o.arguments ?? {};
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      this.#reply(id, "GenericError", "QMP input member 'arguments' must be an object");
      return;
    }
    const name = o.execute;
    if (name === "qmp_capabilities") {
      this.#capabilities(id, args as Record<string, unknown>);
      return;
    }
    if (!this.negotiated) {
      this.#reply(id, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
      return;
    }
    try {
      const r = await this.#server.run(name, args as Record<string, unknown>, this);
      this.#reply(id, undefined, r);
    } catch (e) {
      const ce = e instanceof ControlCommandError ? e : new ControlCommandError("GenericError", describe(e));
      this.#reply(id, ce.errorClass, ce.desc);
    }
  }

  #capabilities(id: unknown, args: Record<string, unknown>): void {
    if (this.negotiated) {
      this.#reply(id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored");
      return;
    }
    for (const k of Object.keys(args)) {
      if (k !== "enable") {
        this.#reply(id, "GenericError", `Parameter '${k}' is unexpected`);
        return;
      }
    }
    const enable = args.enable ?? [];
    if (!Array.isArray(enable) || enable.some((c) => typeof c !== "string")) {
      this.#reply(id, "GenericError", "Invalid parameter 'enable': expected an array of capability names");
      return;
    }
    const first = enable[0] as string | undefined;
    if (first !== undefined) {
      this.#reply(id, "GenericError", `Capability '${first}' not available`);
      return;
    }
    this.negotiated = true;
    this.#reply(id, undefined, {});
  }
}
