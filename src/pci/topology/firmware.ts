/**
 * Firmware-style resource assignment, as SeaBIOS does it before an OS boots, for embedders that
 * run a guest without firmware (or a simulated guest): it numbers the buses behind the root
 * ports, sizes every BAR (64-bit BARs, and the VF BARs of SR-IOV capabilities for all TotalVFs),
 * assigns them from the given ranges, programs the root ports' windows around their children,
 * and enables memory and I/O decode and bus mastering.
 *
 * Everything goes through config cycles (`root.configRead` / `root.configWrite`), as firmware's
 * would: it finds functions by their Vendor ID, bridges by their header type, and sizes BARs by
 * writing all ones. It enables neither VFs nor ARI forwarding; that is the OS's part.
 * @module
 */
import { PciResourceError } from "../errors.js";
import type { BarKind } from "../function.js";
import { CMD, EXT_CAP_ID, PCI } from "../regs.js";
import { SRIOV } from "../caps/sriov.js";
import type { PciRoot } from "./root-complex.js";

/** What firmware uses of a root complex: config cycles (a `PciRoot`, or a platform's access half). */
export type ConfigCycles = Pick<PciRoot, "configRead" | "configWrite">;
import type { Window } from "./root-port.js";

/** An address range, `[base, limit]` inclusive. */
export type AddressRange = readonly [number, number];

/** The ranges {@link assignResources} hands out. */
export interface ResourceRanges {
  /** 32-bit memory for non-prefetchable BARs and the ports' memory windows. */
  mmio: AddressRange;
  /** Memory for prefetchable BARs and the ports' prefetchable windows (may lie above 4 GiB); default: `mmio`. */
  prefetchable?: AddressRange;
  /** I/O ports; an I/O BAR without this range is a {@link PciResourceError}. */
  io?: AddressRange;
  /** The first bus number behind the root ports (default 1). */
  busBase?: number;
}

/** A BAR (or, with `vf`, a VF BAR region: TotalVFs × the per-VF size) as assigned. */
export interface AssignedBar {
  bus: number;
  devfn: number;
  bar: number;
  kind: BarKind;
  prefetchable: boolean;
  base: number;
  /** Size in bytes (for a VF BAR region: TotalVFs × `vfSize`). */
  size: number;
  /** Set for the VF BAR `bar` of an SR-IOV capability. */
  vf?: { vfSize: number; totalVfs: number };
}

/** A root port as programmed. */
export interface AssignedPort {
  devfn: number;
  secondaryBus: number;
  subordinateBus: number;
  mem: Window;
  pref: Window;
  io: Window;
}

/** What {@link assignResources} did. */
export interface ResourceAssignment {
  bars: AssignedBar[];
  ports: AssignedPort[];
}

const MIB = 0x10_0000;
const IO_GRAIN = 0x1000;

interface Need {
  bus: number;
  devfn: number;
  bar: number;
  kind: BarKind;
  prefetchable: boolean;
  size: number;
  align: number;
  /** Config offset of the BAR register. */
  reg: number;
  vf?: { vfSize: number; totalVfs: number };
}

/** A bump allocator over one range. */
class Arena {
  private next: number;
  constructor(
    readonly name: string,
    private readonly range: AddressRange | undefined,
  ) {
    this.next = range?.[0] ?? 0;
  }
  take(size: number, align: number): number {
    if (this.range === undefined) throw new PciResourceError(`no ${this.name} range for a resource of 0x${size.toString(16)} bytes`);
    const base = Math.ceil(this.next / align) * align;
    if (base + size - 1 > this.range[1]) {
      throw new PciResourceError(`${this.name} range [0x${this.range[0].toString(16)}, 0x${this.range[1].toString(16)}] cannot hold 0x${size.toString(16)} more bytes`);
    }
    this.next = base + size;
    return base;
  }
}

/** Sizes the BARs of one function (and its VF BARs) through config cycles. */
function sizeFunction(root: ConfigCycles, bus: number, devfn: number, maxBars: number): Need[] {
  const rd = (reg: number, size: 1 | 2 | 4 = 4): number => root.configRead(bus, devfn, reg, size);
  const wr = (reg: number, v: number, size: 1 | 2 | 4 = 4): void => root.configWrite(bus, devfn, reg, size, v);
  const out: Need[] = [];
  const probe = (reg: number, bar: number, vf?: { totalVfs: number }): number => {
    const lo0 = rd(reg);
    wr(reg, 0xffffffff);
    const lo = rd(reg);
    wr(reg, lo0);
    if (lo === 0 || lo === 0xffffffff) return 1;
    if ((lo & 1) !== 0) {
      if (vf !== undefined) return 1; // VF BARs are memory only
      const size = (~(lo & 0xfffffffc) & 0xffff) + 1;
      out.push({ bus, devfn, bar, kind: "io", prefetchable: false, size, align: size, reg });
      return 1;
    }
    const is64 = ((lo >>> 1) & 3) === 2;
    let size = (~(lo & 0xfffffff0) >>> 0) + 1;
    if (is64) {
      const hi0 = rd(reg + 4);
      wr(reg + 4, 0xffffffff);
      const hi = rd(reg + 4);
      wr(reg + 4, hi0);
      if ((lo & 0xfffffff0) === 0) size = (~hi >>> 0) * 0x1_0000_0000 + 0x1_0000_0000;
    }
    const prefetchable = (lo & 8) !== 0;
    const kind: BarKind = is64 ? "mem64" : "mem32";
    if (vf === undefined) out.push({ bus, devfn, bar, kind, prefetchable, size, align: size, reg });
    else if (vf.totalVfs > 0) out.push({ bus, devfn, bar, kind, prefetchable, size: size * vf.totalVfs, align: size, reg, vf: { vfSize: size, totalVfs: vf.totalVfs } });
    return is64 ? 2 : 1;
  };
  for (let i = 0; i < maxBars; ) i += probe(PCI.BAR0 + 4 * i, i);
  // SR-IOV: the VF BARs, for all TotalVFs.
  let off = 0x100;
  for (let n = 0; n < 960 && off >= 0x100; n++) {
    const hdr = rd(off);
    if (hdr === 0 || hdr === 0xffffffff) break;
    if ((hdr & 0xffff) === EXT_CAP_ID.SRIOV) {
      const totalVfs = rd(off + SRIOV.TOTAL_VFS, 2);
      for (let i = 0; i < 6; ) i += probe(off + SRIOV.VF_BAR0 + 4 * i, i, { totalVfs });
      break;
    }
    off = (hdr >>> 20) & 0xffc;
  }
  return out;
}

/** Functions present on `bus` (device numbers 0-31, functions 0-7 of multi-function devices). */
function scanBus(root: ConfigCycles, bus: number): Array<{ devfn: number; bridge: boolean }> {
  const found: Array<{ devfn: number; bridge: boolean }> = [];
  for (let dev = 0; dev < 32; dev++) {
    for (let f = 0; f < 8; f++) {
      const devfn = (dev << 3) | f;
      if (root.configRead(bus, devfn, PCI.VENDOR_ID, 2) === 0xffff) {
        if (f === 0) break;
        continue;
      }
      const ht = root.configRead(bus, devfn, PCI.HEADER_TYPE, 1);
      found.push({ devfn, bridge: (ht & 0x7f) === 1 });
      if (f === 0 && (ht & 0x80) === 0) break;
    }
  }
  return found;
}

/** Packs `needs` (largest alignment first) into one window; returns offsets and the span. */
function pack(needs: Need[]): { offsets: Map<Need, number>; span: number } {
  const offsets = new Map<Need, number>();
  let at = 0;
  for (const n of [...needs].sort((a, b) => b.align - a.align || b.size - a.size)) {
    at = Math.ceil(at / n.align) * n.align;
    offsets.set(n, at);
    at += n.size;
  }
  return { offsets, span: at };
}

/**
 * Numbers buses, sizes and assigns every BAR (VF BARs included), programs the root ports' windows
 * and enables decode and bus mastering, as firmware would.
 * @throws PciResourceError when a range is missing or too small, or bus numbers run out
 * @example
 * ```ts
 * const root = new PciRoot({ interrupts, dma });
 * root.addRootPort(0x08).plug(new PciTestDevice().pf, { coldplug: true });
 * const a = assignResources(root, { mmio: [0xc000_0000, 0xdfff_ffff], io: [0xc000, 0xffff] });
 * root.mmioRead(a.bars[0]!.base, 4); // the device's BAR0
 * ```
 */
export function assignResources(root: ConfigCycles, ranges: ResourceRanges): ResourceAssignment {
  const mem = new Arena("memory", ranges.mmio);
  const pref = ranges.prefetchable === undefined ? mem : new Arena("prefetchable memory", ranges.prefetchable);
  const io = new Arena("I/O", ranges.io);
  let bus = ranges.busBase ?? 1;
  const bars: AssignedBar[] = [];
  const ports: AssignedPort[] = [];
  const place = (n: Need, base: number): void => {
    root.configWrite(n.bus, n.devfn, n.reg, 4, base % 0x1_0000_0000);
    if (n.kind === "mem64") root.configWrite(n.bus, n.devfn, n.reg + 4, 4, Math.floor(base / 0x1_0000_0000));
    bars.push({ bus: n.bus, devfn: n.devfn, bar: n.bar, kind: n.kind, prefetchable: n.prefetchable, base, size: n.size, ...(n.vf !== undefined ? { vf: n.vf } : {}) });
  };
  const enable = (b: number, devfn: number, needs: Need[], bridge: boolean): void => {
    let cmd = root.configRead(b, devfn, PCI.COMMAND, 2) | CMD.BUS_MASTER;
    if (bridge || needs.some((n) => n.kind !== "io" && n.vf === undefined)) cmd |= CMD.MEMORY;
    if (bridge || needs.some((n) => n.kind === "io")) cmd |= CMD.IO;
    root.configWrite(b, devfn, PCI.COMMAND, 2, cmd);
  };
  const rootEndpoints: Array<{ devfn: number; needs: Need[] }> = [];
  for (const { devfn, bridge } of scanBus(root, 0)) {
    if (!bridge) {
      rootEndpoints.push({ devfn, needs: sizeFunction(root, 0, devfn, 6) });
      continue;
    }
    if (bus > 255) throw new PciResourceError("bus numbers ran out");
    const sec = bus++;
    root.configWrite(0, devfn, PCI.PRIMARY_BUS, 1, 0);
    root.configWrite(0, devfn, PCI.SECONDARY_BUS, 1, sec);
    root.configWrite(0, devfn, PCI.SUBORDINATE_BUS, 1, sec);
    const children = scanBus(root, sec).map((c) => ({ ...c, needs: sizeFunction(root, sec, c.devfn, c.bridge ? 2 : 6) }));
    const all = children.flatMap((c) => c.needs);
    const groups = {
      mem: all.filter((n) => n.kind !== "io" && !n.prefetchable),
      pref: all.filter((n) => n.kind !== "io" && n.prefetchable),
      io: all.filter((n) => n.kind === "io"),
    };
    const windowOf = (needs: Need[], arena: Arena, grain: number): Window => {
      if (needs.length === 0) return undefined;
      const { offsets, span } = pack(needs);
      const size = Math.ceil(span / grain) * grain;
      const base = arena.take(size, Math.max(grain, ...needs.map((n) => n.align)));
      for (const [n, o] of offsets) place(n, base + o);
      return [base, base + size - 1];
    };
    const w: AssignedPort = { devfn, secondaryBus: sec, subordinateBus: sec, mem: windowOf(groups.mem, mem, MIB), pref: windowOf(groups.pref, pref, MIB), io: windowOf(groups.io, io, IO_GRAIN) };
    const wr = (reg: number, size: 1 | 2 | 4, v: number): void => root.configWrite(0, devfn, reg, size, v);
    // A closed window has base above limit.
    wr(PCI.MEM_BASE, 2, w.mem === undefined ? 0xfff0 : (w.mem[0] >>> 16) & 0xfff0);
    wr(PCI.MEM_LIMIT, 2, w.mem === undefined ? 0 : (w.mem[1] >>> 16) & 0xfff0);
    wr(PCI.PREF_BASE, 2, w.pref === undefined ? 0xfff0 : Math.floor(w.pref[0] / 0x10000) & 0xfff0);
    wr(PCI.PREF_LIMIT, 2, w.pref === undefined ? 0 : Math.floor(w.pref[1] / 0x10000) & 0xfff0);
    wr(PCI.PREF_BASE_UPPER, 4, w.pref === undefined ? 0 : Math.floor(w.pref[0] / 0x1_0000_0000));
    wr(PCI.PREF_LIMIT_UPPER, 4, w.pref === undefined ? 0 : Math.floor(w.pref[1] / 0x1_0000_0000));
    wr(PCI.IO_BASE, 1, w.io === undefined ? 0xf0 : (w.io[0] >>> 8) & 0xf0);
    wr(PCI.IO_LIMIT, 1, w.io === undefined ? 0 : (w.io[1] >>> 8) & 0xf0);
    wr(PCI.IO_BASE_UPPER, 2, w.io === undefined ? 0 : w.io[0] >>> 16);
    wr(PCI.IO_LIMIT_UPPER, 2, w.io === undefined ? 0 : w.io[1] >>> 16);
    enable(0, devfn, [], true);
    for (const c of children) enable(sec, c.devfn, c.needs, c.bridge);
    ports.push(w);
  }
  for (const e of rootEndpoints) {
    for (const n of [...e.needs].sort((a, b) => b.align - a.align)) place(n, (n.kind === "io" ? io : n.prefetchable ? pref : mem).take(n.size, n.align));
    enable(0, e.devfn, e.needs, false);
  }
  return { bars, ports };
}
