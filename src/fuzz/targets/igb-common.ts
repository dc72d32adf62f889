/**
 * What the two 82576 targets share: register offsets worth aiming at, ring set-up as a driver
 * does it, hostile descriptors, and the receive-side DMA an incoming frame may touch.
 * @module
 */
import { IGB_WORK_OVERSHOOT } from "../../devices/igb/activity.js";
import type { IgbCore } from "../../devices/igb/core.js";
import { B, IGB_SIZES, R } from "../../devices/igb/regs.js";
import { rxEnabled } from "../../devices/igb/rx.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import type { BudgetProbe } from "../engine.js";
import type { Range } from "../probes.js";
import type { Rng } from "../rng.js";

/** Most pending transmit descriptors whose buffers {@link queueReach} lists per queue. */
export const TX_SCAN = 4096;

/** PF BAR0 offsets of the registers a hostile guest goes for first. */
export function pfRegisterOffsets(): number[] {
  const out: number[] = [R.CTRL, R.CTRL_EXT, R.EECD, R.EERD, R.MDIC, R.ICR, R.ICS, R.IMS, R.IMC, R.IAM, R.RCTL, R.TCTL, R.GPIE, R.EICS, R.EIMS, R.EIMC,
    R.EIAC, R.EIAM, R.EICR, R.IVAR_MISC, R.DTXSWC, R.MRQC, R.VT_CTL, R.MBVFICR, R.MBVFIMR, R.VFLRE, R.VFRE, R.VFTE, R.RLPML, R.RXCSUM, R.IOVCTL, R.QDE];
  for (let q = 0; q < IGB_SIZES.queues; q++) {
    out.push(R.RDBAL(q), R.RDBAH(q), R.RDLEN(q), R.SRRCTL(q), R.RDH(q), R.RDT(q), R.RXDCTL(q), R.TDBAL(q), R.TDBAH(q), R.TDLEN(q), R.TDH(q), R.TDT(q), R.TXDCTL(q), R.TDWBAL(q), R.TDWBAH(q));
  }
  for (let i = 0; i < 25; i++) out.push(R.EITR(i));
  for (let p = 0; p < IGB_SIZES.pools; p++) out.push(R.VMBMEM(p), R.VMBMEM(p) + 4, R.VMOLR(p), R.VMVIR(p), R.PSRTYPE(p), R.P2VMAILBOX(p), R.VLVF(p));
  for (let i = 0; i < IGB_SIZES.rar; i++) out.push(R.RAL(i), R.RAH(i));
  return out;
}

/** A value for a register write: random, or an address/length/index that means something. */
export function regValue(rng: Rng, ram: number): number {
  switch (rng.below(6)) {
    case 0: return rng.below(ram) & ~0xf;
    case 1: return rng.pick([16, 128, 4096, 0x10000, 0xfff80, 0x100000, 0xffffff80]);
    case 2: return rng.below(300);
    default: return rng.value();
  }
}

/** Writes through `w` what a driver does to bring up RX and TX queue `q` with `n` descriptors. */
export function setupRings(w: (off: number, v: number) => void, mem: Uint8Array, q: number, base: number, n: number, bufBase: number): void {
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const rx = base;
  const tx = base + n * 16;
  for (let i = 0; i < n; i++) {
    const a = rx + 16 * i;
    if (a + 16 > mem.length) break;
    dv.setUint32(a, bufBase + 2048 * i, true);
    dv.setUint32(a + 4, 0, true);
    dv.setBigUint64(a + 8, 0n, true);
  }
  w(R.RXDCTL(q), 0);
  w(R.RDBAL(q), rx);
  w(R.RDBAH(q), 0);
  w(R.RDLEN(q), n * 16);
  w(R.SRRCTL(q), 2 | (1 << 25)); // 2 KiB buffers, advanced one-buffer descriptors
  w(R.RDH(q), 0);
  w(R.RDT(q), n - 1);
  w(R.RXDCTL(q), B.RXDCTL_ENABLE);
  w(R.TXDCTL(q), 0);
  w(R.TDBAL(q), tx);
  w(R.TDBAH(q), 0);
  w(R.TDLEN(q), n * 16);
  w(R.TDH(q), 0);
  w(R.TDT(q), 0);
  w(R.TXDCTL(q), B.TXDCTL_ENABLE);
}

/**
 * The bytes the device may touch on a queue's behalf, per DMA space: each enabled receive ring and
 * the packet and header buffers of its free descriptors (at most 128 from the head); with `tx`,
 * also each transmit ring, its head write-back word and the buffers of the descriptors between
 * head and tail. Read from register state without side effects and from guest memory as
 * `bytesOf` gives it. Beyond {@link TX_SCAN} pending transmit descriptors the buffers are not
 * listed: the space goes into `anyRead` (reads anywhere in it are its own queue's; writes are
 * still checked).
 */
export function queueReach(core: IgbCore, bytesOf: (s: DmaSpace) => Uint8Array | undefined, tx: boolean, anyRead?: Set<DmaSpace>): Map<DmaSpace, Range[]> {
  const out = new Map<DmaSpace, Range[]>();
  const r = core.regs;
  for (let q = 0; q < IGB_SIZES.queues; q++) {
    if (!rxEnabled(core, q)) continue;
    const space = core.dmaForQueue(q);
    const mem = bytesOf(space);
    if (mem === undefined) continue;
    const list = out.get(space) ?? [];
    out.set(space, list);
    const n = Math.floor(r.get("RDLEN", q) / 16);
    const base = r.get("RDBAH", q) * 0x1_0000_0000 + r.get("RDBAL", q);
    list.push([base, base + n * 16]);
    const srrctl = r.get("SRRCTL", q);
    const kb = srrctl & B.SRRCTL_BSIZEPKT_MASK;
    const bsize = kb === 0 ? 2048 : kb * 1024;
    const hsz = ((srrctl & B.SRRCTL_BSIZEHDR_MASK) >>> 8) * 64;
    const head = r.get("RDH", q);
    for (let i = 0; i < Math.min(n, 128); i++) {
      const a = base + 16 * ((head + i) % n);
      if (!(a >= 0 && a + 16 <= mem.length)) continue;
      const dv = new DataView(mem.buffer, mem.byteOffset + a, 16);
      const pkt = dv.getUint32(0, true) + dv.getUint32(4, true) * 0x1_0000_0000;
      const hdr = dv.getUint32(8, true) + dv.getUint32(12, true) * 0x1_0000_0000;
      list.push([pkt - (pkt % 2), pkt - (pkt % 2) + bsize]);
      if (hsz > 0) list.push([hdr - (hdr % 2), hdr - (hdr % 2) + hsz]);
    }
  }
  if (!tx) return out;
  for (let q = 0; q < IGB_SIZES.queues; q++) {
    const n = Math.floor(r.get("TDLEN", q) / 16);
    if (n === 0) continue;
    const space = core.dmaForQueue(q);
    const mem = bytesOf(space);
    if (mem === undefined) continue;
    const list = out.get(space) ?? [];
    out.set(space, list);
    const base = r.get("TDBAH", q) * 0x1_0000_0000 + r.get("TDBAL", q);
    list.push([base, base + n * 16]);
    const wb = r.get("TDWBAH", q) * 0x1_0000_0000 + (r.get("TDWBAL", q) & ~3);
    list.push([wb, wb + 4]);
    const head = r.get("TDH", q) % n;
    const tail = r.get("TDT", q) % n;
    if ((tail - head + n) % n > TX_SCAN) anyRead?.add(space);
    for (let i = head, c = 0; i !== tail && c < TX_SCAN; i = (i + 1) % n, c++) {
      const a = base + 16 * i;
      if (!(a >= 0 && a + 16 <= mem.length)) continue;
      const dv = new DataView(mem.buffer, mem.byteOffset + a, 16);
      const buf = dv.getUint32(0, true) + dv.getUint32(4, true) * 0x1_0000_0000;
      list.push([buf, buf + (dv.getUint32(8, true) & 0xffff)]);
    }
  }
  return out;
}

/**
 * The 82576's work meter as a peak probe: the most units (descriptors, frames, 4 KiB of DMA) one
 * register write or one continuation task spent during an operation must stay within
 * `core.work.counters.budget + IGB_WORK_OVERSHOOT` (the budget is checked before each descriptor;
 * the overshoot is what one descriptor may finish).
 */
export function igbWorkProbe(core: IgbCore): BudgetProbe {
  const c = core.work.counters;
  return {
    name: "igb work units per register write or task",
    read: () => c.maxUnits,
    limit: () => c.budget + IGB_WORK_OVERSHOOT,
    reset: () => void (c.maxUnits = 0),
  };
}

/**
 * Continuation tasks must carry work: the core schedules one only when a write or task spent its
 * budget with work left (or frames wait behind such work), so over an operation the tasks
 * scheduled may exceed the units spent divided by the budget by at most one or two (a task
 * scheduled now runs in a later operation). A task that reschedules itself without progress (a
 * retry loop at `IGB_CONTINUE_NS`) makes this grow by about one per task.
 */
export function igbContinuationProbe(core: IgbCore): BudgetProbe {
  const c = core.work.counters;
  return {
    name: "igb continuation tasks beyond units spent / budget",
    read: () => c.continuations - c.totalUnits / c.budget,
    limit: () => 2,
  };
}
