/**
 * Parsing an Ethernet frame into header offsets: Ethernet, up to two VLAN tags (802.1Q / 802.1ad),
 * IPv4 (with options), IPv6 (with a bounded walk over extension headers), TCP, UDP, ICMP and ICMPv6.
 *
 * The parser never throws and never reads past the frame: a truncated or garbage frame gives a
 * partial answer (fields it could not reach stay at their "absent" value, `-1` or `0`) and sets
 * {@link ParsedFrame.truncated} when a header it started to read was cut short.
 * @module
 */

/** Ethertypes the parser understands. */
export const EtherType = {
  IPv4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QinQ: 0x88a8,
  IPv6: 0x86dd,
} as const;

/** IP protocol numbers the parser understands. */
export const IpProto = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ICMPv6: 58,
  /** IPv6 extension headers walked by the parser. */
  HopByHop: 0,
  Routing: 43,
  Fragment: 44,
  DestOpts: 60,
  AH: 51,
  NoNext: 59,
} as const;

/** Length of an Ethernet header without VLAN tags. */
export const ETH_HLEN = 14;

/** How many IPv6 extension headers the parser walks before giving up (bounds hostile input). */
export const MAX_IPV6_EXT_HEADERS = 8;

/** What {@link parseFrame} found. Offsets are from the start of the frame; `-1` means absent. */
export interface ParsedFrame {
  /** Ethertype after any VLAN tags (0 if the frame is shorter than an Ethernet header). */
  etherType: number;
  /** Number of VLAN tags skipped (0..2). */
  vlanCount: number;
  /** Tag control information (PCP/DEI/VID) of the outermost VLAN tag, or -1. */
  vlanTci: number;
  /** Offset of the L3 header (after the Ethernet header and VLAN tags), or -1 if none. */
  l3Offset: number;
  /** 4 or 6 for an IP packet whose fixed header is present, else 0. */
  ipVersion: 0 | 4 | 6;
  /** IPv4: IHL*4. IPv6: 40 plus the extension headers walked (up to the L4 header). 0 if not IP. */
  l3HeaderLen: number;
  /** End offset of the IP packet as its header says, clamped to the frame (excludes Ethernet padding). */
  ipEnd: number;
  /** IPv4 total length / IPv6 40 + payload length exceeded the frame. */
  ipLengthTruncated: boolean;
  /** Upper-layer protocol (after IPv6 extension headers), or -1. */
  l4Proto: number;
  /** The packet is an IP fragment (IPv4 MF or offset, or an IPv6 Fragment header). */
  fragment: boolean;
  /** The packet is a non-first fragment: its L4 header is not in this packet. */
  laterFragment: boolean;
  /** Offset of the L4 header, or -1 (not IP, later fragment, unknown chain, truncated). */
  l4Offset: number;
  /** TCP: data offset*4; UDP: 8; ICMP/ICMPv6: 8 (header incl. id/seq); 0 if absent or truncated. */
  l4HeaderLen: number;
  /** Source and destination ports for TCP/UDP whose header is complete, else -1. */
  srcPort: number;
  /** See {@link ParsedFrame.srcPort}. */
  dstPort: number;
  /** Offset of the L4 payload (after the L4 header), or -1. */
  payloadOffset: number;
  /** A header the parser started to read was cut short by the end of the frame. */
  truncated: boolean;
}

function be16(f: Uint8Array, o: number): number {
  return (f[o]! << 8) | f[o + 1]!;
}

/**
 * Parses the headers of an Ethernet frame. Never throws; reads only inside `frame`.
 * @example
 * const p = parseFrame(frame);
 * if (p.l4Proto === IpProto.TCP && p.l4Offset >= 0) console.log(p.srcPort, p.dstPort);
 */
export function parseFrame(frame: Uint8Array): ParsedFrame {
  const f = frame;
  const r: ParsedFrame = {
    etherType: 0,
    vlanCount: 0,
    vlanTci: -1,
    l3Offset: -1,
    ipVersion: 0,
    l3HeaderLen: 0,
    ipEnd: f.length,
    ipLengthTruncated: false,
    l4Proto: -1,
    fragment: false,
    laterFragment: false,
    l4Offset: -1,
    l4HeaderLen: 0,
    srcPort: -1,
    dstPort: -1,
    payloadOffset: -1,
    truncated: false,
  };
  if (f.length < ETH_HLEN) {
    r.truncated = true;
    return r;
  }
  let off = 12;
  let et = be16(f, off);
  while ((et === EtherType.VLAN || et === EtherType.QinQ) && r.vlanCount < 2) {
    if (f.length < off + 6) {
      r.truncated = true;
      r.etherType = et;
      return r;
    }
    if (r.vlanCount === 0) r.vlanTci = be16(f, off + 2);
    r.vlanCount++;
    off += 4;
    et = be16(f, off);
  }
  r.etherType = et;
  const l3 = off + 2;
  r.l3Offset = l3;
  if (et === EtherType.IPv4) parseIpv4(f, l3, r);
  else if (et === EtherType.IPv6) parseIpv6(f, l3, r);
  return r;
}

function parseIpv4(f: Uint8Array, l3: number, r: ParsedFrame): void {
  if (f.length < l3 + 20) {
    r.truncated = true;
    return;
  }
  if (f[l3]! >> 4 !== 4) return;
  const ihl = (f[l3]! & 0xf) * 4;
  if (ihl < 20) return; // garbage: not a valid IPv4 header
  if (f.length < l3 + ihl) {
    r.truncated = true;
    return;
  }
  r.ipVersion = 4;
  r.l3HeaderLen = ihl;
  const total = be16(f, l3 + 2);
  const end = l3 + Math.max(total, ihl);
  r.ipLengthTruncated = end > f.length;
  r.ipEnd = Math.min(end, f.length);
  r.l4Proto = f[l3 + 9]!;
  const fragField = be16(f, l3 + 6);
  const fragOffset = fragField & 0x1fff;
  r.fragment = (fragField & 0x2000) !== 0 || fragOffset !== 0;
  r.laterFragment = fragOffset !== 0;
  if (!r.laterFragment) parseL4(f, l3 + ihl, r);
}

function parseIpv6(f: Uint8Array, l3: number, r: ParsedFrame): void {
  if (f.length < l3 + 40) {
    r.truncated = true;
    return;
  }
  if (f[l3]! >> 4 !== 6) return;
  r.ipVersion = 6;
  const end = l3 + 40 + be16(f, l3 + 4);
  r.ipLengthTruncated = end > f.length;
  r.ipEnd = Math.min(end, f.length);
  let next = f[l3 + 6]!;
  let off = l3 + 40;
  for (let i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
    if (
      next !== IpProto.HopByHop &&
      next !== IpProto.Routing &&
      next !== IpProto.Fragment &&
      next !== IpProto.DestOpts &&
      next !== IpProto.AH
    ) {
      break;
    }
    if (f.length < off + 8) {
      r.truncated = true;
      r.l3HeaderLen = off - l3;
      return;
    }
    let len: number;
    if (next === IpProto.Fragment) {
      len = 8;
      r.fragment = true;
      if ((be16(f, off + 2) & 0xfff8) !== 0) r.laterFragment = true;
    } else if (next === IpProto.AH) {
      len = (f[off + 1]! + 2) * 4;
    } else {
      len = (f[off + 1]! + 1) * 8;
    }
    next = f[off]!;
    off += len;
  }
  r.l3HeaderLen = off - l3;
  if (isIpv6ExtHeader(next)) return; // chain longer than we walk: leave L4 unknown
  r.l4Proto = next;
  if (next === IpProto.NoNext) return;
  if (off > f.length) {
    r.truncated = true;
    return;
  }
  if (!r.laterFragment) parseL4(f, off, r);
}

function isIpv6ExtHeader(p: number): boolean {
  return (
    p === IpProto.HopByHop ||
    p === IpProto.Routing ||
    p === IpProto.Fragment ||
    p === IpProto.DestOpts ||
    p === IpProto.AH
  );
}

function parseL4(f: Uint8Array, l4: number, r: ParsedFrame): void {
  const p = r.l4Proto;
  if (p === IpProto.TCP) {
    if (f.length < l4 + 20) return void (r.truncated = true);
    const doff = (f[l4 + 12]! >> 4) * 4;
    if (doff < 20) return; // garbage TCP header
    if (f.length < l4 + doff) return void (r.truncated = true);
    r.l4Offset = l4;
    r.l4HeaderLen = doff;
  } else if (p === IpProto.UDP) {
    if (f.length < l4 + 8) return void (r.truncated = true);
    r.l4Offset = l4;
    r.l4HeaderLen = 8;
  } else if (p === IpProto.ICMP || p === IpProto.ICMPv6) {
    if (f.length < l4 + 8) return void (r.truncated = true);
    r.l4Offset = l4;
    r.l4HeaderLen = 8;
  } else {
    r.l4Offset = l4;
    r.l4HeaderLen = 0;
    r.payloadOffset = l4;
    return;
  }
  if (p === IpProto.TCP || p === IpProto.UDP) {
    r.srcPort = be16(f, l4);
    r.dstPort = be16(f, l4 + 2);
  }
  r.payloadOffset = l4 + r.l4HeaderLen;
}
