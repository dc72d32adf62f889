/**
 * The wire protocol of nicvisor's control socket, shaped like QEMU's QMP: one JSON object per
 * line each way. The client sends `{"execute": NAME, "arguments": {...}, "id": ANY}`; the server
 * answers `{"return": VALUE}` or `{"error": {"class": CLASS, "desc": TEXT}}` (with the request's
 * `id` echoed when it had one), greets each client with `{"QMP": {...}}`, and pushes
 * `{"event": NAME, "data": ..., "timestamp": {"seconds": S, "microseconds": US}}`.
 *
 * Platform-neutral: no `node:*` imports. The Node transport is `./socket.ts`.
 * @module
 */

/** Most bytes in one line (a request or a reply); a longer request is refused and skipped. */
export const CONTROL_MAX_LINE = 1 << 20;

/**
 * The error classes a reply can carry, as QMP names them. `CommandNotFound`: no such command, or
 * a command sent before (or `qmp_capabilities` after) capabilities negotiation. `GenericError`:
 * everything else (bad JSON, bad arguments, a handler that failed). Handlers may use others.
 */
export type ControlErrorClass = "GenericError" | "CommandNotFound" | "DeviceNotActive" | "DeviceNotFound" | (string & {});

/**
 * A command failed with a given QMP error class. Handlers throw it to choose the class; any other
 * error a handler throws is answered as `GenericError` with the error's message. The client
 * raises it when the server answers with an error.
 */
export class ControlCommandError extends Error {
  override readonly name = "ControlCommandError";
  /**
   * @param errorClass - the QMP error class (`GenericError`, `CommandNotFound`, ...)
   * @param desc - the human-readable description
   */
  constructor(
    readonly errorClass: ControlErrorClass,
    readonly desc: string,
  ) {
    super(desc);
  }
}

/** The transport or the peer broke the protocol (closed early, sent a line that is not a reply). */
export class ControlProtocolError extends Error {
  override readonly name = "ControlProtocolError";
}

/** The greeting a server sends on connect (QMP's shape). */
export interface ControlGreeting {
  QMP: { version: { nicvisor: string; qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

/** An event pushed to clients. */
export interface ControlEvent {
  event: string;
  data?: unknown;
  timestamp: { seconds: number; microseconds: number };
}

/** A reply line. */
export type ControlReply =
  | { return: unknown; id?: unknown }
  | { error: { class: ControlErrorClass; desc: string }; id?: unknown };

/** Where a control socket listens: `unix:PATH` or `tcp:HOST:PORT`. */
export type ControlAddress = { type: "unix"; path: string } | { type: "tcp"; host: string; port: number };

/** A control address that does not parse. */
export class ControlAddressError extends Error {
  override readonly name = "ControlAddressError";
}

/**
 * Parses `unix:PATH` or `tcp:HOST:PORT` (an IPv6 host in brackets: `tcp:[::1]:4444`).
 * @throws ControlAddressError saying what is wrong
 * @example
 * ```ts
 * parseControlAddress("tcp:127.0.0.1:4444"); // { type: "tcp", host: "127.0.0.1", port: 4444 }
 * ```
 */
export function parseControlAddress(s: string): ControlAddress {
  if (s.startsWith("unix:")) {
    const path = s.slice(5);
    if (path === "") throw new ControlAddressError(`'${s}': unix: needs a path`);
    return { type: "unix", path };
  }
  if (s.startsWith("tcp:")) {
    const rest = s.slice(4);
    const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(rest);
    if (m === null) throw new ControlAddressError(`'${s}': expected tcp:HOST:PORT`);
    const port = Number(m[3]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ControlAddressError(`'${s}': port must be in 1..65535`);
    return { type: "tcp", host: (m[1] ?? m[2])!, port };
  }
  throw new ControlAddressError(`'${s}': expected unix:PATH or tcp:HOST:PORT`);
}

/** Formats a {@link ControlAddress} back to its `unix:`/`tcp:` spelling. */
export function formatControlAddress(a: ControlAddress): string {
  return a.type === "unix" ? `unix:${a.path}` : `tcp:${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

/**
 * Splits a byte stream into lines (LF; a CR before it is dropped), with a cap on line length. A
 * line longer than the cap is reported once as `{ tooLong: true }` and skipped up to its end.
 */
export class LineSplitter {
  readonly #max: number;
  #parts: Uint8Array[] = [];
  #size = 0;
  #skipping = false;
  readonly #dec = new TextDecoder("utf-8", { fatal: true });

  /** @param maxLine - most bytes in a line, its LF excluded (default {@link CONTROL_MAX_LINE}) */
  constructor(maxLine = CONTROL_MAX_LINE) {
    this.#max = maxLine;
  }

  /**
   * Feeds bytes; returns the complete lines in order: a string, `{ tooLong: true }` for a line
   * over the cap, or `{ badUtf8: true }` for a line that is not UTF-8.
   */
  push(chunk: Uint8Array): Array<string | { tooLong: true } | { badUtf8: true }> {
    const out: Array<string | { tooLong: true } | { badUtf8: true }> = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.#skipping) {
        if (this.#size + (end - start) > this.#max) {
          this.#parts = [];
          this.#size = 0;
          this.#skipping = true;
          out.push({ tooLong: true });
        } else if (end > start) {
          this.#parts.push(chunk.slice(start, end));
          this.#size += end - start;
        }
      }
      if (nl < 0) break;
      if (this.#skipping) this.#skipping = false;
      else out.push(this.#takeLine());
      start = nl + 1;
    }
    return out;
  }

  #takeLine(): string | { badUtf8: true } {
    const line = new Uint8Array(this.#size);
    let o = 0;
    for (const p of this.#parts) {
      line.set(p, o);
      o += p.length;
    }
    this.#parts = [];
    this.#size = 0;
    const n = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    try {
      return this.#dec.decode(line.subarray(0, n));
    } catch {
      return { badUtf8: true };
    }
  }
}

/** A timestamp in QMP's shape from milliseconds since the epoch. */
export function controlTimestamp(ms: number): { seconds: number; microseconds: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, microseconds: Math.floor((ms - seconds * 1000) * 1000) };
}
