/**
 * Targets `virtio-split` and `virtio-packed`: a VirtioNet (2 queue pairs, control queue, size-64
 * queues; packed offered in the packed target) behind a VirtioPciTransport, attached to flat guest
 * memory through a DMA recorder. Random common-config, notify, ISR, device-config and MSI-X
 * accesses; config-space writes (bus mastering, MSI-X enable, FLR); random descriptors and ring
 * contents written where the driver put its rings (loops, long and indirect chains, zero and 4 GiB
 * lengths, addresses past RAM, at 2^32 and at or past 2^53 up to 2^64 - 1); frames arriving from the backend; and
 * the simulated driver doing legal traffic in between (probe, open, send, receive, control).
 *
 * Checks: no exception out of a BAR, config or frame handler; no DMA while Bus Master Enable is
 * off or before DRIVER_OK; the descriptors the queues visit per operation stay under the budget
 * of one queue's worth of chains per queue.
 * @module
 */
import { ManualClock } from "../../devices/testing.js";
import { CountingBackend } from "../../devices/net/testing.js";
import { VirtioPciTransport } from "../../devices/virtio/pci-transport.js";
import { VirtioNet } from "../../devices/virtio-net/device.js";
import { SimVirtioNet } from "../../guest/virtio-net/driver.js";
import { FlatRam } from "../../guest/virtio-net/testbed.js";
import type { InterruptSink } from "../../pci/interfaces.js";
import type { BudgetProbe, FuzzInstance, FuzzOp, FuzzTarget, Reporter } from "../engine.js";
import { DmaRecorder, guarded, watchBarHandlers } from "../probes.js";
import { bytesFromSeed, type Rng } from "../rng.js";
import { interestingOffsets } from "../setup.js";

const RAM = 4 << 20;
const DRIVER_BASE = 1 << 20;
const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const NOTIFY_MULT = 4;
const DRIVER_OK = 4;
/** Device time that passes after each operation (a continuation waits 1 us). */
const CONTINUE_STEP_NS = 2000;

/** Addresses a hostile descriptor points at. */
export function hostileAddr(rng: Rng, ram: number): number {
  switch (rng.below(8)) {
    case 0: return 0;
    case 1: return ram - rng.below(64);
    case 2: return ram + rng.below(4096);
    case 3: return 0x1_0000_0000 - rng.below(64);
    case 4: return 2 ** 53 - 1 - rng.below(16);
    default: return rng.below(ram);
  }
}

/** Lengths a hostile descriptor carries. */
export function hostileLen(rng: Rng): number {
  return rng.pick([0, 1, 12, 14, 60, 1514, 1526, 4096, 65536, 0x7fffffff, 0x80000000, 0xffffffff, rng.below(2048), rng.below(70000)]);
}

class VirtioInstance implements FuzzInstance {
  readonly budgets: BudgetProbe[];
  private readonly ram = new FlatRam(RAM);
  private readonly dma = new DmaRecorder(this.ram, "guest memory");
  private readonly backend = new CountingBackend();
  /** Device time: work a budget cut short continues on it (advanced after every operation). */
  private readonly clock = new ManualClock();
  private readonly nic: VirtioNet;
  private readonly tr: VirtioPciTransport;
  private driver: SimVirtioNet;
  private reporter: Reporter | undefined;

  constructor(private readonly packed: boolean) {
    // a small budget per run, so that runs are cut short and continue on the clock often
    this.nic = new VirtioNet({ mac: MAC, backend: this.backend, clock: this.clock, queueSize: 64, maxPairs: 2, packed, notifyBudget: 16 });
    this.tr = new VirtioPciTransport(this.nic);
    const sink: InterruptSink = { msi: () => undefined, intx: () => undefined };
    this.tr.fn.attach(0x0100, sink, this.dma);
    watchBarHandlers(this.tr.fn, "virtio", () => this.reporter);
    this.driver = this.newDriver();
    const tr = this.tr;
    const work = this.nic.work;
    this.budgets = [
      {
        // one run (a notification, or its continuation) reads at most the budget, then finishes
        // the chain in progress: at most a queue's worth of direct descriptors plus an indirect
        // table of the same size, and the visit that finds the chain too long
        name: "virtio-net descriptors read by one run (nic.work.maxUnits)",
        read: () => work.maxUnits,
        limit: () => work.budget + 2 * Math.max(0, ...tr.queues.map((q) => q.size)) + 1,
        reset: () => void (work.maxUnits = 0),
      },
      {
        name: "virtqueue descriptors visited",
        read: () => tr.queues.reduce((s, q) => s + q.visited, 0),
        // one notification pops at most a queue's worth of chains, each at most a table (direct
        // or indirect) plus its head; a frame fills at most one queue's worth of buffers
        limit: () => tr.queues.reduce((s, q) => s + (q.size + 1) * (q.size + 1), 0),
      },
    ];
    this.driverOp(0, 0);
  }

  private newDriver(): SimVirtioNet {
    let next = DRIVER_BASE;
    const alloc = (size: number, align: number): number => {
      next = Math.ceil(next / align) * align;
      const a = next;
      next += size;
      if (next > RAM) throw new RangeError("fuzz driver memory exhausted");
      return a;
    };
    return new SimVirtioNet({ fn: this.tr.fn, ram: this.ram.bytes, alloc }, { packed: this.packed, pairs: 2 });
  }

  next(rng: Rng): FuzzOp {
    const r = rng.below(100);
    const qs = this.tr.queues;
    const q = rng.below(qs.length + 1);
    if (r < 6) return ["drv", rng.below(6), rng.u32()];
    if (r < 22) {
      // common config, mostly at its registers
      const off = rng.chance(0.85) ? rng.below(0x3c) : rng.below(0x1000);
      const size = rng.size();
      const v = rng.chance(0.4) ? rng.pick([0, 1, 2, 3, 4, 8, 0x0b, 0x0f, 0x40, 0x80, 0xff, q, 64, 63, 128, 0xffff]) : rng.value();
      return ["b4w", rng.chance(0.9) ? off - (off % size) : off, size, v];
    }
    if (r < 28) return ["b4r", rng.pick([rng.below(0x3c), 0x1000, 0x2000 + rng.below(24), rng.below(0x4000)]), rng.size()];
    if (r < 32) return ["b4w", 0x2000 + rng.below(32), rng.size(), rng.value()];
    if (r < 44) return ["notify", rng.chance(0.95) ? q : rng.below(0x1000)];
    if (r < 48) return rng.chance(0.6) ? ["b1w", rng.below(0x900), rng.size(), rng.value()] : ["b1r", rng.below(0x900), rng.size()];
    if (r < 52) {
      const reg = rng.chance(0.8) ? rng.pick(interestingOffsets(this.tr.fn)) : rng.below(4096);
      return ["cw", reg, rng.size(), rng.chance(0.5) ? rng.pick([0x6, 0x4, 0x2, 0, 0x8000, 0xc000, 0x4000]) : rng.value()];
    }
    if (r < 70) {
      // a descriptor in some queue's table
      const vq = qs[rng.below(qs.length)]!;
      const size = Math.max(1, vq.size);
      const at = rng.chance(0.9) ? vq.desc + 16 * rng.below(size) : hostileAddr(rng, RAM);
      const flags = this.packed
        ? rng.pick([0x80, 0x8000, 0x8080, 0]) | (rng.u32() & 0x7)
        : rng.u32() & 0x7;
      if (rng.chance(0.15)) {
        // an address given as its two words: high words at and past 2^53 (2^21), up to 2^64 - 1
        const hi = rng.pick([0x1f_fffe, 0x1f_ffff, 0x20_0000, 0x8000_0000, 0xffff_ffff, rng.u32()]);
        return ["deschi", at, rng.u32(), hi, hostileLen(rng), this.packed ? rng.below(size + 2) : flags, this.packed ? flags : rng.below(size + 2)];
      }
      return ["desc", at, hostileAddr(rng, RAM), hostileLen(rng), this.packed ? rng.below(size + 2) : flags, this.packed ? flags : rng.below(size + 2)];
    }
    if (r < 80) {
      const vq = qs[rng.below(qs.length)]!;
      return ["avail", vq.driver, rng.below(Math.max(1, vq.size)), rng.below(vq.size + 2), rng.u32() & 0xffff, rng.below(4)];
    }
    if (r < 84) {
      const vq = qs[rng.below(qs.length)]!;
      const base = rng.pick([vq.desc, vq.driver, vq.device, rng.below(RAM)]);
      return ["mem", base + rng.below(256), rng.u32(), rng.below(64) + 1];
    }
    return ["frame", rng.u32(), rng.pick([0, 1, 13, 14, 60, 64, 1514, 1518, 9000, 65550, rng.below(2000)]), rng.below(3)];
  }

  private w(addr: number, bytes: Uint8Array): void {
    if (addr >= 0 && addr + bytes.length <= RAM) this.ram.bytes.set(bytes, addr);
  }

  private driverOp(action: number, seed: number): void {
    try {
      switch (action) {
        case 0:
          this.driver = this.newDriver();
          this.driver.probe();
          this.driver.open();
          break;
        case 1:
        case 2: {
          const f = bytesFromSeed(seed, new Uint8Array(60 + (seed % 1455)));
          f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
          this.driver.send(f);
          break;
        }
        case 3:
          this.driver.receive();
          break;
        case 4:
          this.driver.ctrl(seed & 7, (seed >>> 8) & 7, bytesFromSeed(seed, new Uint8Array((seed >>> 16) & 15)));
          break;
        default:
          this.driver.reset();
      }
    } catch {
      // the simulated driver gives up on a device the random operations broke; not a device defect
    }
  }

  apply(op: FuzzOp, r: Reporter): void {
    this.reporter = r;
    this.dma.clear();
    const fn = this.tr.fn;
    const okBefore = (this.tr.status & DRIVER_OK) !== 0;
    const bmBefore = fn.busMaster();
    const [k, a = 0, b = 0, c = 0, d = 0, e = 0] = op;
    const sz = (x: number): 1 | 2 | 4 => (x === 1 || x === 2 ? x : 4);
    switch (k) {
      case "b4w": fn.barWrite(4, a, sz(b), c); break;
      case "b4r": fn.barRead(4, a, sz(b)); break;
      case "b1w": fn.barWrite(1, a, sz(b), c); break;
      case "b1r": fn.barRead(1, a, sz(b)); break;
      case "cw": fn.configWrite(a, sz(b), c); break;
      case "notify": fn.barWrite(4, 0x3000 + a * NOTIFY_MULT, 2, a); break;
      case "desc": {
        const d16 = new Uint8Array(16);
        const v = new DataView(d16.buffer);
        v.setUint32(0, b % 0x1_0000_0000, true);
        v.setUint32(4, Math.floor(b / 0x1_0000_0000), true);
        v.setUint32(8, c >>> 0, true);
        v.setUint16(12, d & 0xffff, true);
        v.setUint16(14, e & 0xffff, true);
        this.w(a, d16);
        break;
      }
      case "deschi": {
        const d16 = new Uint8Array(16);
        const v = new DataView(d16.buffer);
        v.setUint32(0, b >>> 0, true);
        v.setUint32(4, c >>> 0, true);
        v.setUint32(8, d >>> 0, true);
        v.setUint16(12, e & 0xffff, true);
        v.setUint16(14, (op[6] ?? 0) & 0xffff, true);
        this.w(a, d16);
        break;
      }
      case "avail": {
        // split: avail.flags, avail.idx, avail.ring[slot]; packed: the driver event suppression area
        const h = new Uint8Array(2);
        const v = new DataView(h.buffer);
        v.setUint16(0, c, true);
        this.w(a + 4 + 2 * b, h);
        v.setUint16(0, d, true);
        this.w(a + 2, h);
        v.setUint16(0, e, true);
        this.w(a, h);
        break;
      }
      case "mem": this.w(a, bytesFromSeed(b, new Uint8Array(Math.min(c, 4096)))); break;
      case "frame": {
        const f = bytesFromSeed(a, new Uint8Array(Math.min(b, 70000)));
        if (c === 0 && f.length >= 6) f.set(MAC, 0);
        if (c === 1 && f.length >= 6) f.fill(0xff, 0, 6);
        guarded(r, "frame from backend", () => void this.backend.sink?.(f));
        break;
      }
      case "drv": this.driverOp(a, b); break;
      default: break;
    }
    // continuations of work the budget cut short run now (one operation = at most a few runs)
    guarded(r, "timers", () => this.clock.advance(CONTINUE_STEP_NS));
    this.reporter = undefined;
    if (this.dma.log.length > 0 && k !== "drv" && k !== "cw") {
      if (!bmBefore && !fn.busMaster()) r.report("break", `DMA with Bus Master Enable off (${k})`);
      if (!okBefore && (this.tr.status & DRIVER_OK) === 0) r.report("break", `DMA before DRIVER_OK (${k}, status 0x${this.tr.status.toString(16)})`);
    }
    for (const x of this.dma.log) {
      if (!Number.isSafeInteger(x.addr) || !Number.isSafeInteger(x.len) || x.addr < 0 || x.len < 0) {
        r.report("invariant", `DMA asked for a bad range: addr ${x.addr} len ${x.len}`);
        break;
      }
    }
  }
}

/** The `virtio-split` target. */
export const virtioSplitTarget: FuzzTarget = {
  name: "virtio-split",
  description: "VirtioNet behind VirtioPciTransport, split rings: common/notify/ISR/device config, MSI-X, descriptors, frames, driver traffic",
  budget: "budget: nic.work.maxUnits (descriptors one run reads) <= nic.work.budget + 2*queue size + 1; virtqueue `visited` per operation <= sum over queues of (size+1)^2",
  create: () => new VirtioInstance(false),
};

/** The `virtio-packed` target. */
export const virtioPackedTarget: FuzzTarget = {
  name: "virtio-packed",
  description: "as virtio-split, with VIRTIO_F_RING_PACKED offered and taken by the driver",
  budget: virtioSplitTarget.budget,
  create: () => new VirtioInstance(true),
};
