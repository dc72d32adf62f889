/**
 * The register slot layout of igb state version 1, frozen: version 1 saved the register file as
 * one array of slots in the order the register table of commit 254bf18 allocated them (each row
 * that is not an alias, in table order, `count` slots each). This list is that order; it must
 * never change, whatever becomes of the table. The v1 -> v2 upgrade maps slots to names with it.
 * @module
 */

/** [register name, element count] in v1 slot order (1217 slots in all). */
export const IGB_V1_SLOT_LAYOUT: readonly (readonly [string, number])[] = [
  ["CTRL", 1], ["STATUS", 1], ["EECD", 1], ["EERD", 1], ["CTRL_EXT", 1], ["MDIC", 1], ["FCAL", 1],
  ["FCAH", 1], ["FCT", 1], ["CONNSW", 1], ["VET", 1], ["ICR", 1], ["ITR", 1], ["ICS", 1], ["IMS", 1],
  ["IMC", 1], ["IAM", 1], ["RCTL", 1], ["FCTTV", 1], ["FCRTL", 1], ["FCRTH", 1], ["TCTL", 1],
  ["TCTL_EXT", 1], ["TIPG", 1], ["LEDCTL", 1], ["PBA", 1], ["RXPBS", 1], ["TXPBS", 1], ["EEMNGCTL", 1],
  ["FRTIMER", 1], ["GPIE", 1], ["EICS", 1], ["EIMS", 1], ["EIMC", 1], ["EIAC", 1], ["EIAM", 1], ["EICR", 1],
  ["EITR", 25], ["IVAR0", 8], ["IVAR_MISC", 1], ["VMBMEM", 128], ["P2VMAILBOX", 8], ["V2PMAILBOX", 8],
  ["MBVFICR", 1], ["MBVFIMR", 1], ["VFLRE", 1], ["VFRE", 1], ["VFTE", 1], ["QDE", 1], ["DTXSWC", 1],
  ["LVMMC", 1], ["WVBR", 1], ["DTXCTL", 1], ["VMVIR", 8], ["RXCSUM", 1], ["RLPML", 1], ["RFCTL", 1],
  ["MTA", 128], ["RAL", 24], ["RAH", 24], ["PSRTYPE", 8], ["VFTA", 128], ["MRQC", 1], ["VT_CTL", 1],
  ["VMOLR", 8], ["RPLOLR", 1], ["SWSM", 1], ["FWSM", 1], ["SW_FW_SYNC", 1], ["IOVCTL", 1], ["RETA", 32],
  ["RSSRK", 10], ["VLVF", 32], ["UTA", 128], ["CRCERRS", 1], ["MPC", 1], ["GPRC", 1], ["BPRC", 1],
  ["MPRC", 1], ["GPTC", 1], ["GORCL", 1], ["GORCH", 1], ["GOTCL", 1], ["GOTCH", 1], ["RNBC", 1], ["ROC", 1],
  ["TORL", 1], ["TORH", 1], ["TOTL", 1], ["TOTH", 1], ["TPR", 1], ["TPT", 1], ["MPTC", 1], ["BPTC", 1],
  ["RDBAL", 16], ["RDBAH", 16], ["RDLEN", 16], ["SRRCTL", 16], ["RDH", 16], ["RXCTL", 16], ["RDT", 16],
  ["RXDCTL", 16], ["RQDPC", 16], ["TDBAL", 16], ["TDBAH", 16], ["TDLEN", 16], ["TDH", 16], ["TXCTL", 16],
  ["TDT", 16], ["TXDCTL", 16], ["TDWBAL", 16], ["TDWBAH", 16], ["PVTCTRL", 8], ["PVFGPRC", 8],
  ["PVFGPTC", 8], ["PVFGORC", 8], ["PVFGOTC", 8], ["PVFMPRC", 8], ["PVFGPRLBC", 8], ["PVFGPTLBC", 8],
  ["PVFGORLBC", 8], ["PVFGOTLBC", 8], ["PVTEICS", 8], ["PVTEIMS", 8], ["PVTEIMC", 8], ["PVTEIAC", 8],
  ["PVTEIAM", 8], ["PVTEICR", 8], ["VTIVAR", 8], ["VTIVAR_MISC", 8],
];

/** Slots in a v1 register state. */
export const IGB_V1_SLOTS = 1217;
