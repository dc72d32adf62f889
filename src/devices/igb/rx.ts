/**
 * Receive: writes one frame into a queue's ring with advanced descriptors (one-buffer or
 * header-split), VLAN strip, checksum and packet-type write-back, RSS hash.
 * @module
 */
import type { IgbCore } from "./core.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { B, D, IGB_SIZES } from "./regs.js";
import { parseFrame, rxChecksumBits, RXC_IP_CHECKED, RXC_IP_OK, RXC_L4_CHECKED, RXC_L4_OK, RXC_UDP, type FrameInfo } from "./offload.js";
import { addr64, le32 } from "../net/bytes.js";
import { WorkMeter } from "./activity.js";

/** What the switch learned about a frame before handing it to a queue. */
export interface RxMeta {
  /** Parsed headers. */
  readonly info: FrameInfo;
  /** RSS hash and type (0 if none). */
  readonly rssHash: number;
  readonly rssType: number;
  /** Came from a local pool (loopback). */
  readonly loopback: boolean;
  /**
   * The frame's TCP/UDP checksum is known to be right: a TCP segment nicvisor cut from a GSO frame
   * or whose partial checksum it completed (`IgbCore.receive`), or a frame the host kernel or
   * nicvisor's own software offload marked valid (`FrameMeta.csumValid`). The write-back then
   * reports it good without summing the payload; the IPv4 header and the frame's shape are still
   * checked. Undefined or false: verified, as the 82576 does.
   */
  readonly csumValid?: boolean;
}

/** Scratch for a descriptor write-back (every field is set before each use; DMA copies it). */
const WB = new Uint8Array(16);
const WB_VIEW = new DataView(WB.buffer);

/** Copies `data` to `a`: a store into `linear` memory when it covers the range, else `dma.write` (which counts a fault). */
function put(dma: DmaSpace, a: number, data: Uint8Array): boolean {
  const ram = dma.linear?.();
  if (ram !== undefined && a + data.length <= ram.length) {
    ram.set(data, a);
    return true;
  }
  return dma.write(a, data);
}

/** Stores `v` little-endian at `b[o..o+3]`. */
function st32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** Whether queue `q` can receive at all right now. */
export function rxEnabled(core: IgbCore, q: number): boolean {
  if (!(q >= 0 && q < IGB_SIZES.queues)) return false;
  const s = core.regs.slots;
  const h = core.hot;
  if (((s[h.RCTL] ?? 0) & B.RCTL_EN) === 0 || ((s[h.RXDCTL + q] ?? 0) & B.RXDCTL_ENABLE) === 0) return false;
  return (s[h.RDLEN + q] ?? 0) >= 16;
}

/**
 * Writes `frame` into queue `q`. Returns false (and counts) if the ring has too few free
 * descriptors or a DMA access faults.
 */
export function rxWrite(core: IgbCore, q: number, frame: Uint8Array, meta: RxMeta): boolean {
  if (!(q >= 0 && q < IGB_SIZES.queues)) return false;
  // registers by slot: this runs once per frame and queue
  const s = core.regs.slots;
  const hr = core.hot;
  const n = Math.floor((s[hr.RDLEN + q] ?? 0) / 16);
  const head = s[hr.RDH + q] ?? 0;
  const tail = s[hr.RDT + q] ?? 0;
  if (n === 0 || head >= n || tail >= n) return false;
  const pool = q % IGB_SIZES.pools;
  // long packet filter: with LPE the limit is RLPML (per pool in VMDq mode), else 1518 (+4 tagged)
  const vt = core.vtMode();
  const vmolr = s[hr.VMOLR + pool] ?? 0;
  const lpeReg = vt ? vmolr : (s[hr.RCTL] ?? 0);
  const lpe = vt ? (lpeReg & B.VMOLR_LPE) !== 0 : (lpeReg & B.RCTL_LPE) !== 0;
  const limit = lpe ? (vt ? lpeReg & B.VMOLR_RLPML_MASK : (s[hr.RLPML] ?? 0) & 0x3fff) : meta.info.vlan !== undefined ? 1522 : 1518;
  if (frame.length + 4 > limit) {
    core.bumpSlot(hr.ROC, 1);
    return false;
  }
  // VLAN strip: per pool in VMDq mode, CTRL.VME otherwise
  let f = frame;
  let vlan = 0;
  let vp = false;
  const strip = vt ? (vmolr & B.VMOLR_STRVLAN) !== 0 : ((s[hr.CTRL] ?? 0) & B.CTRL_VME) !== 0;
  if (meta.info.vlan !== undefined) {
    vp = true;
    vlan = meta.info.vlan;
    if (strip && f.length >= 18) {
      const st = core.slab.alloc(f.length - 4);
      st.set(f.subarray(0, 12), 0);
      st.set(f.subarray(16), 12);
      f = st;
    }
  }
  const srrctl = s[hr.SRRCTL + q] ?? 0;
  const hsz = ((srrctl & B.SRRCTL_BSIZEHDR_MASK) >>> 8) * 64;
  const split = (srrctl & B.SRRCTL_DESCTYPE_MASK) === B.SRRCTL_DESCTYPE_HDR_SPLIT_ALWAYS && hsz > 0;
  const kb = srrctl & B.SRRCTL_BSIZEPKT_MASK;
  const bsize = kb === 0 ? 2048 : kb * 1024;
  const free = (tail - head + n) % n;
  // Header split (always): the first descriptor's header buffer takes the L2-L4 headers when they
  // are recognised and fit (SPH set), otherwise the first header-buffer-size bytes; the packet
  // buffers, across as many descriptors as needed, take the rest. igbvf relies on a non-zero header
  // length in the first descriptor to build the skb's linear part.
  let hl = 0;
  let sph = false;
  if (split) {
    const info0 = vp && strip ? parseFrame(f) : meta.info;
    const parsed = info0.l4 !== undefined ? Math.min(f.length, info0.l4 + (info0.proto === 6 ? ((f[info0.l4 + 12] ?? 0x50) >>> 4) * 4 : 8)) : 0;
    sph = parsed > 0 && parsed <= hsz;
    hl = sph ? parsed : Math.min(hsz, f.length);
  }
  const need = Math.max(1, Math.ceil((f.length - hl) / bsize));
  if (need > free) {
    s[hr.RQDPC + q] = ((s[hr.RQDPC + q] ?? 0) + 1) >>> 0;
    core.bumpSlot(hr.RNBC, 1);
    core.counters.rxNoBuffer++;
    core.irq.raiseIcr(B.ICR_RXO);
    return false;
  }
  const base = addr64(s[hr.RDBAL + q] ?? 0, s[hr.RDBAH + q] ?? 0);
  core.work.spend(need + 1 + WorkMeter.data(f.length));
  const dma = core.dmaForQueue(q);
  // status common to the last descriptor
  const info = vp && strip ? parseFrame(f) : meta.info;
  let status = D.RXD_STAT_DD | (vp && strip ? D.RXD_STAT_VP : 0);
  let err = 0;
  // RXCSUM (one register for the PF and every pool): IPOFL and TUOFL choose which verdicts the
  // write-back reports; with both clear nothing is checked at all.
  const rxcsum = s[hr.RXCSUM] ?? 0;
  if (info.ip !== 0 && (rxcsum & (B.RXCSUM_IPOFL | B.RXCSUM_TUOFL)) !== 0) {
    let cs = rxChecksumBits(f, info, meta.csumValid === true, (rxcsum & B.RXCSUM_TUOFL) !== 0);
    if ((rxcsum & B.RXCSUM_IPOFL) === 0) cs &= ~(RXC_IP_CHECKED | RXC_IP_OK);
    if (cs & RXC_IP_CHECKED) {
      status |= D.RXD_STAT_IPCS;
      if ((cs & RXC_IP_OK) === 0) err |= D.RXD_ERR_IPE;
    }
    if (cs & RXC_L4_CHECKED) {
      status |= cs & RXC_UDP ? D.RXD_STAT_UDPCS : D.RXD_STAT_TCPCS;
      if ((cs & RXC_L4_OK) === 0) err |= D.RXD_ERR_TCPE;
    }
  }
  if (meta.loopback) status |= D.RXD_STAT_LB;
  let ptype = 0;
  if (info.ip === 4) ptype |= D.RXD_PKT_IPV4;
  if (info.ip === 6) ptype |= D.RXD_PKT_IPV6;
  if (info.l4 !== undefined && info.proto === 6) ptype |= D.RXD_PKT_TCP;
  if (info.l4 !== undefined && info.proto === 17) ptype |= D.RXD_PKT_UDP;
  let off = 0;
  let h = head;
  for (let i = 0; i < need; i++) {
    const daddr = base + h * 16;
    // Flat memory (DmaSpace.linear): the descriptor is read in place, no view per fetch; anything
    // out of its range goes through dma.read / dma.write, which count the fault.
    const ram = dma.linear?.();
    const inRam = ram !== undefined && daddr + 16 <= ram.length;
    const d = inRam ? ram : dma.read(daddr, 16);
    const at = inRam ? daddr : 0;
    if (d === undefined) {
      core.counters.txErrors++;
      return false;
    }
    // bit 0 of each buffer address is the descriptor's DD flag position: clear it exactly
    const pktLo = le32(d, at);
    const hdrLo = le32(d, at + 8);
    const pkt = addr64(pktLo - (pktLo % 2), le32(d, at + 4));
    const hdr = addr64(hdrLo - (hdrLo % 2), le32(d, at + 12));
    let hdrInfo = 0;
    if (split && i === 0) {
      if (!put(dma, hdr, f.subarray(0, hl))) return false;
      hdrInfo = (hl << D.RXD_HDR_LEN_SHIFT) | (sph ? D.RXD_HDR_SPH : 0);
      off = hl;
    }
    const chunk = Math.min(bsize, f.length - off);
    if (chunk > 0 && !put(dma, pkt, off === 0 && chunk === f.length ? f : f.subarray(off, off + chunk))) return false;
    off += chunk;
    const last = i === need - 1;
    const w0 = ((last ? (meta.rssType & 0xf) | ptype : 0) & 0xffff) | ((hdrInfo & 0xffff) << 16);
    const w1 = last ? meta.rssHash : 0;
    const w2 = last ? status | D.RXD_STAT_EOP | err : D.RXD_STAT_DD;
    const w3 = (chunk & 0xffff) | (((vp && strip ? vlan : 0) & 0xffff) << 16);
    const wm = dma.linear?.();
    if (wm !== undefined && daddr + 16 <= wm.length) {
      // the write-back straight into flat memory: four little-endian stores, no scratch copy
      st32(wm, daddr, w0);
      st32(wm, daddr + 4, w1);
      st32(wm, daddr + 8, w2);
      st32(wm, daddr + 12, w3);
    } else {
      WB_VIEW.setUint32(0, w0 >>> 0, true);
      WB_VIEW.setUint32(4, w1 >>> 0, true);
      WB_VIEW.setUint32(8, w2 >>> 0, true);
      WB_VIEW.setUint32(12, w3 >>> 0, true);
      if (!dma.write(daddr, WB)) return false;
    }
    h = h + 1 === n ? 0 : h + 1;
  }
  s[hr.RDH + q] = h;
  // statistics
  const f0 = f[0] ?? 0;
  const mcast = (f0 & 1) === 1 && !(f.length >= 6 && f0 === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff);
  if (core.isVfPool(pool) && q < 2 * IGB_SIZES.pools) {
    core.bumpSlot(hr.PVFGPRC + pool, 1);
    core.bumpSlot(hr.PVFGORC + pool, f.length);
    if (mcast) core.bumpSlot(hr.PVFMPRC + pool, 1);
    if (meta.loopback) {
      core.bumpSlot(hr.PVFGPRLBC + pool, 1);
      core.bumpSlot(hr.PVFGORLBC + pool, f.length);
    }
  }
  core.queueInterrupt(q, false);
  return true;
}
