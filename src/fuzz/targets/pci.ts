/**
 * Target `pci`: the PCI core. A root complex with three root ports, the PCI test device with 8 VFs
 * in the first slot and one with 3 VFs in the second; random config reads and writes of every
 * function (VFs included) at capability registers and at random offsets and sizes, BAR sizing,
 * BAR and MSI-X table/PBA accesses, NumVFs and VF Enable toggles, FLR, secondary bus reset,
 * interleaved with firmware-style enumeration.
 *
 * Checks: no exception out of a config or memory handler (nor swallowed by `PciFunction`); an
 * operation aimed at one function leaves every function outside its reach unchanged (a PF reaches
 * its VFs, a root port what sits behind it); the test device never does DMA; every VF header
 * reads Vendor ID 0xFFFF; no more VFs live than TotalVFs.
 * @module
 */
import { FlatMemory } from "../../devices/igb/testing.js";
import type { PciFunction } from "../../pci/function.js";
import type { InterruptSink } from "../../pci/interfaces.js";
import { PciTestDevice } from "../../pci/test-device.js";
import { PciRoot } from "../../pci/topology/root-complex.js";
import type { FuzzInstance, FuzzOp, FuzzTarget, Reporter } from "../engine.js";
import { configHash, DmaRecorder, hashNumbers, watchBarHandlers } from "../probes.js";
import type { Rng } from "../rng.js";
import { firmwareSetup, interestingOffsets, MMIO_BASE } from "../setup.js";

/** Picks a config access aimed at a live function (or, sometimes, at nothing). */
export function genConfigOp(rng: Rng, root: PciRoot, write: boolean): FuzzOp {
  const fns = root.enumerate();
  let bus: number;
  let devfn: number;
  let fn: PciFunction | undefined;
  if (fns.length > 0 && rng.chance(0.92)) {
    const r = rng.pick(fns);
    bus = r.bus;
    devfn = r.devfn;
    fn = r.fn;
  } else {
    bus = rng.below(6);
    devfn = rng.below(256);
  }
  const size = rng.size();
  let reg = fn !== undefined && rng.chance(0.75) ? rng.pick(interestingOffsets(fn)) + rng.below(4) : rng.below(4096);
  if (rng.chance(0.9)) reg &= ~(size - 1);
  return write ? ["cw", bus, devfn, reg, size, rng.value()] : ["cr", bus, devfn, reg, size];
}

/** Picks a memory access: mostly inside a decoded BAR, sometimes anywhere. */
export function genMmioOp(rng: Rng, root: PciRoot, write: boolean): FuzzOp {
  const map = root.memoryMap();
  const size = rng.size();
  let addr: number;
  if (map.length > 0 && rng.chance(0.85)) {
    const m = rng.pick(map);
    // MSI-X tables and PBAs sit at the start and in the middle of small BARs: aim there often
    const off = rng.chance(0.3) ? rng.below(64) : rng.chance(0.2) ? (m.size >>> 1) + rng.below(64) : rng.below(m.size);
    addr = m.base + off;
  } else {
    addr = rng.pick([rng.below(0x10_0000), MMIO_BASE + rng.below(0x400_0000), rng.u32(), 0xffff_fffc]);
  }
  if (rng.chance(0.9)) addr -= addr % size;
  return write ? ["mw", addr, size, rng.value()] : ["mr", addr, size];
}

/**
 * The functions among `fns` whose decoded BARs (per the root's current map) hold `addr`. A guest
 * may program BARs that overlap; the access reaches one of them, and all of them are its own. A VF
 * that config requests cannot reach (no ARI forwarding) still decodes memory, so the match is by
 * routing ID and BAR address, not through config routing.
 */
export function functionsAt(root: PciRoot, fns: readonly PciFunction[], addr: number): PciFunction[] {
  const hits = root.memoryMap().filter((r) => addr >= r.base && addr < r.base + r.size);
  return fns.filter((f) => hits.some((m) => f.rid === m.rid && f.barAddress(m.bar) === m.base));
}

/** Performs a primitive PCI operation on `root`; returns false for kinds it does not know. */
export function applyPciOp(root: PciRoot, op: FuzzOp): boolean {
  const [k, a = 0, b = 0, c = 0, d = 0, e = 0] = op;
  const sz = (x: number): 1 | 2 | 4 => (x === 1 || x === 2 ? x : 4);
  switch (k) {
    case "cr": root.configRead(a, b, c, sz(d)); return true;
    case "cw": root.configWrite(a, b, c, sz(d), e); return true;
    case "mr": root.mmioRead(a, sz(b)); return true;
    case "mw": root.mmioWrite(a, sz(b), c); return true;
    case "ir": root.ioRead(a, sz(b)); return true;
    case "iw": root.ioWrite(a, sz(b), c); return true;
    default: return false;
  }
}

/**
 * Which functions an operation may legitimately change: the function it reaches, a PF's VFs, and
 * everything behind a root port. `undefined` = anything (a macro operation).
 */
export function reachOf(root: PciRoot, fns: readonly PciFunction[], op: FuzzOp): Set<PciFunction> | undefined {
  const [k, a = 0, b = 0] = op;
  if (k === "mw" || k === "mr") return new Set(functionsAt(root, fns, a));
  if (k === "iw" || k === "ir") return new Set();
  if (k !== "cw" && k !== "cr") return undefined;
  const fn = root.lookup(a, b);
  const out = new Set<PciFunction>();
  if (fn === undefined) return out;
  out.add(fn);
  if (k === "cw") {
    for (const vf of fn.sriov?.vfs ?? []) out.add(vf);
    const port = root.rootPorts.find((p) => p.fn === fn);
    for (const f of port?.functions ?? []) {
      out.add(f);
      for (const vf of f.sriov?.vfs ?? []) out.add(vf);
    }
  }
  return out;
}

class PciInstance implements FuzzInstance {
  readonly budgets = [];
  private readonly root: PciRoot;
  private readonly devs: PciTestDevice[];
  private readonly all: PciFunction[];
  private readonly dma: DmaRecorder;
  private reporter: Reporter | undefined;

  constructor() {
    this.dma = new DmaRecorder(new FlatMemory(1 << 20), "guest memory");
    const sink: InterruptSink = { msi: () => undefined, intx: () => undefined };
    this.root = new PciRoot({ interrupts: sink, dma: this.dma });
    const ports = [1, 2, 3].map((d) => this.root.addRootPort(d << 3, { slotNumber: d }));
    this.devs = [new PciTestDevice(), new PciTestDevice({ totalVfs: 3 })];
    this.devs.forEach((d, i) => ports[i]!.plug(d.pf, { coldplug: true }));
    this.all = [this.root.hostBridge, ...ports.map((p) => p.fn)];
    this.devs.forEach((d, i) => {
      this.all.push(d.pf, ...d.sriov.vfs);
      watchBarHandlers(d.pf, `testdev${i} PF`, () => this.reporter);
      d.sriov.vfs.forEach((vf, n) => watchBarHandlers(vf, `testdev${i} VF${n}`, () => this.reporter));
    });
    firmwareSetup(this.root, { numVfs: 4, ari: true });
  }

  next(rng: Rng): FuzzOp {
    const r = rng.below(100);
    if (r < 2) return ["setup", rng.below(9), rng.below(2)];
    if (r < 45) return genConfigOp(rng, this.root, true);
    if (r < 58) return genConfigOp(rng, this.root, false);
    if (r < 86) return genMmioOp(rng, this.root, true);
    if (r < 97) return genMmioOp(rng, this.root, false);
    return rng.chance(0.5) ? ["iw", rng.below(0x10000), rng.size(), rng.value()] : ["ir", rng.below(0x10000), rng.size()];
  }

  /** Per function: config bytes and the device registers behind it. */
  private fingerprints(): Map<PciFunction, number> {
    const m = new Map<PciFunction, number>();
    for (const f of this.all) m.set(f, configHash(f));
    for (const d of this.devs) {
      const s = d.save();
      const mix = (f: PciFunction, r: { scratch: number[]; intx: boolean; raised: number }): void =>
        void m.set(f, hashNumbers(r.scratch, hashNumbers([m.get(f)!, r.intx ? 1 : 0, r.raised])));
      mix(d.pf, s.pf);
      s.vfs.forEach((v, n) => mix(d.sriov.vfs[n]!, v));
    }
    return m;
  }

  apply(op: FuzzOp, r: Reporter): void {
    this.reporter = r;
    this.dma.clear();
    const reach = reachOf(this.root, this.all, op);
    const before = reach === undefined ? undefined : this.fingerprints();
    if (op[0] === "setup") firmwareSetup(this.root, { numVfs: op[1] ?? 0, ari: op[2] === 1 });
    else applyPciOp(this.root, op);
    this.reporter = undefined;
    if (before !== undefined && reach !== undefined) {
      const after = this.fingerprints();
      for (const f of this.all) {
        if (reach.has(f) || before.get(f) === after.get(f)) continue;
        r.report("break", `${op[0]} to ${[...reach].map((x) => x.rid.toString(16)).join(",") || "nothing"} changed function ${f.rid.toString(16)}${f.isVf ? ` (VF ${f.vfIndex})` : ""}`);
        break;
      }
    }
    if (this.dma.log.length > 0) r.report("break", `the test device did DMA (${this.dma.log.length} accesses)`);
    for (const d of this.devs) {
      const live = d.sriov.liveVfs();
      if (live.length > d.sriov.totalVfs) r.report("invariant", `${live.length} live VFs, TotalVFs ${d.sriov.totalVfs}`);
      for (const { vf } of live) {
        if (vf.configRead(0, 2) !== 0xffff) r.report("invariant", `VF ${vf.vfIndex} reads Vendor ID 0x${vf.configRead(0, 2).toString(16)}`);
      }
    }
  }
}

/** The `pci` target. */
export const pciTarget: FuzzTarget = {
  name: "pci",
  description: "PciRoot + 3 root ports + 2 SR-IOV test devices: config (all functions), BARs, MSI-X, NumVFs/VF Enable, FLR",
  budget: "budget: not exposed (config and BAR accesses do constant work; no counter)",
  create: () => new PciInstance(),
};
