/**
 * Target `igb-pf`: the 82576 as PCI functions (IgbPciDevice: the PF and its 8 VFs) behind a root
 * port, flat guest memory through a DMA recorder, a manual clock, an uplink. Random PF BAR0
 * register writes and reads (ring geometry, interrupts, mailbox, filters, resets), the flash and
 * I/O BARs, the MSI-X table and PBA, config writes to the PF and its VFs (NumVFs, VF Enable under
 * traffic, FLR), random and hostile descriptors at the rings, TDT kicks, frames from the uplink,
 * time passing; interleaved with firmware enumeration and a driver's ring set-up.
 *
 * Checks: no exception out of a BAR, config or frame handler (nor swallowed by `PciFunction`); an
 * incoming frame or the clock touches only enabled receive rings and their free buffers; a config
 * write to one function leaves the functions outside its reach unchanged; no DMA with Bus Master
 * Enable off.
 * @module
 */
import { IgbPciDevice } from "../../devices/igb/pci.js";
import { IGB_SIZES, R } from "../../devices/igb/regs.js";
import { FlatMemory, ManualClock } from "../../devices/igb/testing.js";
import { CountingBackend } from "../../devices/net/testing.js";
import type { PciFunction } from "../../pci/function.js";
import type { DmaSpace, InterruptSink } from "../../pci/interfaces.js";
import { PciRoot } from "../../pci/topology/root-complex.js";
import type { BudgetProbe, FuzzInstance, FuzzOp, FuzzTarget, Reporter } from "../engine.js";
import { configHash, DmaRecorder, guarded, watchBarHandlers } from "../probes.js";
import { bytesFromSeed, type Rng } from "../rng.js";
import { firmwareSetup } from "../setup.js";
import { hostileAddr, hostileLen } from "./virtio.js";
import { genConfigOp, reachOf } from "./pci.js";
import { igbContinuationProbe, igbWorkProbe, pfRegisterOffsets, regValue, queueReach, setupRings } from "./igb-common.js";

const RAM = 4 << 20;
const PF_MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]);
const REGS = pfRegisterOffsets();

class IgbPfInstance implements FuzzInstance {
  readonly budgets: BudgetProbe[] = [];
  private readonly mem = new FlatMemory(RAM);
  private readonly dma = new DmaRecorder(this.mem, "guest memory");
  private readonly clock = new ManualClock();
  private readonly backend = new CountingBackend();
  private readonly root: PciRoot;
  private readonly nic: IgbPciDevice;
  private readonly all: PciFunction[];
  private reporter: Reporter | undefined;

  constructor() {
    const sink: InterruptSink = { msi: () => undefined, intx: () => undefined };
    this.root = new PciRoot({ interrupts: sink, dma: this.dma });
    const port = this.root.addRootPort(1 << 3, { slotNumber: 1 });
    this.nic = new IgbPciDevice({ mac: PF_MAC, clock: this.clock, backend: this.backend });
    this.budgets.push(igbWorkProbe(this.nic.core), igbContinuationProbe(this.nic.core));
    port.plug(this.nic.pf, { coldplug: true });
    this.all = [this.nic.pf, ...this.nic.vfs];
    watchBarHandlers(this.nic.pf, "igb PF", () => this.reporter);
    this.nic.vfs.forEach((vf, n) => watchBarHandlers(vf, `igb VF${n}`, () => this.reporter));
    firmwareSetup(this.root, { numVfs: 2, ari: true });
    this.apply(["ring", 0, 0x10000, 32, 0x40000], { report: () => undefined });
  }

  next(rng: Rng): FuzzOp {
    const r = rng.below(100);
    const core = this.nic.core;
    if (r < 2) return ["setup", rng.below(9), rng.chance(0.8) ? 1 : 0];
    if (r < 5) {
      const n = rng.pick([8, 16, 32, 64]);
      return ["ring", rng.below(IGB_SIZES.queues), rng.below(RAM / 2) & ~0x7f, n, (RAM / 2 + rng.below(RAM / 4)) & ~0x7ff];
    }
    if (r < 40) {
      const off = rng.chance(0.85) ? rng.pick(REGS) : rng.below(IGB_SIZES.pfBar0);
      return ["mw", 0, off, rng.chance(0.9) ? 4 : rng.size(), regValue(rng, RAM)];
    }
    if (r < 48) return ["mr", 0, rng.chance(0.8) ? rng.pick(REGS) : rng.below(IGB_SIZES.pfBar0), 4];
    if (r < 52) return rng.chance(0.5) ? ["mw", 2, rng.below(40), rng.size(), rng.chance(0.5) ? rng.pick(REGS) : rng.value()] : ["mr", 2, rng.below(40), rng.size()];
    if (r < 53) return ["mw", 1, rng.below(IGB_SIZES.pfFlash), rng.size(), rng.value()];
    if (r < 57) return rng.chance(0.6) ? ["mw", 3, rng.pick([rng.below(0xa0), 0x2000 + rng.below(8), rng.below(0x4000)]), rng.size(), rng.value()] : ["mr", 3, rng.below(0x4000), rng.size()];
    if (r < 67) return genConfigOp(rng, this.root, rng.chance(0.8));
    if (r < 78) {
      const q = rng.below(IGB_SIZES.queues);
      const tx = rng.chance(0.6);
      const base = core.regs.get(tx ? "TDBAH" : "RDBAH", q) * 0x1_0000_0000 + core.regs.get(tx ? "TDBAL" : "RDBAL", q);
      const n = Math.max(1, Math.floor(core.regs.get(tx ? "TDLEN" : "RDLEN", q) / 16));
      const at = rng.chance(0.9) ? base + 16 * rng.below(Math.min(n, 256)) : hostileAddr(rng, RAM);
      // TX: buffer, cmd_type_len (DEXT, DTYP data/context, EOP, TSE...), olinfo; RX: pkt and hdr address
      return ["desc", at, hostileAddr(rng, RAM), rng.chance(0.7) ? (0x20300000 | (rng.u32() & 0x0f0fffff)) >>> 0 : rng.u32(), rng.chance(0.5) ? hostileLen(rng) << 14 : rng.u32()];
    }
    if (r < 84) {
      const q = rng.below(IGB_SIZES.queues);
      const n = Math.max(1, Math.floor(core.regs.get("TDLEN", q) / 16));
      return ["mw", 0, R.TDT(q), 4, rng.chance(0.9) ? rng.below(n) : rng.value()];
    }
    if (r < 94) return ["frame", rng.u32(), rng.pick([0, 1, 13, 14, 60, 64, 1514, 1518, 1522, 9018, 16384, 65550, rng.below(2000)]), rng.below(4)];
    if (r < 97) return ["tick", rng.pick([1000, 10_000, 1_000_000, rng.below(100_000_000)])];
    const vf = rng.below(IGB_SIZES.pools);
    return rng.chance(0.7) ? ["vw", vf, rng.below(IGB_SIZES.vfBar0), 4, regValue(rng, RAM)] : ["vr", vf, rng.below(IGB_SIZES.vfBar0), 4];
  }

  apply(op: FuzzOp, r: Reporter): void {
    this.reporter = r;
    this.dma.clear();
    const [k, a = 0, b = 0, c = 0, d = 0] = op;
    const pf = this.nic.pf;
    const sz = (x: number): 1 | 2 | 4 => (x === 1 || x === 2 ? x : 4);
    const bmBefore = this.all.some((f) => f.busMaster());
    const reach = k === "cw" ? reachOf(this.root, this.all, op) : undefined;
    const before = reach === undefined ? undefined : this.all.map((f) => configHash(f));
    // a tick also runs transmit work a budget left for a continuation task: its rings and buffers count
    const anyRead = new Set<DmaSpace>();
    const rxAllowed = k === "frame" || k === "tick" ? queueReach(this.nic.core, (s) => (s === pf.dma || this.nic.vfs.some((v) => v.dma === s) ? this.mem.bytes : undefined), k === "tick", anyRead) : undefined;
    switch (k) {
      case "setup": firmwareSetup(this.root, { numVfs: a, ari: b === 1 }); break;
      case "ring": setupRings((o, v) => pf.barWrite(0, o, 4, v), this.mem.bytes, a, b, c, d); this.nic.core.mmioWrite(R.RCTL, 4, 0x8002); this.nic.core.mmioWrite(R.TCTL, 4, 0x2); break;
      case "mw": pf.barWrite(a, b, sz(c), d); break;
      case "mr": pf.barRead(a, b, sz(c)); break;
      case "vw": this.nic.vfs[a]?.barWrite(0, b, sz(c), d); break;
      case "vr": this.nic.vfs[a]?.barRead(0, b, sz(c)); break;
      case "cw":
      case "cr": {
        const [, bus = 0, devfn = 0, reg = 0, size = 4, v = 0] = op;
        if (k === "cw") this.root.configWrite(bus, devfn, reg, sz(size), v);
        else this.root.configRead(bus, devfn, reg, sz(size));
        break;
      }
      case "desc": {
        const d16 = new Uint8Array(16);
        const v = new DataView(d16.buffer);
        v.setUint32(0, b % 0x1_0000_0000, true);
        v.setUint32(4, Math.floor(b / 0x1_0000_0000), true);
        v.setUint32(8, c >>> 0, true);
        v.setUint32(12, d >>> 0, true);
        if (a >= 0 && a + 16 <= RAM) this.mem.bytes.set(d16, a);
        break;
      }
      case "frame": {
        const f = bytesFromSeed(a, new Uint8Array(Math.min(b, 70000)));
        if (c === 0 && f.length >= 6) f.set(PF_MAC, 0);
        if (c === 1 && f.length >= 6) f.fill(0xff, 0, 6);
        if (c === 2 && f.length >= 6) f.set([0x02, 0, 0, 0, 0x01, a & 7], 0);
        guarded(r, "frame from uplink", () => void this.backend.sink?.(f));
        break;
      }
      case "tick": guarded(r, "timers", () => this.clock.advance(a)); break;
      default: break;
    }
    this.reporter = undefined;
    if (rxAllowed !== undefined) this.dma.checkWithin([...rxAllowed.values()].flat(), `${k} outside the ${k === "tick" ? "receive and pending transmit" : "receive"} rings and buffers`, r, anyRead.size > 0);
    if (this.dma.log.length > 0 && !bmBefore && !this.all.some((f) => f.busMaster())) r.report("break", `DMA with Bus Master Enable off (${k})`);
    if (before !== undefined && reach !== undefined) {
      this.all.forEach((f, i) => {
        if (!reach.has(f) && before[i] !== configHash(f)) r.report("break", `config write to ${[...reach].map((x) => x.rid.toString(16)).join(",") || "nothing"} changed ${f.isVf ? `VF ${f.vfIndex}` : "the PF"}`);
      });
    }
  }
}

/** The `igb-pf` target. */
export const igbPfTarget: FuzzTarget = {
  name: "igb-pf",
  description: "IgbPciDevice (82576 PF + 8 VFs) behind a root port: BAR0 registers, ring geometry, descriptors, flash/IO/MSI-X BARs, config, uplink frames, timers",
  budget: "budget: igb core.work.counters.maxUnits per operation <= budget + IGB_WORK_OVERSHOOT (units per register write or continuation task); continuations per operation <= units spent / budget + 2",
  create: () => new IgbPfInstance(),
};
