/**
 * Frame parsing and the offloads the 82576 performs in hardware: IPv4 header checksum, TCP/UDP
 * checksum insertion, TCP segmentation, and receive-side checksum verification.
 *
 * TODO(net): switch to the shared checksum/TSO helpers in `src/devices/net` once they land; these
 * are local so the igb model is complete on its own.
 * @module
 */

/** What the parser found in a frame. */
export interface FrameInfo {
  /** Offset of the L3 header (after any VLAN tag). */
  l3: number;
  /** Ethertype of the L3 header. */
  etherType: number;
  /** VLAN tag control info, if the frame is tagged with `vlanType`. */
  vlan?: number;
  /** IP version (4 or 6), 0 if neither. */
  ip: 0 | 4 | 6;
  /** Offset of the L4 header, if IP and not a fragment with offset. */
  l4?: number;
  /** IP protocol number. */
  proto: number;
  /** Bytes from the L3 header to the end of the IP packet (clamped to the frame). */
  ipEnd: number;
}

/** Parses Ethernet/VLAN/IPv4/IPv6 headers; never throws; out-of-range fields give a partial answer. */
export function parseFrame(f: Uint8Array, vlanType = 0x8100): FrameInfo {
  const info: FrameInfo = { l3: 14, etherType: 0, ip: 0, proto: 0, ipEnd: f.length };
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
  const end = Math.min(b.length, off + len);
  let i = off;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return sum;
}

/** Folds a sum to 16 bits and complements it. */
export function csumFinish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Pseudo-header sum for a TCP/UDP segment of `l4len` bytes. */
export function pseudoSum(f: Uint8Array, info: FrameInfo, l4len: number): number {
  const l3 = info.l3;
  let s = 0;
  if (info.ip === 4) s = csumAdd(s, f, l3 + 12, 8);
  else if (info.ip === 6) s = csumAdd(s, f, l3 + 8, 32);
  return s + info.proto + l4len;
}

/** Writes a 16-bit big-endian value. */
function put16(f: Uint8Array, off: number, v: number): void {
  if (off + 1 < f.length) {
    f[off] = (v >>> 8) & 0xff;
    f[off + 1] = v & 0xff;
  }
}

/** Recomputes the IPv4 header checksum at `l3`. */
export function fixIpv4Csum(f: Uint8Array, l3: number): void {
  if (l3 + 20 > f.length) return;
  const ihl = (f[l3]! & 0xf) * 4;
  put16(f, l3 + 10, 0);
  put16(f, l3 + 10, csumFinish(csumAdd(0, f, l3, ihl)));
}

/**
 * Completes a partial L4 checksum (virtio NEEDS_CSUM semantics: the field holds the pseudo-header
 * sum, the device sums from `start` to the end and stores the complement at `start + offset`).
 */
export function completeCsum(f: Uint8Array, start: number, offset: number): void {
  if (start < 0 || start + offset + 2 > f.length) return;
  let c = csumFinish(csumAdd(0, f, start, f.length - start));
  if (c === 0 && offset === 6) c = 0xffff; // UDP: zero means "no checksum"
  put16(f, start + offset, c);
}

/** Fills a full TCP/UDP checksum (pseudo header included) for the L4 segment at `info.l4`. */
export function fillL4Csum(f: Uint8Array, info: FrameInfo): void {
  if (info.l4 === undefined) return;
  const off = info.proto === 6 ? 16 : info.proto === 17 ? 6 : -1;
  if (off < 0 || info.l4 + off + 2 > f.length) return;
  const len = info.ipEnd - info.l4;
  put16(f, info.l4 + off, 0);
  let c = csumFinish(csumAdd(pseudoSum(f, info, len), f, info.l4, len));
  if (c === 0 && info.proto === 17) c = 0xffff;
  put16(f, info.l4 + off, c);
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
  if (info.ip === 4) {
    const ihl = (f[info.l3]! & 0xf) * 4;
    r.ipOk = csumFinish(csumAdd(0, f, info.l3, ihl)) === 0;
  }
  if (info.l4 !== undefined && (info.proto === 6 || info.proto === 17) && info.ipEnd > info.l4) {
    const len = info.ipEnd - info.l4;
    if (info.proto === 17 && info.l4 + 8 <= f.length && f[info.l4 + 6] === 0 && f[info.l4 + 7] === 0) return r; // no UDP checksum
    r.l4Ok = csumFinish(csumAdd(pseudoSum(f, info, len), f, info.l4, len)) === 0;
  }
  return r;
}

/**
 * TCP segmentation of one large frame into frames of at most `mss` payload bytes each, with the
 * headers (`hdrLen` bytes: L2 + L3 + TCP) copied and fixed up: IPv4 total length, id and header
 * checksum, IPv6 payload length, TCP sequence number, flags (FIN/PSH only on the last, CWR only
 * on the first) and checksum. Returns at most `maxSegments` frames; an impossible request returns [].
 */
export function tcpSegment(f: Uint8Array, hdrLen: number, mss: number, maxSegments = 1024): Uint8Array[] {
  const info = parseFrame(f);
  if (info.l4 === undefined || info.proto !== 6 || mss <= 0 || hdrLen > f.length || hdrLen < info.l4 + 20) return [];
  const payload = f.length - hdrLen;
  const n = Math.max(1, Math.ceil(payload / mss));
  if (n > maxSegments) return [];
  const out: Uint8Array[] = [];
  const l3 = info.l3;
  const l4 = info.l4;
  const seq0 = ((f[l4 + 4]! << 24) | (f[l4 + 5]! << 16) | (f[l4 + 6]! << 8) | f[l4 + 7]!) >>> 0;
  const id0 = info.ip === 4 ? (f[l3 + 4]! << 8) | f[l3 + 5]! : 0;
  const flags = f[l4 + 13]!;
  for (let i = 0; i < n; i++) {
    const start = hdrLen + i * mss;
    const len = Math.min(mss, payload - i * mss);
    const s = new Uint8Array(hdrLen + len);
    s.set(f.subarray(0, hdrLen), 0);
    s.set(f.subarray(start, start + len), hdrLen);
    if (info.ip === 4) {
      put16(s, l3 + 2, hdrLen - l3 + len);
      put16(s, l3 + 4, (id0 + i) & 0xffff);
      fixIpv4Csum(s, l3);
    } else {
      put16(s, l3 + 4, hdrLen - l3 - 40 + len);
    }
    const seq = (seq0 + i * mss) >>> 0;
    s[l4 + 4] = seq >>> 24;
    s[l4 + 5] = (seq >>> 16) & 0xff;
    s[l4 + 6] = (seq >>> 8) & 0xff;
    s[l4 + 7] = seq & 0xff;
    let fl = flags;
    if (i !== n - 1) fl &= ~0x09; // FIN, PSH
    if (i !== 0) fl &= ~0x80; // CWR
    s[l4 + 13] = fl;
    const si = parseFrame(s);
    fillL4Csum(s, si);
    out.push(s);
  }
  return out;
}
