/**
 * The PCI root complex: a host bridge at 00:00.0, functions on the root bus, PCIe root ports with
 * their slots, config routing (what ECAM and conf1 reach), and memory and I/O dispatch to the BAR
 * that decodes an address.
 *
 * Config routing: bus 0 holds the root-bus functions. A request for a root port's secondary bus
 * reaches the device in its slot: only device 0 unless the port has ARI Forwarding enabled, then
 * any function number (VFs at routing IDs beyond function 7 need that). Live VFs appear at the
 * routing IDs their PF's SR-IOV capability computes.
 *
 * Dispatch: a sorted range table is rebuilt lazily after any effect that can change decode (BAR
 * moved, Command, bridge windows or bus numbers, VF Enable/MSE, FLR, hotplug). Functions behind a
 * root port decode only inside the port's windows while it forwards memory/I/O. A hit on nothing
 * reads all ones and a write to nothing is dropped.
 * @module
 */
import { ALL_ONES } from "../config-space.js";
import type { StateType } from "../../state/versioned.js";
import type { AccessSize, PciEffect } from "../function.js";
import { PciFunction } from "../function.js";
import type { DmaSpace, InterruptSink } from "../interfaces.js";
import { RootPort, type RootPortOptions, type Window } from "./root-port.js";
import { pciRootStateType, rootPath, type PciRootState, type RootShape, type TopologyParseOptions } from "./topology-state.js";

/** A routed function. */
export interface RoutedFunction {
  bus: number;
  devfn: number;
  fn: PciFunction;
}

/** A listener of config-write effects (the VMM learns of BAR moves this way). */
export type EffectListener = (fn: PciFunction, effect: PciEffect) => void;

/** Options of the root complex. */
export interface PciRootOptions {
  /** Where MSI and INTx go. */
  interrupts: InterruptSink;
  /** Guest memory for DMA. */
  dma: DmaSpace;
  /** Host bridge ids: default 8086:29c0 (Q35 MCH). */
  hostBridge?: { vendorId: number; deviceId: number; revision?: number };
  /**
   * If set, the host bridge exposes an Intel 945-style PCIEXBAR at config 0x48 announcing ECAM at
   * this base (Linux finds ECAM this way even without ACPI: its `pci_mmcfg_intel_945` probe). Use
   * with host bridge ids 8086:2770.
   */
  pciexbar?: { base: number; buses: 64 | 128 | 256 };
}

// Kept here too: code written against the version 1 API imports the state type from this module.
export type { PciRootState } from "./topology-state.js";

interface Range {
  base: number;
  end: number; // exclusive
  fn: PciFunction;
  bar: number;
}

/** The root complex. See the module documentation. */
export class PciRoot {
  /** The host bridge function (00:00.0). */
  readonly hostBridge: PciFunction;
  private readonly bus0 = new Map<number, PciFunction>();
  private readonly ports: Array<{ devfn: number; port: RootPort }> = [];
  private readonly listeners: EffectListener[] = [];
  private dirty = true;
  private routes = new Map<number, PciFunction>();
  private mem: Range[] = [];
  private io: Range[] = [];
  private lastMem: Range | undefined;
  /** Memory and I/O accesses that hit no BAR (answered all ones, or dropped). */
  unclaimed = 0;

  constructor(private readonly opts: PciRootOptions) {
    const hb = new PciFunction({
      vendorId: opts.hostBridge?.vendorId ?? 0x8086,
      deviceId: opts.hostBridge?.deviceId ?? 0x29c0,
      revision: opts.hostBridge?.revision ?? 0,
      classCode: 0x060000,
      express: false,
    });
    if (opts.pciexbar !== undefined) {
      const len = { 256: 0, 128: 1, 64: 2 }[opts.pciexbar.buses];
      hb.config.set32(0x48, (opts.pciexbar.base | (len << 1) | 1) >>> 0);
      hb.config.checkBytes(0x48, 4);
    }
    this.hostBridge = hb;
    this.addFunction(0, hb);
  }

  /** Adds a function to the root bus at `devfn`. */
  addFunction(devfn: number, fn: PciFunction): void {
    if (!Number.isInteger(devfn) || devfn < 0 || devfn > 255 || this.bus0.has(devfn)) throw new Error(`devfn ${devfn} taken or invalid`);
    this.bus0.set(devfn, fn);
    fn.attach(devfn, this.opts.interrupts, this.opts.dma);
    this.dirty = true;
  }

  /** Adds a root port at `devfn` on the root bus and returns it. */
  addRootPort(devfn: number, opts: RootPortOptions = {}): RootPort {
    const port = new RootPort({ portNumber: this.ports.length + 1, ...opts });
    this.addFunction(devfn, port.fn);
    port.onChange = () => {
      this.attachSlot(port);
      this.dirty = true;
    };
    this.ports.push({ devfn, port });
    return port;
  }

  /** The root ports. */
  get rootPorts(): readonly RootPort[] {
    return this.ports.map((p) => p.port);
  }

  /** Registers a listener of config-write effects. */
  onEffect(l: EffectListener): () => void {
    this.listeners.push(l);
    return () => {
      const i = this.listeners.indexOf(l);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private attachSlot(port: RootPort): void {
    const sec = port.secondaryBus;
    port.functions.forEach((f, i) => {
      if (f.interrupts === undefined || f.rid !== ((sec << 8) | i)) f.attach((sec << 8) | i, this.opts.interrupts, this.opts.dma);
    });
  }

  /** Every function the guest can currently reach, in routing-ID order. */
  enumerate(): RoutedFunction[] {
    this.rebuild();
    return [...this.routes.entries()].sort((a, b) => a[0] - b[0]).map(([rid, fn]) => ({ bus: rid >>> 8, devfn: rid & 0xff, fn }));
  }

  /** The function at `bus:devfn` as config requests reach it, or undefined. */
  lookup(bus: number, devfn: number): PciFunction | undefined {
    this.rebuild();
    return this.routes.get(((bus & 0xff) << 8) | (devfn & 0xff));
  }

  // --- config space ---

  /** Config read (what ECAM and conf1 decode to). Never throws; nothing there reads all ones. */
  configRead(bus: number, devfn: number, reg: number, size: AccessSize): number {
    const fn = this.lookup(bus, devfn);
    return fn === undefined ? ALL_ONES[size]! : fn.configRead(reg, size);
  }

  /** Config write; effects are applied here and passed to listeners. Never throws. */
  configWrite(bus: number, devfn: number, reg: number, size: AccessSize, value: number): void {
    const fn = this.lookup(bus, devfn);
    if (fn === undefined) return;
    const effects = fn.configWrite(reg, size, value);
    if (effects.length === 0) return;
    this.dirty = true;
    for (const e of effects) {
      if (e.kind === "decodeChanged" || e.kind === "vfEnable" || e.kind === "flr" || e.kind === "secondaryBusReset") {
        for (const p of this.ports) if (p.port.fn === fn) this.attachSlot(p.port);
      }
      for (const l of this.listeners) {
        try {
          l(fn, e);
        } catch {
          // a listener's bug must not surface in the guest's config write
        }
      }
    }
  }

  // --- memory and I/O dispatch ---

  private findMem(addr: number): Range | undefined {
    if (this.dirty) this.rebuild();
    const last = this.lastMem;
    if (last !== undefined && addr >= last.base && addr < last.end) return last;
    const r = search(this.mem, addr);
    if (r !== undefined) this.lastMem = r;
    return r;
  }

  /** Memory read of 1, 2 or 4 bytes. */
  mmioRead(addr: number, size: AccessSize): number {
    const r = this.findMem(addr);
    if (r === undefined || addr + size > r.end) {
      this.unclaimed++;
      return ALL_ONES[size]!;
    }
    return r.fn.barRead(r.bar, addr - r.base, size);
  }

  /** Memory write of 1, 2 or 4 bytes. */
  mmioWrite(addr: number, size: AccessSize, value: number): void {
    const r = this.findMem(addr);
    if (r === undefined || addr + size > r.end) {
      this.unclaimed++;
      return;
    }
    r.fn.barWrite(r.bar, addr - r.base, size, value);
  }

  /** 8-byte memory read, as two 4-byte reads (low dword first). */
  mmioRead64(addr: number): bigint {
    const lo = this.mmioRead(addr, 4);
    const hi = this.mmioRead(addr + 4, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** 8-byte memory write, as two 4-byte writes (low dword first). */
  mmioWrite64(addr: number, value: bigint): void {
    this.mmioWrite(addr, 4, Number(value & 0xffffffffn));
    this.mmioWrite(addr + 4, 4, Number((value >> 32n) & 0xffffffffn));
  }

  /** I/O port read. */
  ioRead(port: number, size: AccessSize): number {
    if (this.dirty) this.rebuild();
    const r = search(this.io, port);
    if (r === undefined || port + size > r.end) return ALL_ONES[size]!;
    return r.fn.barRead(r.bar, port - r.base, size);
  }

  /** I/O port write. */
  ioWrite(port: number, size: AccessSize, value: number): void {
    if (this.dirty) this.rebuild();
    const r = search(this.io, port);
    if (r === undefined || port + size > r.end) return;
    r.fn.barWrite(r.bar, port - r.base, size, value);
  }

  /** The memory ranges currently decoded (for tests and tools). */
  memoryMap(): Array<{ base: number; size: number; rid: number; bar: number }> {
    if (this.dirty) this.rebuild();
    return this.mem.map((r) => ({ base: r.base, size: r.end - r.base, rid: r.fn.rid, bar: r.bar }));
  }

  /** Marks the routing and dispatch tables stale (after a device-side change). */
  invalidate(): void {
    this.dirty = true;
  }

  private rebuild(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastMem = undefined;
    const routes = new Map<number, PciFunction>();
    const mem: Range[] = [];
    const io: Range[] = [];
    const addFn = (rid: number, fn: PciFunction, windows?: { mem: Window[]; io: Window }): void => {
      if (rid < 0 || rid > 0xffff || routes.has(rid)) return;
      routes.set(rid, fn);
      if (fn.isVf && (fn.rid !== rid || fn.interrupts === undefined)) fn.attach(rid, this.opts.interrupts, this.opts.dma);
      for (let i = 0; i < 6; i++) {
        const decl = fn.bars[i];
        const base = fn.barAddress(i);
        if (decl === undefined || base === undefined) continue;
        const size = fn.isVf ? (fn.pf!.sriov?.vfBarSize(i) ?? decl.size) : decl.size;
        const end = base + size;
        if (windows !== undefined) {
          const ws = decl.kind === "io" ? [windows.io] : windows.mem;
          if (!ws.some((w) => w !== undefined && base >= w[0] && end - 1 <= w[1])) continue;
        }
        (decl.kind === "io" ? io : mem).push({ base, end, fn, bar: i });
      }
      const sriov = fn.sriov;
      if (sriov !== undefined) for (const { vf, rid: vrid } of sriov.liveVfs()) addFn(vrid, vf, windows);
    };
    for (const [devfn, fn] of this.bus0) addFn(devfn, fn);
    for (const { port } of this.ports) {
      const sec = port.secondaryBus;
      if (sec === 0 || sec > port.subordinateBus) continue;
      const windows = { mem: [port.memWindow(), port.prefWindow()], io: port.ioWindow() };
      const fns = port.reachable();
      fns.forEach((fn, i) => {
        if (i > 7 && !port.ariForwarding) return;
        fn.rid = (sec << 8) | i;
        addFn(fn.rid, fn, windows);
      });
      if (!port.ariForwarding) {
        // Without ARI forwarding a downstream port only passes device 0 of its secondary bus.
        for (const rid of [...routes.keys()]) if (rid >>> 8 === sec && (rid & 0xf8) !== 0) routes.delete(rid);
      }
    }
    mem.sort((a, b) => a.base - b.base);
    io.sort((a, b) => a.base - b.base);
    this.routes = routes;
    this.mem = mem;
    this.io = io;
  }

  // --- save / restore ---

  /**
   * Saves every root-bus function, every root port and its slot's occupancy, and (unless
   * `slotFunctions` is false, when they travel with their devices) the slot functions' states.
   * Device models save their own state.
   */
  save(opts: { slotFunctions?: boolean } = {}): PciRootState {
    const shape = this.shape();
    const functions: PciRootState["functions"] = {};
    for (const [at, fn] of shape.functions) functions[at] = fn.save();
    const ports: PciRootState["ports"] = {};
    for (const { path, port } of shape.ports) ports[path] = port.save(opts);
    return { version: 2, functions, ports };
  }

  /** The parser of this root complex's saved state (versions 1 and 2); see `topology-state.ts`. */
  get stateType(): StateType<PciRootState> {
    return pciRootStateType(this.shape());
  }

  /** A parser with options (slot function states required or refused). */
  stateTypeWith(opts: TopologyParseOptions): StateType<PciRootState> {
    return pciRootStateType(this.shape(), opts);
  }

  /** The root-bus functions and ports by address, as the parser sees them. */
  private shape(): RootShape {
    const functions = new Map<string, PciFunction>();
    for (const [devfn, fn] of this.bus0) if (!this.ports.some((p) => p.port.fn === fn)) functions.set(pathOf(devfn), fn);
    return { functions, ports: this.ports.map(({ devfn, port }) => ({ path: pathOf(devfn), port })) };
  }

  /**
   * Applies a state from {@link stateType}'s parser onto this root complex (built like the one
   * that saved it: the parser checked that). No failure point.
   */
  restore(state: PciRootState): void {
    for (const [devfn, fn] of this.bus0) {
      const s = state.functions[pathOf(devfn)];
      if (s !== undefined && !this.ports.some((p) => p.port.fn === fn)) fn.restore(s);
    }
    for (const { devfn, port } of this.ports) {
      const s = state.ports[pathOf(devfn)];
      if (s !== undefined) port.restore(s);
      this.attachSlot(port);
    }
    this.dirty = true;
  }
}

const pathOf = rootPath;

function search(ranges: Range[], addr: number): Range | undefined {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = ranges[mid]!;
    if (addr < r.base) hi = mid - 1;
    else if (addr >= r.end) lo = mid + 1;
    else return r;
  }
  return undefined;
}

