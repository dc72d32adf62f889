/**
 * virtio-net receive filtering (virtio 1.2 section 5.1.6.5): the rx modes the control queue sets
 * (promiscuous, all-multicast, all-unicast, no-multicast, no-unicast, no-broadcast), the unicast
 * and multicast MAC tables, and the VLAN filter table. After a device reset the device is
 * promiscuous, as QEMU's is: a driver without VIRTIO_NET_F_CTRL_RX then receives everything, and
 * Linux switches promiscuous mode off through the control queue once it has set up its filters.
 * @module
 */

/** Entries per MAC table; a longer list sets the table's overflow flag (accept all of that kind). */
export const MAC_TABLE_ENTRIES = 64;

/** Saved filter state. */
export interface RxFilterState {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
  /** MACs as 12 hex digits. */
  unicast: string[];
  multicast: string[];
  uniOverflow: boolean;
  multiOverflow: boolean;
  /** VLAN IDs in the filter table. */
  vlans: number[];
}

/** The 6 bytes at `off` as 12 lower-case hex digits (the tables' keys and the saved form). */
export const macHex = (b: Uint8Array, off = 0): string => {
  let s = "";
  for (let i = 0; i < 6; i++) s += (b[off + i] ?? 0).toString(16).padStart(2, "0");
  return s;
};

/** The filter. `mac` is the device's own address (the config space's). */
export class RxFilter {
  promisc = true;
  allmulti = false;
  alluni = false;
  nomulti = false;
  nouni = false;
  nobcast = false;
  unicast = new Set<string>();
  multicast = new Set<string>();
  uniOverflow = false;
  multiOverflow = false;
  /** 4096-bit VLAN table. */
  readonly vlans = new Uint32Array(128);

  /** Back to the power-on state. */
  reset(): void {
    this.promisc = true;
    this.allmulti = this.alluni = this.nomulti = this.nouni = this.nobcast = false;
    this.unicast.clear();
    this.multicast.clear();
    this.uniOverflow = this.multiOverflow = false;
    this.vlans.fill(0);
  }

  /** Sets one of the rx modes by its CTRL_RX command number (0-5). Returns false for an unknown one. */
  setMode(cmd: number, on: boolean): boolean {
    switch (cmd) {
      case 0: this.promisc = on; return true;
      case 1: this.allmulti = on; return true;
      case 2: this.alluni = on; return true;
      case 3: this.nomulti = on; return true;
      case 4: this.nouni = on; return true;
      case 5: this.nobcast = on; return true;
      default: return false;
    }
  }

  /** Replaces a MAC table with `count` addresses from `macs` (6 bytes each). */
  setTable(kind: "unicast" | "multicast", macs: Uint8Array, count: number): void {
    const t = kind === "unicast" ? this.unicast : this.multicast;
    t.clear();
    const overflow = count > MAC_TABLE_ENTRIES;
    if (kind === "unicast") this.uniOverflow = overflow;
    else this.multiOverflow = overflow;
    if (overflow) return;
    for (let i = 0; i < count; i++) t.add(macHex(macs, 6 * i));
  }

  setVlan(vid: number, on: boolean): void {
    const w = vid >>> 5;
    const bit = 1 << (vid & 31);
    if (on) this.vlans[w]! |= bit;
    else this.vlans[w]! &= ~bit;
  }

  hasVlan(vid: number): boolean {
    return ((this.vlans[vid >>> 5]! >>> (vid & 31)) & 1) === 1;
  }

  /**
   * Whether a frame passes. `vlanFiltering` is on when VIRTIO_NET_F_CTRL_VLAN was negotiated: then
   * tagged frames whose VLAN ID is not in the table are dropped.
   */
  accepts(frame: Uint8Array, ownMac: Uint8Array, vlanFiltering: boolean): boolean {
    if (frame.length < 14) return false;
    if (this.promisc) return true;
    if (vlanFiltering && frame[12] === 0x81 && frame[13] === 0x00) {
      if (frame.length < 18) return false;
      const vid = ((frame[14]! & 0x0f) << 8) | frame[15]!;
      if (!this.hasVlan(vid)) return false;
    }
    const d0 = frame[0]!;
    if ((d0 & 1) === 1) {
      let bcast = true;
      for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) bcast = false;
      if (bcast) return !this.nobcast;
      if (this.nomulti) return false;
      if (this.allmulti || this.multiOverflow) return true;
      return this.multicast.has(macHex(frame));
    }
    if (this.nouni) return false;
    if (this.alluni || this.uniOverflow) return true;
    let own = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== ownMac[i]) own = false;
    return own || this.unicast.has(macHex(frame));
  }

  save(): RxFilterState {
    const vlans: number[] = [];
    for (let v = 0; v < 4096; v++) if (this.hasVlan(v)) vlans.push(v);
    return {
      promisc: this.promisc,
      allmulti: this.allmulti,
      alluni: this.alluni,
      nomulti: this.nomulti,
      nouni: this.nouni,
      nobcast: this.nobcast,
      unicast: [...this.unicast],
      multicast: [...this.multicast],
      uniOverflow: this.uniOverflow,
      multiOverflow: this.multiOverflow,
      vlans,
    };
  }

  /** Applies a parsed state (see `parseNetState`). Never throws. */
  restore(s: RxFilterState): void {
    this.promisc = s.promisc;
    this.allmulti = s.allmulti;
    this.alluni = s.alluni;
    this.nomulti = s.nomulti;
    this.nouni = s.nouni;
    this.nobcast = s.nobcast;
    this.uniOverflow = s.uniOverflow;
    this.multiOverflow = s.multiOverflow;
    this.unicast = new Set(s.unicast);
    this.multicast = new Set(s.multicast);
    this.vlans.fill(0);
    for (const v of s.vlans) this.setVlan(v, true);
  }
}
