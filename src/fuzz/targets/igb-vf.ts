/**
 * Target `igb-vf`: the 82576 core with the host PF agent serving 4 enabled VFs (8 VF register
 * windows), each VF with a guest memory of its own and the PF with another, so that any DMA into
 * a memory a function does not own shows. Random VF BAR0 accesses (queues, interrupts, mailbox),
 * mailbox messages malformed, well-formed and flooded (MAC and VLAN spoofing attempts included),
 * random and hostile descriptors, VF FLR, VF Enable changes under traffic, frames from the uplink,
 * time passing; and a simulated igbvf driver per VF doing legal traffic in between.
 *
 * Checks after each operation aimed at VF k: no exception out of a handler; DMA into any memory
 * other than k's stays inside that function's rings and the buffers its descriptors name (VF-to-VF
 * loopback delivers there; a transmit kick may run another queue's pending work); the other VFs' programmed queues, interrupt routing, MAC filters and
 * VLAN memberships are unchanged; with anti-spoofing on, every frame k puts on the wire carries one
 * of k's own source MACs. After a frame or the clock: DMA only into receive rings and buffers.
 * @module
 */
import { IgbCore } from "../../devices/igb/core.js";
import { B, IGB_SIZES, MBX, R, VR } from "../../devices/igb/regs.js";
import { FlatMemory, IrqRecorder, ManualClock } from "../../devices/igb/testing.js";
import type { IgbRegName } from "../../devices/igb/regnames.js";
import { IgbVfRegs } from "../../devices/igb/vf.js";
import type { FrameSink, NetBackend } from "../../devices/net/backend.js";
import { SimIgbvf } from "../../guest/igbvf/driver.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { PfAgent } from "../../vmm/pf-agent/agent.js";
import type { BudgetProbe, FuzzInstance, FuzzOp, FuzzTarget, Reporter } from "../engine.js";
import { DmaRecorder, guarded, hashNumbers } from "../probes.js";
import { bytesFromSeed, type Rng } from "../rng.js";
import { igbContinuationProbe, igbWorkProbe, queueReach, regValue } from "./igb-common.js";
import { hostileAddr, hostileLen } from "./virtio.js";

const MEM = 1 << 20;
const NUM_VFS = 4;
const POOLS = IGB_SIZES.pools;
const vfMac = (vf: number): Uint8Array => new Uint8Array([0x02, 0, 0, 0, 0x01, vf]);

/** VF BAR0 offsets worth aiming at. */
function vfRegisterOffsets(): number[] {
  const out: number[] = [VR.CTRL, VR.STATUS, VR.EICS, VR.EIMS, VR.EIMC, VR.EIAC, VR.EIAM, VR.EICR, VR.IVAR0, VR.IVAR_MISC, VR.PSRTYPE, VR.V2PMAILBOX, VR.PBACL];
  for (let i = 0; i < 16; i++) out.push(VR.VMBMEM + 4 * i);
  for (let i = 0; i < 3; i++) out.push(VR.EITR(i));
  for (const q of [0, 1]) {
    out.push(VR.RDBAL(q), VR.RDBAH(q), VR.RDLEN(q), VR.SRRCTL(q), VR.RDH(q), VR.RDT(q), VR.RXDCTL(q), VR.TDBAL(q), VR.TDBAH(q), VR.TDLEN(q), VR.TDH(q), VR.TDT(q), VR.TXDCTL(q), VR.TDWBAL(q), VR.TDWBAH(q));
  }
  return out;
}
const VF_REGS = vfRegisterOffsets();

/** Per-queue registers a VF programs (one of its pool's two queues). */
const VF_QUEUE_REGS: readonly IgbRegName[] = ["RDBAL", "RDBAH", "RDLEN", "SRRCTL", "RXDCTL", "TDBAL", "TDBAH", "TDLEN", "TXDCTL", "TDWBAL", "TDWBAH"];

/** An uplink that records what the NIC sends. */
class RecordingBackend implements NetBackend {
  sink: FrameSink | undefined;
  readonly sent: Uint8Array[] = [];
  transmit(frame: Uint8Array): void {
    if (this.sent.length < 256) this.sent.push(frame.slice(0, 14));
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
}

class IgbVfInstance implements FuzzInstance {
  readonly budgets: BudgetProbe[] = [];
  private readonly mems: FlatMemory[] = [];
  /** [0] the PF's memory, [1 + n] VF n's. */
  private readonly recs: DmaRecorder[] = [];
  private readonly clock = new ManualClock();
  private readonly irq = new IrqRecorder();
  private readonly backend = new RecordingBackend();
  private readonly core: IgbCore;
  private readonly agent: PfAgent;
  private readonly regs: IgbVfRegs[] = [];
  private readonly drivers: SimIgbvf[] = [];

  constructor() {
    for (let i = 0; i <= POOLS; i++) {
      const m = new FlatMemory(MEM);
      this.mems.push(m);
      this.recs.push(new DmaRecorder(m, i === 0 ? "the PF's memory" : `VF ${i - 1}'s memory`));
    }
    this.core = new IgbCore({
      mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
      dma: (fn) => this.recs[fn + 1] ?? this.recs[0]!,
      irq: this.irq,
      clock: this.clock,
      backend: this.backend,
    });
    const core = this.core;
    this.budgets.push(igbWorkProbe(core), igbContinuationProbe(core));
    this.agent = new PfAgent({
      bar: { read: (off) => core.mmioRead(off, 4), write: (off, _s, v) => core.mmioWrite(off, 4, v) },
      enableVfs: (n) => core.setNumVfs(n),
      defaultVfMac: vfMac,
    });
    let scheduled = false;
    this.irq.onPf = () => {
      if (scheduled) return;
      scheduled = true;
      this.clock.schedule(1000, () => {
        scheduled = false;
        this.agent.service();
      });
    };
    this.agent.init(NUM_VFS);
    for (let vf = 0; vf < POOLS; vf++) {
      const regs = new IgbVfRegs(core, vf);
      this.regs.push(regs);
      let next = 0x10000;
      const alloc = (size: number, align: number): number => {
        next = Math.ceil(next / align) * align;
        const a = next;
        next += size;
        if (next > MEM) next = 0x10000 + size; // wrap: a driver re-opened many times reuses memory
        return a;
      };
      this.drivers.push(new SimIgbvf({ bar: regs, mem: this.mems[vf + 1]!, alloc, delay: (us) => this.clock.advance(us * 1000) }, {}));
    }
    for (let vf = 0; vf < NUM_VFS; vf++) this.driverOp(vf, 0, 0);
  }

  next(rng: Rng): FuzzOp {
    const r = rng.below(100);
    const vf = rng.chance(0.9) ? rng.below(NUM_VFS) : rng.below(POOLS);
    if (r < 8) return ["drv", vf, rng.below(8), rng.u32()];
    if (r < 40) return ["vw", vf, rng.chance(0.85) ? rng.pick(VF_REGS) : rng.below(IGB_SIZES.vfBar0), rng.chance(0.9) ? 4 : rng.size(), regValue(rng, MEM)];
    if (r < 48) return ["vr", vf, rng.chance(0.85) ? rng.pick(VF_REGS) : rng.below(IGB_SIZES.vfBar0), 4];
    if (r < 62) {
      const type = rng.pick([MBX.VF_RESET, MBX.VF_SET_MAC_ADDR, MBX.VF_SET_MULTICAST, MBX.VF_SET_VLAN, MBX.VF_SET_LPE, MBX.VF_SET_PROMISC, rng.u32()]);
      const info = rng.chance(0.5) ? rng.below(256) << 16 : rng.u32() & 0xffff0000;
      return ["mbx", vf, (type | info) >>> 0, rng.u32(), rng.below(17), rng.chance(0.15) ? 1 + rng.below(40) : 1];
    }
    if (r < 76) {
      const q = rng.below(2);
      const tx = rng.chance(0.6);
      const off = tx ? VR.TDBAL(q) : VR.RDBAL(q);
      const base = this.regs[vf]!.read(off, 4) + this.regs[vf]!.read(off + 4, 4) * 0x1_0000_0000;
      const n = Math.max(1, Math.floor(this.regs[vf]!.read(off + 8, 4) / 16));
      const at = rng.chance(0.9) ? base + 16 * rng.below(Math.min(n, 256)) : hostileAddr(rng, MEM);
      return ["desc", vf, at, hostileAddr(rng, MEM), rng.chance(0.7) ? (0x20300000 | (rng.u32() & 0x0f0fffff)) >>> 0 : rng.u32(), rng.chance(0.5) ? hostileLen(rng) << 14 : rng.u32()];
    }
    if (r < 84) {
      const q = rng.below(2);
      const n = Math.max(1, Math.floor(this.regs[vf]!.read(VR.TDLEN(q), 4) / 16));
      return ["vw", vf, VR.TDT(q), 4, rng.below(n)];
    }
    if (r < 93) return ["frame", rng.u32(), rng.pick([14, 60, 64, 1514, 1518, 1522, 9018, 65550, rng.below(2000)]), rng.below(4)];
    if (r < 97) return ["tick", rng.pick([1000, 10_000, 1_000_000, rng.below(100_000_000)])];
    if (r < 99) return ["flr", vf];
    return ["numvfs", rng.chance(0.8) ? NUM_VFS : rng.below(POOLS + 1)];
  }

  private driverOp(vf: number, action: number, seed: number): void {
    const d = this.drivers[vf]!;
    try {
      switch (action) {
        case 0: d.reset(); d.open(); break;
        case 1:
        case 2: {
          const f = bytesFromSeed(seed, new Uint8Array(60 + (seed % 1455)));
          f.set(seed & 1 ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : vfMac((seed >>> 8) % POOLS), 0);
          f.set(seed & 2 ? vfMac(vf) : vfMac((seed >>> 12) % POOLS), 6); // sometimes another VF's MAC: spoofing
          d.send(f);
          break;
        }
        case 3: d.setMac(seed & 1 ? vfMac((seed >>> 4) % POOLS) : bytesFromSeed(seed, new Uint8Array(6))); break;
        case 4: d.setVlan(seed & 0xfff, (seed & 0x1000) === 0); break;
        case 5: d.setMulticast(Array.from({ length: (seed >>> 4) % 40 }, (_, i) => bytesFromSeed(seed + i, new Uint8Array(6)))); break;
        case 6: d.setLpe((seed >>> 4) % 20000); break;
        default: d.reclaim?.(); break;
      }
    } catch {
      // the simulated driver gives up on a VF the random operations broke; not a device defect
    }
  }

  /** What VF `vf` programmed and owns: queues, interrupt routing, MAC filters, VLAN membership. */
  private vfPrint(vf: number): number {
    const r = this.core.regs;
    const xs: number[] = [];
    for (const q of [vf, vf + POOLS]) {
      for (const n of VF_QUEUE_REGS) xs.push(r.get(n, q));
    }
    xs.push(r.get("VTIVAR", vf), r.get("VTIVAR_MISC", vf), r.get("PSRTYPE", vf), r.get("VMOLR", vf), r.get("VMVIR", vf));
    for (let i = 0; i < 3; i++) xs.push(r.get("EITR", 22 - 3 * vf + i) & 0x7ffc);
    for (let i = 0; i < IGB_SIZES.rar; i++) {
      const rah = r.get("RAH", i);
      if ((rah & B.RAH_AV) !== 0 && (rah & (1 << (B.RAH_POOL_SHIFT + vf))) !== 0) xs.push(i, r.get("RAL", i), rah & 0xffff);
    }
    for (let i = 0; i < 32; i++) {
      const v = r.get("VLVF", i);
      if ((v & B.VLVF_VLANID_ENABLE) !== 0 && (v & (1 << (B.VLVF_POOLSEL_SHIFT + vf))) !== 0) xs.push(0x10000 | (v & B.VLVF_VLANID_MASK));
    }
    return hashNumbers(xs);
  }

  /** Source MACs pool `vf` may send from: its receive address filters. */
  private ownMacs(vf: number): string[] {
    const r = this.core.regs;
    const out: string[] = [];
    for (let i = 0; i < IGB_SIZES.rar; i++) {
      const rah = r.get("RAH", i);
      if ((rah & B.RAH_AV) !== 0 && (rah & (1 << (B.RAH_POOL_SHIFT + vf))) !== 0) out.push(`${r.get("RAL", i).toString(16)}/${(rah & 0xffff).toString(16)}`);
    }
    return out;
  }

  apply(op: FuzzOp, r: Reporter): void {
    for (const x of this.recs) x.clear();
    this.backend.sent.length = 0;
    const [k, a = 0, b = 0, c = 0, d = 0, e = 0] = op;
    const actor = k === "vw" || k === "vr" || k === "mbx" || k === "drv" || k === "flr" || k === "desc" ? a : -1;
    // a VF that is not enabled does not exist: nothing reaches its registers
    if (actor >= this.core.numVfs) return;
    // let pending mailbox service and timers run first, so what follows is the actor's doing
    if (actor >= 0) guarded(r, "timers", () => this.clock.advance(2000));
    for (const x of this.recs) x.clear();
    this.backend.sent.length = 0;
    const anyRead = new Set<DmaSpace>();
    // a tick also runs transmit work a budget left for a continuation task: its rings and buffers count
    const reach = queueReach(this.core, (s) => this.mems[this.recs.indexOf(s as DmaRecorder)]?.bytes, actor >= 0 || k === "tick", anyRead);
    const before = actor >= 0 ? Array.from({ length: POOLS }, (_, v) => (v === actor ? 0 : this.vfPrint(v))) : undefined;
    const spoofchk = actor >= 0 && actor < NUM_VFS && (this.core.regs.get("DTXSWC") & (1 << actor)) !== 0;
    const macs = spoofchk ? this.ownMacs(actor) : [];
    const gptc0 = this.core.regs.get("GPTC");
    const own0 = spoofchk ? this.core.regs.get("PVFGPTC", actor) : 0;
    const sz = (x: number): 1 | 2 | 4 => (x === 1 || x === 2 ? x : 4);
    switch (k) {
      case "vw": this.regs[a]?.write(b, sz(c), d); break;
      case "vr": this.regs[a]?.read(b, sz(c)); break;
      case "mbx": {
        const regs = this.regs[a];
        if (regs === undefined) break;
        for (let n = 0; n < Math.max(1, e); n++) {
          regs.write(VR.V2PMAILBOX, 4, B.V2P_VFU);
          const words = [b, ...Array.from(bytesFromSeed(c + n, new Uint8Array(4 * 16)).reduce<number[]>((acc, _x, i, arr) => (i % 4 === 0 ? [...acc, (arr[i]! | (arr[i + 1]! << 8) | (arr[i + 2]! << 16) | (arr[i + 3]! << 24)) >>> 0] : acc), []))];
          for (let i = 0; i < Math.min(d, 16); i++) regs.write(VR.VMBMEM + 4 * i, 4, words[i]!);
          regs.write(VR.V2PMAILBOX, 4, B.V2P_REQ);
        }
        guarded(r, "mailbox service", () => this.clock.advance(2000));
        break;
      }
      case "desc": {
        const mem = this.mems[a + 1]!;
        const d16 = new Uint8Array(16);
        const v = new DataView(d16.buffer);
        v.setUint32(0, c % 0x1_0000_0000, true);
        v.setUint32(4, Math.floor(c / 0x1_0000_0000), true);
        v.setUint32(8, d >>> 0, true);
        v.setUint32(12, e >>> 0, true);
        if (b >= 0 && b + 16 <= MEM) mem.bytes.set(d16, b);
        break;
      }
      case "drv": this.driverOp(a, b, c); break;
      case "flr": guarded(r, "VF FLR", () => this.core.vfFlr(a)); break;
      case "numvfs": guarded(r, "VF Enable", () => this.core.setNumVfs(a)); break;
      case "frame": {
        const f = bytesFromSeed(a, new Uint8Array(Math.min(b, 70000)));
        if (c === 0 && f.length >= 6) f.set(vfMac(a % POOLS), 0);
        if (c === 1 && f.length >= 6) f.fill(0xff, 0, 6);
        guarded(r, "frame from uplink", () => void this.backend.sink?.(f));
        break;
      }
      case "tick": guarded(r, "timers", () => this.clock.advance(a)); break;
      default: break;
    }
    // DMA: the actor's own memory is its business; every other memory only at its receive side
    this.recs.forEach((rec, i) => {
      if (i === actor + 1 && actor >= 0) return;
      rec.checkWithin(reach.get(rec) ?? [], actor >= 0 ? `VF ${actor}'s ${k} reached another function's memory` : `${k} outside the ${k === "tick" ? "receive and pending transmit" : "receive"} rings and buffers`, r, anyRead.has(rec));
    });
    if (before !== undefined) {
      for (let v = 0; v < POOLS; v++) {
        if (v !== actor && before[v] !== this.vfPrint(v)) r.report("break", `VF ${actor}'s ${k} changed VF ${v}'s queues, interrupt routing or filters`);
      }
    }
    // a kick may also run other pools' pending transmits: check only when every frame counted in
    // this operation was the actor's (GPTC grew exactly as its PVFGPTC)
    const onlyActor = spoofchk && this.core.regs.get("GPTC") - gptc0 === this.core.regs.get("PVFGPTC", actor) - own0;
    if (spoofchk && onlyActor) {
      // the op may have changed the VF's MAC (SET_MAC_ADDR): frames may carry the old or the new one
      macs.push(...this.ownMacs(actor));
      for (const f of this.backend.sent) {
        const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
        if (f.length < 12) continue;
        const src = `${dv.getUint32(6, true).toString(16)}/${dv.getUint16(10, true).toString(16)}`;
        if (!macs.includes(src)) r.report("break", `VF ${actor} sent a frame with a source MAC it does not own (spoof check on)`);
      }
    }
  }
}

/** The `igb-vf` target. */
export const igbVfTarget: FuzzTarget = {
  name: "igb-vf",
  description: "IgbCore + PfAgent, 4 VFs enabled, isolated memories: VF BAR0, mailbox (malformed, flooded, spoofing), descriptors, FLR, VF Enable, uplink, drivers",
  budget: "budget: igb core.work.counters.maxUnits per operation <= budget + IGB_WORK_OVERSHOOT (units per register write, mailbox service or continuation task); continuations per operation <= units spent / budget + 2",
  create: () => new IgbVfInstance(),
};
