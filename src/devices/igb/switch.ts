/**
 * The 82576's internal L2 switch: receive filtering (RAR with pool select, MTA, VLAN filters,
 * promiscuous modes), VMDq pool selection and replication (VMOLR, VLVF, VFRE, VT_CTL default pool),
 * RSS queue selection (MRQC, RETA, RSSRK, Toeplitz), and on transmit the anti-spoof checks
 * (DTXSWC, WVBR) and VM-to-VM loopback before the uplink.
 *
 * Simplifications: in VMDq mode a pool receives on queue p, or with VMDq+RSS (MRQC 5) and
 * VMOLR.RSSE on p + 8 when bit 0 of the RETA entry is set; UTA (unicast hash) is not consulted; without VM_REPL_EN a
 * broadcast/multicast goes to the lowest matching pool only.
 * @module
 */
import type { IgbCore } from "./core.js";
import { B, IGB_SIZES } from "./regs.js";
import { completedL4Checksum, fixIpv4Csum, parseFrame, type FrameInfo, type KnownL4Csum } from "./offload.js";
import { csumFold, pseudoHeaderSumV4, pseudoHeaderSumV6 } from "../net/checksum.js";
import { DEFAULT_MAX_SEGMENTS } from "../net/segment.js";
import { rxEnabled, rxWrite, type RxMeta } from "./rx.js";
import { ToeplitzHasher, toeplitzHash } from "../net/toeplitz.js";

/** Counters of the switch (not guest visible, except through WVBR). */
export interface SwitchCounters {
  /** Frames dropped by MAC or VLAN anti-spoofing, per pool. */
  spoofDrops: number[];
  /** Frames for the wire with no uplink attached. */
  uplinkDrops: number;
  /** Frames from the uplink whose offload request (GSO, partial checksum) could not be done. */
  uplinkOffloadErrors: number;
  /** Frames dropped for lack of receive descriptors. */
  rxNoBuffer: number;
  /** Transmit DMA faults and oversize/impossible packets. */
  txErrors: number;
}

const isBcast = (f: Uint8Array) => f.length >= 6 && f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff;

/**
 * One pass over the RAR table for a transmitted frame: the pools of the entries matching its
 * destination MAC (result & 0xffff, 0xffff if none) and its source MAC (result >>> 16, likewise).
 * The same as two {@link rarPools} calls, at half the cost.
 */
function rarPoolsDstSrc(core: IgbCore, f: Uint8Array): number {
  const dlo = ((f[0] ?? 0) | ((f[1] ?? 0) << 8) | ((f[2] ?? 0) << 16) | ((f[3] ?? 0) << 24)) >>> 0;
  const dhi = (f[4] ?? 0) | ((f[5] ?? 0) << 8);
  const slo = ((f[6] ?? 0) | ((f[7] ?? 0) << 8) | ((f[8] ?? 0) << 16) | ((f[9] ?? 0) << 24)) >>> 0;
  const shi = (f[10] ?? 0) | ((f[11] ?? 0) << 8);
  let dst = -1;
  let src = -1;
  const slots = core.regs.slots;
  const ral = core.hot.RAL;
  const rahs = core.hot.RAH;
  const valid = core.rarValid();
  for (let k = 0; k < valid.n; k++) {
    const i = valid.idx[k]!;
    const rah = slots[rahs + i] ?? 0;
    if ((rah & 0x8000_0000) === 0) continue;
    const lo = slots[ral + i];
    const hi = rah & 0xffff;
    const p = (rah & 0x03fc_0000) >>> 18;
    if (lo === dlo && hi === dhi) dst = (dst < 0 ? 0 : dst) | p;
    if (lo === slo && hi === shi) src = (src < 0 ? 0 : src) | p;
  }
  return ((dst < 0 ? 0xffff : dst) | ((src < 0 ? 0xffff : src) << 16)) >>> 0;
}

/** A half of {@link rarPoolsDstSrc}'s result as {@link rarPools} gives it: pools, or -1 for none. */
const rarHalf = (v: number): number => (v === 0xffff ? -1 : v);

/**
 * RAR entries matching the MAC at `at` (0: the destination, 6: the source): bitmask of their pools,
 * or -1 if none matched. One pass over the valid entries, shared with {@link rarPoolsDstSrc}.
 */
function rarPools(core: IgbCore, f: Uint8Array, at: 0 | 6 = 0): number {
  const both = rarPoolsDstSrc(core, f);
  return rarHalf(at === 0 ? both & 0xffff : both >>> 16);
}

/** The 12-bit multicast hash the MTA uses (RCTL.MO selects the bits). */
export function mtaHash(f: Uint8Array, mo: number): number {
  const a4 = f[4] ?? 0;
  const a5 = f[5] ?? 0;
  switch (mo & 3) {
    case 1:
      return ((a4 >>> 3) | (a5 << 5)) & 0xfff;
    case 2:
      return ((a4 >>> 2) | (a5 << 6)) & 0xfff;
    case 3:
      return (a4 | (a5 << 8)) & 0xfff;
    default:
      return ((a4 >>> 4) | (a5 << 4)) & 0xfff;
  }
}

function mtaHit(core: IgbCore, f: Uint8Array): boolean {
  const s = core.regs.slots;
  const h = mtaHash(f, ((s[core.hot.RCTL] ?? 0) >>> B.RCTL_MO_SHIFT) & 3);
  return (((s[core.hot.MTA + (h >>> 5)] ?? 0) >>> (h & 31)) & 1) === 1;
}

function poolsWith(core: IgbCore, bit: number): number {
  let m = 0;
  const slots = core.regs.slots;
  const v = core.hot.VMOLR;
  for (let p = 0; p < 8; p++) if ((slots[v + p] ?? 0) & bit) m |= 1 << p;
  return m;
}

/**
 * The pools a unicast frame whose destination no RAR entry holds may go to, before the VLAN, VFRE
 * and replication masks (which only take pools away): those accepting unmatched unicast
 * (VMOLR.ROPE), and the default pool in unicast promiscuous mode.
 */
function unknownUnicastPools(core: IgbCore): number {
  const s = core.regs.slots;
  const rctl = s[core.hot.RCTL] ?? 0;
  const vtctl = s[core.hot.VT_CTL] ?? 0;
  let pools = poolsWith(core, B.VMOLR_ROPE);
  if (rctl & B.RCTL_UPE && (vtctl & B.VT_CTL_DIS_DEF_POOL) === 0) pools |= 1 << ((vtctl & B.VT_CTL_DEF_POOL_MASK) >>> B.VT_CTL_DEF_POOL_SHIFT);
  return pools;
}

/** Pools whose VLVF entry for `vid` is enabled (bitmask), or -1 if no entry holds `vid`. */
function vlanPools(core: IgbCore, vid: number): number {
  const s = core.regs.slots;
  const k = core.hot.VLVF;
  let pools = -1;
  for (let i = 0; i < 32; i++) {
    const v = s[k + i] ?? 0;
    if (v & B.VLVF_VLANID_ENABLE && (v & B.VLVF_VLANID_MASK) === vid) pools = (pools < 0 ? 0 : pools) | ((v & B.VLVF_POOLSEL_MASK) >>> B.VLVF_POOLSEL_SHIFT);
  }
  return pools;
}

/**
 * Pools a frame goes to in VMDq mode (bitmask). `dstPools`: {@link rarPools} of the destination
 * MAC when the caller has it already (a transmit path computes it once per frame).
 */
export function selectPools(core: IgbCore, f: Uint8Array, info: FrameInfo, dstPools?: number): number {
  const s = core.regs.slots;
  const hr = core.hot;
  const rctl = s[hr.RCTL] ?? 0;
  const vtctl = s[hr.VT_CTL] ?? 0;
  let pools = 0;
  const multi = ((f[0] ?? 0) & 1) === 1;
  const bcast = multi && isBcast(f);
  if (bcast) {
    pools = poolsWith(core, B.VMOLR_BAM);
  } else if (multi) {
    pools = poolsWith(core, B.VMOLR_MPME);
    if (mtaHit(core, f)) pools |= poolsWith(core, B.VMOLR_ROMPE);
    if (rctl & B.RCTL_MPE) pools |= 1 << ((vtctl & B.VT_CTL_DEF_POOL_MASK) >>> B.VT_CTL_DEF_POOL_SHIFT);
  } else {
    const m = dstPools ?? rarPools(core, f);
    pools = m >= 0 ? m : unknownUnicastPools(core);
  }
  if (info.vlan !== undefined) {
    const vp = vlanPools(core, info.vlan & 0xfff);
    if (vp >= 0) pools &= vp;
    else if (rctl & B.RCTL_VFE) pools = 0;
  } else {
    pools &= poolsWith(core, B.VMOLR_AUPE);
  }
  // VF pools receive only while enabled in VFRE
  const vfMask = (1 << core.numVfs) - 1;
  pools &= ~vfMask | (s[hr.VFRE] ?? 0);
  if (multi && (vtctl & B.VT_CTL_VM_REPL_EN) === 0) pools &= -pools;
  return pools & 0xff;
}

/** Toeplitz hash of `data` with a 40-byte key (the shared implementation). */
export function toeplitz(key: Uint8Array, data: Uint8Array): number {
  return toeplitzHash(key, data);
}

/** Per-device RSS key (the 10 RSSRK words) and the hash table built from it. */
const hashers = new WeakMap<IgbCore, { words: Uint32Array; hasher: ToeplitzHasher }>();

/**
 * The Toeplitz table for the device's current RSSRK, rebuilt only when the key changed (a guest
 * writes it once at bring-up; comparing 10 words per frame is far cheaper than hashing bit by bit).
 */
function rssHasher(core: IgbCore): ToeplitzHasher {
  const slots = core.regs.slots;
  const k0 = core.hot.RSSRK;
  let c = hashers.get(core);
  let same = c !== undefined;
  for (let i = 0; same && i < 10; i++) if (c!.words[i] !== slots[k0 + i]) same = false;
  if (same) return c!.hasher;
  const words = slots.slice(k0, k0 + 10);
  const key = new Uint8Array(40);
  const dv = new DataView(key.buffer);
  for (let i = 0; i < 10; i++) dv.setUint32(i * 4, words[i]!, true);
  c = { words, hasher: new ToeplitzHasher(key) };
  hashers.set(core, c);
  return c.hasher;
}

/** RSS hash and type for a frame per MRQC's enabled fields; type 0 = no hash. */
export function rssHash(core: IgbCore, f: Uint8Array, info: FrameInfo): { hash: number; type: number } {
  const mrqc = core.regs.slots[core.hot.MRQC] ?? 0;
  const h = rssHasher(core);
  const l3 = info.l3;
  const ports = info.l4 !== undefined && info.l4 + 4 <= f.length ? f.subarray(info.l4, info.l4 + 4) : undefined;
  if (info.ip === 4 && l3 + 20 <= f.length) {
    const addrs = f.subarray(l3 + 12, l3 + 20);
    if (ports && info.proto === 6 && mrqc & B.MRQC_RSS_TCPV4) return { hash: h.hash(cat(addrs, ports)), type: 1 };
    if (ports && info.proto === 17 && mrqc & B.MRQC_RSS_UDPV4) return { hash: h.hash(cat(addrs, ports)), type: 7 };
    if (mrqc & B.MRQC_RSS_IPV4) return { hash: h.hash(addrs), type: 2 };
  } else if (info.ip === 6 && l3 + 40 <= f.length) {
    const addrs = f.subarray(l3 + 8, l3 + 40);
    if (ports && info.proto === 6 && mrqc & B.MRQC_RSS_TCPV6) return { hash: h.hash(cat(addrs, ports)), type: 3 };
    if (ports && info.proto === 17 && mrqc & B.MRQC_RSS_UDPV6) return { hash: h.hash(cat(addrs, ports)), type: 8 };
    if (mrqc & B.MRQC_RSS_IPV6) return { hash: h.hash(addrs), type: 5 };
  }
  return { hash: 0, type: 0 };
}

function cat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a, 0);
  o.set(b, a.length);
  return o;
}

/** Non-VMDq receive filter: does the (single) PF accept the frame? */
function pfAccepts(core: IgbCore, f: Uint8Array, info: FrameInfo): boolean {
  const r = core.regs;
  const rctl = r.slots[core.hot.RCTL] ?? 0;
  if (isBcast(f)) {
    if ((rctl & B.RCTL_BAM) === 0) return false;
  } else if (((f[0] ?? 0) & 1) === 1) {
    if ((rctl & B.RCTL_MPE) === 0 && !mtaHit(core, f)) return false;
  } else if ((rctl & B.RCTL_UPE) === 0 && rarPools(core, f) < 0) {
    return false;
  }
  if (info.vlan !== undefined && rctl & B.RCTL_VFE) {
    const vid = info.vlan & 0xfff;
    if ((((r.slots[core.hot.VFTA + (vid >>> 5)] ?? 0) >>> (vid & 31)) & 1) === 0) return false;
  }
  return true;
}

/**
 * What became of a frame: a queue took it, no filter wanted it, or a filter wanted it and no queue
 * could take it (disabled, no descriptors, too long, a DMA fault).
 */
type Delivery = "taken" | "filtered" | "missed";

/**
 * Delivers a frame to the PF/VF queues it is meant for. `dstPools`: {@link rarPools} of the
 * destination MAC if the caller computed it (-1: no RAR matched), else undefined.
 */
function deliver(core: IgbCore, f: Uint8Array, info: FrameInfo, fromPool: number | undefined, dstPools?: number, csumValid = false): Delivery {
  const r = core.regs;
  const s = r.slots;
  const hr = core.hot;
  if (((s[hr.RCTL] ?? 0) & B.RCTL_EN) === 0) return "missed";
  const loopback = fromPool !== undefined;
  const mrqcMode = (s[hr.MRQC] ?? 0) & B.MRQC_MODE_MASK;
  if (mrqcMode === B.MRQC_VMDQ || mrqcMode === B.MRQC_VMDQ_RSS) {
    let pools = selectPools(core, f, info, dstPools);
    if (fromPool !== undefined && (((s[hr.DTXSWC] ?? 0) >>> B.DTXSWC_LLE_SHIFT) & (1 << fromPool)) === 0) pools &= ~(1 << fromPool);
    if (pools === 0) return "filtered";
    let took = false;
    const vmdqRss = mrqcMode === B.MRQC_VMDQ_RSS;
    const rss = vmdqRss ? rssHash(core, f, info) : NO_RSS;
    const meta: RxMeta = { info, rssHash: rss.hash, rssType: rss.type, loopback, csumValid };
    for (let p = 0; p < IGB_SIZES.pools; p++) {
      if (((pools >>> p) & 1) === 0) continue;
      // VMDq+RSS: bit 0 of the RETA entry picks the pool's second queue (p + 8)
      let q = p;
      if (vmdqRss && rss.type !== 0 && (s[hr.VMOLR + p] ?? 0) & B.VMOLR_RSSE) {
        const idx = rss.hash & 0x7f;
        if (((s[hr.RETA + (idx >>> 2)] ?? 0) >>> (8 * (idx & 3))) & 1) q = p + IGB_SIZES.pools;
      }
      if (!rxEnabled(core, q)) continue;
      // a pool whose data path is held keeps the frame for later, in order
      if (!core.poolRuns(p)) {
        if (core.holdRx(q, f, rss.hash, rss.type, loopback)) took = true;
        continue;
      }
      if (rxWrite(core, q, f, meta)) took = true;
    }
    return took ? "taken" : "missed";
  }
  if (!pfAccepts(core, f, info)) return "filtered";
  let q = 0;
  let rss = NO_RSS;
  if (mrqcMode === B.MRQC_RSS) {
    rss = rssHash(core, f, info);
    if (rss.type !== 0) {
      const idx = rss.hash & 0x7f;
      q = (((s[hr.RETA + (idx >>> 2)] ?? 0) >>> (8 * (idx & 3))) & 0xff) & 0xf;
    }
  }
  if (!rxEnabled(core, q)) return "missed";
  if (!core.poolRuns(q)) return core.holdRx(q, f, rss.hash, rss.type, loopback) ? "taken" : "missed";
  return rxWrite(core, q, f, { info, rssHash: rss.hash, rssType: rss.type, loopback, csumValid }) ? "taken" : "missed";
}

/** No RSS hash (shared, never changed). */
const NO_RSS: { readonly hash: number; readonly type: number } = Object.freeze({ hash: 0, type: 0 });

/** Global receive statistics for a frame accepted from the wire or loopback. */
function countRx(core: IgbCore, f: Uint8Array): void {
  const hr = core.hot;
  core.bumpSlot(hr.GPRC, 1);
  core.bumpSlot(hr.TPR, 1);
  core.bump64Slot(hr.GORCL, hr.GORCH, f.length + 4);
  core.bump64Slot(hr.TORL, hr.TORH, f.length + 4);
  if (isBcast(f)) core.bumpSlot(hr.BPRC, 1);
  else if (((f[0] ?? 0) & 1) === 1) core.bumpSlot(hr.MPRC, 1);
}

/** PHY loopback (BMCR bit 14) or MAC loopback (RCTL.LBM, bits 7:6): used by ethtool's loopback test. */
function inLoopback(core: IgbCore): boolean {
  return ((core.phy.read(0) ?? 0) & 0x4000) !== 0 || ((core.regs.slots[core.hot.RCTL] ?? 0) & 0xc0) !== 0;
}

/**
 * A frame arriving from the uplink. Returns whether a queue took it. The uplink sink
 * ({@link IgbCore.receive}) does not pass this on: the NIC never pushes back on its uplink.
 * `known`: what the caller knows of the frame's TCP/UDP checksum (see `KnownL4Csum`).
 */
export function switchFromUplink(core: IgbCore, f: Uint8Array, known: KnownL4Csum = false): boolean {
  if (f.length < 14) return false;
  const info = parseFrame(f, (core.regs.slots[core.hot.VET] ?? 0) & 0xffff);
  const csumValid = known === true || (known !== false && completedL4Checksum(f, info, known));
  const d = deliver(core, f, info, undefined, undefined, csumValid);
  if (d === "taken") countRx(core, f);
  else if (d === "missed") core.bumpSlot(core.hot.MPC, 1); // filtered frames are not counted, as on the 82576
  return d === "taken";
}

/** Transmit statistics for `frames` frames of `bytes` in all (without CRC) sent by pool `pool`. */
function countTx(core: IgbCore, pool: number, frames: number, bytes: number): void {
  const hr = core.hot;
  core.bumpSlot(hr.GPTC, frames);
  core.bumpSlot(hr.TPT, frames);
  core.bump64Slot(hr.GOTCL, hr.GOTCH, bytes + 4 * frames);
  core.bump64Slot(hr.TOTL, hr.TOTH, bytes + 4 * frames);
  if (core.isVfPool(pool)) {
    core.bumpSlot(hr.PVFGPTC + pool, frames);
    core.bumpSlot(hr.PVFGOTC + pool, bytes);
  }
}

/**
 * The WVBR bits a frame from pool `pool` would set (MAC spoof: bit pool, VLAN: bit pool + 8); 0 if
 * it passes. `srcPools`: {@link rarPools} of the source MAC if the caller has it.
 */
function spoofBits(core: IgbCore, pool: number, f: Uint8Array, vlan: number | undefined, srcPools?: number): number {
  if (!core.isVfPool(pool) || !core.vtMode()) return 0;
  const dtxswc = core.regs.slots[core.hot.DTXSWC] ?? 0;
  const macSpoof = ((dtxswc & B.DTXSWC_MAC_SPOOF_MASK) >>> pool) & 1;
  const vlanSpoof = ((dtxswc >>> B.DTXSWC_VLAN_SPOOF_SHIFT) >>> pool) & 1;
  let bad = 0;
  if (macSpoof) {
    const m = srcPools ?? rarPools(core, f, 6);
    if (m < 0 || ((m >>> pool) & 1) === 0) bad |= 1 << pool;
  }
  if (vlanSpoof && vlan !== undefined) {
    const vp = vlanPools(core, vlan & 0xfff);
    if (vp < 0 || ((vp >>> pool) & 1) === 0) bad |= 1 << (pool + 8);
  }
  return bad;
}

/**
 * Hands a TSO packet from pool `pool` to the uplink whole, as a GSO frame, when nothing between
 * the queue and the wire needs it cut: the backend takes TSO for its IP version and partial
 * checksums, the frame is unicast and no local pool takes it (or VM-to-VM loopback is off), the
 * MAC is not in loopback, anti-spoofing lets it pass, and its IP length fits 16 bits. The packet
 * then crosses the host's stack as one frame instead of one per MSS. The statistics count the
 * segments the wire would have carried. Returns false, having done nothing, when the packet must
 * be segmented here (the caller then sends the segments through {@link switchFromPool}).
 * @param l4 offset of the TCP header (MACLEN + IPLEN from the context descriptor)
 * @param lent `f` is borrowed (the queue reuses it): the backend gets a copy unless it copies
 */
export function sendGsoToWire(core: IgbCore, pool: number, f: Uint8Array, l4: number, l4len: number, mss: number, lent = false): boolean {
  const be = core.backend;
  const off = be?.offloads;
  if (be === undefined || off === undefined || !off.csum) return false;
  if (((f[0] ?? 1) & 1) !== 0) return false;
  const info = parseFrame(f, core.regs.get("VET") & 0xffff);
  if (info.vlan !== undefined || info.proto !== 6 || info.l4 !== l4 || !(info.ip === 4 ? off.tso4 : info.ip === 6 && off.tso6)) return false;
  const hdrLen = l4 + l4len;
  const payload = f.length - hdrLen;
  // The context's L4LEN must be the TCP header the host will see, and the segment count stays
  // within what the NIC itself would cut (tcpSegment's DEFAULT_MAX_SEGMENTS): a tiny MSS must not
  // make the host cut tens of thousands of segments for the guest.
  if (l4len < 20 || l4len !== ((f[l4 + 12] ?? 0) >>> 4) * 4 || mss < 1 || payload <= mss || f.length - info.l3 > 0xffff) return false;
  const segs = Math.ceil(payload / mss);
  if (segs > DEFAULT_MAX_SEGMENTS) return false;
  if (inLoopback(core) || spoofBits(core, pool, f, info.vlan) !== 0) return false;
  if (core.vtMode() && core.regs.get("DTXSWC") & B.DTXSWC_VMDQ_LOOPBACK_EN && rarPools(core, f) >= 0) return false;
  // igbvf and igb leave the IP length 0 and seed the TCP checksum without a length (the NIC fills
  // both per segment); a GSO frame carries its full length and a seed that includes it.
  const l3 = info.l3;
  const l4Len = f.length - l4;
  let seed: number;
  if (info.ip === 4) {
    f[l3 + 2] = (f.length - l3) >>> 8;
    f[l3 + 3] = (f.length - l3) & 0xff;
    fixIpv4Csum(f, l3);
    seed = pseudoHeaderSumV4(f, l3, 6, l4Len);
  } else {
    const plen = f.length - l3 - 40;
    f[l3 + 4] = plen >>> 8;
    f[l3 + 5] = plen & 0xff;
    seed = pseudoHeaderSumV6(f, l3, 6, l4Len);
  }
  seed = csumFold(seed);
  f[l4 + 16] = seed >>> 8;
  f[l4 + 17] = seed & 0xff;
  countTx(core, pool, segs, payload + segs * hdrLen);
  // A lent frame (the queue's reused assembly buffer) goes as it is only to a backend that copies.
  be.transmit(lent && be.copiesOnTransmit !== true ? f.slice() : f, { gso: { type: info.ip === 4 ? "tcpv4" : "tcpv6", size: mss, hdrLen }, needsCsum: { start: l4, offset: 16 } });
  return true;
}

/** A frame transmitted by pool `pool`'s queue: anti-spoof, loopback, then the uplink. */
export function switchFromPool(core: IgbCore, pool: number, f: Uint8Array): void {
  const s = core.regs.slots;
  const hr = core.hot;
  if (f.length < 14) {
    core.counters.txErrors++;
    return;
  }
  const vet = (s[hr.VET] ?? 0) & 0xffff;
  // the tag as parseFrame would find it; the full parse waits until a local delivery needs it
  const vlan = f.length >= 18 && ((f[12] ?? 0) << 8 | (f[13] ?? 0)) === vet ? ((f[14] ?? 0) << 8) | (f[15] ?? 0) : undefined;
  const vf = core.isVfPool(pool);
  const rar = rarPoolsDstSrc(core, f);
  const bad = spoofBits(core, pool, f, vlan, rarHalf(rar >>> 16));
  if (bad) {
    s[hr.WVBR] = ((s[hr.WVBR] ?? 0) | bad) >>> 0;
    core.counters.spoofDrops[pool] = (core.counters.spoofDrops[pool] ?? 0) + 1;
    core.trace(`igb: pool ${pool} frame dropped by anti-spoofing`);
    return;
  }
  countTx(core, pool, 1, f.length);
  const f0 = f[0] ?? 0;
  const unicast = (f0 & 1) === 0;
  if (!unicast) core.bumpSlot(isBcast(f) ? hr.BPTC : hr.MPTC, 1);
  let toWire = true;
  if (core.vtMode() && (s[hr.DTXSWC] ?? 0) & B.DTXSWC_VMDQ_LOOPBACK_EN) {
    // the destination's RAR match, once: it decides the local pools and whether the wire gets it
    const local = unicast ? rarHalf(rar & 0xffff) : -1;
    // A unicast frame for no local address that no pool takes as unmatched unicast goes nowhere
    // local (selectPools would give no pool): skip the delivery attempt, which has no effect then.
    const tookLocal = unicast && local < 0 && unknownUnicastPools(core) === 0 ? false : deliver(core, f, parseFrame(f, vet), pool, local) === "taken";
    if (tookLocal) {
      countRx(core, f);
      if (vf) {
        core.bumpSlot(hr.PVFGPTLBC + pool, 1);
        core.bumpSlot(hr.PVFGOTLBC + pool, f.length);
      }
    }
    if (unicast && local >= 0) toWire = false;
  }
  if (!toWire) return;
  if (inLoopback(core)) {
    // PHY loopback (BMCR bit 14) or MAC loopback (RCTL.LBM): the frame comes back in, not out.
    switchFromUplink(core, f);
    return;
  }
  const be = core.backend;
  if (be === undefined) {
    core.counters.uplinkDrops++;
    return;
  }
  be.transmit(f);
}
