/**
 * The Node transport of a migration: `tcp:HOST:PORT` and `unix:PATH`, QEMU's spelling. The
 * destination listens ({@link listenMigration}) and takes one connection; the source connects
 * ({@link connectMigration}). Either way the result is a {@link ByteChannel}.
 *
 * Node only (imports `node:net`).
 * @module
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { ChannelClosedError, type ByteChannel } from "./channel.js";

/** A malformed migration URI. */
export class MigrationUriError extends Error {
  override readonly name = "MigrationUriError";
}

/** Where a migration goes. */
export type MigrationAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

/**
 * Parses `tcp:HOST:PORT` (HOST may be `[v6]` or empty for all addresses when listening) or
 * `unix:PATH`.
 * @throws MigrationUriError
 */
export function parseMigrationUri(uri: string): MigrationAddress {
  if (uri.startsWith("unix:")) {
    const path = uri.slice(5);
    if (path.length === 0 || path.length > 107) throw new MigrationUriError(`${uri}: a unix socket path of 1..107 characters`);
    return { kind: "unix", path };
  }
  if (uri.startsWith("tcp:")) {
    const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]*):(\d{1,5})$/.exec(uri);
    if (m === null) throw new MigrationUriError(`${uri}: expected tcp:HOST:PORT`);
    const port = Number(m[2]);
    if (port > 65535) throw new MigrationUriError(`${uri}: port ${port} out of range`);
    const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
    return { kind: "tcp", host, port };
  }
  throw new MigrationUriError(`${uri}: expected tcp:HOST:PORT or unix:PATH`);
}

/**
 * How long a closing socket keeps reading for its peer to close (see {@link socketChannel}'s
 * `close`) before it is destroyed.
 */
export const CLOSE_LINGER_MS = 3000;

/** A connected socket as a {@link ByteChannel}. */
export function socketChannel(sock: Socket): ByteChannel {
  let closed = false;
  let broke: Error | undefined;
  let started = false;
  let closing: Promise<void> | undefined;
  sock.setNoDelay?.(true);
  sock.on("error", (e) => {
    broke = e;
  });
  sock.on("close", () => {
    closed = true;
  });
  return {
    write(bytes: Uint8Array): Promise<void> {
      if (closed || sock.destroyed || closing !== undefined) return Promise.reject(new ChannelClosedError(broke?.message ?? "socket closed"));
      return new Promise((resolve, reject) => {
        // A write waiting for drain settles when the socket closes (a peer that closed its side
        // ends this one too): no drain and no callback error come then.
        const onClose = (): void => reject(new ChannelClosedError(broke?.message ?? "socket closed"));
        sock.once("close", onClose);
        const more = sock.write(bytes, (err) => {
          if (err) {
            sock.off("close", onClose);
            reject(new ChannelClosedError(err.message));
          } else if (more) {
            sock.off("close", onClose);
            resolve();
          }
        });
        if (!more)
          sock.once("drain", () => {
            sock.off("close", onClose);
            resolve();
          });
      });
    },
    start(onData, onEnd): void {
      started = true;
      let done = false;
      const end = (e?: Error): void => {
        if (done) return;
        done = true;
        onEnd(e);
      };
      // Once closing, what the peer still sends is read and dropped (see close).
      sock.on("data", (b: Buffer) => {
        if (closing === undefined) onData(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
      });
      sock.on("end", () => end());
      sock.on("close", (hadError) => end(hadError ? (broke ?? new ChannelClosedError("socket error")) : undefined));
    },
    /**
     * Sends what was written, then ends this side. A channel that reads keeps reading (and
     * dropping) until the peer closes too, or {@link CLOSE_LINGER_MS} pass: a socket closed with
     * unread bytes is reset, and a reset can throw away what the peer has not read yet, such as the
     * ERROR that says why this side stopped. Settles once the socket is closed.
     */
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        if (sock.destroyed) return resolve();
        const t = setTimeout(() => sock.destroy(), started ? CLOSE_LINGER_MS : 1000);
        if (!started) t.unref();
        sock.once("close", () => {
          clearTimeout(t);
          resolve();
        });
        sock.end();
      });
      return closing;
    },
  };
}

/** A listening destination. */
export interface MigrationListener {
  /** The address actually bound (the port, when 0 was asked for). */
  readonly address: MigrationAddress;
  /** The first connection, as a channel; the listener stops listening then. */
  accept(): Promise<ByteChannel>;
  /** Stops listening (and removes the unix socket file). */
  close(): Promise<void>;
}

/**
 * Listens on `uri` for one source (`nicvisor run ... --incoming URI`).
 * @throws MigrationUriError; rejects when the address cannot be bound
 */
export async function listenMigration(uri: string): Promise<MigrationListener> {
  const addr = parseMigrationUri(uri);
  const server: Server = createServer({ noDelay: true });
  let first: Promise<Socket> | undefined;
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (addr.kind === "unix") server.listen(addr.path, () => resolve());
    else server.listen(addr.port, addr.host === "" ? undefined : addr.host, () => resolve());
  });
  const bound = server.address();
  const address: MigrationAddress = addr.kind === "tcp" && typeof bound === "object" && bound !== null ? { kind: "tcp", host: bound.address, port: bound.port } : addr;
  const close = (): Promise<void> =>
    new Promise((r) => {
      if (!server.listening) r();
      else server.close(() => r());
    });
  return {
    address,
    accept: async () => {
      first ??= accepted;
      const sock = await first;
      // Stop accepting (server.close's callback would wait for this connection to end too).
      server.close();
      return socketChannel(sock);
    },
    close,
  };
}

/**
 * Connects to a listening destination (`migrate uri=...`).
 * @throws MigrationUriError; rejects when the connection fails
 */
export function connectMigration(uri: string): Promise<ByteChannel> {
  const addr = parseMigrationUri(uri);
  return new Promise((resolve, reject) => {
    const sock = addr.kind === "unix" ? createConnection({ path: addr.path }) : createConnection({ host: addr.host === "" ? "localhost" : addr.host, port: addr.port });
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      resolve(socketChannel(sock));
    });
  });
}
