/**
 * Software offloads: what a device or backend does when a frame arrives with offloads pending
 * (see {@link FrameMeta}) and the next hop cannot take them. TCP segmentation (TSO) for TCPv4 and
 * TCPv6, UDP fragmentation (UFO) for IPv4 and IPv6, and checksum completion.
 *
 * Segmentation follows what hardware does (Intel 82576 datasheet §7.2.4, Linux `tcp_gso_segment`):
 * every segment gets a copy of the headers; IPv4 total length and IPv6 payload length are rewritten;
 * the IPv4 id increases by one per segment and the header checksum is recomputed; the TCP sequence
 * number advances by the bytes already sent; FIN and PSH stay only on the last segment and CWR only
 * on the first; the TCP checksum is computed in full. The header length is taken from the parsed
 * headers, not from the guest's `gso.hdrLen` (Linux fills that with the linear length of the skb,
 * which may include payload); the payload is everything after the TCP header up to the end of the
 * frame.
 * @module
 */
import type { FrameMeta } from "./backend.js";
import { completeChecksum, csumFinish, csumPartial, fillIpv4HeaderChecksum, pseudoHeaderSum } from "./checksum.js";
import { IpProto, parseFrame, type ParsedFrame } from "./parse.js";

/** Why a frame could not be offloaded in software. The caller drops and counts it. */
export type SegmentError =
  | "not-ip"
  | "wrong-ip-version"
  | "wrong-protocol"
  | "truncated"
  | "fragment"
  | "bad-gso-size"
  | "too-many-segments"
  | "unsupported-ext-headers"
  | "bad-csum-offsets";

/** The outcome of {@link segmentTso}: the frames to send, or why there are none. */
export type SegmentResult = { ok: true; frames: Uint8Array[] } | { ok: false; error: SegmentError };

/** Limits and inputs for {@link segmentTso}. */
export interface SegmentOptions {
  /** At most this many output frames (default {@link DEFAULT_MAX_SEGMENTS}); more is an error. */
  maxSegments?: number;
  /** Identification for the IPv6 Fragment header of a UFO datagram (default 0). Pass a counter. */
  ipv6FragmentId?: number;
}

/** Default bound on the frames one offloaded frame may become. 64 KiB at the TCP minimum MSS fits. */
export const DEFAULT_MAX_SEGMENTS = 1024;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

function put16(f: Uint8Array, o: number, v: number): void {
  f[o] = (v >>> 8) & 0xff;
  f[o + 1] = v & 0xff;
}

function get16(f: Uint8Array, o: number): number {
  return (f[o]! << 8) | f[o + 1]!;
}

function get32(f: Uint8Array, o: number): number {
  return ((f[o]! << 24) | (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!) >>> 0;
}

function put32(f: Uint8Array, o: number, v: number): void {
  f[o] = (v >>> 24) & 0xff;
  f[o + 1] = (v >>> 16) & 0xff;
  f[o + 2] = (v >>> 8) & 0xff;
  f[o + 3] = v & 0xff;
}

/**
 * Performs in software the offloads `meta` asks for. With `meta.gso`, segments (TCP) or fragments
 * (UDP) the frame, with all checksums computed in full; otherwise, with `meta.needsCsum`, completes
 * the checksum in place; otherwise returns the frame unchanged. The input frame is never modified
 * when segmenting. Never throws: a frame that cannot be handled gives `{ ok: false, error }`.
 * @example
 * const r = segmentTso(frame, meta);
 * if (r.ok) for (const f of r.frames) backend.transmit(f); else counters.txDropped++;
 */
export function segmentTso(frame: Uint8Array, meta?: FrameMeta, options: SegmentOptions = {}): SegmentResult {
  const gso = meta?.gso;
  if (gso === undefined) {
    const nc = meta?.needsCsum;
    if (nc !== undefined && !completeChecksum(frame, nc.start, nc.offset)) {
      return { ok: false, error: "bad-csum-offsets" };
    }
    return { ok: true, frames: [frame] };
  }
  const max = options.maxSegments ?? DEFAULT_MAX_SEGMENTS;
  const size = gso.size;
  if (!Number.isInteger(size) || size < 1 || size > 0xffff) return { ok: false, error: "bad-gso-size" };
  const p = parseFrame(frame);
  if (p.ipVersion === 0) return { ok: false, error: p.truncated ? "truncated" : "not-ip" };
  if (gso.type === "udp") return fragmentUdp(frame, p, size, max, options.ipv6FragmentId ?? 0);
  if ((gso.type === "tcpv4") !== (p.ipVersion === 4)) return { ok: false, error: "wrong-ip-version" };
  if (p.l4Proto !== IpProto.TCP) return { ok: false, error: "wrong-protocol" };
  if (p.fragment) return { ok: false, error: "fragment" };
  if (p.l4Offset < 0) return { ok: false, error: "truncated" };
  return segmentTcp(frame, p, size, max);
}

function segmentTcp(frame: Uint8Array, p: ParsedFrame, mss: number, max: number): SegmentResult {
  const l3 = p.l3Offset;
  const l4 = p.l4Offset;
  const hdrLen = l4 + p.l4HeaderLen;
  const payload = frame.length - hdrLen;
  const count = Math.max(1, Math.ceil(payload / mss));
  if (count > max) return { ok: false, error: "too-many-segments" };
  const seq0 = get32(frame, l4 + 4);
  const id0 = p.ipVersion === 4 ? get16(frame, l3 + 4) : 0;
  const flags0 = frame[l4 + 13]!;
  const frames: Uint8Array[] = [];
  // One backing buffer for all segments: allocating a typed array per segment costs more than
  // segmenting (bench/net.bench.ts). Each segment is a disjoint view of it.
  const pool = new Uint8Array(count * hdrLen + Math.max(0, payload));
  let poolOff = 0;
  for (let i = 0; i < count; i++) {
    const off = hdrLen + i * mss;
    const len = Math.min(mss, frame.length - off);
    const out = pool.subarray(poolOff, poolOff + hdrLen + len);
    poolOff += hdrLen + len;
    out.set(frame.subarray(0, hdrLen));
    out.set(frame.subarray(off, off + len), hdrLen);
    if (p.ipVersion === 4) {
      put16(out, l3 + 2, hdrLen - l3 + len);
      put16(out, l3 + 4, (id0 + i) & 0xffff);
      fillIpv4HeaderChecksum(out, l3);
    } else {
      put16(out, l3 + 4, hdrLen - l3 - 40 + len);
    }
    put32(out, l4 + 4, (seq0 + i * mss) >>> 0);
    let flags = flags0;
    if (i !== count - 1) flags &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) flags &= ~TCP_CWR;
    out[l4 + 13] = flags;
    const l4Len = out.length - l4;
    put16(out, l4 + 16, 0);
    put16(out, l4 + 16, csumFinish(csumPartial(out, l4, out.length, pseudoHeaderSum(out, p, l4Len))));
    frames.push(out);
  }
  return { ok: true, frames };
}

/** Fills the UDP length and the full UDP checksum of the datagram at `l4` spanning to `end`. */
function fillUdp(f: Uint8Array, p: ParsedFrame, l4: number, end: number): void {
  put16(f, l4 + 4, end - l4);
  put16(f, l4 + 6, 0);
  let c = csumFinish(csumPartial(f, l4, end, pseudoHeaderSum(f, p, end - l4)));
  if (c === 0) c = 0xffff;
  put16(f, l4 + 6, c);
}

function fragmentUdp(frame: Uint8Array, p: ParsedFrame, size: number, max: number, id6: number): SegmentResult {
  if (p.l4Proto !== IpProto.UDP) return { ok: false, error: "wrong-protocol" };
  if (p.fragment) return { ok: false, error: "fragment" };
  if (p.l4Offset < 0) return { ok: false, error: "truncated" };
  const l3 = p.l3Offset;
  const l4 = p.l4Offset;
  if (p.ipVersion === 6 && l4 !== l3 + 40) return { ok: false, error: "unsupported-ext-headers" };
  const datagram = frame.length - l4;
  if (datagram > 0xffff) return { ok: false, error: "too-many-segments" };
  // Checksum the whole datagram first (fragments carry no L4 checksum of their own).
  const whole = frame.slice();
  fillUdp(whole, p, l4, whole.length);
  const chunk = Math.floor(size / 8) * 8;
  if (chunk < 8) return { ok: false, error: "bad-gso-size" };
  const count = Math.max(1, Math.ceil(datagram / chunk));
  if (count > max) return { ok: false, error: "too-many-segments" };
  if (count === 1) {
    if (p.ipVersion === 4) {
      put16(whole, l3 + 2, whole.length - l3);
      fillIpv4HeaderChecksum(whole, l3);
    } else {
      put16(whole, l3 + 4, whole.length - l3 - 40);
    }
    return { ok: true, frames: [whole] };
  }
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const off = i * chunk;
    const len = Math.min(chunk, datagram - off);
    const more = i !== count - 1;
    const data = whole.subarray(l4 + off, l4 + off + len);
    if (p.ipVersion === 4) {
      const out = new Uint8Array(l4 + len);
      out.set(whole.subarray(0, l4));
      out.set(data, l4);
      put16(out, l3 + 2, l4 - l3 + len);
      put16(out, l3 + 6, (more ? 0x2000 : 0) | (off >>> 3)); // DF cleared, MF on all but the last
      fillIpv4HeaderChecksum(out, l3);
      frames.push(out);
    } else {
      const out = new Uint8Array(l4 + 8 + len);
      out.set(whole.subarray(0, l4));
      out[l3 + 6] = IpProto.Fragment;
      put16(out, l3 + 4, 8 + len);
      out[l4] = IpProto.UDP;
      out[l4 + 1] = 0;
      put16(out, l4 + 2, off | (more ? 1 : 0));
      put32(out, l4 + 4, id6 >>> 0);
      out.set(data, l4 + 8);
      frames.push(out);
    }
  }
  return { ok: true, frames };
}
