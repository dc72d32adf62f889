/**
 * The PF agent's receive-filter programming on the 82576 PF's registers: receive addresses (RAR),
 * VLAN filters (VLVF/VFTA), the multicast table and the anti-spoof bits, and placing one VF's
 * filters after its state moved in. Split from the agent so the mailbox logic reads on its own.
 *
 * Platform-neutral.
 * @module
 */
import { B, IGB_SIZES, R } from "../../devices/igb/regs.js";
import { EXTRA_RAR_END, VLVF_ENTRIES } from "./agent-state.js";

/** 32-bit register access to the PF's BAR0. */
export interface PfBar {
  read(offset: number, size: 4): number;
  write(offset: number, size: 4, value: number): void;
}

/** The all-zero MAC. */
export const ZERO_MAC = new Uint8Array(6);
/** Whether every byte of `m` is zero. */
export const isZero = (m: Uint8Array): boolean => m.every((b) => b === 0);
/** Whether two MACs are equal. */
export const sameMac = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
/** RAL's value for `m`. */
export const macLo = (m: Uint8Array): number => ((m[0] ?? 0) | ((m[1] ?? 0) << 8) | ((m[2] ?? 0) << 16) | ((m[3] ?? 0) << 24)) >>> 0;
/** RAH's address bits for `m`. */
export const macHi = (m: Uint8Array): number => (m[4] ?? 0) | ((m[5] ?? 0) << 8);
/** The MAC held by RAL/RAH values. */
export const rarMac = (ral: number, rah: number): Uint8Array =>
  Uint8Array.of(ral & 0xff, (ral >>> 8) & 0xff, (ral >>> 16) & 0xff, ral >>> 24, rah & 0xff, (rah >>> 8) & 0xff);

/** RAR row Linux igb gives VF n for its own MAC: counted from the top. */
export const vfRar = (vf: number): number => IGB_SIZES.rar - 1 - vf;

/** Register-level filter programming through the PF's BAR0. */
export class PfFilters {
  constructor(private readonly bar: PfBar) {}

  /** Reads a 32-bit register. */
  rd(off: number): number {
    return this.bar.read(off, 4) >>> 0;
  }
  /** Writes a 32-bit register. */
  wr(off: number, v: number): void {
    this.bar.write(off, 4, v >>> 0);
  }

  /** Writes RAR row `i` for `mac` in `pool` alone (zero MAC: clears the row). */
  setRar(i: number, mac: Uint8Array, pool: number): void {
    if (isZero(mac)) {
      this.wr(R.RAH(i), 0);
      this.wr(R.RAL(i), 0);
      return;
    }
    this.wr(R.RAL(i), macLo(mac));
    this.wr(R.RAH(i), (macHi(mac) | B.RAH_AV | ((1 << pool) << B.RAH_POOL_SHIFT)) >>> 0);
  }

  /** The pools of RAR row `i` (0 when the row is not in use). */
  rarPools(i: number): number {
    const rah = this.rd(R.RAH(i));
    return rah & B.RAH_AV ? (rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT : 0;
  }

  /** The MAC of RAR row `i`. */
  rarMac(i: number): Uint8Array {
    return rarMac(this.rd(R.RAL(i)), this.rd(R.RAH(i)));
  }

  /** Whether a RAR row holds `mac` for a pool other than `vf`. */
  macInOtherPool(mac: Uint8Array, vf: number): boolean {
    const lo = macLo(mac);
    const hi = macHi(mac);
    for (let i = 0; i < IGB_SIZES.rar; i++) {
      const rah = this.rd(R.RAH(i));
      if ((rah & B.RAH_AV) === 0 || this.rd(R.RAL(i)) !== lo || (rah & 0xffff) !== hi) continue;
      if ((((rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) & ~(1 << vf)) !== 0) return true;
    }
    return false;
  }

  /** A RAR row for extra filters (1..15) not in use, or -1. */
  freeExtraRow(): number {
    for (let i = 1; i < EXTRA_RAR_END; i++) if ((this.rd(R.RAH(i)) & B.RAH_AV) === 0) return i;
    return -1;
  }

  /** The VLVF entry enabled for `vid`, or -1. */
  vlvfIndex(vid: number): number {
    for (let i = 0; i < VLVF_ENTRIES; i++) {
      const v = this.rd(R.VLVF(i));
      if (v & B.VLVF_VLANID_ENABLE && (v & B.VLVF_VLANID_MASK) === vid) return i;
    }
    return -1;
  }

  /** Number of VLVF entries not enabled. */
  vlvfFree(): number {
    let n = 0;
    for (let i = 0; i < VLVF_ENTRIES; i++) if ((this.rd(R.VLVF(i)) & B.VLVF_VLANID_ENABLE) === 0) n++;
    return n;
  }

  /** Adds or removes pool `vf` in the VLVF entry for `vid` (and sets the VFTA bit). False if no entry is free. */
  vlvf(vf: number, vid: number, add: boolean): boolean {
    let idx = this.vlvfIndex(vid);
    const bit = (1 << vf) << B.VLVF_POOLSEL_SHIFT;
    if (!add) {
      if (idx >= 0) {
        const v = this.rd(R.VLVF(idx)) & ~bit;
        this.wr(R.VLVF(idx), v & B.VLVF_POOLSEL_MASK ? v : 0);
      }
      return true;
    }
    for (let i = 0; i < VLVF_ENTRIES && idx < 0; i++) if ((this.rd(R.VLVF(i)) & B.VLVF_VLANID_ENABLE) === 0) idx = i;
    if (idx < 0) return false;
    this.wr(R.VLVF(idx), (B.VLVF_VLANID_ENABLE | vid | (this.rd(R.VLVF(idx)) & B.VLVF_POOLSEL_MASK) | bit) >>> 0);
    this.wr(R.VFTA(vid >>> 5), this.rd(R.VFTA(vid >>> 5)) | (1 << (vid & 31)));
    return true;
  }

  /** Sets or clears VF `vf`'s MAC and VLAN anti-spoof bits. */
  setSpoofchk(vf: number, on: boolean): void {
    const bits = (1 << vf) | (1 << (vf + B.DTXSWC_VLAN_SPOOF_SHIFT));
    const d = this.rd(R.DTXSWC);
    this.wr(R.DTXSWC, on ? d | bits : d & ~bits);
  }

  /** Writes the multicast table from every VF's hash list. */
  writeMta(lists: readonly (readonly number[])[]): void {
    const mta = new Uint32Array(128);
    for (const l of lists) for (const h of l) mta[h >>> 5] = (mta[h >>> 5] ?? 0) | (1 << (h & 31));
    for (let i = 0; i < 128; i++) this.wr(R.MTA(i), mta[i] ?? 0);
  }

  /**
   * Places VF `vf`'s filters after its state moved in (the NIC's per-VF restore may have put its
   * rows anywhere): its MAC in its own row (moving another pool's entry out of that row first),
   * its extra filters in rows 1..15 (kept where they already are), nothing else of the pool's
   * alone; its pool in exactly the VLVF entries of `vids`. Never throws: what finds no room is
   * left out and counted.
   */
  placeVf(vf: number, mac: Uint8Array, extras: readonly Uint8Array[], vids: ReadonlySet<number>): { extraRows: number[]; droppedMacs: number; droppedVlans: number[] } {
    const own = 1 << vf;
    const row = vfRar(vf);
    const placed = new Set<number>();
    const extraRows: number[] = [];
    for (let i = 1; i < IGB_SIZES.rar; i++) {
      if (this.rarPools(i) !== own) continue;
      const m = this.rarMac(i);
      const k = extras.findIndex((w, j) => !placed.has(j) && sameMac(w, m));
      if (k >= 0 && i < EXTRA_RAR_END) {
        placed.add(k);
        extraRows.push(i);
      } else if (i !== row) {
        this.setRar(i, ZERO_MAC, vf);
      }
    }
    if (this.rarPools(row) & ~own) {
      const free = this.freeExtraRow();
      if (free >= 0) {
        this.wr(R.RAL(free), this.rd(R.RAL(row)));
        this.wr(R.RAH(free), this.rd(R.RAH(row)));
      }
    }
    this.setRar(row, mac, vf);
    let droppedMacs = 0;
    extras.forEach((m, j) => {
      if (placed.has(j)) return;
      const free = this.freeExtraRow();
      if (free < 0) return void droppedMacs++;
      this.setRar(free, m, vf);
      extraRows.push(free);
    });
    for (let i = 0; i < VLVF_ENTRIES; i++) {
      const v = this.rd(R.VLVF(i));
      const vid = v & B.VLVF_VLANID_MASK;
      if (v & B.VLVF_VLANID_ENABLE && (v >>> B.VLVF_POOLSEL_SHIFT) & own && !vids.has(vid)) this.vlvf(vf, vid, false);
    }
    const droppedVlans: number[] = [];
    for (const vid of vids) if (!this.vlvf(vf, vid, true)) droppedVlans.push(vid);
    return { extraRows, droppedMacs, droppedVlans };
  }
}
