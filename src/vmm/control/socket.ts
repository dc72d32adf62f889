/**
 * The control socket's Node transport: {@link listenControl} serves a {@link ControlServer} on a
 * Unix socket or a loopback TCP port; {@link connectControl} is the client scripts use.
 *
 * Node only (`node:net`, `node:fs`); the protocol itself is in the platform-neutral core.
 * @module
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { lstatSync, unlinkSync } from "node:fs";
import { ControlClientCore } from "./client.js";
import { ControlProtocolError, formatControlAddress, parseControlAddress, type ControlAddress, type ControlEvent, type ControlGreeting } from "./protocol.js";
import type { ControlServer } from "./server.js";

/** Listening or connecting failed (the path, host or port is unusable, nobody listens...). */
export class ControlSocketError extends Error {
  override readonly name = "ControlSocketError";
  /** The errno code (`ENOENT`, `ECONNREFUSED`, ...) where there is one. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** A listening control socket. */
export interface ControlListener {
  /** Where it listens (a TCP port 0 is replaced by the port the system chose). */
  readonly address: ControlAddress;
  /** Stops listening, closes every session and removes a Unix socket file. */
  close(): Promise<void>;
}

function resolveAddress(a: ControlAddress | string): ControlAddress {
  return typeof a === "string" ? parseControlAddress(a) : a;
}

/**
 * Makes `path` free for a new socket: a socket file nobody listens on (left by a process that
 * died) is removed; a live one, or any other file, is refused.
 */
async function clearSocketPath(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ControlSocketError(`${path} exists and is not a socket; not replacing it`, "EEXIST");
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new ControlSocketError(`${path} is in use by another control socket`, "EADDRINUSE");
  unlinkSync(path);
}

/**
 * Serves `server` on `address` (`unix:PATH`, `tcp:HOST:PORT` with a loopback host, or the parsed
 * form). Each connection gets a session; bytes go to it as they arrive.
 * @throws ControlSocketError when the address cannot be used
 * @example
 * ```ts
 * const server = new ControlServer();
 * registerMachineCommands(server, machineTarget(vm.machine, () => process.exit(0)));
 * const l = await listenControl(server, "unix:/tmp/nicvisor.sock");
 * // nicvisor control unix:/tmp/nicvisor.sock query-status
 * ```
 */
export async function listenControl(server: ControlServer, address: ControlAddress | string): Promise<ControlListener> {
  const addr = resolveAddress(address);
  if (addr.type === "tcp" && !LOOPBACK.test(addr.host)) {
    throw new ControlSocketError(`the control socket listens on loopback only, not ${addr.host} (it can stop and quit the machine)`);
  }
  if (addr.type === "unix") await clearSocketPath(addr.path);
  const sockets = new Set<Socket>();
  const net: Server = createServer((sock) => {
    sockets.add(sock);
    const session = server.connect({
      send: (line) => {
        if (!sock.destroyed) sock.write(line + "\n");
      },
      close: () => sock.end(),
      pause: () => sock.pause(),
      resume: () => sock.resume(),
    });
    if (session === undefined) {
      sock.on("close", () => sockets.delete(sock));
      return;
    }
    sock.on("data", (d: Buffer) => session.receive(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      sockets.delete(sock);
      session.detach();
    });
  });
  await new Promise<void>((resolve, reject) => {
    net.once("error", (e: NodeJS.ErrnoException) => reject(new ControlSocketError(`cannot listen on ${formatControlAddress(addr)}: ${e.message}`, e.code)));
    if (addr.type === "unix") net.listen(addr.path, () => resolve());
    else net.listen(addr.port, addr.host, () => resolve());
  });
  net.on("error", () => undefined);
  let actual = addr;
  const bound = net.address();
  if (addr.type === "tcp" && bound !== null && typeof bound === "object") actual = { ...addr, port: bound.port };
  let closing: Promise<void> | undefined;
  return {
    address: actual,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        net.close(() => resolve());
        server.closeAll();
        for (const s of sockets) s.destroy();
      }).then(() => {
        if (addr.type === "unix") {
          try {
            if (lstatSync(addr.path).isSocket()) unlinkSync(addr.path);
          } catch {
            /* already gone */
          }
        }
      });
      return closing;
    },
  };
}

/** A connected control client (see {@link connectControl}). */
export interface ControlClient {
  /** The server's greeting. */
  readonly greeting: ControlGreeting;
  /**
   * Runs a command; resolves with its `return`.
   * @throws ControlCommandError on an error reply; ControlProtocolError if the connection broke
   */
  execute(name: string, args?: Record<string, unknown>): Promise<unknown>;
  /** Subscribes to events; returns an unsubscribe. */
  onEvent(cb: (e: ControlEvent) => void): () => void;
  /** Closes the connection. */
  close(): void;
}

/** Options of {@link connectControl}. */
export interface ConnectControlOptions {
  /** Give up on the connection and greeting after this many ms (default 10000). */
  timeoutMs?: number;
  /** Send `qmp_capabilities` after the greeting (default true). */
  negotiate?: boolean;
}

function connectError(addr: ControlAddress, e: NodeJS.ErrnoException): ControlSocketError {
  const where = formatControlAddress(addr);
  if (e.code === "ENOENT") return new ControlSocketError(`no control socket at ${addr.type === "unix" ? addr.path : where} (is 'nicvisor run --control ${where}' running?)`, e.code);
  if (e.code === "ECONNREFUSED") return new ControlSocketError(`nothing listens on ${where} (is 'nicvisor run --control ${where}' running?)`, e.code);
  return new ControlSocketError(`cannot connect to ${where}: ${e.message}`, e.code);
}

/**
 * Connects to a control socket, reads the greeting and (by default) negotiates capabilities.
 * @throws ControlSocketError when nothing listens there; ControlCommandError if the server refuses
 * @example
 * ```ts
 * const c = await connectControl("unix:/tmp/nicvisor.sock");
 * console.log(await c.execute("query-status")); // { running: true, status: "running" }
 * c.close();
 * ```
 */
export async function connectControl(address: ControlAddress | string, opts: ConnectControlOptions = {}): Promise<ControlClient> {
  const addr = resolveAddress(address);
  const sock = addr.type === "unix" ? connect(addr.path) : connect(addr.port, addr.host);
  const core = new ControlClientCore((line) => {
    if (!sock.destroyed) sock.write(line + "\n");
  });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new ControlSocketError(`no answer from ${formatControlAddress(addr)} within ${timeoutMs} ms`, "ETIMEDOUT")), timeoutMs);
      sock.once("connect", resolve);
      sock.once("error", (e: NodeJS.ErrnoException) => reject(connectError(addr, e)));
    });
    clearTimeout(timer);
    sock.on("data", (d: Buffer) => core.receive(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    sock.on("error", (e) => core.fail(new ControlProtocolError(`connection to ${formatControlAddress(addr)} failed: ${e.message}`)));
    sock.on("close", () => core.fail(new ControlProtocolError(`the server at ${formatControlAddress(addr)} closed the connection`)));
    const greeting = await Promise.race([
      core.greeting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ControlSocketError(`no greeting from ${formatControlAddress(addr)} within ${timeoutMs} ms`, "ETIMEDOUT")), timeoutMs);
      }),
    ]);
    if (opts.negotiate !== false) await core.execute("qmp_capabilities");
    return {
      greeting,
      execute: (name, args) => core.execute(name, args),
      onEvent: (cb) => core.onEvent(cb),
      close: () => sock.destroy(),
    };
  } catch (e) {
    sock.destroy();
    throw e;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
