/**
 * A minimal host on a segment, so that a guest can ping with no real peer: it answers ARP requests
 * and ICMP echo requests for its IPv4 address (default 10.0.2.2, QEMU user networking's gateway),
 * IPv6 neighbour solicitations (RFC 4861 §7.2.4: unicast or to the solicited-node multicast group)
 * and ICMPv6 echo requests for its IPv6 address (default fe80::2), and optionally DHCP for one
 * client (see `dhcp.ts`). Everything else is counted and ignored. Frames with an 802.1Q tag are answered with the same tag.
 * @module
 */
import type { FrameMeta, NetBackend } from "./backend.js";
import { verifyIpv4HeaderChecksum, verifyL4Checksum } from "./checksum.js";
import {
  buildArp, buildEcho, buildEthernet, buildIpv4, buildIpv6, finishFrame, parseIpv4, parseIpv6, parseMac,
  type EthernetOptions,
} from "./frames.js";
import { EtherType, IpProto, parseFrame } from "./parse.js";
import { DhcpResponder, type DhcpOptions } from "./dhcp.js";
import { field, int, obj, onlyKeys } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";

/** Options of {@link HostStub}. */
export interface HostStubOptions {
  /** Where the stub is attached: a switch port, one end of a link, a TAP... */
  backend: NetBackend;
  /** Its MAC address (default 52:55:0a:00:02:02). */
  mac?: string;
  /** Its IPv4 address (default 10.0.2.2). */
  ipv4?: string;
  /** Its IPv6 address (default fe80::2). */
  ipv6?: string;
  /** Also answer DHCP, offering one address (`true` for the defaults: 10.0.2.15/24). Default off. */
  dhcp?: DhcpOptions | boolean;
}

/** What the stub saw and answered. */
export interface HostStubCounters {
  arpRequests: number;
  arpReplies: number;
  echoRequests: number;
  echoReplies: number;
  neighborSolicitations: number;
  neighborAdvertisements: number;
  echo6Requests: number;
  echo6Replies: number;
  /** DHCP replies sent (only with the `dhcp` option). */
  dhcpOffers: number;
  dhcpAcks: number;
  dhcpNaks: number;
  /** Frames not for us or of a kind we do not answer. */
  ignored: number;
  /** Frames for us that failed validation (checksum, length, hop limit). */
  malformed: number;
}

/** Saved state of a {@link HostStub} (version 2): its counters, all of them. */
export interface HostStubState {
  version: 2;
  counters: HostStubCounters;
}

const COUNTER_KEYS: (keyof HostStubCounters)[] = [
  "arpRequests", "arpReplies", "echoRequests", "echoReplies", "neighborSolicitations",
  "neighborAdvertisements", "echo6Requests", "echo6Replies", "dhcpOffers", "dhcpAcks", "dhcpNaks",
  "ignored", "malformed",
];

/** Counters added after version 1 was first written: missing in a version 1 state means 0. */
const OPTIONAL_COUNTERS: readonly (keyof HostStubCounters)[] = ["dhcpOffers", "dhcpAcks", "dhcpNaks"];

/**
 * The host stub's state type: version 2; version 1 (which could lack the DHCP counters) loads
 * through an upgrade. Throws `StateError` naming the field.
 */
export const HostStubStateType: StateType<HostStubState> = defineState<HostStubState>(
  "host-stub",
  2,
  {
    1: (o, path) => {
      const c = obj(o.counters, `${path}.counters`);
      const filled: Record<string, unknown> = { ...c };
      for (const k of OPTIONAL_COUNTERS) if (filled[k] === undefined) filled[k] = 0;
      return { ...o, version: 2, counters: filled };
    },
  },
  (o, path) => {
    onlyKeys(o, path, ["version", "counters"]);
    const counters = field(o, "counters", path, (v, p) => {
      const c = obj(v, p);
      onlyKeys(c, p, COUNTER_KEYS);
      return Object.fromEntries(COUNTER_KEYS.map((k) => [k, field(c, k, p, (x, q) => int(x, q, 0, Number.MAX_SAFE_INTEGER))])) as unknown as HostStubCounters;
    });
    return { version: 2, counters };
  },
);

function eq(a: Uint8Array, ao: number, b: Uint8Array): boolean {
  if (ao < 0 || ao + b.length > a.length) return false;
  for (let i = 0; i < b.length; i++) if (a[ao + i] !== b[i]) return false;
  return true;
}

/**
 * The host stub. Attach it to a backend and it answers from then on.
 * @example
 * const sw = new L2Switch({ clock });
 * const stub = new HostStub({ backend: sw.port({ name: "host" }) });
 * // ... guest pings 10.0.2.2 ...
 * stub.counters.echoReplies;
 */
export class HostStub {
  readonly #backend: NetBackend;
  readonly #mac: Uint8Array;
  readonly #ip4: Uint8Array;
  readonly #ip6: Uint8Array;
  /** ff02::1:ffXX:XXXX for our address. */
  readonly #solicited: Uint8Array;
  readonly #dhcp: DhcpResponder | undefined;
  readonly #counters: HostStubCounters = Object.fromEntries(COUNTER_KEYS.map((k) => [k, 0])) as unknown as HostStubCounters;

  /** Creates the stub and installs it as the backend's receiver. */
  constructor(options: HostStubOptions) {
    this.#backend = options.backend;
    this.#mac = parseMac(options.mac ?? "52:55:0a:00:02:02");
    this.#ip4 = parseIpv4(options.ipv4 ?? "10.0.2.2");
    this.#ip6 = parseIpv6(options.ipv6 ?? "fe80::2");
    this.#solicited = parseIpv6("ff02::1:ff00:0");
    this.#solicited.set(this.#ip6.subarray(13, 16), 13);
    const d = options.dhcp;
    this.#dhcp = d === undefined || d === false ? undefined : new DhcpResponder(this.#ip4, this.#mac, d === true ? {} : d);
    this.#backend.setReceiver((frame, meta) => {
      this.receive(frame, meta);
      return true;
    });
  }

  /** Live counters (read-only view). */
  get counters(): Readonly<HostStubCounters> {
    return this.#counters;
  }

  /** The stub's MAC address (a copy). */
  get mac(): Uint8Array {
    return this.#mac.slice();
  }

  /** Detaches from the backend. */
  close(): void {
    this.#backend.setReceiver(undefined);
  }

  /** Handles one frame arriving from the network. Never throws. */
  receive(frame: Uint8Array, _meta?: FrameMeta): void {
    const p = parseFrame(frame);
    if (p.l3Offset < 0) return void this.#counters.ignored++;
    const toUs = eq(frame, 0, this.#mac);
    const vlan = p.vlanCount === 1 ? p.vlanTci : undefined;
    if (p.etherType === EtherType.ARP) return this.#arp(frame, p.l3Offset, vlan);
    if (p.ipVersion === 4 && toUs && p.l4Proto === IpProto.ICMP) return this.#echo4(frame, p, vlan);
    if (this.#dhcp !== undefined && p.ipVersion === 4 && p.l4Proto === IpProto.UDP && p.dstPort === 67) {
      const r = this.#dhcp.handle(frame, p, vlan);
      if (r.reply !== undefined) this.#backend.transmit(r.reply);
      if (r.outcome === "offer") this.#counters.dhcpOffers++;
      else if (r.outcome === "ack") this.#counters.dhcpAcks++;
      else if (r.outcome === "nak") this.#counters.dhcpNaks++;
      else if (r.outcome === "malformed") this.#counters.malformed++;
      else this.#counters.ignored++;
      return;
    }
    if (p.ipVersion === 6 && p.l4Proto === IpProto.ICMPv6) return this.#icmp6(frame, p, toUs, vlan);
    this.#counters.ignored++;
  }

  #send(dst: Uint8Array, etherType: number, payload: Uint8Array, vlan: number | undefined): void {
    const o: EthernetOptions = { dst, src: this.#mac, etherType, payload, pad: true };
    if (vlan !== undefined) o.vlanTci = vlan;
    this.#backend.transmit(buildEthernet(o));
  }

  #arp(f: Uint8Array, a: number, vlan: number | undefined): void {
    // Ethernet/IPv4 ARP request for our address.
    if (a + 28 > f.length || f[a] !== 0 || f[a + 1] !== 1 || f[a + 2] !== 8 || f[a + 3] !== 0 || f[a + 4] !== 6 || f[a + 5] !== 4) {
      return void this.#counters.ignored++;
    }
    const op = (f[a + 6]! << 8) | f[a + 7]!;
    if (op !== 1 || !eq(f, a + 24, this.#ip4)) return void this.#counters.ignored++;
    this.#counters.arpRequests++;
    const sha = f.slice(a + 8, a + 14);
    const spa = f.slice(a + 14, a + 18);
    this.#send(sha, EtherType.ARP, buildArp(2, this.#mac, this.#ip4, sha, spa), vlan);
    this.#counters.arpReplies++;
  }

  #echo4(f: Uint8Array, p: ReturnType<typeof parseFrame>, vlan: number | undefined): void {
    const l3 = p.l3Offset;
    if (!eq(f, l3 + 16, this.#ip4)) return void this.#counters.ignored++;
    if (f[p.l4Offset] !== 8) return void this.#counters.ignored++;
    if (p.fragment || p.l4Offset < 0 || p.ipLengthTruncated || !verifyIpv4HeaderChecksum(f, l3) || verifyL4Checksum(f, p) !== true) {
      return void this.#counters.malformed++;
    }
    this.#counters.echoRequests++;
    const icmp = f.slice(p.l4Offset, p.ipEnd);
    icmp[0] = 0; // echo reply
    icmp[2] = 0;
    icmp[3] = 0;
    const ip = buildIpv4({ src: this.#ip4, dst: f.slice(l3 + 12, l3 + 16), proto: IpProto.ICMP, payload: icmp, id: (f[l3 + 4]! << 8) | f[l3 + 5]! });
    const o: EthernetOptions = { dst: f.slice(6, 12), src: this.#mac, etherType: EtherType.IPv4, payload: ip, pad: true };
    if (vlan !== undefined) o.vlanTci = vlan;
    this.#backend.transmit(finishFrame(buildEthernet(o)));
    this.#counters.echoReplies++;
  }

  #icmp6(f: Uint8Array, p: ReturnType<typeof parseFrame>, toUs: boolean, vlan: number | undefined): void {
    const l3 = p.l3Offset;
    const l4 = p.l4Offset;
    if (l4 < 0 || p.fragment) return void this.#counters.ignored++;
    const type = f[l4]!;
    const dstIsUs = eq(f, l3 + 24, this.#ip6);
    const dstIsSolicited = eq(f, l3 + 24, this.#solicited);
    if (type === 135) {
      // Neighbour solicitation: target at l4+8.
      if (!(dstIsUs && toUs) && !dstIsSolicited) return void this.#counters.ignored++;
      if (l4 + 24 > p.ipEnd || !eq(f, l4 + 8, this.#ip6)) return void this.#counters.ignored++;
      if (f[l3 + 7] !== 255 || f[l4 + 1] !== 0 || verifyL4Checksum(f, p) !== true) return void this.#counters.malformed++;
      this.#counters.neighborSolicitations++;
      const src = f.slice(l3 + 8, l3 + 24);
      const unspecified = src.every((b) => b === 0);
      const na = new Uint8Array(32);
      na[0] = 136;
      na[4] = unspecified ? 0x20 : 0x60; // Solicited (unless DAD) + Override
      na.set(this.#ip6, 8);
      na[24] = 2; // option: target link-layer address
      na[25] = 1;
      na.set(this.#mac, 26);
      const dstIp = unspecified ? parseIpv6("ff02::1") : src;
      const dstMac = unspecified ? Uint8Array.of(0x33, 0x33, 0, 0, 0, 1) : f.slice(6, 12);
      const ip = buildIpv6({ src: this.#ip6, dst: dstIp, next: IpProto.ICMPv6, payload: na, hopLimit: 255 });
      const o: EthernetOptions = { dst: dstMac, src: this.#mac, etherType: EtherType.IPv6, payload: ip, pad: true };
      if (vlan !== undefined) o.vlanTci = vlan;
      this.#backend.transmit(finishFrame(buildEthernet(o)));
      this.#counters.neighborAdvertisements++;
      return;
    }
    if (type === 128 && dstIsUs && toUs) {
      if (p.ipLengthTruncated || verifyL4Checksum(f, p) !== true) return void this.#counters.malformed++;
      this.#counters.echo6Requests++;
      const data = f.slice(l4 + 8, p.ipEnd);
      const id = (f[l4 + 4]! << 8) | f[l4 + 5]!;
      const seq = (f[l4 + 6]! << 8) | f[l4 + 7]!;
      const ip = buildIpv6({ src: this.#ip6, dst: f.slice(l3 + 8, l3 + 24), next: IpProto.ICMPv6, payload: buildEcho(129, id, seq, data) });
      const o: EthernetOptions = { dst: f.slice(6, 12), src: this.#mac, etherType: EtherType.IPv6, payload: ip, pad: true };
      if (vlan !== undefined) o.vlanTci = vlan;
      this.#backend.transmit(finishFrame(buildEthernet(o)));
      this.#counters.echo6Replies++;
      return;
    }
    this.#counters.ignored++;
  }

  /** Parses untrusted saved state (see {@link HostStubStateType}). */
  readonly stateType: StateType<HostStubState> = HostStubStateType;

  /** Saves the counters. */
  save(): HostStubState {
    return { version: 2, counters: { ...this.#counters } };
  }

  /** Applies a state from {@link HostStub.stateType}. Never throws. */
  restore(s: HostStubState): void {
    for (const k of COUNTER_KEYS) this.#counters[k] = s.counters[k];
  }
}
