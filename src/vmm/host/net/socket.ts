/**
 * Network backends over loopback sockets, wire-compatible with QEMU's `-netdev stream` and
 * `-netdev dgram` (Node only):
 *
 * - stream (TCP): each frame is preceded by its length as a 4-byte big-endian number. QEMU's
 *   `-netdev stream,server=on|off,addr.type=inet,addr.host=127.0.0.1,addr.port=N`. A server accepts
 *   one peer at a time (a second one is refused while the first is connected); a client can
 *   reconnect. A receiver that refuses a frame pauses the socket until `rxReady()`, so TCP flow
 *   control holds the peer back instead of frames being lost.
 * - dgram (UDP): one frame per datagram. QEMU's `-netdev dgram,local.type=inet,local.host=...,
 *   local.port=A,remote.type=inet,remote.host=...,remote.port=B`. Datagrams from other sources
 *   than the configured remote are dropped and counted.
 *
 * Both carry plain Ethernet frames (no virtio-net header): offloads in the metadata of a
 * transmitted frame are completed in software first. Only loopback addresses are accepted.
 * @module
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { lstatSync, unlinkSync } from "node:fs";
import type { FrameMeta, FrameSink, NetBackend } from "../../../devices/net/backend.js";
import { segmentTso } from "../../../devices/net/segment.js";

/** Largest frame accepted from or sent to a socket peer (QEMU's NET_BUFSIZE is 4096 + 65536). */
export const SOCKET_MAX_FRAME = 4096 + 65536;

/** Bytes allowed to wait in the kernel-side send queue before frames are dropped. */
export const SOCKET_MAX_PENDING = 4 << 20;

/** A non-loopback address or an unusable option was given (API misuse). */
export class SocketBackendError extends Error {
  override readonly name = "SocketBackendError";
}

/** Counters of a socket backend. */
export interface SocketBackendCounters {
  txFrames: number;
  txBytes: number;
  /** Frames not sent: no peer, oversized, send queue full, offload failed. */
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames received with no receiver installed (dgram: also refused by the receiver). */
  rxDropped: number;
  /** Stream: bad length prefix (connection closed). Dgram: datagrams from a foreign source. */
  protocolErrors: number;
  /** Stream: peers accepted or connected. */
  connections: number;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

function checkLoopback(host: string): void {
  if (!LOOPBACK.has(host) && !/^127\.\d+\.\d+\.\d+$/.test(host)) {
    throw new SocketBackendError(`only loopback addresses are allowed, got ${host}`);
  }
}

const newCounters = (): SocketBackendCounters => ({
  txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, protocolErrors: 0, connections: 0,
});

/** Applies offloads in software; returns the frames to send, or undefined if the frame is bad. */
function finish(frame: Uint8Array, meta: FrameMeta | undefined): Uint8Array[] | undefined {
  if (meta === undefined || (meta.gso === undefined && meta.needsCsum === undefined)) return [frame];
  const r = segmentTso(frame, meta);
  return r.ok ? r.frames : undefined;
}

abstract class SocketBackendBase implements NetBackend {
  protected sink: FrameSink | undefined;
  protected readonly stats = newCounters();

  /** Live counters. */
  get counters(): Readonly<SocketBackendCounters> {
    return this.stats;
  }
  /** Installs the receiver. */
  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }
  /** Sends one frame (offloads completed in software). */
  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    const frames = finish(frame, meta);
    if (frames === undefined) {
      this.stats.txDropped++;
      return;
    }
    for (const f of frames) {
      if (f.length > SOCKET_MAX_FRAME || !this.send(f)) this.stats.txDropped++;
      else {
        this.stats.txFrames++;
        this.stats.txBytes += f.length;
      }
    }
  }
  protected deliver(frame: Uint8Array): void {
    if (this.sink !== undefined && this.sink(frame)) {
      this.stats.rxFrames++;
      this.stats.rxBytes += frame.length;
    } else {
      this.stats.rxDropped++;
    }
  }
  protected abstract send(frame: Uint8Array): boolean;
  /** Closes the sockets. Idempotent. */
  abstract close(): void;
}

/** Splits a TCP byte stream into length-prefixed frames, with a bounded buffer. */
class StreamFramer {
  #buf = new Uint8Array(0);

  /** Appends data; returns the complete frames, or `undefined` on a bad length prefix. */
  push(data: Uint8Array): Uint8Array[] | undefined {
    const merged = new Uint8Array(this.#buf.length + data.length);
    merged.set(this.#buf);
    merged.set(data, this.#buf.length);
    const out: Uint8Array[] = [];
    let o = 0;
    while (merged.length - o >= 4) {
      const len = ((merged[o]! << 24) | (merged[o + 1]! << 16) | (merged[o + 2]! << 8) | merged[o + 3]!) >>> 0;
      if (len > SOCKET_MAX_FRAME) return undefined;
      if (merged.length - o - 4 < len) break;
      out.push(merged.slice(o + 4, o + 4 + len));
      o += 4 + len;
    }
    this.#buf = merged.slice(o);
    return out;
  }
}

/** Options of the stream backends. */
export interface StreamOptions {
  /** Loopback address (default 127.0.0.1). */
  host?: string;
  /** TCP port; 0 for a server picks a free one (see {@link StreamBackend.port}). Ignored with `path`. */
  port: number;
  /**
   * A Unix socket path instead of TCP (QEMU's `addr.type=unix,addr.path=PATH`). A server replaces
   * a socket file nobody listens on, and refuses a live one or any other file.
   */
  path?: string;
}

/** Frees `path` for a listening Unix socket: removes a dead socket file, refuses anything else. */
async function clearUnixPath(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SocketBackendError(`${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new SocketBackendError(`${path} is in use`);
  unlinkSync(path);
}

/**
 * A `-netdev stream` endpoint, server or client. Create with {@link listenStream} or
 * {@link connectStream}.
 */
export class StreamBackend extends SocketBackendBase {
  #sock: Socket | undefined;
  #server: Server | undefined;
  #closed = false;
  #port: number;
  readonly #pending: Uint8Array[] = [];
  #retry: ReturnType<typeof setTimeout> | undefined;
  #reconnect: (() => void) | undefined;

  /** @internal */
  constructor(port: number) {
    super();
    this.#port = port;
  }
  /** The TCP port (the server's listening port, or the port connected to); 0 on a Unix socket. */
  get port(): number {
    return this.#port;
  }
  /** Whether a peer is connected. */
  get connected(): boolean {
    return this.#sock !== undefined;
  }
  /** Whether {@link StreamBackend.close} was called. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** @internal */
  attachServer(server: Server): void {
    this.#server = server;
    const addr = server.address();
    if (addr !== null && typeof addr === "object") this.#port = addr.port;
  }

  /** @internal Adopts a connected socket (refused if one is already attached). */
  adopt(sock: Socket): void {
    if (this.#closed || this.#sock !== undefined) {
      sock.destroy();
      return;
    }
    this.#sock = sock;
    this.stats.connections++;
    sock.setNoDelay(true);
    const framer = new StreamFramer();
    sock.on("data", (chunk: Buffer) => {
      const frames = framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if (frames === undefined) {
        this.stats.protocolErrors++;
        sock.destroy();
        return;
      }
      for (const f of frames) this.#pending.push(f);
      this.#flush();
    });
    const drop = (): void => {
      if (this.#sock !== sock) return;
      this.#sock = undefined;
      this.stats.rxDropped += this.#pending.length;
      this.#pending.length = 0;
      if (this.#retry !== undefined) clearTimeout(this.#retry);
      this.#retry = undefined;
      if (!this.#closed && this.#reconnect !== undefined) this.#reconnect();
    };
    sock.on("close", drop);
    sock.on("error", drop);
  }

  /**
   * Delivers parsed frames; when the receiver refuses one, pauses the socket (TCP flow control
   * then holds the peer back) and retries on `rxReady()` or after 50 ms.
   */
  #flush(): void {
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    while (this.#pending.length > 0) {
      const f = this.#pending[0]!;
      if (this.sink === undefined) {
        this.stats.rxDropped++;
      } else if (this.sink(f)) {
        this.stats.rxFrames++;
        this.stats.rxBytes += f.length;
      } else {
        this.#sock?.pause();
        this.#retry = setTimeout(() => this.#flush(), 50);
        return;
      }
      this.#pending.shift();
    }
    this.#sock?.resume();
  }

  /** The receiver has buffers again: delivers held frames and resumes reading. */
  rxReady(): void {
    if (this.#pending.length > 0) this.#flush();
  }

  /** Drops the current peer (a server keeps listening; a client with `reconnectMs` reconnects). */
  disconnect(): void {
    this.#sock?.destroy();
  }

  /** @internal Installs the client's reconnect action. */
  setReconnect(action: (() => void) | undefined): void {
    this.#reconnect = action;
  }

  protected send(frame: Uint8Array): boolean {
    const s = this.#sock;
    if (s === undefined || s.writableLength > SOCKET_MAX_PENDING) return false;
    const b = Buffer.allocUnsafe(4 + frame.length);
    b.writeUInt32BE(frame.length, 0);
    b.set(frame, 4);
    s.write(b);
    return true;
  }

  close(): void {
    this.#closed = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#pending.length = 0;
    this.#sock?.destroy();
    this.#sock = undefined;
    this.#server?.close();
    this.#server = undefined;
  }
}

/**
 * Listens on a loopback TCP port as QEMU's `-netdev stream,server=on` does; resolves once listening.
 * @example
 * const be = await listenStream({ port: 0 });
 * // qemu-system-i386 ... -netdev stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${be.port}
 */
export async function listenStream(options: StreamOptions): Promise<StreamBackend> {
  const host = options.host ?? "127.0.0.1";
  const path = options.path;
  if (path === undefined) checkLoopback(host);
  else await clearUnixPath(path);
  const be = new StreamBackend(path === undefined ? options.port : 0);
  const server = createServer((sock) => be.adopt(sock));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const listening = (): void => {
      server.off("error", reject);
      be.attachServer(server);
      resolve(be);
    };
    if (path !== undefined) server.listen(path, listening);
    else server.listen(options.port, host, listening);
  });
}

/** Options of {@link connectStream}. */
export interface StreamClientOptions extends StreamOptions {
  /**
   * When the connection drops, try again after this many ms (QEMU's `reconnect=`), until closed.
   * Default: no reconnection.
   */
  reconnectMs?: number;
}

/**
 * Connects to a `-netdev stream,server=on` peer on loopback; resolves once connected (the first
 * attempt must succeed; later drops are retried if `reconnectMs` is set).
 */
export async function connectStream(options: StreamClientOptions): Promise<StreamBackend> {
  const host = options.host ?? "127.0.0.1";
  const path = options.path;
  if (path === undefined) checkLoopback(host);
  const be = new StreamBackend(path === undefined ? options.port : 0);
  const attempt = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const sock = connect(path !== undefined ? { path } : { host, port: options.port }, () => {
        sock.off("error", reject);
        be.adopt(sock);
        resolve();
      });
      sock.once("error", reject);
    });
  const delay = options.reconnectMs;
  if (delay !== undefined && delay >= 0) {
    const retry = (): void => {
      setTimeout(() => {
        if (be.isClosed || be.connected) return;
        attempt().catch(retry);
      }, delay);
    };
    be.setReconnect(retry);
  }
  await attempt();
  return be;
}

/** Options of {@link openDgram}. */
export interface DgramOptions {
  /** Loopback address for both ends (default 127.0.0.1). */
  host?: string;
  /** Local UDP port (0 picks a free one; see {@link DgramBackend.localPort}). */
  localPort: number;
  /** Peer's UDP port. May be set later with {@link DgramBackend.setRemotePort}. */
  remotePort?: number;
}

/** A `-netdev dgram` endpoint: one frame per UDP datagram. */
export class DgramBackend extends SocketBackendBase {
  readonly #sock: UdpSocket;
  readonly #host: string;
  #remotePort: number | undefined;
  #closed = false;

  /** @internal */
  constructor(sock: UdpSocket, host: string, remotePort: number | undefined) {
    super();
    this.#sock = sock;
    this.#host = host;
    this.#remotePort = remotePort;
    sock.on("message", (msg, rinfo) => {
      if (rinfo.port !== this.#remotePort || msg.length > SOCKET_MAX_FRAME) {
        this.stats.protocolErrors++;
        return;
      }
      this.deliver(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice());
    });
    sock.on("error", () => this.stats.protocolErrors++);
  }
  /** The bound local port. */
  get localPort(): number {
    return this.#sock.address().port;
  }
  /** Sets the peer's port (when both ends were opened with port 0). */
  setRemotePort(port: number): void {
    this.#remotePort = port;
  }
  protected send(frame: Uint8Array): boolean {
    if (this.#closed || this.#remotePort === undefined) return false;
    this.#sock.send(frame, this.#remotePort, this.#host);
    return true;
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.close();
  }
}

/**
 * Opens a UDP endpoint on loopback; resolves once bound.
 * @example
 * const be = await openDgram({ localPort: 0, remotePort: 5555 });
 * // qemu ... -netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=5555,
 * //               remote.type=inet,remote.host=127.0.0.1,remote.port=${be.localPort}
 */
export async function openDgram(options: DgramOptions): Promise<DgramBackend> {
  const host = options.host ?? "127.0.0.1";
  checkLoopback(host);
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(options.localPort, host, () => {
      sock.off("error", reject);
      resolve(new DgramBackend(sock, host, options.remotePort));
    });
  });
}

/** Options of {@link openDgramMulticast}. */
export interface DgramMulticastOptions {
  /** The IPv4 multicast group (224.0.0.0/4), QEMU's `remote.host`. */
  group: string;
  /** The group's UDP port, QEMU's `remote.port`. */
  port: number;
  /** The loopback interface address to join on and send from (default 127.0.0.1), QEMU's `local.host`. */
  localHost?: string;
}

/** Whether `host` is an IPv4 multicast address (224.0.0.0/4). */
export function isIpv4Multicast(host: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255) && Number(m[1]) >= 224 && Number(m[1]) <= 239;
}

/**
 * A `-netdev dgram` endpoint on a multicast group: every member's frames reach every other member
 * (an L2 segment shared by several processes on this host). Frames go out from a socket of their
 * own, so this endpoint drops the copies of its own frames that the group loops back; frames from
 * members that send from the group port (QEMU) are taken.
 */
export class DgramMulticastBackend extends SocketBackendBase {
  readonly #rx: UdpSocket;
  readonly #tx: UdpSocket;
  readonly #group: string;
  readonly #port: number;
  #closed = false;

  /** @internal */
  constructor(rx: UdpSocket, tx: UdpSocket, group: string, port: number, iface: string) {
    super();
    this.#rx = rx;
    this.#tx = tx;
    this.#group = group;
    this.#port = port;
    const own = tx.address().port;
    rx.on("message", (msg, rinfo) => {
      if (rinfo.port === own && rinfo.address === iface) return;
      if (msg.length > SOCKET_MAX_FRAME) {
        this.stats.protocolErrors++;
        return;
      }
      this.deliver(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice());
    });
    rx.on("error", () => this.stats.protocolErrors++);
    tx.on("error", () => this.stats.protocolErrors++);
  }
  /** The group and port. */
  get group(): { address: string; port: number } {
    return { address: this.#group, port: this.#port };
  }
  protected send(frame: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#tx.send(frame, this.#port, this.#group);
    return true;
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rx.close();
    this.#tx.close();
  }
}

/**
 * Joins a multicast group on the loopback interface, as QEMU's
 * `-netdev dgram,id=n0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234` does; resolves
 * once joined.
 * @example
 * const a = await openDgramMulticast({ group: "230.0.0.1", port: 1234 });
 * const b = await openDgramMulticast({ group: "230.0.0.1", port: 1234 }); // another process, usually
 */
export async function openDgramMulticast(options: DgramMulticastOptions): Promise<DgramMulticastBackend> {
  const iface = options.localHost ?? "127.0.0.1";
  if (!/^127\.\d+\.\d+\.\d+$/.test(iface)) throw new SocketBackendError(`the multicast interface must be an IPv4 loopback address, got ${iface}`);
  if (!isIpv4Multicast(options.group)) throw new SocketBackendError(`${options.group} is not an IPv4 multicast group (224.0.0.0/4)`);
  const bind = (sock: UdpSocket, port: number, addr: string): Promise<void> =>
    new Promise((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(port, addr, () => {
        sock.off("error", reject);
        resolve();
      });
    });
  const rx = createSocket({ type: "udp4", reuseAddr: true });
  const tx = createSocket("udp4");
  try {
    await bind(rx, options.port, options.group);
    rx.addMembership(options.group, iface);
    await bind(tx, 0, iface);
    tx.setMulticastInterface(iface);
    tx.setMulticastLoopback(true);
    tx.setMulticastTTL(1);
  } catch (e) {
    rx.close();
    tx.close();
    throw e;
  }
  return new DgramMulticastBackend(rx, tx, options.group, options.port, iface);
}
