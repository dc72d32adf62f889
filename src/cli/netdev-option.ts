/**
 * `--netdev` for `nicvisor run`, spelled as QEMU 7.2 spells it, onto the library's host backends:
 *
 * | spec | backend |
 * | --- | --- |
 * | `tap,id=N[,ifname=NAME][,vnet_hdr=on\|off][,script=no][,downscript=no]` | {@link TapBackend} (root, Linux) |
 * | `stream,id=N,server=on\|off,addr.type=inet,addr.host=H,addr.port=P[,reconnect=S]` | `-netdev stream` over TCP (loopback) |
 * | `stream,id=N,server=on\|off,addr.type=unix,addr.path=PATH[,reconnect=S]` | the same over a Unix socket |
 * | `dgram,id=N,local.type=inet,local.host=H,local.port=P,remote.type=inet,remote.host=H,remote.port=P` | `-netdev dgram`, one frame per UDP datagram (loopback) |
 * | `dgram,id=N,remote.type=inet,remote.host=GROUP,remote.port=P[,local.type=inet,local.host=H]` | a multicast group shared by several processes |
 *
 * A NIC uses one with `--net virtio,netdev=N` (or `vf`, `igb`). Errors name the bad key as QEMU
 * does ("Invalid parameter 'x'", "Parameter 'id' is missing", "Parameter 'server' expects 'on'
 * or 'off'"). `,,` in a value stands for a comma.
 * @module
 */
import { UsageError } from "./command.js";
import type { NetBackend } from "../devices/net/backend.js";
import { isIpv4Multicast } from "../vmm/host/net/socket.js";

/** A socket address of a stream netdev. */
export type NetdevAddr = { type: "inet"; host: string; port: number } | { type: "unix"; path: string };

/** A parsed `--netdev`. */
export type NetdevSpec =
  | { type: "tap"; id: string; ifname?: string; vnetHdr?: boolean }
  | { type: "stream"; id: string; server: boolean; addr: NetdevAddr; reconnectS?: number }
  | { type: "dgram"; id: string; host: string; localPort: number; remotePort: number }
  | { type: "dgram-multicast"; id: string; group: string; port: number; localHost?: string };

/** A netdev id, as QEMU takes one (also checked for `--net ...,netdev=ID`). */
export const NETDEV_ID = /^[A-Za-z][A-Za-z0-9._-]{0,31}$/;
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

/** Splits QEMU's `type,key=value,...` (`,,` is a literal comma); the first item is the type. */
function splitKeyval(spec: string): { type: string; kv: Map<string, string> } {
  const items: string[] = [];
  let cur = "";
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i]!;
    if (ch === ",") {
      if (spec[i + 1] === ",") {
        cur += ",";
        i++;
      } else {
        items.push(cur);
        cur = "";
      }
    } else cur += ch;
  }
  items.push(cur);
  let type = items.shift() ?? "";
  if (type.startsWith("type=")) type = type.slice(5);
  const kv = new Map<string, string>();
  for (const it of items) {
    const eq = it.indexOf("=");
    if (eq <= 0) throw new UsageError(`--netdev: '${it}' is not key=value`);
    const k = it.slice(0, eq);
    if (kv.has(k)) throw new UsageError(`--netdev: Parameter '${k}' given twice`);
    kv.set(k, it.slice(eq + 1));
  }
  return { type, kv };
}

/** Reads keys off a keyval map; at the end every key must have been read. */
class Keys {
  readonly #kv: Map<string, string>;
  readonly #used = new Set<string>();
  readonly #what: string;
  constructor(kv: Map<string, string>, what: string) {
    this.#kv = kv;
    this.#what = what;
  }
  #err(msg: string): UsageError {
    return new UsageError(`--netdev ${this.#what}: ${msg}`);
  }
  has(k: string): boolean {
    return this.#kv.has(k);
  }
  opt(k: string): string | undefined {
    this.#used.add(k);
    return this.#kv.get(k);
  }
  req(k: string): string {
    const v = this.opt(k);
    if (v === undefined || v === "") throw this.#err(`Parameter '${k}' is missing`);
    return v;
  }
  bool(k: string): boolean | undefined {
    const v = this.opt(k);
    if (v === undefined) return undefined;
    if (v === "on" || v === "yes" || v === "true") return true;
    if (v === "off" || v === "no" || v === "false") return false;
    throw this.#err(`Parameter '${k}' expects 'on' or 'off'`);
  }
  port(k: string): number {
    const v = this.req(k);
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw this.#err(`Parameter '${k}' expects a port number in 1..65535, got '${v}'`);
    return n;
  }
  loopback(k: string): string {
    const v = this.req(k);
    if (!LOOPBACK.test(v)) throw this.#err(`Parameter '${k}': only loopback addresses are supported (127.x.x.x, ::1, localhost), got '${v}'`);
    return v;
  }
  oneOf<T extends string>(k: string, allowed: readonly T[], what?: string): T {
    const v = this.req(k);
    if (!(allowed as readonly string[]).includes(v)) throw this.#err(`Parameter '${k}' expects ${allowed.map((a) => `'${a}'`).join(" or ")}${what ?? ""}, got '${v}'`);
    return v as T;
  }
  error(msg: string): UsageError {
    return this.#err(msg);
  }
  /** Throws on the first key nobody read. */
  done(): void {
    for (const k of this.#kv.keys()) if (!this.#used.has(k)) throw this.#err(`Invalid parameter '${k}'`);
  }
}

/**
 * Parses a `--netdev` value.
 * @throws UsageError naming the bad key
 * @example
 * ```ts
 * parseNetdevSpec("stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=5555");
 * // { type: "stream", id: "n0", server: false, addr: { type: "inet", host: "127.0.0.1", port: 5555 } }
 * ```
 */
export function parseNetdevSpec(spec: string): NetdevSpec {
  const { type, kv } = splitKeyval(spec);
  const k = new Keys(kv, type === "" ? "" : type);
  if (type !== "tap" && type !== "stream" && type !== "dgram") {
    throw new UsageError(`--netdev: unknown type '${type}' (tap, stream or dgram; the built-in host stub needs no --netdev)`);
  }
  const id = k.req("id");
  if (!NETDEV_ID.test(id)) throw k.error(`Parameter 'id' expects an identifier (a letter, then letters, digits, '-', '.', '_'), got '${id}'`);
  if (type === "tap") {
    const out: NetdevSpec = { type: "tap", id };
    const ifname = k.opt("ifname");
    if (ifname !== undefined) {
      if (ifname === "" || new TextEncoder().encode(ifname).length > 15 || /[\s/]/.test(ifname)) throw k.error(`Parameter 'ifname' expects an interface name of 1..15 bytes, got '${ifname}'`);
      out.ifname = ifname;
    }
    const vnet = k.bool("vnet_hdr");
    if (vnet !== undefined) out.vnetHdr = vnet;
    for (const s of ["script", "downscript"]) {
      const v = k.opt(s);
      if (v !== undefined && v !== "no") throw k.error(`Parameter '${s}': nicvisor runs no scripts; only ${s}=no is accepted (set the interface up yourself)`);
    }
    for (const unsupported of ["fd", "fds", "helper", "br", "queues", "vhost", "vhostfd"]) {
      if (k.has(unsupported)) throw k.error(`Parameter '${unsupported}' is not supported by nicvisor`);
    }
    k.done();
    return out;
  }
  if (type === "stream") {
    const server = k.bool("server") ?? false;
    const at = k.oneOf("addr.type", ["inet", "unix"] as const);
    const addr: NetdevAddr = at === "inet" ? { type: "inet", host: k.loopback("addr.host"), port: k.port("addr.port") } : { type: "unix", path: k.req("addr.path") };
    const out: NetdevSpec = { type: "stream", id, server, addr };
    const rc = k.opt("reconnect");
    if (rc !== undefined) {
      if (server) throw k.error("Parameter 'reconnect' is only for a client (server=off)");
      const n = Number(rc);
      if (!/^\d+$/.test(rc) || n > 3600) throw k.error(`Parameter 'reconnect' expects seconds in 0..3600, got '${rc}'`);
      if (n > 0) out.reconnectS = n;
    }
    k.done();
    return out;
  }
  // dgram
  k.oneOf("remote.type", ["inet"] as const, " (unix and fd dgram sockets are not supported)");
  const remoteHost = k.req("remote.host");
  const remotePort = k.port("remote.port");
  if (isIpv4Multicast(remoteHost)) {
    const out: NetdevSpec = { type: "dgram-multicast", id, group: remoteHost, port: remotePort };
    if (k.has("local.type") || k.has("local.host")) {
      k.oneOf("local.type", ["inet"] as const);
      const lh = k.loopback("local.host");
      if (!/^127\./.test(lh)) throw k.error(`Parameter 'local.host': a multicast group is joined on an IPv4 loopback address, got '${lh}'`);
      out.localHost = lh;
    }
    if (k.has("local.port")) throw k.error("Parameter 'local.port' is not used with a multicast group (remote.port is the group's port)");
    k.done();
    return out;
  }
  if (!LOOPBACK.test(remoteHost)) throw k.error(`Parameter 'remote.host': only loopback addresses or an IPv4 multicast group are supported, got '${remoteHost}'`);
  k.oneOf("local.type", ["inet"] as const, " (unix and fd dgram sockets are not supported)");
  const localHost = k.loopback("local.host");
  const localPort = k.port("local.port");
  if (localHost !== remoteHost) throw k.error(`Parameters 'local.host' and 'remote.host' must be the same loopback address, got '${localHost}' and '${remoteHost}'`);
  k.done();
  return { type: "dgram", id, host: localHost, localPort, remotePort };
}

/**
 * Parses every `--netdev` and checks that ids are unique.
 * @throws UsageError
 */
export function parseNetdevs(specs: readonly string[]): Map<string, NetdevSpec> {
  const out = new Map<string, NetdevSpec>();
  for (const s of specs) {
    const n = parseNetdevSpec(s);
    if (out.has(n.id)) throw new UsageError(`--netdev: Duplicate ID '${n.id}' for netdev`);
    out.set(n.id, n);
  }
  return out;
}

/** A netdev's backend, opened. `describe` says what it is for the user's log. */
export interface OpenNetdev {
  backend: NetBackend;
  describe: string;
}

/**
 * Opens the backend a netdev spec names (Node only: TAP, sockets). A stream client must reach its
 * server now (later drops are retried with `reconnect=`); a stream server listens and takes a
 * peer whenever one connects.
 * @throws TapError, SocketBackendError or a Node socket error, with the netdev's id in the message
 */
export async function openNetdev(spec: NetdevSpec): Promise<OpenNetdev> {
  try {
    switch (spec.type) {
      case "tap": {
        const { TapBackend } = await import("../vmm/host/net/tap.js");
        const tap = TapBackend.open({ ...(spec.ifname !== undefined ? { name: spec.ifname } : {}), ...(spec.vnetHdr !== undefined ? { vnetHdr: spec.vnetHdr } : {}) });
        return { backend: tap, describe: `tap ${tap.name}${tap.offloads.csum ? " (vnet_hdr)" : ""}` };
      }
      case "stream": {
        const { listenStream, connectStream } = await import("../vmm/host/net/socket.js");
        const where = spec.addr.type === "inet" ? { host: spec.addr.host, port: spec.addr.port } : { port: 0, path: spec.addr.path };
        const label = spec.addr.type === "inet" ? `${spec.addr.host}:${spec.addr.port}` : spec.addr.path;
        if (spec.server) return { backend: await listenStream(where), describe: `stream server on ${label}` };
        const be = await connectStream({ ...where, ...(spec.reconnectS !== undefined ? { reconnectMs: spec.reconnectS * 1000 } : {}) });
        return { backend: be, describe: `stream client of ${label}` };
      }
      case "dgram": {
        const { openDgram } = await import("../vmm/host/net/socket.js");
        const be = await openDgram({ host: spec.host, localPort: spec.localPort, remotePort: spec.remotePort });
        return { backend: be, describe: `dgram ${spec.host}:${spec.localPort} -> ${spec.remotePort}` };
      }
      case "dgram-multicast": {
        const { openDgramMulticast } = await import("../vmm/host/net/socket.js");
        const be = await openDgramMulticast({ group: spec.group, port: spec.port, ...(spec.localHost !== undefined ? { localHost: spec.localHost } : {}) });
        return { backend: be, describe: `dgram multicast group ${spec.group}:${spec.port}` };
      }
    }
  } catch (e) {
    const err = e as Error;
    err.message = `netdev '${spec.id}': ${err.message}`;
    throw err;
  }
}
