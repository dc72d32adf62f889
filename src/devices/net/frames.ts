/**
 * Building frames: address parsing and formatting, and builders for Ethernet (with optional VLAN
 * tag), ARP, IPv4, IPv6, TCP, UDP, ICMP and ICMPv6 with correct lengths and checksums. Used by the
 * host stub, by tests and benches, and by simulated guests.
 * @module
 */
import { fillIpv4HeaderChecksum, fillL4Checksum } from "./checksum.js";
import { EtherType, parseFrame } from "./parse.js";

/** Thrown by the address parsers for a malformed address string (API input, not guest input). */
export class AddressParseError extends Error {
  override readonly name = "AddressParseError";
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with dashes) into 6 bytes. */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new AddressParseError(`bad MAC address: ${s}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** Formats 6 bytes at `off` as "aa:bb:cc:dd:ee:ff". */
export function formatMac(b: Uint8Array, off = 0): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push((b[off + i] ?? 0).toString(16).padStart(2, "0"));
  return out.join(":");
}

/** Parses dotted-quad IPv4 into 4 bytes. */
export function parseIpv4(s: string): Uint8Array {
  const parts = s.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new AddressParseError(`bad IPv4 address: ${s}`);
  }
  return Uint8Array.from(parts.map(Number));
}

/** Formats 4 bytes at `off` as a dotted quad. */
export function formatIpv4(b: Uint8Array, off = 0): string {
  return [0, 1, 2, 3].map((i) => b[off + i] ?? 0).join(".");
}

/** Parses an IPv6 address (with `::` compression; no embedded IPv4, no zone) into 16 bytes. */
export function parseIpv6(s: string): Uint8Array {
  const halves = s.split("::");
  if (halves.length > 2) throw new AddressParseError(`bad IPv6 address: ${s}`);
  const group = (h: string): number[] => (h === "" ? [] : h.split(":").map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new AddressParseError(`bad IPv6 address: ${s}`);
    return parseInt(g, 16);
  }));
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < (halves.length === 2 ? 1 : 0)) {
    throw new AddressParseError(`bad IPv6 address: ${s}`);
  }
  const words = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** The broadcast MAC address. */
export const BROADCAST_MAC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** Options of {@link buildEthernet}. */
export interface EthernetOptions {
  dst: Uint8Array;
  src: Uint8Array;
  etherType: number;
  payload: Uint8Array;
  /** If set, an 802.1Q tag with this TCI is inserted. */
  vlanTci?: number;
  /** Pad to the 60-byte Ethernet minimum (default false). */
  pad?: boolean;
}

/** Builds an Ethernet frame (no FCS). */
export function buildEthernet(o: EthernetOptions): Uint8Array {
  const tag = o.vlanTci === undefined ? 0 : 4;
  const len = 14 + tag + o.payload.length;
  const f = new Uint8Array(o.pad === true ? Math.max(60, len) : len);
  f.set(o.dst.subarray(0, 6), 0);
  f.set(o.src.subarray(0, 6), 6);
  let off = 12;
  if (o.vlanTci !== undefined) {
    f[12] = 0x81;
    f[13] = 0x00;
    f[14] = (o.vlanTci >> 8) & 0xff;
    f[15] = o.vlanTci & 0xff;
    off = 16;
  }
  f[off] = (o.etherType >> 8) & 0xff;
  f[off + 1] = o.etherType & 0xff;
  f.set(o.payload, off + 2);
  return f;
}

/** Builds an ARP packet body for Ethernet/IPv4 (op 1 = request, 2 = reply). */
export function buildArp(op: 1 | 2, sha: Uint8Array, spa: Uint8Array, tha: Uint8Array, tpa: Uint8Array): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 0x08, 0x00, 6, 4, 0, op]);
  a.set(sha.subarray(0, 6), 8);
  a.set(spa.subarray(0, 4), 14);
  a.set(tha.subarray(0, 6), 18);
  a.set(tpa.subarray(0, 4), 24);
  return a;
}

/** Options of {@link buildIpv4}. */
export interface Ipv4Options {
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  payload: Uint8Array;
  id?: number;
  ttl?: number;
  /** Don't Fragment (default true). */
  df?: boolean;
  tos?: number;
}

/** Builds an IPv4 packet (20-byte header, checksum filled). The L4 checksum is not touched. */
export function buildIpv4(o: Ipv4Options): Uint8Array {
  const p = new Uint8Array(20 + o.payload.length);
  const tot = p.length & 0xffff;
  p.set([0x45, o.tos ?? 0, tot >> 8, tot & 0xff, ((o.id ?? 0) >> 8) & 0xff, (o.id ?? 0) & 0xff]);
  p[6] = o.df === false ? 0 : 0x40;
  p[8] = o.ttl ?? 64;
  p[9] = o.proto;
  p.set(o.src.subarray(0, 4), 12);
  p.set(o.dst.subarray(0, 4), 16);
  p.set(o.payload, 20);
  fillIpv4HeaderChecksum(p, 0);
  return p;
}

/** Options of {@link buildIpv6}. */
export interface Ipv6Options {
  src: Uint8Array;
  dst: Uint8Array;
  next: number;
  payload: Uint8Array;
  hopLimit?: number;
}

/** Builds an IPv6 packet (fixed header only). */
export function buildIpv6(o: Ipv6Options): Uint8Array {
  const p = new Uint8Array(40 + o.payload.length);
  const len = o.payload.length & 0xffff;
  p.set([0x60, 0, 0, 0, len >> 8, len & 0xff, o.next, o.hopLimit ?? 64]);
  p.set(o.src.subarray(0, 16), 8);
  p.set(o.dst.subarray(0, 16), 24);
  p.set(o.payload, 40);
  return p;
}

/** Options of {@link buildTcp}. */
export interface TcpOptions {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  /** Flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80). */
  flags?: number;
  window?: number;
  /** TCP options, padded to a multiple of 4 bytes. */
  options?: Uint8Array;
  payload?: Uint8Array;
}

/** Builds a TCP segment with a zero checksum (fill it with {@link finishFrame}). */
export function buildTcp(o: TcpOptions): Uint8Array {
  const optLen = Math.ceil((o.options?.length ?? 0) / 4) * 4;
  const hl = 20 + optLen;
  const payload = o.payload ?? new Uint8Array(0);
  const t = new Uint8Array(hl + payload.length);
  const seq = o.seq ?? 0;
  const ack = o.ack ?? 0;
  const win = o.window ?? 65535;
  t.set([o.srcPort >> 8, o.srcPort & 0xff, o.dstPort >> 8, o.dstPort & 0xff]);
  t.set([seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff], 4);
  t.set([ack >>> 24, (ack >>> 16) & 0xff, (ack >>> 8) & 0xff, ack & 0xff], 8);
  t[12] = (hl / 4) << 4;
  t[13] = o.flags ?? 0x10;
  t[14] = win >> 8;
  t[15] = win & 0xff;
  if (o.options !== undefined) t.set(o.options, 20);
  t.set(payload, hl);
  return t;
}

/** Builds a UDP datagram with a zero checksum (fill it with {@link finishFrame}). */
export function buildUdp(srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const len = u.length & 0xffff;
  u.set([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, len >> 8, len & 0xff, 0, 0]);
  u.set(payload, 8);
  return u;
}

/** Builds an ICMP / ICMPv6 echo message (type 8/0 or 128/129) with a zero checksum. */
export function buildEcho(type: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m.set([type, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff]);
  m.set(data, 8);
  return m;
}

/** Fills the IPv4 header checksum and the L4 checksum of a frame in place; returns the frame. */
export function finishFrame(frame: Uint8Array): Uint8Array {
  const p = parseFrame(frame);
  if (p.ipVersion === 4) fillIpv4HeaderChecksum(frame, p.l3Offset);
  if (p.ipVersion !== 0) fillL4Checksum(frame, p);
  return frame;
}

/** Shorthand: an Ethernet + IPv4/IPv6 + L4 frame with all checksums filled. */
export function ipFrame(o: {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  l4: Uint8Array;
  vlanTci?: number;
  id?: number;
}): Uint8Array {
  const v6 = o.src.length === 16;
  const ip = v6
    ? buildIpv6({ src: o.src, dst: o.dst, next: o.proto, payload: o.l4 })
    : buildIpv4({ src: o.src, dst: o.dst, proto: o.proto, payload: o.l4, id: o.id ?? 0 });
  const eth: EthernetOptions = {
    dst: o.dstMac,
    src: o.srcMac,
    etherType: v6 ? EtherType.IPv6 : EtherType.IPv4,
    payload: ip,
  };
  if (o.vlanTci !== undefined) eth.vlanTci = o.vlanTci;
  return finishFrame(buildEthernet(eth));
}
