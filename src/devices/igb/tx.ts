/**
 * Transmit: advanced data and context descriptors, checksum offload, TSO, VLAN insertion (per
 * descriptor or by VMVIR), head write-back, then the frame goes to the internal switch.
 *
 * Not modelled: legacy (DEXT = 0) descriptors are consumed and completed without sending (traced);
 * SCTP CRC offload; IEEE 1588 timestamps.
 * @module
 */
import type { IgbCore } from "./core.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { B, D, IGB_SIZES } from "./regs.js";
import { completeCsum, fixIpv4Csum, tcpSegment } from "./offload.js";
import { sendGsoToWire, switchFromPool } from "./switch.js";
import { addr64, le32 } from "../net/bytes.js";

export { addr64 };
import { arr, bool, field, hexBytes, obj, onlyKeys, toHex, u32, u8 } from "../../state/parse.js";
import { WorkMeter } from "./activity.js";

/** Largest packet assembled from data descriptors (TSO payload 256 KiB max per the 82576). */
export const TX_MAX_PACKET = 256 * 1024;

/** Saved in-flight state of one transmit queue. */
export interface TxQueueSaved {
  /** The two context descriptor slots, 4 dwords each. */
  readonly ctx: readonly (readonly number[])[];
  /** Bytes of the packet assembled so far (descriptors before EOP), as hex. */
  readonly pending: string;
  /** CMD_TYPE_LEN and OLINFO of the packet's first data descriptor. */
  readonly firstCmd: number;
  readonly firstOlinfo: number;
  /** The packet grew too large or hit a DMA fault: it is dropped at EOP. */
  readonly bad: boolean;
}

/** Checks a saved transmit queue (untrusted): contexts of u32s, a partial packet of at most {@link TX_MAX_PACKET} bytes. */
export function parseTxQueue(u: unknown, path: string): TxQueueSaved {
  const o = obj(u, path);
  onlyKeys(o, path, ["ctx", "pending", "firstCmd", "firstOlinfo", "bad"]);
  const pending = field(o, "pending", path, (v, p) => hexBytes(v, p, TX_MAX_PACKET, false));
  return {
    ctx: field(o, "ctx", path, (v, p) => arr(v, p, 2, (c, q) => arr(c, q, 4, u32, true), true)),
    pending: toHex(pending),
    firstCmd: field(o, "firstCmd", path, u32),
    firstOlinfo: field(o, "firstOlinfo", path, u32),
    bad: field(o, "bad", path, bool),
  };
}

/** Lifts a version 1 transmit queue (pending bytes as a number array) to the current shape; checks what it reads. */
export function upgradeTxQueueV1(u: unknown, path: string): unknown {
  const o = obj(u, path);
  if (!Array.isArray(o.pending)) return o;
  const bytes = arr(o.pending, `${path}.pending`, TX_MAX_PACKET, u8);
  return { ...o, pending: toHex(Uint8Array.from(bytes)) };
}

const NO_BYTES = new Uint8Array(0);

/** In-flight state of one transmit queue. */
export class TxQueueState {
  /** Context slots (vlan_macip_lens, seqnum_seed, type_tucmd_mlhl, mss_l4len_idx). */
  ctx: Uint32Array[] = [new Uint32Array(4), new Uint32Array(4)];
  /**
   * The packet being assembled from several data descriptors (or one TSO descriptor) is copied
   * here, `len` bytes of it; kept from packet to packet and grown on demand up to
   * {@link TX_MAX_PACKET}, so a 64 KiB TSO packet costs one copy out of guest memory and no
   * allocation. A frame that leaves the queue from it is copied out unless its path copies it
   * anyway (see `finishPacket`).
   */
  buf: Uint8Array = NO_BYTES;
  /** Bytes of the packet in `buf`. */
  len = 0;
  firstCmd = 0;
  firstOlinfo = 0;
  bad = false;

  /** Drops contexts and any partial packet, and gives the assembly buffer back. */
  reset(): void {
    this.ctx = [new Uint32Array(4), new Uint32Array(4)];
    this.clearPacket();
    this.buf = NO_BYTES;
  }

  /** Drops the partial packet. */
  clearPacket(): void {
    this.len = 0;
    this.bad = false;
  }

  /** Room for `n` bytes of packet in `buf` (`n` at most {@link TX_MAX_PACKET}), what is there kept. */
  reserve(n: number): void {
    if (n <= this.buf.length) return;
    const grown = new Uint8Array(Math.min(TX_MAX_PACKET, Math.max(n, 2 * this.buf.length, 4096)));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** Saves contexts and the partial packet. */
  save(): TxQueueSaved {
    return {
      ctx: this.ctx.map((c) => Array.from(c)),
      pending: toHex(this.buf.subarray(0, this.len)),
      firstCmd: this.firstCmd,
      firstOlinfo: this.firstOlinfo,
      bad: this.bad,
    };
  }

  /** Loads a state from {@link parseTxQueue} (cannot fail). */
  load(s: TxQueueSaved): void {
    this.ctx = [0, 1].map((i) => Uint32Array.from({ length: 4 }, (_, j) => (s.ctx[i]?.[j] ?? 0) >>> 0));
    const bytes = new Uint8Array(s.pending.length >>> 1);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(s.pending.slice(2 * i, 2 * i + 2), 16) || 0;
    this.buf = bytes.length > 0 ? bytes : NO_BYTES;
    this.len = bytes.length;
    this.firstCmd = s.firstCmd >>> 0;
    this.firstOlinfo = s.firstOlinfo >>> 0;
    this.bad = s.bad === true;
  }
}

/** Whether queue `q` may transmit now. */
function txEnabled(core: IgbCore, q: number): boolean {
  const s = core.regs.slots;
  const h = core.hot;
  if (((s[h.TCTL] ?? 0) & B.TCTL_EN) === 0 || ((s[h.TXDCTL + q] ?? 0) & B.TXDCTL_ENABLE) === 0) return false;
  const pool = q % IGB_SIZES.pools;
  if (core.isVfPool(pool) && ((s[h.VFTE] ?? 0) & (1 << pool)) === 0) return false;
  return true;
}

/** The status dword written back for a descriptor with RS (DMA copies it; it is never changed). */
const DD_WRITEBACK = new Uint8Array(4);
new DataView(DD_WRITEBACK.buffer).setUint32(0, D.TXD_STA_DD, true);

/**
 * Processes queue `q`'s descriptors from TDH to TDT (at most one ring's worth), while the work
 * meter has budget. Returns true if descriptors are left for later (the budget ran out); false
 * when the ring is done, disabled, or a descriptor fetch faulted (the queue waits for the next kick).
 */
export function processTx(core: IgbCore, q: number): boolean {
  if (!(q >= 0 && q < IGB_SIZES.queues) || !txEnabled(core, q)) return false;
  const s = core.regs.slots;
  const h = core.hot;
  const n = Math.floor((s[h.TDLEN + q] ?? 0) / 16);
  if (n === 0) return false;
  const base = addr64(s[h.TDBAL + q] ?? 0, s[h.TDBAH + q] ?? 0);
  let head = s[h.TDH + q] ?? 0;
  const tail = s[h.TDT + q] ?? 0;
  if (head >= n || tail >= n) {
    core.trace(`igb: queue ${q} TDH ${head}/TDT ${tail} outside ring of ${n}`);
    return false;
  }
  const dma = core.dmaForQueue(q);
  const st = core.tx[q];
  if (st === undefined) return false;
  const meter = core.work;
  let reported = false;
  let faulted = false;
  let budget = n;
  while (head !== tail && budget-- > 0 && meter.left()) {
    meter.spend(1);
    const addr = base + head * 16;
    // Flat memory (DmaSpace.linear): the descriptor is read in place, no view per fetch; anything
    // out of its range goes through dma.read, which counts the fault.
    const ram = dma.linear?.();
    const inRam = ram !== undefined && addr + 16 <= ram.length;
    const d = inRam ? ram : dma.read(addr, 16);
    const at = inRam ? addr : 0;
    if (d === undefined) {
      // A fault stops the queue until the guest kicks it again: it is not work left for later
      // (a continuation would retry the same fetch every IGB_CONTINUE_NS, forever).
      core.counters.txErrors++;
      core.trace(`igb: queue ${q} descriptor fetch fault at 0x${addr.toString(16)}`);
      faulted = true;
      break;
    }
    const w0 = le32(d, at);
    const w1 = le32(d, at + 4);
    const cmd = le32(d, at + 8);
    const olinfo = le32(d, at + 12);
    if ((cmd & D.TXD_CMD_DEXT) === 0) {
      core.trace(`igb: queue ${q} legacy descriptor skipped (not modelled)`);
    } else if ((cmd & D.TXD_DTYP_MASK) === D.TXD_DTYP_CTXT) {
      const slot = st.ctx[(olinfo >>> D.TXD_IDX_SHIFT) & 1];
      if (slot !== undefined) {
        slot[0] = w0;
        slot[1] = w1;
        slot[2] = cmd;
        slot[3] = olinfo;
      }
    } else if ((cmd & D.TXD_DTYP_MASK) === D.TXD_DTYP_DATA) {
      const blen = cmd & 0xffff;
      const first = st.len === 0;
      if (first) {
        st.firstCmd = cmd;
        st.firstOlinfo = olinfo;
      }
      if (first && (cmd & (D.TXD_CMD_EOP | D.TXD_CMD_TSE)) === D.TXD_CMD_EOP && blen > 0 && !st.bad) {
        // A packet in one descriptor (the usual case): one copy out of guest memory, into an
        // array the backend will own; no partial-packet bookkeeping.
        meter.spend(WorkMeter.data(blen));
        const b = copyBuf(core, dma, addr64(w0, w1), blen);
        if (b === undefined) core.counters.txErrors++;
        else finishPacket(core, q, st, b, false);
      } else {
        if (st.len + blen > TX_MAX_PACKET) {
          st.bad = true;
        } else if (blen > 0 && !st.bad) {
          meter.spend(WorkMeter.data(blen));
          if (!appendBuf(dma, st, addr64(w0, w1), blen)) st.bad = true;
        }
        if (cmd & D.TXD_CMD_EOP) {
          if (st.bad) core.counters.txErrors++;
          else finishPacket(core, q, st, st.buf.subarray(0, st.len), true);
          st.clearPacket();
        }
      }
    } else {
      core.trace(`igb: queue ${q} descriptor of unknown type skipped`);
    }
    if (cmd & D.TXD_CMD_RS) {
      const m = dma.linear?.();
      if (m !== undefined && addr + 16 <= m.length) {
        m[addr + 12] = D.TXD_STA_DD & 0xff;
        m[addr + 13] = (D.TXD_STA_DD >>> 8) & 0xff;
        m[addr + 14] = (D.TXD_STA_DD >>> 16) & 0xff;
        m[addr + 15] = (D.TXD_STA_DD >>> 24) & 0xff;
      }
      else dma.write(addr + 12, DD_WRITEBACK);
      reported = true;
    }
    head = head + 1 === n ? 0 : head + 1;
  }
  s[h.TDH + q] = head;
  const wbal = s[h.TDWBAL + q] ?? 0;
  if (wbal & 1) {
    const hb = new Uint8Array(4);
    hb[0] = head & 0xff;
    hb[1] = (head >>> 8) & 0xff;
    // the low two bits are flags: clear them without a 32-bit operator on the address
    dma.write(addr64(wbal - (wbal % 4), s[h.TDWBAH + q] ?? 0), hb);
  }
  if (reported) core.queueInterrupt(q, true);
  return !faulted && head !== tail && txEnabled(core, q);
}

/** An owned copy of the `len` bytes at guest address `a` (straight from `linear` memory when it covers them), or undefined on a fault. */
function copyBuf(core: IgbCore, dma: DmaSpace, a: number, len: number): Uint8Array | undefined {
  const ram = dma.linear?.();
  if (ram !== undefined && a + len <= ram.length) return core.slab.copyRange(ram, a, a + len);
  const b = dma.read(a, len);
  return b === undefined ? undefined : core.slab.copy(b);
}

/** Copies the `len` bytes at guest address `a` to the end of `st`'s packet (the caller checks the size); false on a fault. */
function appendBuf(dma: DmaSpace, st: TxQueueState, a: number, len: number): boolean {
  const ram = dma.linear?.();
  let src: Uint8Array | undefined;
  if (ram !== undefined && a + len <= ram.length) src = ram.subarray(a, a + len);
  else src = dma.read(a, len);
  if (src === undefined) return false;
  st.reserve(st.len + len);
  st.buf.set(src, st.len);
  st.len += len;
  return true;
}

function insertVlan(core: IgbCore, f: Uint8Array, tpid: number, tci: number): Uint8Array {
  if (f.length < 12) return f;
  const o = core.slab.alloc(f.length + 4);
  o.set(f.subarray(0, 12), 0);
  o[12] = (tpid >>> 8) & 0xff;
  o[13] = tpid & 0xff;
  o[14] = (tci >>> 8) & 0xff;
  o[15] = tci & 0xff;
  o.set(f.subarray(12), 16);
  return o;
}

/**
 * Sends the packet `frame` that queue `q`'s state `st` describes: offloads, VLAN, the switch.
 * `frame` is owned, or `lent` (a view of the queue's assembly buffer, reused by the next packet):
 * a lent frame is copied before anything keeps it, which TSO makes unnecessary (the segments are
 * new frames, and a backend that takes the frame whole as GSO copies it if it says so).
 */
function finishPacket(core: IgbCore, q: number, st: TxQueueState, frame: Uint8Array, lent: boolean): void {
  const s = core.regs.slots;
  const cmd = st.firstCmd;
  const olinfo = st.firstOlinfo;
  const ctx = st.ctx[(olinfo >>> D.TXD_IDX_SHIFT) & 1] ?? NO_CTX;
  const pool = q % IGB_SIZES.pools;
  const maclen = ((ctx[0] ?? 0) >>> 9) & 0x7f;
  const iplen = (ctx[0] ?? 0) & 0x1ff;
  const tucmd = ctx[2] ?? 0;
  let vlan: number | undefined = cmd & D.TXD_CMD_VLE ? (ctx[0] ?? 0) >>> 16 : undefined;
  if (core.vtMode() && core.isVfPool(pool)) {
    const vmvir = s[core.hot.VMVIR + pool] ?? 0;
    if (vmvir & B.VMVIR_VLANA_DEFAULT) vlan = vmvir & 0xffff;
    else if (vmvir & B.VMVIR_VLANA_NEVER) vlan = undefined;
  }
  if (cmd & D.TXD_CMD_TSE) {
    const l4len = ((ctx[3] ?? 0) >>> 8) & 0xff;
    const mss = (ctx[3] ?? 0) >>> 16;
    // Whole to an uplink that takes TSO, when no VLAN tag goes in and no local pool needs it.
    if (vlan === undefined && sendGsoToWire(core, pool, frame, maclen + iplen, l4len, mss, lent)) {
      core.work.spend(1);
      return;
    }
    const frames = tcpSegment(frame, maclen + iplen + l4len, mss);
    if (frames.length === 0) {
      core.counters.txErrors++;
      core.trace(`igb: queue ${q} TSO request not possible (mss ${mss})`);
      return;
    }
    core.work.spend(frames.length);
    for (const f of frames) switchFromPool(core, pool, vlan !== undefined ? insertVlan(core, f, vetTpid(core), vlan) : f);
    return;
  }
  // VLAN insertion copies the frame anyway.
  if (lent && vlan === undefined) frame = core.slab.copy(frame);
  if (maclen >= 14) {
    if (olinfo & D.TXD_POPTS_IXSM) fixIpv4Csum(frame, maclen);
    if (olinfo & D.TXD_POPTS_TXSM && !(tucmd & D.CTX_TUCMD_L4T_SCTP)) {
      completeCsum(frame, maclen + iplen, tucmd & D.CTX_TUCMD_L4T_TCP ? 16 : 6);
    }
  }
  core.work.spend(1);
  switchFromPool(core, pool, vlan !== undefined ? insertVlan(core, frame, vetTpid(core), vlan) : frame);
}

/** An all-zero context (read only). */
const NO_CTX = new Uint32Array(4);

/** The VLAN ethertype VET holds. */
function vetTpid(core: IgbCore): number {
  return (core.regs.slots[core.hot.VET] ?? 0) & 0xffff;
}
