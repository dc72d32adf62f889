/**
 * virtio-net feature bits (virtio 1.2 section 5.1.3) and the offer a device makes from its options:
 * every feature nicvisor implements, minus what the VMM withholds, with the spec's dependencies
 * applied (withholding CTRL_VQ also withholds every control-queue feature, CSUM the host TSO
 * features, GUEST_CSUM the guest TSO features), so that Linux never sees an inconsistent offer.
 * @module
 */
import { VIRTIO_F } from "../virtio/pci-transport.js";

/** virtio-net feature bits. */
export const VIRTIO_NET_F = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  GUEST_TSO6: 8,
  GUEST_ECN: 9,
  HOST_TSO4: 11,
  HOST_TSO6: 12,
  HOST_ECN: 13,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
  STANDBY: 62,
  SPEED_DUPLEX: 63,
} as const;

/** A name for each feature, for `--net virtio,no-<name>` and error messages. */
export const VIRTIO_NET_FEATURE_NAMES: Readonly<Record<string, number>> = {
  csum: VIRTIO_NET_F.CSUM,
  "guest-csum": VIRTIO_NET_F.GUEST_CSUM,
  "ctrl-guest-offloads": VIRTIO_NET_F.CTRL_GUEST_OFFLOADS,
  mtu: VIRTIO_NET_F.MTU,
  mac: VIRTIO_NET_F.MAC,
  "guest-tso4": VIRTIO_NET_F.GUEST_TSO4,
  "guest-tso6": VIRTIO_NET_F.GUEST_TSO6,
  "guest-ecn": VIRTIO_NET_F.GUEST_ECN,
  "host-tso4": VIRTIO_NET_F.HOST_TSO4,
  "host-tso6": VIRTIO_NET_F.HOST_TSO6,
  "host-ecn": VIRTIO_NET_F.HOST_ECN,
  "mrg-rxbuf": VIRTIO_NET_F.MRG_RXBUF,
  status: VIRTIO_NET_F.STATUS,
  "ctrl-vq": VIRTIO_NET_F.CTRL_VQ,
  "ctrl-rx": VIRTIO_NET_F.CTRL_RX,
  "ctrl-vlan": VIRTIO_NET_F.CTRL_VLAN,
  "ctrl-rx-extra": VIRTIO_NET_F.CTRL_RX_EXTRA,
  "guest-announce": VIRTIO_NET_F.GUEST_ANNOUNCE,
  mq: VIRTIO_NET_F.MQ,
  "ctrl-mac-addr": VIRTIO_NET_F.CTRL_MAC_ADDR,
  standby: VIRTIO_NET_F.STANDBY,
  "speed-duplex": VIRTIO_NET_F.SPEED_DUPLEX,
  "indirect-desc": VIRTIO_F.INDIRECT_DESC,
  "event-idx": VIRTIO_F.EVENT_IDX,
  "ring-packed": VIRTIO_F.RING_PACKED,
};

/** What decides the offer. */
export interface OfferOptions {
  /** Offer MTU (the value is in the config space). */
  mtu?: number | undefined;
  /** Offer STANDBY (a failover standby device). */
  standby?: boolean | undefined;
  /** Offer RING_PACKED (only when the transport implements it). */
  packed?: boolean | undefined;
  /** Feature bits to withhold. VERSION_1 cannot be withheld. */
  withhold?: readonly number[] | undefined;
}

/** Dependencies: a feature is offered only with all of these (virtio 1.2 5.1.3.1). */
const REQUIRES: ReadonlyArray<readonly [number, readonly number[]]> = [
  [VIRTIO_NET_F.GUEST_TSO4, [VIRTIO_NET_F.GUEST_CSUM]],
  [VIRTIO_NET_F.GUEST_TSO6, [VIRTIO_NET_F.GUEST_CSUM]],
  [VIRTIO_NET_F.GUEST_ECN, [VIRTIO_NET_F.GUEST_TSO4]],
  [VIRTIO_NET_F.HOST_TSO4, [VIRTIO_NET_F.CSUM]],
  [VIRTIO_NET_F.HOST_TSO6, [VIRTIO_NET_F.CSUM]],
  [VIRTIO_NET_F.HOST_ECN, [VIRTIO_NET_F.HOST_TSO4]],
  [VIRTIO_NET_F.CTRL_RX, [VIRTIO_NET_F.CTRL_VQ]],
  [VIRTIO_NET_F.CTRL_VLAN, [VIRTIO_NET_F.CTRL_VQ]],
  [VIRTIO_NET_F.GUEST_ANNOUNCE, [VIRTIO_NET_F.CTRL_VQ]],
  [VIRTIO_NET_F.MQ, [VIRTIO_NET_F.CTRL_VQ]],
  [VIRTIO_NET_F.CTRL_MAC_ADDR, [VIRTIO_NET_F.CTRL_VQ]],
  [VIRTIO_NET_F.CTRL_RX_EXTRA, [VIRTIO_NET_F.CTRL_RX]],
  [VIRTIO_NET_F.CTRL_GUEST_OFFLOADS, [VIRTIO_NET_F.CTRL_VQ, VIRTIO_NET_F.GUEST_CSUM]],
];

/** The features a device with these options offers. */
export function offeredFeatures(o: OfferOptions): bigint {
  const bits = new Set<number>([
    VIRTIO_NET_F.CSUM, VIRTIO_NET_F.GUEST_CSUM, VIRTIO_NET_F.CTRL_GUEST_OFFLOADS, VIRTIO_NET_F.MAC,
    VIRTIO_NET_F.GUEST_TSO4, VIRTIO_NET_F.GUEST_TSO6, VIRTIO_NET_F.GUEST_ECN,
    VIRTIO_NET_F.HOST_TSO4, VIRTIO_NET_F.HOST_TSO6, VIRTIO_NET_F.HOST_ECN,
    VIRTIO_NET_F.MRG_RXBUF, VIRTIO_NET_F.STATUS, VIRTIO_NET_F.CTRL_VQ, VIRTIO_NET_F.CTRL_RX, VIRTIO_NET_F.CTRL_VLAN,
    VIRTIO_NET_F.CTRL_RX_EXTRA, VIRTIO_NET_F.GUEST_ANNOUNCE, VIRTIO_NET_F.MQ, VIRTIO_NET_F.CTRL_MAC_ADDR,
    VIRTIO_NET_F.SPEED_DUPLEX, VIRTIO_F.VERSION_1, VIRTIO_F.EVENT_IDX, VIRTIO_F.INDIRECT_DESC,
  ]);
  if (o.mtu !== undefined) bits.add(VIRTIO_NET_F.MTU);
  if (o.standby === true) bits.add(VIRTIO_NET_F.STANDBY);
  if (o.packed === true) bits.add(VIRTIO_F.RING_PACKED);
  for (const b of o.withhold ?? []) if (b !== VIRTIO_F.VERSION_1) bits.delete(b);
  // Apply the dependencies until nothing changes (they chain: ECN -> TSO -> CSUM).
  for (let changed = true; changed; ) {
    changed = false;
    for (const [f, needs] of REQUIRES) {
      if (bits.has(f) && needs.some((n) => !bits.has(n))) {
        bits.delete(f);
        changed = true;
      }
    }
  }
  let f = 0n;
  for (const b of bits) f |= 1n << BigInt(b);
  return f;
}

/**
 * Why a negotiated feature set breaks the spec's dependencies (virtio 1.2 5.1.3.1, and
 * RING_PACKED / EVENT_IDX / INDIRECT_DESC need nothing), or undefined when it does not.
 */
export function featureRuleBroken(f: bigint): string | undefined {
  for (const [bit, needs] of REQUIRES) {
    if (!has(f, bit)) continue;
    const missing = needs.find((n) => !has(f, n));
    if (missing !== undefined) return `feature ${bit} without feature ${missing}`;
  }
  return undefined;
}

/** Whether `bit` is set in `features`. */
export function has(features: bigint, bit: number): boolean {
  return ((features >> BigInt(bit)) & 1n) === 1n;
}
