/**
 * The Internet checksum (RFC 1071) and the helpers device models need around it: IPv4 header
 * checksum, TCP/UDP/ICMP checksums with the IPv4/IPv6 pseudo-header, receive-side verification,
 * and {@link completeChecksum} with virtio `VIRTIO_NET_HDR_F_NEEDS_CSUM` semantics.
 *
 * Sums are kept as plain numbers: {@link csumPartial} returns a folded, non-complemented 16-bit
 * one's-complement sum that can be added to other partial sums and folded again with
 * {@link csumFold}. The bulk summing runs in WebAssembly when it loaded (see `kernels.ts`), in
 * TypeScript otherwise; both give identical results.
 *
 * None of these functions throws on hostile input: out-of-range offsets are clamped or reported by
 * a `false` return.
 * @module
 */
import { defaultKernels } from "./kernels.js";
import { IpProto, type ParsedFrame } from "./parse.js";

/**
 * One's-complement sum of `data[start..end)` as 16-bit big-endian words (an odd trailing byte is
 * padded with zero), added to `initial`, folded to 16 bits, not complemented. `data[start]` is the
 * high-order byte of the first word, so partial sums combine only when each starts at an even
 * distance from the start of the checksummed region. Out-of-range bounds are clamped.
 * @example
 * const sum = csumPartial(frame, l4, end, pseudoHeaderSum(frame, parsed, end - l4));
 * const check = csumFinish(sum);
 */
export function csumPartial(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  return defaultKernels().csumPartial(data, start, end, initial);
}

/**
 * {@link csumPartial} for the short header ranges below (IPv4 headers, pseudo-header addresses),
 * summed here: the caller has bounds-checked `start..end`, and the kernels' call layers would cost
 * more than the sum itself (about 35 ns per received frame in the 82576's checksum write-back).
 */
function sumShort(data: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return csumFold(sum);
}

/** Folds any non-negative sum (up to 2^53) into 16 bits with end-around carry. */
export function csumFold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Folds and complements a sum: the value to store in a checksum field. */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** The Internet checksum of `data[start..end)`: `csumFinish(csumPartial(...))`. */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length): number {
  return csumFinish(csumPartial(data, start, end, 0));
}

function put16(f: Uint8Array, o: number, v: number): void {
  f[o] = (v >>> 8) & 0xff;
  f[o + 1] = v & 0xff;
}

/**
 * Sum of the IPv4 pseudo-header (source, destination, protocol, L4 length) read from the IPv4
 * header at `l3`. Returns 0 if the addresses are outside the frame.
 */
export function pseudoHeaderSumV4(frame: Uint8Array, l3: number, proto: number, l4Len: number): number {
  if (l3 < 0 || l3 + 20 > frame.length) return 0;
  return sumShort(frame, l3 + 12, l3 + 20) + proto + (l4Len & 0xffff) + Math.floor(l4Len / 0x10000);
}

/**
 * Sum of the IPv6 pseudo-header (RFC 8200 §8.1: source, destination, upper-layer length, next
 * header) read from the IPv6 header at `l3`. The destination is the one in the fixed header (a
 * Routing header's final destination is not looked up). Returns 0 if outside the frame.
 */
export function pseudoHeaderSumV6(frame: Uint8Array, l3: number, proto: number, l4Len: number): number {
  if (l3 < 0 || l3 + 40 > frame.length) return 0;
  return sumShort(frame, l3 + 8, l3 + 40) + proto + (l4Len & 0xffff) + Math.floor(l4Len / 0x10000);
}

/**
 * The pseudo-header sum for the L4 protocol of a parsed IP frame (0 for ICMPv4, which has none,
 * and for non-IP frames).
 */
export function pseudoHeaderSum(frame: Uint8Array, p: ParsedFrame, l4Len: number): number {
  if (p.ipVersion === 4) {
    return p.l4Proto === IpProto.ICMP ? 0 : pseudoHeaderSumV4(frame, p.l3Offset, p.l4Proto, l4Len);
  }
  if (p.ipVersion === 6) return pseudoHeaderSumV6(frame, p.l3Offset, p.l4Proto, l4Len);
  return 0;
}

/**
 * Computes and stores the IPv4 header checksum of the header at `l3` (IHL taken from the header).
 * Returns `false` (and writes nothing) if the header is not inside the frame.
 */
export function fillIpv4HeaderChecksum(frame: Uint8Array, l3: number): boolean {
  if (l3 < 0 || l3 + 20 > frame.length) return false;
  const ihl = (frame[l3]! & 0xf) * 4;
  if (ihl < 20 || l3 + ihl > frame.length) return false;
  put16(frame, l3 + 10, 0);
  put16(frame, l3 + 10, csumFinish(sumShort(frame, l3, l3 + ihl)));
  return true;
}

/** Whether the IPv4 header at `l3` has a valid checksum (`false` if it is not inside the frame). */
export function verifyIpv4HeaderChecksum(frame: Uint8Array, l3: number): boolean {
  if (l3 < 0 || l3 + 20 > frame.length) return false;
  const ihl = (frame[l3]! & 0xf) * 4;
  if (ihl < 20 || l3 + ihl > frame.length) return false;
  return sumShort(frame, l3, l3 + ihl) === 0xffff;
}

/** Offset of the checksum field inside the L4 header for TCP (16), UDP (6), ICMP/ICMPv6 (2), else -1. */
export function l4ChecksumFieldOffset(proto: number): number {
  if (proto === IpProto.TCP) return 16;
  if (proto === IpProto.UDP) return 6;
  if (proto === IpProto.ICMP || proto === IpProto.ICMPv6) return 2;
  return -1;
}

/**
 * Computes and stores the full L4 checksum (TCP, UDP, ICMP, ICMPv6) of a parsed, unfragmented IP
 * frame, over `l4Offset..ipEnd` with the pseudo-header. A UDP checksum that computes to 0 is stored
 * as 0xffff. Returns `false` (and writes nothing) if the frame has no complete L4 header, is a
 * fragment, or the protocol has no checksum we know.
 */
export function fillL4Checksum(frame: Uint8Array, p: ParsedFrame): boolean {
  const fo = l4ChecksumFieldOffset(p.l4Proto);
  if (fo < 0 || p.l4Offset < 0 || p.fragment || p.l4HeaderLen === 0) return false;
  const l4 = p.l4Offset;
  if (l4 + fo + 2 > frame.length || p.ipEnd < l4 + fo + 2) return false;
  put16(frame, l4 + fo, 0);
  let c = csumFinish(csumPartial(frame, l4, p.ipEnd, pseudoHeaderSum(frame, p, p.ipEnd - l4)));
  if (c === 0 && p.l4Proto === IpProto.UDP) c = 0xffff;
  put16(frame, l4 + fo, c);
  return true;
}

/**
 * Receive-side check of the L4 checksum of a parsed, unfragmented IP frame. Returns `true` if it is
 * valid (a UDP-over-IPv4 checksum of 0 means "none" and counts as valid), `false` if it is wrong,
 * and `undefined` if it cannot be checked (not TCP/UDP/ICMP, fragment, truncated).
 */
export function verifyL4Checksum(frame: Uint8Array, p: ParsedFrame): boolean | undefined {
  const fo = l4ChecksumFieldOffset(p.l4Proto);
  if (fo < 0 || p.l4Offset < 0 || p.fragment || p.l4HeaderLen === 0 || p.ipLengthTruncated) {
    return undefined;
  }
  const l4 = p.l4Offset;
  if (p.l4Proto === IpProto.UDP && p.ipVersion === 4 && frame[l4 + 6] === 0 && frame[l4 + 7] === 0) {
    return true;
  }
  const sum = csumPartial(frame, l4, p.ipEnd, pseudoHeaderSum(frame, p, p.ipEnd - l4));
  return csumFold(sum) === 0xffff;
}

/**
 * Completes a partial checksum, as a device does for a virtio frame with
 * `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the one's-complement sum of `frame[start..]` (the checksum field
 * already holding the pseudo-header sum, as the guest left it) is complemented and stored, big
 * endian, at `start + offset`. A result of 0 is stored as 0xffff (equivalent for TCP, and required
 * for UDP where 0 means "no checksum"), as Linux's `skb_checksum_help` does. Returns `false` (and
 * writes nothing) if `start` or the 2-byte field at `start + offset` is outside the frame.
 * @example
 * if (meta?.needsCsum && !completeChecksum(frame, meta.needsCsum.start, meta.needsCsum.offset)) dropped++;
 */
export function completeChecksum(frame: Uint8Array, start: number, offset: number): boolean {
  if (!Number.isInteger(start) || !Number.isInteger(offset) || start < 0 || offset < 0) return false;
  if (start >= frame.length || start + offset + 2 > frame.length) return false;
  let c = csumFinish(csumPartial(frame, start, frame.length, 0));
  if (c === 0) c = 0xffff;
  put16(frame, start + offset, c);
  return true;
}
