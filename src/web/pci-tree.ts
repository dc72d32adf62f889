/**
 * The PCI tree as the guest can reach it now: every routed function (VFs included once the guest
 * set VF Enable), with its IDs, class, BARs as programmed, capabilities from the capability lists,
 * bridges with their bus ranges, and root ports' hotplug slots. Read from config space without side
 * effects (reads only, through the functions themselves, so nothing shows in the register log).
 *
 * Platform-neutral.
 * @module
 */
import type { PciRoot } from "../pci/topology/root-complex.js";
import type { PciFunction } from "../pci/function.js";
import { CLASS_NAMES } from "../pci/lspci.js";

/** One BAR as programmed. */
export interface BarInfo {
  index: number;
  kind: "mem32" | "mem64" | "io";
  size: number;
  /** The address the function decodes now, or undefined (not decoded: memory/IO off, unassigned). */
  address?: number;
}

/** A root port's hotplug slot. */
export interface SlotInfo {
  number: number;
  /** Presence Detect State. */
  present: boolean;
  /** Power Controller Control says on. */
  powered: boolean;
}

/** One function. */
export interface PciNode {
  /** `bb:dd.f`. */
  bdf: string;
  bus: number;
  devfn: number;
  vendorId: number;
  deviceId: number;
  classCode: number;
  /** `Ethernet controller`, `PCI bridge`... */
  className: string;
  /** What nicvisor calls the function (`82576 VF`, `virtio-net`), from its IDs. */
  label: string;
  isVf: boolean;
  bars: BarInfo[];
  /** Capability names, standard then extended, in list order. */
  caps: string[];
  /** For a bridge: its secondary..subordinate buses. */
  buses?: [number, number];
  slot?: SlotInfo;
  /** Functions behind this bridge. */
  children: PciNode[];
}

const CAP_NAMES: Record<number, string> = { 0x01: "Power Management", 0x05: "MSI", 0x09: "Vendor Specific", 0x0d: "Subsystem ID", 0x10: "PCI Express", 0x11: "MSI-X" };
const VIRTIO_CFG: Record<number, string> = { 1: "common cfg", 2: "notify cfg", 3: "ISR", 4: "device cfg", 5: "PCI cfg access" };
const EXT_CAP_NAMES: Record<number, string> = { 0x0001: "AER", 0x0003: "Device Serial Number", 0x000d: "ACS", 0x000e: "ARI", 0x0010: "SR-IOV" };
const LABELS: Record<number, string> = { 0x10c98086: "Intel 82576 (PF)", 0x10ca8086: "Intel 82576 Virtual Function", 0x10411af4: "virtio-net", 0x29c08086: "host bridge", 0x27708086: "host bridge (PCIEXBAR)", 0x00081b36: "host bridge", 0x000c1b36: "PCIe root port", 0x00051b36: "PCI test device" };

const bdfOf = (bus: number, devfn: number): string => `${bus.toString(16).padStart(2, "0")}:${(devfn >>> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;

/** Walks a capability list, at most 48 entries (a looping list ends there). */
function capabilities(fn: PciFunction): { caps: string[]; pcie?: number } {
  const caps: string[] = [];
  let pcie: number | undefined;
  const rd = (reg: number, size: 1 | 2 | 4): number => fn.configRead(reg, size) >>> 0;
  if ((rd(0x06, 2) & 0x10) !== 0) {
    for (let p = rd(0x34, 1) & 0xfc, n = 0; p >= 0x40 && n < 48; p = rd(p + 1, 1) & 0xfc, n++) {
      const id = rd(p, 1);
      if (id === 0x10) pcie = p;
      // virtio's vendor capabilities say which structure they locate (virtio 1.2 4.1.4).
      const virtio = id === 0x09 && fn.options.vendorId === 0x1af4 ? VIRTIO_CFG[rd(p + 3, 1)] : undefined;
      caps.push(virtio !== undefined ? `virtio ${virtio}` : (CAP_NAMES[id] ?? `cap 0x${id.toString(16)}`));
    }
  }
  if (pcie !== undefined && fn.config.size > 256) {
    for (let p = 0x100, n = 0; p >= 0x100 && p < fn.config.size && n < 48; n++) {
      const h = rd(p, 4);
      if (h === 0 || h === 0xffffffff) break;
      const id = h & 0xffff;
      caps.push(EXT_CAP_NAMES[id] ?? `ext cap 0x${id.toString(16)}`);
      p = (h >>> 20) & 0xffc;
      if (p === 0) break;
    }
  }
  return pcie !== undefined ? { caps, pcie } : { caps };
}

function node(bus: number, devfn: number, fn: PciFunction): PciNode {
  const o = fn.options;
  const id = ((o.deviceId << 16) | o.vendorId) >>> 0;
  const cls = o.classCode >>> 8;
  const bars: BarInfo[] = [];
  for (const b of fn.bars) {
    if (b === undefined || bars.some((x) => x.index === b.index)) continue;
    const at = fn.barAddress(b.index);
    bars.push({ index: b.index, kind: b.kind, size: b.size, ...(at !== undefined ? { address: at } : {}) });
  }
  const { caps, pcie } = capabilities(fn);
  const n: PciNode = {
    bdf: bdfOf(bus, devfn), bus, devfn, vendorId: o.vendorId, deviceId: o.deviceId, classCode: o.classCode,
    className: CLASS_NAMES[cls] ?? `class ${cls.toString(16).padStart(4, "0")}`, label: LABELS[id] ?? `${o.vendorId.toString(16)}:${o.deviceId.toString(16)}`,
    isVf: fn.isVf, bars, caps, children: [],
  };
  if ((o.headerType ?? 0) === 1) n.buses = [fn.configRead(0x19, 1) & 0xff, fn.configRead(0x1a, 1) & 0xff];
  if (pcie !== undefined && (fn.configRead(pcie + 2, 2) & 0x100) !== 0) {
    const cap = fn.configRead(pcie + 0x14, 4) >>> 0;
    n.slot = { number: cap >>> 19, present: (fn.configRead(pcie + 0x1a, 2) & 0x40) !== 0, powered: (fn.configRead(pcie + 0x18, 2) & 0x400) === 0 };
  }
  return n;
}

/** The tree: root bus functions, with each bridge's functions as its children. */
export function pciTree(root: PciRoot): PciNode[] {
  const all = root.enumerate().map((r) => node(r.bus, r.devfn, r.fn));
  const top: PciNode[] = [];
  for (const n of all) {
    // The bridge whose bus range holds this function's bus, the narrowest one.
    let parent: PciNode | undefined;
    for (const b of all) {
      if (b === n || b.buses === undefined || b.buses[0] === 0) continue;
      if (n.bus >= b.buses[0] && n.bus <= b.buses[1] && (parent?.buses === undefined || b.buses[0] >= parent.buses[0])) parent = b;
    }
    (parent?.children ?? top).push(n);
  }
  return top;
}
