/**
 * A one-client DHCP server (RFC 2131, options from RFC 2132) for the host stub: it offers a fixed
 * address to whoever asks, so a guest configured for DHCP (Debian's default `ifupdown` with
 * `iface eth0 inet dhcp`) comes up with no manual network setup.
 *
 * Message layout (RFC 2131 §2): op, htype, hlen, hops, xid(4), secs(2), flags(2), ciaddr, yiaddr,
 * siaddr, giaddr (4 each), chaddr(16), sname(64), file(128), then the magic cookie 99.130.83.99
 * at offset 236 and options from 240. Replies go from port 67 to port 68, broadcast (always
 * acceptable to a client).
 * @module
 */
import { BROADCAST_MAC, buildEthernet, buildIpv4, buildUdp, finishFrame, parseIpv4, type EthernetOptions } from "./frames.js";
import { EtherType, IpProto, type ParsedFrame } from "./parse.js";

/** Configuration of the DHCP responder. */
export interface DhcpOptions {
  /** Address handed out (default 10.0.2.15). */
  clientIp?: string;
  /** Subnet mask (default 255.255.255.0). */
  netmask?: string;
  /** Router option (default: the stub's own address). */
  router?: string;
  /** DNS server option (default: none). */
  dns?: string;
  /** Lease time in seconds (default 86400). */
  leaseSeconds?: number;
}

/** DHCP message types (option 53). */
export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

const BOOTP_MIN = 240;
const COOKIE = [99, 130, 83, 99];

/** What {@link DhcpResponder.handle} did. */
export type DhcpOutcome = "offer" | "ack" | "nak" | "ignored" | "malformed";

/** Parsed options we care about. */
interface DhcpRequest {
  type: number;
  xid: Uint8Array;
  flags: number;
  ciaddr: Uint8Array;
  chaddr: Uint8Array;
  requested: Uint8Array | undefined;
  serverId: Uint8Array | undefined;
}

function eq4(a: Uint8Array, b: Uint8Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/** Parses a BOOTREQUEST at `o` up to `end`; `undefined` if malformed. Bounded: one pass over the options. */
function parseRequest(f: Uint8Array, o: number, end: number): DhcpRequest | undefined {
  if (end - o < BOOTP_MIN || f[o] !== 1 || f[o + 1] !== 1 || f[o + 2] !== 6) return undefined;
  for (let i = 0; i < 4; i++) if (f[o + 236 + i] !== COOKIE[i]) return undefined;
  const r: DhcpRequest = {
    type: 0,
    xid: f.slice(o + 4, o + 8),
    flags: (f[o + 10]! << 8) | f[o + 11]!,
    ciaddr: f.slice(o + 12, o + 16),
    chaddr: f.slice(o + 28, o + 34),
    requested: undefined,
    serverId: undefined,
  };
  let p = o + BOOTP_MIN;
  while (p < end) {
    const code = f[p]!;
    if (code === 255) break;
    if (code === 0) {
      p++;
      continue;
    }
    if (p + 1 >= end) return undefined;
    const len = f[p + 1]!;
    if (p + 2 + len > end) return undefined;
    const v = f.subarray(p + 2, p + 2 + len);
    if (code === 53 && len === 1) r.type = v[0]!;
    else if (code === 50 && len === 4) r.requested = v.slice();
    else if (code === 54 && len === 4) r.serverId = v.slice();
    p += 2 + len;
  }
  return r.type === 0 ? undefined : r;
}

/** Answers DHCPDISCOVER with an OFFER and DHCPREQUEST with an ACK (or NAK) for one fixed address. */
export class DhcpResponder {
  readonly #server: Uint8Array;
  readonly #serverMac: Uint8Array;
  readonly #client: Uint8Array;
  readonly #mask: Uint8Array;
  readonly #router: Uint8Array;
  readonly #dns: Uint8Array | undefined;
  readonly #lease: number;

  /** Creates a responder for the server at `serverIp` / `serverMac`. Throws on malformed addresses (API input). */
  constructor(serverIp: Uint8Array, serverMac: Uint8Array, o: DhcpOptions = {}) {
    this.#server = serverIp.slice();
    this.#serverMac = serverMac.slice();
    this.#client = parseIpv4(o.clientIp ?? "10.0.2.15");
    this.#mask = parseIpv4(o.netmask ?? "255.255.255.0");
    this.#router = o.router === undefined ? serverIp.slice() : parseIpv4(o.router);
    this.#dns = o.dns === undefined ? undefined : parseIpv4(o.dns);
    this.#lease = Math.max(60, Math.min(0xffffffff, Math.floor(o.leaseSeconds ?? 86400)));
  }

  /**
   * Handles a UDP frame to port 67 (`p` is its parse). Returns the outcome and the reply frame to
   * send, if any. Never throws.
   */
  handle(f: Uint8Array, p: ParsedFrame, vlanTci: number | undefined): { outcome: DhcpOutcome; reply?: Uint8Array } {
    if (p.l4Proto !== IpProto.UDP || p.dstPort !== 67 || p.payloadOffset < 0 || p.fragment) return { outcome: "ignored" };
    const req = parseRequest(f, p.payloadOffset, p.ipEnd);
    if (req === undefined) return { outcome: "malformed" };
    if (req.serverId !== undefined && !eq4(req.serverId, this.#server)) return { outcome: "ignored" };
    let type: number;
    if (req.type === DhcpMessageType.DISCOVER) type = DhcpMessageType.OFFER;
    else if (req.type === DhcpMessageType.REQUEST) {
      const wanted = req.requested ?? req.ciaddr;
      type = eq4(wanted, this.#client) ? DhcpMessageType.ACK : DhcpMessageType.NAK;
    } else return { outcome: "ignored" };
    const reply = this.#reply(req, type, vlanTci);
    return { outcome: type === DhcpMessageType.OFFER ? "offer" : type === DhcpMessageType.ACK ? "ack" : "nak", reply };
  }

  #reply(req: DhcpRequest, type: number, vlanTci: number | undefined): Uint8Array {
    const opts: number[] = [53, 1, type, 54, 4, ...this.#server];
    if (type !== DhcpMessageType.NAK) {
      const l = this.#lease;
      opts.push(51, 4, (l >>> 24) & 0xff, (l >>> 16) & 0xff, (l >>> 8) & 0xff, l & 0xff);
      opts.push(1, 4, ...this.#mask, 3, 4, ...this.#router);
      if (this.#dns !== undefined) opts.push(6, 4, ...this.#dns);
    }
    opts.push(255);
    const m = new Uint8Array(BOOTP_MIN + opts.length);
    m[0] = 2; // BOOTREPLY
    m[1] = 1;
    m[2] = 6;
    m.set(req.xid, 4);
    m[10] = (req.flags >> 8) & 0x80;
    if (type !== DhcpMessageType.NAK) {
      m.set(this.#client, 16); // yiaddr
      m.set(this.#server, 20); // siaddr
    }
    m.set(req.chaddr, 28);
    m.set(COOKIE, 236);
    m.set(opts, BOOTP_MIN);
    const ip = buildIpv4({ src: this.#server, dst: parseIpv4("255.255.255.255"), proto: IpProto.UDP, payload: buildUdp(67, 68, m), ttl: 64 });
    const eth: EthernetOptions = { dst: BROADCAST_MAC, src: this.#serverMac, etherType: EtherType.IPv4, payload: ip, pad: true };
    if (vlanTci !== undefined) eth.vlanTci = vlanTci;
    return finishFrame(buildEthernet(eth));
  }
}

/** Builds a DHCP client message (DISCOVER or REQUEST) as a guest would send it; for tests and simulated guests. */
export function buildDhcpClientMessage(
  type: 1 | 3,
  mac: Uint8Array,
  xid: number,
  requested?: Uint8Array,
  serverId?: Uint8Array,
): Uint8Array {
  const opts: number[] = [53, 1, type];
  if (requested !== undefined) opts.push(50, 4, ...requested);
  if (serverId !== undefined) opts.push(54, 4, ...serverId);
  opts.push(255);
  const m = new Uint8Array(BOOTP_MIN + opts.length);
  m.set([1, 1, 6, 0, (xid >>> 24) & 0xff, (xid >>> 16) & 0xff, (xid >>> 8) & 0xff, xid & 0xff]);
  m[10] = 0x80; // broadcast flag
  m.set(mac.subarray(0, 6), 28);
  m.set(COOKIE, 236);
  m.set(opts, BOOTP_MIN);
  const ip = buildIpv4({ src: new Uint8Array(4), dst: parseIpv4("255.255.255.255"), proto: IpProto.UDP, payload: buildUdp(68, 67, m) });
  return finishFrame(buildEthernet({ dst: BROADCAST_MAC, src: mac, etherType: EtherType.IPv4, payload: ip }));
}
