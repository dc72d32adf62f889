/**
 * Offsets and bits of the PCI configuration header and the capability IDs nicvisor implements
 * (PCI Local Bus 3.0, PCI Express Base 4.0).
 * @module
 */

/** Type 0/1 header offsets. */
export const PCI = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS_PROG: 0x09,
  CACHE_LINE: 0x0c,
  LATENCY: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BAR0: 0x10,
  SUBSYS_VENDOR: 0x2c,
  SUBSYS_ID: 0x2e,
  ROM0: 0x30,
  CAP_PTR: 0x34,
  INT_LINE: 0x3c,
  INT_PIN: 0x3d,
  // type 1
  PRIMARY_BUS: 0x18,
  SECONDARY_BUS: 0x19,
  SUBORDINATE_BUS: 0x1a,
  SEC_LATENCY: 0x1b,
  IO_BASE: 0x1c,
  IO_LIMIT: 0x1d,
  SEC_STATUS: 0x1e,
  MEM_BASE: 0x20,
  MEM_LIMIT: 0x22,
  PREF_BASE: 0x24,
  PREF_LIMIT: 0x26,
  PREF_BASE_UPPER: 0x28,
  PREF_LIMIT_UPPER: 0x2c,
  IO_BASE_UPPER: 0x30,
  IO_LIMIT_UPPER: 0x32,
  ROM1: 0x38,
  BRIDGE_CONTROL: 0x3e,
} as const;

/** Command register bits. */
export const CMD = {
  IO: 1 << 0,
  MEMORY: 1 << 1,
  BUS_MASTER: 1 << 2,
  PARITY: 1 << 6,
  SERR: 1 << 8,
  INTX_DISABLE: 1 << 10,
} as const;

/** Status register bits. */
export const STS = {
  INTERRUPT: 1 << 3,
  CAP_LIST: 1 << 4,
  /** The RW1C error bits: master data parity, signalled/received target abort, received master abort, signalled system error, detected parity. */
  RW1C: 0xf900,
} as const;

/** Bridge Control bits. */
export const BCTL = { SECONDARY_BUS_RESET: 1 << 6 } as const;

/** Standard capability IDs. */
export const CAP_ID = { PM: 0x01, MSI: 0x05, VENDOR: 0x09, PCIE: 0x10, MSIX: 0x11 } as const;

/** Extended capability IDs. */
export const EXT_CAP_ID = { AER: 0x0001, ARI: 0x000e, SRIOV: 0x0010 } as const;
