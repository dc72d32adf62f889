/**
 * Regression tests for the hardening defects of issue 15: unbounded work per register write,
 * 64-bit DMA addresses truncated by 32-bit operators, PF FLR leaving VFs enabled in the core,
 * and capability offsets declared wrongly in the layout.
 */
import { describe, it, expect } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import { EXT_CAP_START } from "../../pci/config-space.js";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import type { FrameSink, NetBackend } from "../net/backend.js";
import { IGB_WORK_BUDGET, IGB_WORK_OVERSHOOT } from "./activity.js";
import { IgbCore } from "./core.js";
import { IGB_PF_LAYOUT, IGB_VF_LAYOUT } from "./layout.js";
import { IgbPciDevice } from "./pci.js";
import { B, D, R, VR } from "./regs.js";
import { FlatMemory, IrqRecorder, ManualClock } from "./testing.js";
import { CountingBackend } from "../net/testing.js";

const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const PEER = [0x02, 0x99, 0, 0, 0, 1];

/** Fills a ring of `n` one-descriptor frames (60 bytes each, from `src`) at `base`, buffer at `buf`. */
function fillTxRing(mem: FlatMemory, base: number, n: number, buf: number, src: ArrayLike<number>): void {
  const f = new Uint8Array(60);
  f.set(PEER, 0);
  f.set(src, 6);
  f[12] = 0x08;
  mem.write(buf, f);
  const d = new Uint8Array(16);
  const v = new DataView(d.buffer);
  v.setUint32(0, buf, true);
  v.setUint32(8, (D.TXD_DTYP_DATA | D.TXD_CMD_DEXT | D.TXD_CMD_EOP | D.TXD_CMD_IFCS | D.TXD_CMD_RS | 60) >>> 0, true);
  v.setUint32(12, 60 << D.TXD_PAYLEN_SHIFT, true);
  for (let i = 0; i < n; i++) mem.write(base + 16 * i, d);
}

describe("work budget per register write", () => {
  const N = 65535; // descriptors in the longest ring TDLEN can hold (0xFFFF0 bytes)

  it("PF: one TDT write over a 65535-descriptor ring does a bounded part; the rest completes in tasks on the clock", () => {
    const mem = new FlatMemory(4 << 20);
    const clock = new ManualClock();
    const up = new CountingBackend();
    const core = new IgbCore({ mac: MAC, dma: () => mem, irq: new IrqRecorder(), clock, backend: up });
    fillTxRing(mem, 0x10000, N, 0x200000, MAC);
    core.mmioWrite(R.TDBAL(0), 4, 0x10000);
    core.mmioWrite(R.TDLEN(0), 4, N * 16);
    core.mmioWrite(R.TCTL, 4, B.TCTL_EN);
    core.mmioWrite(R.TDT(0), 4, N - 1);
    // each descriptor here is one 60-byte frame: 3 units (descriptor, data, frame)
    expect(core.work.counters.lastUnits).toBeGreaterThanOrEqual(IGB_WORK_BUDGET);
    expect(core.work.counters.lastUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + 3);
    expect(up.sent).toBeGreaterThan(0);
    expect(up.sent).toBeLessThan(N - 1);
    for (let i = 0; i < 1000 && up.sent < N - 1; i++) clock.advance(1_000_000);
    expect(up.sent).toBe(N - 1);
    expect(core.regs.get("TDH", 0)).toBe(N - 1);
    expect(core.work.counters.continuations).toBeGreaterThan(0);
    expect(core.work.counters.maxUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + 3);
    expect(IGB_WORK_OVERSHOOT).toBeGreaterThan(3);
  });

  it("VF: the same through a VF's BAR0", () => {
    const up = new CountingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    const base = tb.alloc(N * 16, 128);
    const buf = tb.alloc(64, 64);
    fillTxRing(tb.mem, base, N, buf, [0x02, 0, 0, 0, 0x01, 0]);
    const bar = tb.vfRegs[0]!;
    bar.write(VR.TDBAL(0), 4, base);
    bar.write(VR.TDLEN(0), 4, N * 16);
    bar.write(VR.TDH(0), 4, 0);
    bar.write(VR.TDT(0), 4, 0);
    const before = up.sent;
    bar.write(VR.TDT(0), 4, N - 1);
    expect(tb.core.work.counters.lastUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + 3);
    expect(up.sent - before).toBeLessThan(N - 1);
    for (let i = 0; i < 1000 && up.sent - before < N - 1; i++) tb.clock.advance(1_000_000);
    expect(up.sent - before).toBe(N - 1);
  });
});

describe("work budget: receive", () => {
  /** A backend that keeps frames until the NIC says it has buffers, then hands over all of them at once. */
  class FloodBackend implements NetBackend {
    queued: Uint8Array[] = [];
    sink: FrameSink | undefined;
    transmit(): void {}
    setReceiver(s: FrameSink | undefined): void {
      this.sink = s;
    }
    rxReady(): void {
      const q = this.queued;
      this.queued = [];
      for (const f of q) this.sink?.(f);
    }
  }

  it("an RDT write that makes the uplink deliver a flood does bounded work; waiting frames follow in tasks, in order", () => {
    const be = new FloodBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: be, driver: { ringSize: 1024 } });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    const mac = [0x02, 0, 0, 0, 0x01, 0];
    for (let i = 0; i < 3000; i++) {
      const f = new Uint8Array(1200);
      f.set(mac, 0);
      f.set(PEER, 6);
      f[12] = 0x08;
      f[14] = i & 0xff;
      f[15] = i >>> 8;
      be.queued.push(f);
    }
    tb.vfRegs[0]!.write(VR.RDT(0), 4, tb.core.regs.get("RDT", 0)); // buffers "appeared"
    const w = tb.core.work.counters;
    expect(w.lastUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + 8); // one 1200-byte frame: at most 8 units
    const act = tb.core.activity;
    expect(act.nicFifo.length).toBeGreaterThan(0);
    const taken = () => tb.core.regs.get("PVFGPRC", 0);
    const first = taken();
    expect(first).toBeLessThan(1023);
    const got: number[] = [];
    for (let i = 0; i < 100 && act.nicFifo.length > 0; i++) {
      tb.clock.advance(1_000_000);
      for (const r of d.receive()) got.push(r.frame[14]! | (r.frame[15]! << 8));
    }
    expect(act.nicFifo.length).toBe(0);
    expect(w.maxUnits).toBeLessThanOrEqual(IGB_WORK_BUDGET + 8);
    // every frame was taken, held then taken, or dropped and counted; what arrived is in order
    expect(act.counters.held + first).toBeGreaterThanOrEqual(3000 - act.counters.heldDrops);
    expect(got.length).toBeGreaterThan(0);
    for (let i = 1; i < got.length; i++) expect(got[i]! > got[i - 1]!).toBe(true);
  });
});

/** A DMA space as large as 2^64 that records every write and serves reads from given regions. */
class SparseDma implements DmaSpace {
  readonly writes: number[] = [];
  faults = 0;
  constructor(readonly regions: Map<number, Uint8Array>) {}
  read(addr: number, len: number): Uint8Array | undefined {
    const r = this.regions.get(addr);
    if (r === undefined || r.length < len) {
      this.faults++;
      return undefined;
    }
    return r.subarray(0, len);
  }
  write(addr: number, data: Uint8Array): boolean {
    if (!(addr >= 0 && Number.isSafeInteger(addr) && data.length >= 0)) {
      this.faults++;
      return false;
    }
    this.writes.push(addr);
    return true;
  }
}

describe("64-bit DMA addresses", () => {
  const rxDesc = (pkt: number, hdr: number) => {
    const d = new Uint8Array(16);
    const v = new DataView(d.buffer);
    v.setUint32(0, pkt % 2 ** 32, true);
    v.setUint32(4, Math.floor(pkt / 2 ** 32), true);
    v.setUint32(8, hdr % 2 ** 32, true);
    v.setUint32(12, Math.floor(hdr / 2 ** 32), true);
    return d;
  };

  it("receive packet and header buffers above 4 GiB and at or above 2^31 are written where the descriptor says", () => {
    const ring = 0x10000;
    const regions = new Map<number, Uint8Array>([
      [ring, rxDesc(0x1_0000_1000, 0)],
      [ring + 16, rxDesc(0x8000_1000, 0)],
      [ring + 32, rxDesc(0x3_0000_2000, 0x2_8000_0040)],
    ]);
    const dma = new SparseDma(regions);
    const core = new IgbCore({ mac: MAC, dma: () => dma, irq: new IrqRecorder(), clock: new ManualClock() });
    core.mmioWrite(R.RDBAL(0), 4, ring);
    core.mmioWrite(R.RDLEN(0), 4, 128);
    core.mmioWrite(R.RDT(0), 4, 4);
    core.mmioWrite(R.RCTL, 4, B.RCTL_EN | B.RCTL_UPE | B.RCTL_BAM);
    const f = new Uint8Array(300);
    f.set(PEER, 0);
    f[12] = 0x08;
    expect(core.receive(f)).toBe(true);
    expect(core.receive(f)).toBe(true);
    // header split for the third: 128-byte header buffer
    core.mmioWrite(R.SRRCTL(0), 4, B.SRRCTL_DESCTYPE_HDR_SPLIT_ALWAYS | (2 << 8) | 2);
    expect(core.receive(f)).toBe(true);
    expect(dma.writes).toContain(0x1_0000_1000);
    expect(dma.writes).toContain(0x8000_1000);
    expect(dma.writes).toContain(0x2_8000_0040);
    expect(dma.writes).toContain(0x3_0000_2000);
    expect(dma.writes.every((a) => a >= 0)).toBe(true);
    expect(core.regs.get("RDH", 0)).toBe(3);
  });

  it("transmit head write-back at or above 2^31 goes to the exact address", () => {
    const mem = new FlatMemory(1 << 20);
    fillTxRing(mem, 0x1000, 8, 0x8000, MAC);
    const wb: number[] = [];
    const dma: DmaSpace = {
      read: (a, l) => mem.read(a, l),
      write: (a, d) => {
        if (a >= 0x1_0000) wb.push(a);
        return a < 0x1_0000 ? mem.write(a, d) : true;
      },
    };
    const core = new IgbCore({ mac: MAC, dma: () => dma, irq: new IrqRecorder(), clock: new ManualClock(), backend: new CountingBackend() });
    core.mmioWrite(R.TDBAL(0), 4, 0x1000);
    core.mmioWrite(R.TDLEN(0), 4, 128);
    core.mmioWrite(R.TDWBAL(0), 4, 0x8000_0001);
    core.mmioWrite(R.TDWBAH(0), 4, 0x1);
    core.mmioWrite(R.TCTL, 4, B.TCTL_EN);
    core.mmioWrite(R.TDT(0), 4, 2);
    expect(wb.length).toBeGreaterThan(0);
    expect(new Set(wb)).toEqual(new Set([0x1_8000_0000]));
  });
});

describe("PF FLR", () => {
  it("clears the core's VFs with VF Enable: no queue keeps a VF's DMA space", () => {
    const dev = new IgbPciDevice({ mac: MAC, clock: new ManualClock() });
    const S = IGB_PF_LAYOUT.caps.sriov;
    dev.pf.configWrite(S + 0x10, 2, 2); // NumVFs
    dev.pf.configWrite(S + 0x08, 2, 0x9); // VF Enable | VF MSE
    expect(dev.core.numVfs).toBe(2);
    expect(dev.core.isVfPool(1)).toBe(true);
    const P = IGB_PF_LAYOUT.caps.pcie;
    dev.pf.configWrite(P + 0x08, 2, dev.pf.configRead(P + 0x08, 2) | 0x8000); // Initiate FLR
    expect(dev.sriov.vfEnabled).toBe(false);
    expect(dev.core.numVfs).toBe(0);
    expect(dev.core.isVfPool(0)).toBe(false);
    expect(dev.core.mmioRead(R.STATUS, 4) & B.STATUS_IOV_MODE).toBe(0);
  });
});

describe("capability layout", () => {
  /** [id, offset] of every capability in `fn`'s lists, standard then extended (ids of extended ones + 0x1000). */
  function walk(cs: { config: Uint8Array; get32(o: number): number; size: number }): [number, number][] {
    const out: [number, number][] = [];
    let off = cs.config[0x34]! & 0xfc;
    for (let n = 0; off !== 0 && n < 48; n++) {
      out.push([cs.config[off]!, off]);
      off = cs.config[off + 1]! & 0xfc;
    }
    if (cs.size === 4096) {
      off = EXT_CAP_START;
      for (let n = 0; off >= EXT_CAP_START && n < 64; n++) {
        const h = cs.get32(off);
        if (h === 0) break;
        out.push([0x1000 + (h & 0xffff), off]);
        off = (h >>> 20) & 0xffc;
      }
    }
    return out;
  }
  const ID: Record<string, number> = { pm: 0x01, msi: 0x05, msix: 0x11, pcie: 0x10, aer: 0x1001, ari: 0x100e, sriov: 0x1010 };

  it("IGB_PF_LAYOUT.caps and IGB_VF_LAYOUT.caps are where the built functions have their capabilities", () => {
    const dev = new IgbPciDevice({ mac: MAC, clock: new ManualClock() });
    const expected = (caps: Record<string, number>) => Object.entries(caps).map(([k, off]) => [ID[k]!, off]).sort((a, b) => a[1]! - b[1]!);
    expect(walk(dev.pf.config)).toEqual(expected(IGB_PF_LAYOUT.caps));
    expect(walk(dev.vfs[0]!.config)).toEqual(expected(IGB_VF_LAYOUT.caps));
  });
});
