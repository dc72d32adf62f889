/**
 * The 82576 VF (igbvf, 8086:10CA): its BAR0 is an address translation onto its pool's PF
 * registers (queues `vf` and `vf + 8`, its mailbox, its interrupt mirrors, its statistics). A VF
 * holds no register state of its own, so its complete state can be read out of, and loaded back
 * into, the PF ({@link saveVf} / {@link restoreVf}) — what the failover switch needs.
 * @module
 */
import type { IgbCore } from "./core.js";
import { B, IGB_SIZES, R, VR } from "./regs.js";
import { TxQueueState, parseTxQueue, upgradeTxQueueV1, type TxQueueSaved } from "./tx.js";
import { StateError, arr, bool, field, hexBytes, int, obj, onlyKeys, optField, toHex, u32 } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import { EITR_VALID } from "./table.js";
import type { IgbRegName } from "./regnames.js";
import { MAX_MODERATION_NS } from "./irq.js";
import type { IgbHeldRxState } from "./state.js";
import { IGB_HOLD_FRAMES, IGB_HOLD_FRAME_MAX, bytesFromHex, type HeldRx } from "./activity.js";

const QUEUE_REGS = ["RDBAL", "RDBAH", "RDLEN", "SRRCTL", "RDH", "RXCTL", "RDT", "RXDCTL", "RQDPC",
  "TDBAL", "TDBAH", "TDLEN", "TDH", "TXCTL", "TDT", "TXDCTL", "TDWBAL", "TDWBAH"] as const;
type QueueReg = (typeof QUEUE_REGS)[number];

const VF_QUEUE_OFF: Record<QueueReg, (q: number) => number> = {
  RDBAL: VR.RDBAL, RDBAH: VR.RDBAH, RDLEN: VR.RDLEN, SRRCTL: VR.SRRCTL, RDH: VR.RDH, RXCTL: VR.RXCTL, RDT: VR.RDT,
  RXDCTL: VR.RXDCTL, RQDPC: VR.RQDPC, TDBAL: VR.TDBAL, TDBAH: VR.TDBAH, TDLEN: VR.TDLEN, TDH: VR.TDH,
  TXCTL: VR.TXCTL, TDT: VR.TDT, TXDCTL: VR.TXDCTL, TDWBAL: VR.TDWBAL, TDWBAH: VR.TDWBAH,
};
const PF_QUEUE_OFF: Record<QueueReg, (q: number) => number> = {
  RDBAL: R.RDBAL, RDBAH: R.RDBAH, RDLEN: R.RDLEN, SRRCTL: R.SRRCTL, RDH: R.RDH, RXCTL: R.RXCTL, RDT: R.RDT,
  RXDCTL: R.RXDCTL, RQDPC: R.RQDPC, TDBAL: R.TDBAL, TDBAH: R.TDBAH, TDLEN: R.TDLEN, TDH: R.TDH,
  TXCTL: R.TXCTL, TDT: R.TDT, TXDCTL: R.TXDCTL, TDWBAL: R.TDWBAL, TDWBAH: R.TDWBAH,
};

/** VF-relative queue register offsets -> [register, VF queue 0/1]. Built once. */
const VF_QUEUE_MAP = new Map<number, [QueueReg, number]>();
for (const name of QUEUE_REGS) for (const vq of [0, 1]) VF_QUEUE_MAP.set(VF_QUEUE_OFF[name](vq), [name, vq]);

/**
 * Translates a VF BAR0 offset to the PF BAR0 offset it reaches, or `undefined` if nothing
 * (reads 0, writes dropped). STATUS and FRTIMER are readable, not writable, through a VF.
 */
export function vfToPf(off: number, vf: number, write: boolean): number | undefined {
  if (!(vf >= 0 && vf < IGB_SIZES.pools) || !(off >= 0 && off < IGB_SIZES.vfBar0)) return undefined;
  const a = off & ~3;
  const q = VF_QUEUE_MAP.get(a);
  if (q !== undefined) return PF_QUEUE_OFF[q[0]](vf + q[1] * IGB_SIZES.pools);
  if (a >= VR.VMBMEM && a < VR.VMBMEM + 0x40) return R.VMBMEM(vf) + (a - VR.VMBMEM);
  if (a >= VR.EITR(0) && a <= VR.EITR(2)) return R.EITR(22 - 3 * vf + (a - VR.EITR(0)) / 4);
  switch (a) {
    case VR.CTRL:
    case 0x0004:
      return R.PVTCTRL(vf);
    case VR.STATUS:
    case VR.FRTIMER:
      return write ? undefined : a;
    case VR.EICS: return R.PVTEICS(vf);
    case VR.EIMS: return R.PVTEIMS(vf);
    case VR.EIMC: return R.PVTEIMC(vf);
    case VR.EIAC: return R.PVTEIAC(vf);
    case VR.EIAM: return R.PVTEIAM(vf);
    case VR.EICR: return R.PVTEICR(vf);
    case VR.IVAR0: return R.VTIVAR(vf);
    case VR.IVAR_MISC: return R.VTIVAR_MISC(vf);
    case VR.PSRTYPE: return R.PSRTYPE(vf);
    case VR.V2PMAILBOX: return R.V2PMAILBOX(vf);
    case VR.VFGPRC: return R.PVFGPRC(vf);
    case VR.VFGPTC: return R.PVFGPTC(vf);
    case VR.VFGORC: return R.PVFGORC(vf);
    case VR.VFGOTC: return R.PVFGOTC(vf);
    case VR.VFMPRC: return R.PVFMPRC(vf);
    case VR.VFGPRLBC: return R.PVFGPRLBC(vf);
    case VR.VFGPTLBC: return R.PVFGPTLBC(vf);
    case VR.VFGORLBC: return R.PVFGORLBC(vf);
    case VR.VFGOTLBC: return R.PVFGOTLBC(vf);
    default:
      return undefined;
  }
}

/**
 * VF `vf`'s BAR0 handler: every access goes through {@link vfToPf} to the PF register file.
 * @example
 * const bar0 = new IgbVfRegs(core, 2); bar0.write(0x0c40, 4, 0x4); // VF 2 takes its mailbox lock
 */
export class IgbVfRegs {
  /** Accesses that reached nothing. */
  dropped = 0;
  constructor(
    private readonly core: IgbCore,
    /** VF number (0-based). */
    readonly vf: number,
  ) {}

  /** BAR0 read; unknown offsets read 0. */
  read(offset: number, size: 1 | 2 | 4): number {
    const pf = vfToPf(offset, this.vf, false);
    if (pf === undefined) {
      this.dropped++;
      return 0;
    }
    return this.core.regs.read(pf + (offset & 3), size);
  }

  /** BAR0 write; unknown offsets are dropped. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const pf = vfToPf(offset, this.vf, true);
    if (pf === undefined) {
      this.dropped++;
      this.core.trace(`igbvf ${this.vf}: write to 0x${offset.toString(16)} dropped`);
      return;
    }
    this.core.vfWrite(pf + (offset & 3), size, value);
  }
}

/** Complete architectural state of one VF, VF-relative (it can be loaded into any VF number). */
export interface IgbVfState {
  /** Format version (2: partial packets as hex; version 1 loads through an upgrade). */
  readonly version: 2;
  /** Queue registers of VF queues 0 and 1: `queues[name] = [q0, q1]`. */
  readonly queues: Record<string, [number, number]>;
  /** The 16 mailbox memory words. */
  readonly vmbmem: number[];
  /** P2VMAILBOX and V2PMAILBOX. */
  readonly p2v: number;
  readonly v2p: number;
  /** IVAR0, IVAR_MISC, PSRTYPE, VMOLR, VMVIR of the pool. */
  readonly ivar: number;
  readonly ivarMisc: number;
  readonly psrtype: number;
  readonly vmolr: number;
  readonly vmvir: number;
  /** EITR of the VF's 3 vectors. */
  readonly eitr: number[];
  /** The VF's 3 bits of EICR, EIMS, EIAC, EIAM. */
  readonly eicr: number;
  readonly eims: number;
  readonly eiac: number;
  readonly eiam: number;
  /** Pending mailbox request/ack (MBVFICR), reset event (VFLRE), RX/TX enables, spoof events (WVBR). */
  readonly mbReq: boolean;
  readonly mbAck: boolean;
  readonly vflre: boolean;
  readonly rxEnable: boolean;
  readonly txEnable: boolean;
  readonly wvbr: number;
  /** Statistics mirrors (VFGPRC, VFGPTC, VFGORC, VFGOTC, VFMPRC, VFGPRLBC, VFGPTLBC, VFGORLBC, VFGOTLBC). */
  readonly stats: number[];
  /** Receive addresses owned by the pool alone: [RAL, RAH without pool bits]. */
  readonly macs: [number, number][];
  /** VLANs whose VLVF entry includes the pool. */
  readonly vlans: number[];
  /** In-flight transmit state of VF queues 0 and 1. */
  readonly tx: readonly [TxQueueSaved, TxQueueSaved];
  /** Moderation of the VF's 3 vectors (ns left) and their owed messages (bits 0..2). */
  readonly irq: { readonly dueInNs: readonly number[]; readonly owed: number };
  /** Frames held for the pool while it was frozen, in order; `q` is the VF queue (0 or 1). */
  readonly held: readonly IgbHeldRxState[];
}

/** Raised for a malformed saved VF state. */
export class IgbVfStateError extends Error {
  override readonly name = "IgbVfStateError";
}

const STAT_REGS = ["PVFGPRC", "PVFGPTC", "PVFGORC", "PVFGOTC", "PVFMPRC", "PVFGPRLBC", "PVFGPTLBC", "PVFGORLBC", "PVFGOTLBC"] as const;
const bit = (v: number, b: number) => ((v >>> b) & 1) === 1;
const setBit = (v: number, b: number, on: boolean) => (on ? v | (1 << b) : v & ~(1 << b)) >>> 0;

/** Reads VF `vf`'s complete state out of the PF (no side effects). */
export function saveVf(core: IgbCore, vf: number): IgbVfState {
  const r = core.regs;
  const P = IGB_SIZES.pools;
  const queues: Record<string, [number, number]> = {};
  for (const n of QUEUE_REGS) queues[n] = [r.get(n, vf), r.get(n, vf + P)];
  const sh = 22 - 3 * vf;
  const macs: [number, number][] = [];
  for (let i = 0; i < IGB_SIZES.rar; i++) {
    const rah = r.get("RAH", i);
    if (rah & B.RAH_AV && (rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT === 1 << vf) macs.push([r.get("RAL", i), (rah & ~B.RAH_POOL_MASK) >>> 0]);
  }
  const vlans: number[] = [];
  for (let i = 0; i < 32; i++) {
    const v = r.get("VLVF", i);
    if (v & B.VLVF_VLANID_ENABLE && (v >>> B.VLVF_POOLSEL_SHIFT) & (1 << vf)) vlans.push(v & B.VLVF_VLANID_MASK);
  }
  const tx0 = core.tx[vf]?.save() ?? new TxQueueState().save();
  const tx1 = core.tx[vf + P]?.save() ?? new TxQueueState().save();
  return {
    version: 2,
    queues,
    vmbmem: Array.from({ length: 16 }, (_, i) => r.get("VMBMEM", 16 * vf + i)),
    p2v: r.get("P2VMAILBOX", vf),
    v2p: r.get("V2PMAILBOX", vf),
    ivar: r.get("VTIVAR", vf),
    ivarMisc: r.get("VTIVAR_MISC", vf),
    psrtype: r.get("PSRTYPE", vf),
    vmolr: r.get("VMOLR", vf),
    vmvir: r.get("VMVIR", vf),
    eitr: [0, 1, 2].map((i) => r.get("EITR", sh + i)),
    eicr: (r.get("EICR") >>> sh) & 7,
    eims: (r.get("EIMS") >>> sh) & 7,
    eiac: (r.get("EIAC") >>> sh) & 7,
    eiam: (r.get("EIAM") >>> sh) & 7,
    mbReq: bit(r.get("MBVFICR"), vf),
    mbAck: bit(r.get("MBVFICR"), vf + 16),
    vflre: bit(r.get("VFLRE"), vf),
    rxEnable: bit(r.get("VFRE"), vf),
    txEnable: bit(r.get("VFTE"), vf),
    wvbr: ((r.get("WVBR") >>> vf) & 1) | (((r.get("WVBR") >>> (vf + 8)) & 1) << 1),
    stats: STAT_REGS.map((n) => r.get(n, vf)),
    macs,
    vlans,
    tx: [tx0, tx1],
    irq: core.irq.saveRange(sh, 3),
    held: heldToState(core.activity.poolFifo[vf] ?? []),
  };
}

/** Valid bits of the per-VF registers a VF state carries (as the register table declares them). */
const RING_LEN = 0xffff0;
const QUEUE_VALID: Partial<Record<QueueReg, number>> = { RDBAL: ~0x7f >>> 0, TDBAL: ~0x7f >>> 0, RDLEN: RING_LEN, TDLEN: RING_LEN, RDH: 0xffff, RDT: 0xffff, TDH: 0xffff, TDT: 0xffff };

/** Checks bits of `v` against `valid`. */
function masked(valid: number): (v: unknown, path: string) => number {
  return (v, path) => {
    const n = u32(v, path);
    if ((n & ~valid) !== 0) throw new StateError(path, `0x${n.toString(16)} has bits outside 0x${valid.toString(16)}`);
    return n;
  };
}

function parseVfCurrent(o: Record<string, unknown>, path: string): IgbVfState {
  onlyKeys(o, path, ["version", "queues", "vmbmem", "p2v", "v2p", "ivar", "ivarMisc", "psrtype", "vmolr", "vmvir", "eitr", "eicr", "eims", "eiac", "eiam",
    "mbReq", "mbAck", "vflre", "rxEnable", "txEnable", "wvbr", "stats", "macs", "vlans", "tx", "irq", "held"]);
  const qo = field(o, "queues", path, obj);
  onlyKeys(qo, `${path}.queues`, QUEUE_REGS);
  const queues: Record<string, [number, number]> = {};
  for (const n of QUEUE_REGS) {
    const v = arr(qo[n], `${path}.queues.${n}`, 2, masked(QUEUE_VALID[n] ?? 0xffffffff), true);
    queues[n] = [v[0]!, v[1]!];
  }
  const bits3 = (v: unknown, p: string) => int(v, p, 0, 7);
  return {
    version: 2,
    queues,
    vmbmem: field(o, "vmbmem", path, (v, p) => arr(v, p, 16, u32, true)),
    p2v: field(o, "p2v", path, masked(B.P2V_VFU | B.P2V_PFU)),
    v2p: field(o, "v2p", path, masked(0xfc)),
    ivar: field(o, "ivar", path, u32),
    ivarMisc: field(o, "ivarMisc", path, (v, p) => int(v, p, 0, 0xff)),
    psrtype: field(o, "psrtype", path, u32),
    vmolr: field(o, "vmolr", path, u32),
    vmvir: field(o, "vmvir", path, u32),
    eitr: field(o, "eitr", path, (v, p) => arr(v, p, 3, masked(EITR_VALID), true)),
    eicr: field(o, "eicr", path, bits3),
    eims: field(o, "eims", path, bits3),
    eiac: field(o, "eiac", path, bits3),
    eiam: field(o, "eiam", path, bits3),
    mbReq: field(o, "mbReq", path, bool),
    mbAck: field(o, "mbAck", path, bool),
    vflre: field(o, "vflre", path, bool),
    rxEnable: field(o, "rxEnable", path, bool),
    txEnable: field(o, "txEnable", path, bool),
    wvbr: field(o, "wvbr", path, (v, p) => int(v, p, 0, 3)),
    stats: field(o, "stats", path, (v, p) => arr(v, p, STAT_REGS.length, u32, true)),
    macs: field(o, "macs", path, (v, p) => arr(v, p, IGB_SIZES.rar, (m, mp) => {
      const pair = arr(m, mp, 2, u32, true);
      return [pair[0]!, pair[1]!] as [number, number];
    })),
    vlans: field(o, "vlans", path, (v, p) => arr(v, p, 32, (x, xp) => int(x, xp, 0, 4095))),
    tx: field(o, "tx", path, (v, p) => {
      const t = arr(v, p, 2, parseTxQueue, true);
      return [t[0]!, t[1]!] as const;
    }),
    irq: optField(o, "irq", path, parseVfIrq, { dueInNs: [0, 0, 0], owed: 0 }),
    held: optField(o, "held", path, parseVfHeldList, []),
  };
}

function parseVfIrq(u: unknown, path: string): IgbVfState["irq"] {
  const o = obj(u, path);
  onlyKeys(o, path, ["dueInNs", "owed"]);
  return {
    dueInNs: field(o, "dueInNs", path, (v, p) => arr(v, p, 3, (x, q) => int(x, q, 0, MAX_MODERATION_NS), true)),
    owed: field(o, "owed", path, (v, p) => int(v, p, 0, 7)),
  };
}

/** Frames held for a VF's pool, as a VF state carries them (`q` relative: 0 or 1). */
export function heldToState(fifo: readonly HeldRx[]): IgbHeldRxState[] {
  const P = IGB_SIZES.pools;
  return fifo.map((h) => ({ q: h.q >= P ? 1 : 0, frame: toHex(h.frame), rssHash: h.rssHash, rssType: h.rssType, loopback: h.loopback }));
}

/** {@link heldToState}'s output (parsed) as VF `vf`'s held frames. */
export function heldFromState(vf: number, held: readonly IgbHeldRxState[]): HeldRx[] {
  const P = IGB_SIZES.pools;
  return held.map((h) => ({ q: vf + (h.q === 1 ? P : 0), frame: bytesFromHex(h.frame), rssHash: h.rssHash, rssType: h.rssType, loopback: h.loopback }));
}

/** Checks a list of held frames as a VF state carries them (at most {@link IGB_HOLD_FRAMES}). @throws StateError */
export function parseVfHeldList(u: unknown, path: string): IgbHeldRxState[] {
  return arr(u, path, IGB_HOLD_FRAMES, parseVfHeld);
}

function parseVfHeld(u: unknown, path: string): IgbHeldRxState {
  const h = obj(u, path);
  onlyKeys(h, path, ["q", "frame", "rssHash", "rssType", "loopback"]);
  const frame = field(h, "frame", path, (v, p) => hexBytes(v, p, IGB_HOLD_FRAME_MAX, false));
  if (frame.length < 14) throw new StateError(`${path}.frame`, `a frame of ${frame.length} bytes is shorter than an Ethernet header`);
  return {
    q: field(h, "q", path, (v, p) => int(v, p, 0, 1)),
    frame: toHex(frame),
    rssHash: field(h, "rssHash", path, u32),
    rssType: field(h, "rssType", path, (v, p) => int(v, p, 0, 15)),
    loopback: field(h, "loopback", path, bool),
  };
}

/**
 * The VF state type: version 2 (partial packets as hex), loading version 1 (partial packets as
 * byte arrays) through an upgrade. Its parser checks every field (register valid bits, ring
 * indexes inside their rings, interrupt bits, filters) and names the one it rejects.
 */
export const IGB_VF_STATE: StateType<IgbVfState> = defineState<IgbVfState>(
  "igb-vf",
  2,
  {
    1: (o, path) => ({ ...o, version: 2, tx: arr(o.tx, `${path}.tx`, 2, upgradeTxQueueV1, true) }),
  },
  parseVfCurrent,
);

/**
 * Loads a saved VF state (untrusted: checked by {@link IGB_VF_STATE} first; on error nothing is
 * changed) into VF `vf` of `core` (which may differ from the VF it was saved from). Filters (MACs,
 * VLANs) go into free RAR/VLVF entries; if none is free they are skipped and reported.
 * @throws IgbVfStateError naming the rejected field
 */
export function restoreVf(core: IgbCore, vf: number, s: unknown): { skippedMacs: number; skippedVlans: number } {
  if (!(Number.isInteger(vf) && vf >= 0 && vf < IGB_SIZES.pools)) throw new IgbVfStateError(`no VF ${vf}`);
  let parsed: IgbVfState;
  try {
    parsed = IGB_VF_STATE.parse(s, "vf");
  } catch (e) {
    if (e instanceof StateError) throw new IgbVfStateError(`vf state: ${e.message}`);
    throw e;
  }
  return applyVf(core, vf, parsed);
}

/** Applies a parsed VF state to VF `vf` (0..7) of `core`. Cannot fail. */
export function applyVf(core: IgbCore, vf: number, s: IgbVfState): { skippedMacs: number; skippedVlans: number } {
  const P = IGB_SIZES.pools;
  vf = Math.max(0, Math.min(P - 1, Math.floor(vf) || 0));
  const r = core.regs;
  for (const n of QUEUE_REGS) {
    const v = s.queues[n] ?? [0, 0];
    r.set(n, vf, v[0]);
    r.set(n, vf + P, v[1]);
  }
  s.vmbmem.forEach((w, i) => r.set("VMBMEM", 16 * vf + i, w));
  r.set("P2VMAILBOX", vf, s.p2v);
  r.set("V2PMAILBOX", vf, s.v2p);
  r.set("VTIVAR", vf, s.ivar);
  r.set("VTIVAR_MISC", vf, s.ivarMisc & 0xff);
  r.set("PSRTYPE", vf, s.psrtype);
  r.set("VMOLR", vf, s.vmolr);
  r.set("VMVIR", vf, s.vmvir);
  const sh = 22 - 3 * vf;
  s.eitr.forEach((v, i) => r.set("EITR", sh + i, v));
  const put = (name: IgbRegName, bits: number) => r.set(name, 0, ((r.get(name) & ~(7 << sh)) | ((bits & 7) << sh)) >>> 0);
  put("EICR", s.eicr);
  put("EIMS", s.eims);
  put("EIAC", s.eiac);
  put("EIAM", s.eiam);
  r.set("MBVFICR", 0, setBit(setBit(r.get("MBVFICR"), vf, s.mbReq), vf + 16, s.mbAck));
  r.set("VFLRE", 0, setBit(r.get("VFLRE"), vf, s.vflre));
  r.set("VFRE", 0, setBit(r.get("VFRE"), vf, s.rxEnable));
  r.set("VFTE", 0, setBit(r.get("VFTE"), vf, s.txEnable));
  r.set("WVBR", 0, setBit(setBit(r.get("WVBR"), vf, (s.wvbr & 1) !== 0), vf + 8, (s.wvbr & 2) !== 0));
  STAT_REGS.forEach((n, i) => r.set(n, vf, s.stats[i] ?? 0));
  s.tx.forEach((t, i) => core.tx[vf + i * P]?.load(t));
  core.irq.loadRange(sh, s.irq.dueInNs, s.irq.owed);
  core.activity.poolFifo[vf] = heldFromState(vf, s.held);
  // filters: drop the target pool's old single-owner entries, then place the saved ones
  for (let i = 0; i < IGB_SIZES.rar; i++) {
    const rah = r.get("RAH", i);
    if ((rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT === 1 << vf) {
      r.set("RAH", i, 0);
      r.set("RAL", i, 0);
    }
  }
  let skippedMacs = 0;
  for (const [ral, rah] of s.macs) {
    let placed = false;
    for (let i = IGB_SIZES.rar - 1; i >= 1 && !placed; i--) {
      if ((r.get("RAH", i) & B.RAH_AV) === 0) {
        r.set("RAL", i, ral);
        r.set("RAH", i, ((rah & ~B.RAH_POOL_MASK) | B.RAH_AV | ((1 << vf) << B.RAH_POOL_SHIFT)) >>> 0);
        placed = true;
      }
    }
    if (!placed) skippedMacs++;
  }
  for (let i = 0; i < 32; i++) {
    const v = r.get("VLVF", i);
    if ((v >>> B.VLVF_POOLSEL_SHIFT) & (1 << vf)) r.set("VLVF", i, v & ~((1 << vf) << B.VLVF_POOLSEL_SHIFT));
  }
  let skippedVlans = 0;
  for (const vid of s.vlans) {
    let idx = -1;
    for (let i = 0; i < 32 && idx < 0; i++) {
      const v = r.get("VLVF", i);
      if (v & B.VLVF_VLANID_ENABLE && (v & B.VLVF_VLANID_MASK) === vid) idx = i;
    }
    for (let i = 0; i < 32 && idx < 0; i++) if ((r.get("VLVF", i) & B.VLVF_VLANID_ENABLE) === 0) idx = i;
    if (idx < 0) {
      skippedVlans++;
      continue;
    }
    const v = r.get("VLVF", idx);
    r.set("VLVF", idx, (B.VLVF_VLANID_ENABLE | vid | (v & B.VLVF_POOLSEL_MASK) | ((1 << vf) << B.VLVF_POOLSEL_SHIFT)) >>> 0);
  }
  // transmit work pending in the saved queues runs at the pool's next resume
  core.latchVfTx(vf);
  return { skippedMacs, skippedVlans };
}
