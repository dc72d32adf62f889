/**
 * Names for what a driver touches: config header registers, the 82576's BAR0 registers (PF and
 * VF), virtio's modern PCI transport regions (common configuration, ISR, device configuration,
 * notifications) and MSI-X tables; and the bits of the registers a person watching a driver
 * bring a NIC up looks at first. Used by the replay's reports and by `nicvisor web`'s register log.
 *
 * Platform-neutral.
 * @module
 */
import { PCI } from "../pci/regs.js";
import { B, R, VR } from "../devices/igb/regs.js";
import { STATUS as VIRTIO_STATUS } from "../devices/virtio/transport-state.js";

/** Vendor and device ID as a config read of offset 0 returns them (device << 16 | vendor). */
export const PCI_ID = { IGB_PF: 0x10c98086, IGB_VF: 0x10ca8086, VIRTIO_NET: 0x10411af4 } as const;

/**
 * A function's identity as {@link barRegisterName} takes it: its own vendor and device IDs (a VF's
 * config space reads 0xFFFF for both, SR-IOV 1.1 3.4.1.1; the model still knows what it is).
 */
export function functionId(fn: { readonly options: { readonly vendorId: number; readonly deviceId: number } } | undefined): number {
  return fn === undefined ? 0 : ((fn.options.deviceId << 16) | fn.options.vendorId) >>> 0;
}

/** Config header names by offset (type 0 first). */
const CFG_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(PCI)) if (typeof v === "number" && !CFG_NAMES.has(v)) CFG_NAMES.set(v, k);
for (let i = 0; i < 6; i++) CFG_NAMES.set(0x10 + 4 * i, `BAR${i}`);

/** Register names by offset from a table of offsets and per-index offset functions (`RDT(3)`). */
function names(table: Record<string, number | ((n: number) => number)>): Map<number, string> {
  const m = new Map<number, string>();
  for (const [k, v] of Object.entries(table)) if (typeof v === "number" && !m.has(v)) m.set(v, k);
  for (let n = 0; n < 16; n++) {
    for (const [k, v] of Object.entries(table)) {
      if (typeof v !== "function") continue;
      const off = v(n);
      if (!m.has(off)) m.set(off, `${k}(${n})`);
    }
  }
  return m;
}
const IGB_NAMES = names(R as unknown as Record<string, number | ((n: number) => number)>);
const IGBVF_NAMES = names(VR as unknown as Record<string, number | ((n: number) => number)>);

/** virtio 1.2 4.1.4.3 common configuration, by offset (nicvisor's transport puts it at BAR4+0). */
const VIRTIO_COMMON: ReadonlyArray<readonly [number, string]> = [
  [0x00, "device_feature_select"], [0x04, "device_feature"], [0x08, "driver_feature_select"], [0x0c, "driver_feature"],
  [0x10, "config_msix_vector"], [0x12, "num_queues"], [0x14, "device_status"], [0x15, "config_generation"],
  [0x16, "queue_select"], [0x18, "queue_size"], [0x1a, "queue_msix_vector"], [0x1c, "queue_enable"],
  [0x1e, "queue_notify_off"], [0x20, "queue_desc_lo"], [0x24, "queue_desc_hi"], [0x28, "queue_driver_lo"],
  [0x2c, "queue_driver_hi"], [0x30, "queue_device_lo"], [0x34, "queue_device_hi"],
];
/** virtio-net device configuration (virtio 1.2 5.1.4), from BAR4+0x2000. */
const VIRTIO_NET_CONFIG: ReadonlyArray<readonly [number, string]> = [
  [0x00, "mac"], [0x06, "status"], [0x08, "max_virtqueue_pairs"], [0x0a, "mtu"], [0x0c, "speed"], [0x10, "duplex"],
];
/** The regions nicvisor's virtio transport declares in its vendor capabilities (see pci-transport.ts). */
const VIRTIO_REGIONS = { common: 0x0000, isr: 0x1000, device: 0x2000, notify: 0x3000 } as const;
/** Notification spacing (`notify_off_multiplier`) of nicvisor's transport. */
const VIRTIO_NOTIFY_MULT = 4;

function within(table: ReadonlyArray<readonly [number, string]>, off: number): string | undefined {
  let best: readonly [number, string] | undefined;
  for (const e of table) if (e[0] <= off) best = e;
  if (best === undefined) return undefined;
  return off === best[0] ? best[1] : `${best[1]}+${off - best[0]}`;
}

/** The name of a config header register, or undefined past the header. */
export function configRegisterName(reg: number): string | undefined {
  return CFG_NAMES.get(reg);
}

/**
 * The name of the register at `off` in BAR `bar` of a function whose ID (offset 0 read as 32
 * bits) is `id`, or undefined when nicvisor has none for it.
 */
export function barRegisterName(id: number, bar: number, off: number): string | undefined {
  id >>>= 0;
  if (id === PCI_ID.IGB_PF || id === PCI_ID.IGB_VF) {
    if (bar === 0) return (id === PCI_ID.IGB_PF ? IGB_NAMES : IGBVF_NAMES).get(off);
    if (bar === 3) return msixName(off, 0x2000);
    return undefined;
  }
  if (id === PCI_ID.VIRTIO_NET) {
    if (bar === 1) return msixName(off, 0x800);
    if (bar !== 4) return undefined;
    if (off < VIRTIO_REGIONS.isr) return within(VIRTIO_COMMON, off);
    if (off < VIRTIO_REGIONS.device) return off === VIRTIO_REGIONS.isr ? "isr_status" : undefined;
    if (off < VIRTIO_REGIONS.notify) return `config.${within(VIRTIO_NET_CONFIG, off - VIRTIO_REGIONS.device) ?? "?"}`;
    const q = (off - VIRTIO_REGIONS.notify) / VIRTIO_NOTIFY_MULT;
    return Number.isInteger(q) ? `notify(queue ${q})` : undefined;
  }
  return undefined;
}

/** MSI-X table entries (16 bytes each) and the PBA at `pba`. */
function msixName(off: number, pba: number): string {
  if (off >= pba) return `PBA+${off - pba}`;
  const f = ["addr_lo", "addr_hi", "data", "vector_ctrl"][(off >> 2) & 3];
  return `MSIX[${off >> 4}].${f}`;
}

type BitNames = ReadonlyArray<readonly [number, string]>;
const bits = (entries: Record<string, number>, pick: string[], prefix: string): BitNames => pick.map((k) => [entries[prefix + k]!, k] as const);
const IGB_BITS: Record<string, BitNames> = {
  CTRL: bits(B, ["FD", "GIO_MASTER_DISABLE", "SLU", "RST", "VME", "PHY_RST"], "CTRL_"),
  STATUS: bits(B, ["FD", "LU", "SPEED_1000", "IOV_MODE", "GIO_MASTER_ENABLE", "PF_RST_DONE"], "STATUS_"),
  ICR: bits(B, ["TXDW", "LSC", "RXDMT0", "RXO", "RXDW", "VMMB", "MDAC", "DRSTA", "INT_ASSERTED"], "ICR_"),
  RCTL: bits(B, ["EN", "UPE", "MPE", "LPE", "BAM", "VFE", "SECRC"], "RCTL_"),
  TCTL: bits(B, ["EN"], "TCTL_"),
  GPIE: bits(B, ["NSICR", "MSIX_MODE", "EIAME", "PBA"], "GPIE_"),
};
for (const k of ["ICS", "IMS", "IMC"]) IGB_BITS[k] = IGB_BITS["ICR"]!;
const VIRTIO_STATUS_BITS: BitNames = Object.entries(VIRTIO_STATUS).map(([k, v]) => [v, k] as const);
const COMMAND_BITS: BitNames = [[0x1, "IO"], [0x2, "MEM"], [0x4, "BUS_MASTER"], [0x400, "INTX_DISABLE"]];

/**
 * The set bits of `value` by name for the registers that have a bit table here (`SLU|FD`), else
 * undefined. `name` is as {@link barRegisterName} or {@link configRegisterName} gives it.
 */
export function decodeBits(name: string, value: number): string | undefined {
  const base = name.replace(/\(\d+\)$/, "");
  const table = base === "device_status" ? VIRTIO_STATUS_BITS : base === "COMMAND" ? COMMAND_BITS : (IGB_BITS[base] ?? (base.startsWith("RXDCTL") ? [[B.RXDCTL_ENABLE, "ENABLE"] as const] : base.startsWith("TXDCTL") ? [[B.TXDCTL_ENABLE, "ENABLE"] as const] : undefined));
  if (table === undefined) return undefined;
  const set = table.filter(([m]) => ((value >>> 0) & m) === m && m !== 0).map(([, n]) => n);
  return set.length === 0 ? "-" : set.join("|");
}
