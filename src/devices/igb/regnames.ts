/**
 * The names of the 82576 model's registers (the non-alias rows of the register table, in table
 * order), as a literal type, so that `regs.get("RCTLL")` fails to compile. `table.ts` is checked
 * against this list when a register file is built (and by a test).
 * @module
 */

/** Every register row name of the PF register table. */
export const IGB_REG_NAMES = [
  "CTRL", "STATUS", "EECD", "EERD", "CTRL_EXT", "MDIC", "FCAL", "FCAH", "FCT", "CONNSW", "VET", "ICR", "ITR",
  "ICS", "IMS", "IMC", "IAM", "RCTL", "FCTTV", "FCRTL", "FCRTH", "TCTL", "TCTL_EXT", "TIPG", "LEDCTL", "PBA",
  "RXPBS", "TXPBS", "EEMNGCTL", "FRTIMER", "GPIE", "EICS", "EIMS", "EIMC", "EIAC", "EIAM", "EICR", "EITR",
  "IVAR0", "IVAR_MISC", "VMBMEM", "P2VMAILBOX", "V2PMAILBOX", "MBVFICR", "MBVFIMR", "VFLRE", "VFRE", "VFTE",
  "QDE", "DTXSWC", "LVMMC", "WVBR", "DTXCTL", "VMVIR", "RXCSUM", "RLPML", "RFCTL", "MTA", "RAL", "RAH",
  "PSRTYPE", "VFTA", "MRQC", "VT_CTL", "VMOLR", "RPLOLR", "SWSM", "FWSM", "SW_FW_SYNC", "IOVCTL", "RETA",
  "RSSRK", "VLVF", "UTA", "CRCERRS", "MPC", "GPRC", "BPRC", "MPRC", "GPTC", "GORCL", "GORCH", "GOTCL",
  "GOTCH", "RNBC", "ROC", "TORL", "TORH", "TOTL", "TOTH", "TPR", "TPT", "MPTC", "BPTC", "RDBAL", "RDBAH",
  "RDLEN", "SRRCTL", "RDH", "RXCTL", "RDT", "RXDCTL", "RQDPC", "TDBAL", "TDBAH", "TDLEN", "TDH", "TXCTL",
  "TDT", "TXDCTL", "TDWBAL", "TDWBAH", "PVTCTRL", "PVFGPRC", "PVFGPTC", "PVFGORC", "PVFGOTC", "PVFMPRC",
  "PVFGPRLBC", "PVFGPTLBC", "PVFGORLBC", "PVFGOTLBC", "PVTEICS", "PVTEIMS", "PVTEIMC", "PVTEIAC", "PVTEIAM",
  "PVTEICR", "VTIVAR", "VTIVAR_MISC",
] as const;

/** A register row name of the 82576 model. */
export type IgbRegName = (typeof IGB_REG_NAMES)[number];
