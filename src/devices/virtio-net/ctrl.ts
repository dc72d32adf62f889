/**
 * virtio-net control commands (virtio 1.2 section 5.1.6.5): CTRL_RX modes, CTRL_MAC (table set,
 * address set), CTRL_VLAN, ANNOUNCE acknowledgement, MQ pairs set, guest offloads set. Each is
 * checked against the negotiated features and its exact length; a malformed one gets
 * VIRTIO_NET_ERR and changes nothing.
 * @module
 */
import { le16, le32 } from "../net/bytes.js";
import { VIRTIO_NET_F, has } from "./features.js";
import type { RxFilter } from "./rx-filter.js";
import { GUEST_OFFLOAD_BITS } from "./state.js";

/** VIRTIO_NET_OK and VIRTIO_NET_ERR. */
export const ACK_OK = 0;
export const ACK_ERR = 1;
/** The largest control command accepted (two full MAC tables fit many times over). */
export const MAX_CTRL_CMD = 16_384;

const CTRL = { RX: 0, MAC: 1, VLAN: 2, ANNOUNCE: 3, MQ: 4, GUEST_OFFLOADS: 5 } as const;

/** What a control command may read and change in the device. */
export interface CtrlHost {
  negotiated(): bigint;
  readonly filter: RxFilter;
  maxPairs(): number;
  /** ADDR_SET: a unicast MAC (checked). */
  setMac(mac: Uint8Array): void;
  /** The driver acknowledged STATUS.ANNOUNCE. */
  ackAnnounce(): void;
  /** VQ_PAIRS_SET with 1..maxPairs (checked). */
  setPairs(n: number): void;
  /** Guest offload bits switched off (a subset of the negotiated switchable ones, checked). */
  setGuestOffloadsOff(off: bigint): void;
}

/** Executes one control command; returns VIRTIO_NET_OK or VIRTIO_NET_ERR. */
export function runCommand(h: CtrlHost, cls: number, cmd: number, d: Uint8Array): number {
  const f = h.negotiated();
  switch (cls) {
    case CTRL.RX: {
      if (!has(f, VIRTIO_NET_F.CTRL_RX) || d.length !== 1) return ACK_ERR;
      if (cmd > 1 && !has(f, VIRTIO_NET_F.CTRL_RX_EXTRA)) return ACK_ERR;
      return h.filter.setMode(cmd, d[0] !== 0) ? ACK_OK : ACK_ERR;
    }
    case CTRL.MAC: {
      if (cmd === 0) {
        // Two tables back to back: le32 entries, then entries x 6 bytes.
        if (d.length < 4) return ACK_ERR;
        const n1 = le32(d, 0);
        const end1 = 4 + 6 * n1;
        if (n1 > MAX_CTRL_CMD || end1 + 4 > d.length) return ACK_ERR;
        const n2 = le32(d, end1);
        const end2 = end1 + 4 + 6 * n2;
        if (n2 > MAX_CTRL_CMD || end2 !== d.length) return ACK_ERR;
        h.filter.setTable("unicast", d.subarray(4, end1), n1);
        h.filter.setTable("multicast", d.subarray(end1 + 4, end2), n2);
        return ACK_OK;
      }
      if (cmd === 1) {
        if (!has(f, VIRTIO_NET_F.CTRL_MAC_ADDR) || d.length !== 6 || (d[0]! & 1) === 1) return ACK_ERR;
        h.setMac(d);
        return ACK_OK;
      }
      return ACK_ERR;
    }
    case CTRL.VLAN: {
      if (!has(f, VIRTIO_NET_F.CTRL_VLAN) || d.length !== 2 || cmd > 1) return ACK_ERR;
      const vid = le16(d, 0);
      if (vid >= 4096) return ACK_ERR;
      h.filter.setVlan(vid, cmd === 0);
      return ACK_OK;
    }
    case CTRL.ANNOUNCE: {
      if (!has(f, VIRTIO_NET_F.GUEST_ANNOUNCE) || cmd !== 0) return ACK_ERR;
      h.ackAnnounce();
      return ACK_OK;
    }
    case CTRL.MQ: {
      if (!has(f, VIRTIO_NET_F.MQ) || cmd !== 0 || d.length !== 2) return ACK_ERR;
      const n = le16(d, 0);
      if (n < 1 || n > h.maxPairs()) return ACK_ERR;
      h.setPairs(n);
      return ACK_OK;
    }
    case CTRL.GUEST_OFFLOADS: {
      if (!has(f, VIRTIO_NET_F.CTRL_GUEST_OFFLOADS) || cmd !== 0 || d.length !== 8) return ACK_ERR;
      const want = BigInt(le32(d, 0)) | (BigInt(le32(d, 4)) << 32n);
      const switchable = f & GUEST_OFFLOAD_BITS;
      if ((want & ~switchable) !== 0n) return ACK_ERR;
      h.setGuestOffloadsOff(switchable & ~want);
      return ACK_OK;
    }
    default:
      return ACK_ERR;
  }
}
