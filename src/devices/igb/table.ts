/**
 * The 82576 PF register table: every register the model implements, declared once. Behaviour
 * beyond plain storage is in the hooks, which call into {@link IgbCore}.
 *
 * Not modelled (reads 0, writes traced and dropped): flow control timers beyond storage, the
 * packet-buffer/DMA tuning registers not listed here, IEEE 1588 time sync, the management
 * (MNG/host interface) block, legacy (non-advanced) descriptor layouts, ETQF/FTQF/SYNQF filters,
 * DCA, and the statistics registers not listed below (they read 0).
 * @module
 */
import type { RegDef } from "./regfile.js";
import { B, IGB_SIZES, R } from "./regs.js";
import type { IgbCore } from "./core.js";
import { vfEicrShift } from "./irq.js";
import type { IgbRegName } from "./regnames.js";

type Row = RegDef<IgbCore>;

const ALL = 0xffffffff;
const one = (name: string, offset: number, extra: Partial<Row> = {}): Row => ({ name, offset: () => offset, ...extra });
const arr = (name: string, count: number, offset: (i: number) => number, extra: Partial<Row> = {}): Row => ({ name, count, offset, ...extra });
const rw = (name: string, offset: number, reset = 0): Row => one(name, offset, { reset });
const stat = (name: string, offset: number): Row => one(name, offset, { ro: ALL, rc: ALL });
/**
 * Ring length bits: 19:4, as the 82576 keeps them (Linux igb's ethtool register test writes
 * 0x000FFFF0 to RDLEN and reads it back). The datasheet asks drivers for a multiple of 128; the
 * register holds any multiple of 16 (one descriptor) up to 0xFFFF0, so a state holds that too.
 */
export const RING_LEN_MASK = 0xffff0;
/** EICR/EIMS bits the interrupt logic can set (MSI-X causes and the legacy-mode bits). */
const EICR_VALID = (B.EICR_MSIX_MASK | B.EICR_LEGACY_MASK) >>> 0;

/** EITR bits that hold state (the interval and CNT_IGNR). */
export const EITR_VALID = (B.EITR_INTERVAL_MASK | B.EITR_CNT_IGNR) >>> 0;

/**
 * Head and tail registers hold 16 bits whatever the ring's length, as the hardware's do (Linux
 * igb's register self-test writes 0xFFFF to RDT with no ring set up and reads it back). The data
 * paths refuse to walk a ring whose head or tail lies outside it (rxWrite, txProcess), so such a
 * value costs nothing and is legal in a saved state too.
 */
function ringIndex(_lenReg: IgbRegName): Partial<Row> {
  return { ro: 0xffff0000, valid: 0xffff };
}

/** A ring length: bits 19:4 hold state (the self-test writes 0x000FFFF0). */
function ringLen(_h: IgbRegName, _t: IgbRegName): Partial<Row> {
  return { ro: ~RING_LEN_MASK >>> 0, valid: RING_LEN_MASK };
}
const Q = IGB_SIZES.queues;
const P = IGB_SIZES.pools;

/** EICR bits of VF `vf` moved down to bit 0, and back. */
const vfBits = (v: number, vf: number) => (v >>> vfEicrShift(vf)) & 7;
const toVf = (v: number, vf: number) => (v & 7) << vfEicrShift(vf);

/** Queue register rows: advanced layout at 0xC000/0xE000 plus legacy aliases for queues 0..3. */
function queueRows(): Row[] {
  const rows: Row[] = [
    arr("RDBAL", Q, R.RDBAL, { ro: 0x7f, valid: ~0x7f >>> 0 }),
    arr("RDBAH", Q, R.RDBAH),
    arr("RDLEN", Q, R.RDLEN, ringLen("RDH", "RDT")),
    arr("SRRCTL", Q, R.SRRCTL, { reset: 2, post: (c, q) => c.rxKick(q) }),
    arr("RDH", Q, R.RDH, ringIndex("RDLEN")),
    arr("RXCTL", Q, R.RXCTL),
    arr("RDT", Q, R.RDT, { ...ringIndex("RDLEN"), post: (c, q) => c.rxKick(q) }),
    arr("RXDCTL", Q, R.RXDCTL, {
      reset: (q) => (q === 0 ? B.RXDCTL_ENABLE : 0) | 0x10000,
      post: (c, q) => c.rxKick(q),
    }),
    arr("RQDPC", Q, R.RQDPC, { ro: ALL, rc: ALL }),
    arr("TDBAL", Q, R.TDBAL, { ro: 0x7f, valid: ~0x7f >>> 0 }),
    arr("TDBAH", Q, R.TDBAH),
    arr("TDLEN", Q, R.TDLEN, ringLen("TDH", "TDT")),
    arr("TDH", Q, R.TDH, ringIndex("TDLEN")),
    arr("TXCTL", Q, R.TXCTL),
    arr("TDT", Q, R.TDT, { ...ringIndex("TDLEN"), post: (c, q) => c.txKick(q) }),
    arr("TXDCTL", Q, R.TXDCTL, { reset: (q) => (q === 0 ? B.TXDCTL_ENABLE : 0), post: (c, q) => c.txKick(q) }),
    arr("TDWBAL", Q, R.TDWBAL),
    arr("TDWBAH", Q, R.TDWBAH),
  ];
  const aliases: [string, (q: number) => number][] = [
    ["RDBAL", (q) => 0x2800 + 0x100 * q], ["RDBAH", (q) => 0x2804 + 0x100 * q], ["RDLEN", (q) => 0x2808 + 0x100 * q],
    ["SRRCTL", (q) => 0x280c + 0x100 * q], ["RDH", (q) => 0x2810 + 0x100 * q], ["RXCTL", (q) => 0x2814 + 0x100 * q],
    ["RDT", (q) => 0x2818 + 0x100 * q], ["RXDCTL", (q) => 0x2828 + 0x100 * q], ["RQDPC", (q) => 0x2830 + 0x100 * q],
    ["TDBAL", (q) => 0x3800 + 0x100 * q], ["TDBAH", (q) => 0x3804 + 0x100 * q], ["TDLEN", (q) => 0x3808 + 0x100 * q],
    ["TDH", (q) => 0x3810 + 0x100 * q], ["TXCTL", (q) => 0x3814 + 0x100 * q], ["TDT", (q) => 0x3818 + 0x100 * q],
    ["TXDCTL", (q) => 0x3828 + 0x100 * q], ["TDWBAL", (q) => 0x3838 + 0x100 * q], ["TDWBAH", (q) => 0x383c + 0x100 * q],
  ];
  for (const [name, off] of aliases) rows.push({ name: `${name}_A`, count: 4, offset: off, alias: name });
  return rows;
}

/** Per-VF mirror rows in the PF space; the VF's own registers translate onto these. */
function vfMirrorRows(): Row[] {
  return [
    arr("PVTCTRL", P, R.PVTCTRL, { valid: 0, pre: () => 0, post: (c, vf, _s, _o, w) => (w & B.CTRL_RST ? c.vfReset(vf) : undefined) }),
    arr("PVFGPRC", P, R.PVFGPRC, { ro: ALL }),
    arr("PVFGPTC", P, R.PVFGPTC, { ro: ALL }),
    arr("PVFGORC", P, R.PVFGORC, { ro: ALL }),
    arr("PVFGOTC", P, R.PVFGOTC, { ro: ALL }),
    arr("PVFMPRC", P, R.PVFMPRC, { ro: ALL }),
    arr("PVFGPRLBC", P, R.PVFGPRLBC, { ro: ALL }),
    arr("PVFGPTLBC", P, R.PVFGPTLBC, { ro: ALL }),
    arr("PVFGORLBC", P, R.PVFGORLBC, { ro: ALL }),
    arr("PVFGOTLBC", P, R.PVFGOTLBC, { ro: ALL }),
    // Interrupt mirrors hold no state: they are windows onto the VF's 3 bits of EICR/EIMS/EIAC/EIAM.
    arr("PVTEICS", P, R.PVTEICS, { wo: true, valid: 0, pre: () => 0, post: (c, vf, _s, _o, w) => c.irq.raiseEicr(toVf(w, vf)) }),
    arr("PVTEIMS", P, R.PVTEIMS, {
      valid: 0,
      read: (c, vf) => vfBits(c.regs.get("EIMS"), vf),
      pre: () => 0,
      post: (c, vf, _s, _o, w) => c.irq.enable(toVf(w, vf)),
    }),
    arr("PVTEIMC", P, R.PVTEIMC, {
      wo: true,
      valid: 0,
      pre: () => 0,
      post: (c, vf, _s, _o, w) => c.regs.set("EIMS", 0, c.regs.get("EIMS") & ~toVf(w, vf)),
    }),
    arr("PVTEIAC", P, R.PVTEIAC, {
      valid: 0,
      read: (c, vf) => vfBits(c.regs.get("EIAC"), vf),
      pre: () => 0,
      post: (c, vf, _s, _o, w) => c.regs.set("EIAC", 0, (c.regs.get("EIAC") & ~toVf(7, vf)) | toVf(w, vf)),
    }),
    arr("PVTEIAM", P, R.PVTEIAM, {
      valid: 0,
      read: (c, vf) => vfBits(c.regs.get("EIAM"), vf),
      pre: () => 0,
      post: (c, vf, _s, _o, w) => c.regs.set("EIAM", 0, (c.regs.get("EIAM") & ~toVf(7, vf)) | toVf(w, vf)),
    }),
    arr("PVTEICR", P, R.PVTEICR, {
      valid: 0,
      read: (c, vf) => {
        const v = vfBits(c.regs.get("EICR"), vf);
        c.regs.set("EICR", 0, c.regs.get("EICR") & ~toVf(7, vf));
        return v;
      },
      pre: () => 0,
      post: (c, vf, _s, _o, w) => c.regs.set("EICR", 0, c.regs.get("EICR") & ~toVf(w, vf)),
    }),
    arr("VTIVAR", P, R.VTIVAR),
    arr("VTIVAR_MISC", P, R.VTIVAR_MISC, { ro: 0xffffff00, valid: 0xff }),
  ];
}

/**
 * The PF register table.
 * @example
 * const rf = new RegFile(core, igbRegisterTable(), IGB_SIZES.pfBar0);
 */
export function igbRegisterTable(): Row[] {
  return [
    one("CTRL", R.CTRL, {
      reset: B.CTRL_FD | B.CTRL_SLU,
      valid: ~(B.CTRL_RST | B.CTRL_PHY_RST) >>> 0,
      pre: (_c, _i, next) => next & ~(B.CTRL_RST | B.CTRL_PHY_RST),
      post: (c, _i, _s, _o, w) => {
        if (w & B.CTRL_RST) c.softReset();
        else if (w & B.CTRL_PHY_RST) c.phy.reset();
      },
    }),
    { name: "CTRL_DUP", offset: () => R.CTRL_DUP, alias: "CTRL" },
    one("STATUS", R.STATUS, { ro: ALL, valid: 0, read: (c) => c.status() }),
    one("EECD", R.EECD, {
      reset: B.EECD_PRES | B.EECD_AUTO_RD | (2 << B.EECD_SIZE_EX_SHIFT),
      ro: B.EECD_PRES | B.EECD_AUTO_RD | 0x7880,
      // grant (bit 7) follows request (bit 6): there is no other NVM client
      read: (_c, _i, s) => (s & 0x40 ? s | 0x80 : s & ~0x80),
    }),
    one("EERD", R.EERD, { pre: (c, _i, _n, _o, w) => c.nvmAccess(w) }),
    one("CTRL_EXT", R.CTRL_EXT, {
      pre: (_c, _i, next) => next & ~0x2000, // EE_RST self-clears
      post: (c, _i, s) => (s & B.CTRL_EXT_PFRSTD ? c.pfResetDone() : undefined),
    }),
    one("MDIC", R.MDIC, { reset: B.MDIC_READY, pre: (c, _i, _n, _o, w) => c.mdicAccess(w) }),
    rw("FCAL", R.FCAL), rw("FCAH", R.FCAH), rw("FCT", R.FCT), rw("CONNSW", R.CONNSW), rw("VET", R.VET, 0x8100),
    one("ICR", R.ICR, {
      w1c: ALL,
      read: (c) => c.readIcr(),
      post: (c) => c.irq.lowerCheck(),
    }),
    rw("ITR", R.ITR),
    one("ICS", R.ICS, { wo: true, valid: 0, pre: () => 0, post: (c, _i, _s, _o, w) => c.irq.raiseIcr(w) }),
    one("IMS", R.IMS, {
      pre: (_c, _i, _n, old, w) => old | w,
      post: (c, _i, _s, old) => c.icrEnabled(old),
    }),
    one("IMC", R.IMC, {
      wo: true,
      valid: 0,
      pre: () => 0,
      post: (c, _i, _s, _o, w) => {
        c.regs.set("IMS", 0, c.regs.get("IMS") & ~w);
        c.irq.lowerCheck();
      },
    }),
    rw("IAM", R.IAM),
    one("RCTL", R.RCTL, { post: (c) => c.rxKickAll() }),
    rw("FCTTV", R.FCTTV),
    // Flow control thresholds: 16-byte granularity (bits 15:4), FCRTL bit 31 = XON enable.
    one("FCRTL", R.FCRTL, { ro: ~0x8000fff0 >>> 0, valid: 0x8000fff0 }), one("FCRTH", R.FCRTH, { ro: ~0xfff0 >>> 0, valid: 0xfff0 }),
    one("TCTL", R.TCTL, { reset: 0xa0 << 4, post: (c) => c.txKickAll() }),
    rw("TCTL_EXT", R.TCTL_EXT), rw("TIPG", R.TIPG),
    rw("LEDCTL", R.LEDCTL, 0x07068302), rw("PBA", R.PBA, 0x40), rw("RXPBS", R.RXPBS, 0x40), rw("TXPBS", R.TXPBS, 0x40),
    one("EEMNGCTL", R.EEMNGCTL, { reset: B.EEMNGCTL_CFG_DONE0, ro: ALL, valid: B.EEMNGCTL_CFG_DONE0 }),
    rw("FRTIMER", R.FRTIMER),
    rw("GPIE", R.GPIE),
    // With VFs enabled the PF's writes and reads of the extended interrupt registers cover only
    // the bits not owned by a VF (c.pfEicrMask()); a VF's bits change through its own mirrors.
    one("EICS", R.EICS, { wo: true, valid: 0, pre: () => 0, post: (c, _i, _s, _o, w) => c.irq.raiseEicr(w & c.pfEicrMask()) }),
    one("EIMS", R.EIMS, { valid: EICR_VALID, pre: (_c, _i, _n, old) => old, post: (c, _i, _s, _o, w) => c.irq.enable(w & c.pfEicrMask()) }),
    one("EIMC", R.EIMC, {
      wo: true,
      valid: 0,
      pre: () => 0,
      post: (c, _i, _s, _o, w) => c.regs.set("EIMS", 0, c.regs.get("EIMS") & ~(w & c.pfEicrMask())),
    }),
    one("EIAC", R.EIAC, { pre: (c, _i, _n, old, w) => (old & ~c.pfEicrMask()) | (w & c.pfEicrMask()) }),
    one("EIAM", R.EIAM, { pre: (c, _i, _n, old, w) => (old & ~c.pfEicrMask()) | (w & c.pfEicrMask()) }),
    one("EICR", R.EICR, {
      valid: EICR_VALID,
      read: (c, _i, s) => {
        const m = c.pfEicrMask();
        c.regs.set("EICR", 0, s & ~m);
        return s & m;
      },
      pre: (c, _i, _n, old, w) => old & ~(w & c.pfEicrMask()),
      post: (c) => c.irq.lowerCheck(),
    }),
    arr("EITR", IGB_SIZES.eicrBits, R.EITR, { ro: ~EITR_VALID >>> 0, valid: EITR_VALID }),
    arr("IVAR0", 8, R.IVAR0),
    rw("IVAR_MISC", R.IVAR_MISC),
    // virtualization and mailbox
    arr("VMBMEM", 16 * P, (i) => R.VMBMEM(0) + 4 * i),
    arr("P2VMAILBOX", P, R.P2VMAILBOX, { valid: B.P2V_VFU | B.P2V_PFU, pre: (c, vf, _n, old, w) => c.pfMailboxWrite(vf, w, old) }),
    arr("V2PMAILBOX", P, R.V2PMAILBOX, {
      reset: B.V2P_RSTI,
      rc: B.V2P_R2C,
      valid: 0xfc,
      pre: (c, vf, _n, old, w) => c.vfMailboxWrite(vf, w, old),
    }),
    one("MBVFICR", R.MBVFICR, { w1c: ALL, valid: 0x00ff00ff }),
    rw("MBVFIMR", R.MBVFIMR),
    one("VFLRE", R.VFLRE, { w1c: ALL, valid: 0xff }),
    one("VFRE", R.VFRE, { post: (c) => c.rxKickAll() }),
    one("VFTE", R.VFTE, { post: (c) => c.txKickAll() }),
    rw("QDE", R.QDE), rw("DTXSWC", R.DTXSWC), rw("LVMMC", R.LVMMC),
    one("WVBR", R.WVBR, { ro: ALL, rc: ALL, valid: 0xffff }),
    rw("DTXCTL", R.DTXCTL),
    arr("VMVIR", P, R.VMVIR),
    rw("RXCSUM", R.RXCSUM, B.RXCSUM_IPOFL | B.RXCSUM_TUOFL), rw("RLPML", R.RLPML, 0x2600), rw("RFCTL", R.RFCTL),
    arr("MTA", 128, R.MTA),
    arr("RAL", IGB_SIZES.rar, R.RAL),
    arr("RAH", IGB_SIZES.rar, R.RAH),
    arr("PSRTYPE", P, R.PSRTYPE),
    arr("VFTA", 128, R.VFTA),
    rw("MRQC", R.MRQC),
    rw("VT_CTL", R.VT_CTL),
    arr("VMOLR", P, R.VMOLR, { reset: 0x80000000 | 0x2600 }), // STRCRC, RLPML 9728 (82576 datasheet)
    rw("RPLOLR", R.RPLOLR),
    // SWSM: a read takes the SMBI semaphore (it reads 0 when free, then 1 until released).
    one("SWSM", R.SWSM, {
      read: (c, _i, s) => {
        c.regs.set("SWSM", 0, s | B.SWSM_SMBI);
        return s;
      },
    }),
    one("FWSM", R.FWSM, { ro: ALL, valid: 0 }),
    rw("SW_FW_SYNC", R.SW_FW_SYNC),
    rw("IOVCTL", R.IOVCTL),
    arr("RETA", 32, R.RETA),
    arr("RSSRK", 10, R.RSSRK),
    arr("VLVF", 32, R.VLVF),
    arr("UTA", 128, R.UTA),
    stat("CRCERRS", R.CRCERRS), stat("MPC", R.MPC), stat("GPRC", R.GPRC), stat("BPRC", R.BPRC), stat("MPRC", R.MPRC),
    stat("GPTC", R.GPTC), stat("GORCL", R.GORCL), stat("GORCH", R.GORCH), stat("GOTCL", R.GOTCL), stat("GOTCH", R.GOTCH),
    stat("RNBC", R.RNBC), stat("ROC", R.ROC), stat("TORL", R.TORL), stat("TORH", R.TORH), stat("TOTL", R.TOTL), stat("TOTH", R.TOTH),
    stat("TPR", R.TPR), stat("TPT", R.TPT), stat("MPTC", R.MPTC), stat("BPTC", R.BPTC),
    ...queueRows(),
    ...vfMirrorRows(),
  ];
}
