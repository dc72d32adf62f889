/**
 * The slot bases of the registers the 82576's per-frame paths read and write, resolved once per
 * device from its register table, so those paths index `regs.slots` instead of looking a name up.
 * @module
 */
import type { RegFile } from "./regfile.js";
import type { IgbRegName } from "./regnames.js";

/**
 * Slot bases (in `regs.slots`) of the registers the per-frame paths read. Written as one object
 * literal on purpose: V8 keeps a literal's properties in fast mode, while an object filled in a
 * loop with computed keys turns into a dictionary past a dozen properties, and every `hot.X`
 * becomes a hash lookup.
 */
export function hotSlots(regs: RegFile<unknown, IgbRegName>) {
  const at = (n: IgbRegName): number => regs.slotOf(n);
  return {
    TCTL: at("TCTL"),
    TXDCTL: at("TXDCTL"),
    VFTE: at("VFTE"),
    TDLEN: at("TDLEN"),
    TDBAL: at("TDBAL"),
    TDBAH: at("TDBAH"),
    TDH: at("TDH"),
    TDT: at("TDT"),
    TDWBAL: at("TDWBAL"),
    TDWBAH: at("TDWBAH"),
    VMVIR: at("VMVIR"),
    RAL: at("RAL"),
    RAH: at("RAH"),
    MRQC: at("MRQC"),
    RSSRK: at("RSSRK"),
    RETA: at("RETA"),
    RCTL: at("RCTL"),
    VT_CTL: at("VT_CTL"),
    VMOLR: at("VMOLR"),
    VLVF: at("VLVF"),
    VFRE: at("VFRE"),
    VFTA: at("VFTA"),
    MTA: at("MTA"),
    DTXSWC: at("DTXSWC"),
    WVBR: at("WVBR"),
    VET: at("VET"),
    CTRL: at("CTRL"),
    RDBAL: at("RDBAL"),
    RDBAH: at("RDBAH"),
    RDLEN: at("RDLEN"),
    SRRCTL: at("SRRCTL"),
    RDH: at("RDH"),
    RDT: at("RDT"),
    RXDCTL: at("RXDCTL"),
    RQDPC: at("RQDPC"),
    RLPML: at("RLPML"),
    RXCSUM: at("RXCSUM"),
    VTIVAR: at("VTIVAR"),
    IVAR0: at("IVAR0"),
    GPIE: at("GPIE"),
    GPRC: at("GPRC"),
    TPR: at("TPR"),
    GORCL: at("GORCL"),
    GORCH: at("GORCH"),
    TORL: at("TORL"),
    TORH: at("TORH"),
    BPRC: at("BPRC"),
    MPRC: at("MPRC"),
    MPC: at("MPC"),
    ROC: at("ROC"),
    RNBC: at("RNBC"),
    GPTC: at("GPTC"),
    TPT: at("TPT"),
    GOTCL: at("GOTCL"),
    GOTCH: at("GOTCH"),
    TOTL: at("TOTL"),
    TOTH: at("TOTH"),
    BPTC: at("BPTC"),
    MPTC: at("MPTC"),
    PVFGPRC: at("PVFGPRC"),
    PVFGORC: at("PVFGORC"),
    PVFMPRC: at("PVFMPRC"),
    PVFGPRLBC: at("PVFGPRLBC"),
    PVFGORLBC: at("PVFGORLBC"),
    PVFGPTC: at("PVFGPTC"),
    PVFGOTC: at("PVFGOTC"),
    PVFGPTLBC: at("PVFGPTLBC"),
    PVFGOTLBC: at("PVFGOTLBC"),
  } as const;
}

/** The slot bases {@link IgbCore.hot} keeps. */
export type IgbHotSlots = Readonly<ReturnType<typeof hotSlots>>;

/** A register whose slot base {@link IgbCore.hot} keeps. */
export type HotReg = keyof IgbHotSlots;

/** Registers whose slot bases {@link IgbCore.hot} keeps for the per-frame paths. */
export const HOT_REGS: readonly HotReg[] = ["TCTL", "TXDCTL", "VFTE", "TDLEN", "TDBAL", "TDBAH", "TDH", "TDT", "TDWBAL", "TDWBAH", "VMVIR", "RAL", "RAH", "MRQC", "RSSRK", "RETA", "RCTL", "VT_CTL", "VMOLR", "VLVF", "VFRE", "VFTA", "MTA", "DTXSWC", "WVBR", "VET", "CTRL", "RDBAL", "RDBAH", "RDLEN", "SRRCTL", "RDH", "RDT", "RXDCTL", "RQDPC", "RLPML", "RXCSUM", "VTIVAR", "IVAR0", "GPIE", "GPRC", "TPR", "GORCL", "GORCH", "TORL", "TORH", "BPRC", "MPRC", "MPC", "ROC", "RNBC", "GPTC", "TPT", "GOTCL", "GOTCH", "TOTL", "TOTH", "BPTC", "MPTC", "PVFGPRC", "PVFGORC", "PVFMPRC", "PVFGPRLBC", "PVFGORLBC", "PVFGPTC", "PVFGOTC", "PVFGPTLBC", "PVFGOTLBC"];

