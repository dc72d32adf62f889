/**
 * Frame parsing for the 82576's filters (VET-aware VLAN detection) and the offloads it performs in
 * hardware: IPv4 header checksum, TCP/UDP checksum insertion, TCP segmentation, and receive-side
 * checksum verification. The arithmetic is the shared code in `src/devices/net`.
 * @module
 */
import {
  completeChecksum,
  csumPartial,
  pseudoHeaderSumV4,
  fillIpv4HeaderChecksum,
  verifyIpv4HeaderChecksum,
  verifyL4Checksum,
} from "../net/checksum.js";
import { parseFrame as netParse } from "../net/parse.js";
import { DEFAULT_MAX_SEGMENTS, segmentTso } from "../net/segment.js";

/** What the parser found in a frame. */
export interface FrameInfo {
  /** Offset of the L3 header (after any VLAN tag). */
  l3: number;
  /** Ethertype of the L3 header. */
  etherType: number;
  /** VLAN tag control info, if the frame is tagged with `vlanType`. */
  vlan?: number | undefined;
  /** IP version (4 or 6), 0 if neither. */
  ip: 0 | 4 | 6;
  /** Offset of the L4 header, if IP and not a fragment with offset. */
  l4?: number | undefined;
  /** IP protocol number. */
  proto: number;
  /** Bytes from the L3 header to the end of the IP packet (clamped to the frame). */
  ipEnd: number;
}

/** Parses Ethernet/VLAN/IPv4/IPv6 headers; never throws; out-of-range fields give a partial answer. */
export function parseFrame(f: Uint8Array, vlanType = 0x8100): FrameInfo {
  // every field present from the start: one object shape for every frame keeps the callers' property loads monomorphic
  const info: FrameInfo = { l3: 14, etherType: 0, vlan: undefined, ip: 0, l4: undefined, proto: 0, ipEnd: f.length };
  if (f.length < 14) return info;
  let et = (f[12]! << 8) | f[13]!;
  if (et === vlanType && f.length >= 18) {
    info.vlan = (f[14]! << 8) | f[15]!;
    et = (f[16]! << 8) | f[17]!;
    info.l3 = 18;
  }
  info.etherType = et;
  const l3 = info.l3;
  if (et === 0x0800 && f.length >= l3 + 20 && f[l3]! >> 4 === 4) {
    const ihl = (f[l3]! & 0xf) * 4;
    const tot = (f[l3 + 2]! << 8) | f[l3 + 3]!;
    info.ip = 4;
    info.proto = f[l3 + 9]!;
    info.ipEnd = Math.min(f.length, l3 + Math.max(tot, ihl));
    const frag = ((f[l3 + 6]! << 8) | f[l3 + 7]!) & 0x1fff;
    if (ihl >= 20 && frag === 0 && l3 + ihl <= f.length) info.l4 = l3 + ihl;
  } else if (et === 0x86dd && f.length >= l3 + 40 && f[l3]! >> 4 === 6) {
    info.ip = 6;
    info.proto = f[l3 + 6]!;
    info.ipEnd = Math.min(f.length, l3 + 40 + ((f[l3 + 4]! << 8) | f[l3 + 5]!));
    info.l4 = l3 + 40; // extension headers are not walked
  }
  return info;
}

/** One's-complement sum of `len` bytes at `off`, added to `sum` (not folded). */
export function csumAdd(sum: number, b: Uint8Array, off: number, len: number): number {
  return csumPartial(b, off, Math.min(b.length, off + len), sum);
}

export { csumFinish } from "../net/checksum.js";

/** Recomputes the IPv4 header checksum at `l3`. */
export function fixIpv4Csum(f: Uint8Array, l3: number): void {
  fillIpv4HeaderChecksum(f, l3);
}

/**
 * Completes a partial L4 checksum (the field holds the pseudo-header sum; the device sums from
 * `start` to the end and stores the complement at `start + offset`).
 */
export function completeCsum(f: Uint8Array, start: number, offset: number): void {
  completeChecksum(f, start, offset);
}

/** Receive-side checksum verdicts. */
export interface RxCsum {
  /** IPv4 header checksum checked: true = good. */
  ipOk?: boolean;
  /** TCP/UDP checksum checked: true = good. */
  l4Ok?: boolean;
  /** Whether the L4 protocol was UDP. */
  udp: boolean;
}

/** Verifies the IPv4 header and TCP/UDP checksums of a received frame. */
export function verifyCsum(f: Uint8Array, info: FrameInfo): RxCsum {
  const r: RxCsum = { udp: info.proto === 17 };
  if (info.ip === 4) r.ipOk = verifyIpv4HeaderChecksum(f, info.l3);
  if (info.l4 !== undefined && (info.proto === 6 || info.proto === 17)) {
    const ok = verifyL4Checksum(f, netParse(f));
    if (ok !== undefined) r.l4Ok = ok;
  }
  return r;
}

/** What {@link verifyCsum} reports for a TCP/IP frame whose checksums are known to be right. */
export function validCsum(info: FrameInfo): RxCsum {
  const r: RxCsum = { udp: info.proto === 17 };
  if (info.ip === 4) r.ipOk = true;
  if (info.l4 !== undefined && (info.proto === 6 || info.proto === 17)) r.l4Ok = true;
  return r;
}

/** {@link rxChecksumBits}: the IPv4 header checksum was checked. */
export const RXC_IP_CHECKED = 1;
/** {@link rxChecksumBits}: the IPv4 header checksum is good. */
export const RXC_IP_OK = 2;
/** {@link rxChecksumBits}: the TCP/UDP checksum was checked. */
export const RXC_L4_CHECKED = 4;
/** {@link rxChecksumBits}: the TCP/UDP checksum is good. */
export const RXC_L4_OK = 8;
/** {@link rxChecksumBits}: the L4 protocol is UDP. */
export const RXC_UDP = 16;

function packCsum(r: RxCsum): number {
  let b = r.udp ? RXC_UDP : 0;
  if (r.ipOk !== undefined) b |= RXC_IP_CHECKED | (r.ipOk ? RXC_IP_OK : 0);
  if (r.l4Ok !== undefined) b |= RXC_L4_CHECKED | (r.l4Ok ? RXC_L4_OK : 0);
  return b;
}

/**
 * The receive write-back's checksum verdicts as `RXC_*` bits: the same answers as
 * {@link verifyCsum}, computed for IPv4 frames without a second parse or any allocation (this runs
 * once per received frame). `l4Known`: the TCP/UDP checksum is known to be right (nicvisor just
 * computed it, or the host kernel validated it), so it is reported good without summing the
 * payload; everything else (the IPv4 header checksum, and whether the frame is one whose L4
 * checksum the 82576 checks at all: not a fragment, a whole header) is still checked. Frames other
 * than IPv4 take the general path ({@link validCsum} when `l4Known`). `l4Wanted` false (RXCSUM.TUOFL
 * clear): no TCP/UDP verdict, and the payload is not read.
 */
export function rxChecksumBits(f: Uint8Array, info: FrameInfo, l4Known = false, l4Wanted = true): number {
  if (info.ip !== 4) {
    if (info.ip === 0) return 0;
    const r = packCsum(l4Known || !l4Wanted ? validCsum(info) : verifyCsum(f, info));
    return l4Wanted ? r : r & ~(RXC_L4_CHECKED | RXC_L4_OK);
  }
  const proto = info.proto;
  const l4proto = l4Wanted && info.l4 !== undefined && (proto === 6 || proto === 17);
  let b = proto === 17 ? RXC_UDP : 0;
  const len = f.length;
  const l3 = info.l3;
  const ihl = (f[l3]! & 0xf) * 4;
  b |= RXC_IP_CHECKED | (verifyIpv4HeaderChecksum(f, l3) ? RXC_IP_OK : 0);
  if (!l4proto) return b;
  // What verifyL4Checksum checks after a full parse: not a fragment, a whole L4 header, an IP
  // total length inside the frame.
  if (((f[l3 + 6]! << 8) | f[l3 + 7]!) & 0x3fff) return b;
  const l4 = l3 + ihl;
  if (proto === 6) {
    if (len < l4 + 20) return b;
    const doff = (f[l4 + 12]! >> 4) * 4;
    if (doff < 20 || len < l4 + doff) return b;
  } else if (len < l4 + 8) {
    return b;
  }
  const end = l3 + Math.max((f[l3 + 2]! << 8) | f[l3 + 3]!, ihl);
  if (end > len) return b;
  b |= RXC_L4_CHECKED;
  if (l4Known || (proto === 17 && f[l4 + 6] === 0 && f[l4 + 7] === 0)) return b | RXC_L4_OK;
  return csumPartial(f, l4, end, pseudoHeaderSumV4(f, l3, proto, end - l4)) === 0xffff ? b | RXC_L4_OK : b;
}

/** Where nicvisor completed a partial checksum (a `NEEDS_CSUM` request: `FrameMeta.needsCsum`). */
export interface CompletedCsum {
  readonly start: number;
  readonly offset: number;
}

/**
 * What the receive path knows of a frame's TCP/UDP checksum before verifying it: `true`, known
 * good; a {@link CompletedCsum}, good if that completion was the L4 checksum (see
 * {@link completedL4Checksum}); `false`, nothing.
 */
export type KnownL4Csum = boolean | CompletedCsum;

/**
 * Whether a partial checksum completed at `nc` is the frame's whole TCP/UDP checksum: it starts
 * at the L4 header (`info` is the frame's parse), lands in the protocol's checksum field, and the
 * IP packet ends where the frame does (no padding summed with it). Only then may the receive path
 * treat the completed checksum as verified.
 */
export function completedL4Checksum(f: Uint8Array, info: FrameInfo, nc: CompletedCsum): boolean {
  if (info.ip === 0 || info.l4 === undefined || nc.start !== info.l4 || info.ipEnd !== f.length) return false;
  return (info.proto === 6 && nc.offset === 16) || (info.proto === 17 && nc.offset === 6);
}

/**
 * TCP segmentation of one large frame into frames of at most `mss` payload bytes each (headers
 * copied and fixed up as the 82576 does; see `segmentTso`). Returns [] if impossible.
 */
export function tcpSegment(f: Uint8Array, _hdrLen: number, mss: number, maxSegments = DEFAULT_MAX_SEGMENTS): Uint8Array[] {
  const info = parseFrame(f);
  if (info.ip === 0 || info.proto !== 6) return [];
  const r = segmentTso(f, { gso: { type: info.ip === 4 ? "tcpv4" : "tcpv6", size: mss, hdrLen: _hdrLen } }, { maxSegments });
  return r.ok ? r.frames : [];
}
