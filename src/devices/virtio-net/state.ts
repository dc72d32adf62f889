/**
 * Saved state of the virtio-net device (the part behind the transport) and its parser, checked
 * against the instance's configuration and the transport's negotiated features: queue pairs,
 * MAC (unicast; changed only with CTRL_MAC_ADDR), the offer, the receive filter (MAC tables of
 * at most 64 entries, VLAN IDs below 4096), guest offloads switched off (a subset of what may be
 * switched), notifications latched or deferred, and frames waiting in the quiesced FIFO.
 * @module
 */
import type { FrameMeta } from "../net/backend.js";
import {
  StateError, arr, bool, field, hexBytes, int, obj, onlyKeys, optField, str, toHex,
} from "../../state/parse.js";
import { featureHex, hasBit } from "../virtio/transport-state.js";
import { VIRTIO_NET_F, type OfferOptions } from "./features.js";
import { MAC_TABLE_ENTRIES, type RxFilterState } from "./rx-filter.js";
import { parseMeta } from "../net/switch-state.js";

/** Counters of the device. */
export interface VirtioNetCounters {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /**
   * Frames that found no receive buffer: handed back to the backend to retry, or (for segments of
   * a frame segmented in software after its first segment went in) dropped.
   */
  rxNoBuffer: number;
  rxTooBig: number;
  txErrors: number;
  /** Frames the receive filter dropped. */
  rxFiltered: number;
  /** Large frames segmented in software (TX for a backend without TSO, RX for a guest without GUEST_TSO). */
  swSegmented: number;
  ctrlCommands: number;
  /** Control commands answered with VIRTIO_NET_ERR. */
  ctrlErrors: number;
  /** Frames refused because the quiesced receive FIFO was full. */
  rxFifoOverflow: number;
}

/** A fresh set of counters. */
export const emptyCounters = (): VirtioNetCounters => ({
  txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxNoBuffer: 0, rxTooBig: 0, txErrors: 0, rxFiltered: 0, swSegmented: 0, ctrlCommands: 0, ctrlErrors: 0,
  rxFifoOverflow: 0,
});

/** A frame waiting in the receive FIFO. */
export interface VirtioNetSavedFrame {
  /** The frame as hex. */
  frame: string;
  meta?: FrameMeta;
}

/** Saved virtio-net state (part of `VirtioNetPciState`). */
export interface VirtioNetState {
  linkUp: boolean;
  counters: VirtioNetCounters;
  /** The current MAC (12 hex digits; ADDR_SET may have changed it). */
  mac: string;
  offer: OfferOptions & { withhold: number[] };
  filter: RxFilterState;
  pairs: number;
  announce: boolean;
  /** Guest offload bits switched off through CTRL_GUEST_OFFLOADS (hex). */
  guestOffloadsOff: string;
  /** Queues with a notification latched while quiesced or work deferred past a budget, in order. */
  pendingQueues: number[];
  /** Frames from the backend waiting for the data path (arrived while quiesced), oldest first. */
  rxFifo: VirtioNetSavedFrame[];
}

/** The largest frame the FIFO holds (64 KiB GSO frame plus headers). */
export const MAX_FIFO_FRAME = 65_550;

/** Checks a list of at most `max` frames waiting for the guest, as a state carries them. @throws StateError */
export function parseSavedFrames(v: unknown, path: string, max: number): VirtioNetSavedFrame[] {
  return arr(v, path, max, (x, q): VirtioNetSavedFrame => {
    const e = obj(x, q);
    onlyKeys(e, q, ["frame", "meta"]);
    const frame = toHex(hexBytes(e.frame, `${q}.frame`, MAX_FIFO_FRAME, false));
    if (frame.length < 28) throw new StateError(`${q}.frame`, "shorter than an Ethernet header");
    return e.meta === undefined ? { frame } : { frame, meta: parseMeta(e.meta, `${q}.meta`) };
  });
}
/** Guest offload bits CTRL_GUEST_OFFLOADS may switch (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO). */
export const GUEST_OFFLOAD_BITS = (1n << 1n) | (1n << 7n) | (1n << 8n) | (1n << 9n) | (1n << 10n);

/** What a saved virtio-net state is checked against. */
export interface NetStateConfig {
  maxPairs: number;
  /** Queues of the transport (2 x pairs + 1). */
  queues: number;
  /** The MAC the device was created with. */
  configuredMac: string;
  /** FIFO capacity in frames. */
  fifoFrames: number;
  /** The features the saved transport negotiated (0 without FEATURES_OK). */
  negotiated: bigint;
  /** The saved transport has DRIVER_OK. */
  live: boolean;
}

/** Parses the offer alone (the transport's check needs the offered features first). */
export function parseOffer(u: unknown, path: string): OfferOptions & { withhold: number[] } {
  const o = obj(u, path);
  onlyKeys(o, path, ["mtu", "standby", "packed", "withhold"]);
  const withhold = field(o, "withhold", path, (v, p) => arr(v, p, 64, (x, q) => int(x, q, 0, 63)));
  if (new Set(withhold).size !== withhold.length) throw new StateError(`${path}.withhold`, "a bit is listed twice");
  const out: OfferOptions & { withhold: number[] } = {
    standby: optField(o, "standby", path, bool, false),
    packed: optField(o, "packed", path, bool, false),
    withhold,
  };
  const mtu = optField<number | undefined>(o, "mtu", path, (v, p) => int(v, p, 68, 65535), undefined);
  return mtu === undefined ? out : { mtu, ...out };
}

const macString = (v: unknown, path: string): string => toHex(hexBytes(v, path, 6)).toLowerCase();

function parseFilter(u: unknown, path: string): RxFilterState {
  const o = obj(u, path);
  const flags = ["promisc", "allmulti", "alluni", "nomulti", "nouni", "nobcast", "uniOverflow", "multiOverflow"] as const;
  onlyKeys(o, path, [...flags, "unicast", "multicast", "vlans"]);
  const b = (k: (typeof flags)[number]): boolean => field(o, k, path, bool);
  const table = (k: string, overflow: boolean): string[] => {
    const t = field(o, k, path, (v, p) => arr(v, p, MAC_TABLE_ENTRIES, macString));
    if (new Set(t).size !== t.length) throw new StateError(`${path}.${k}`, "an address is listed twice");
    if (overflow && t.length > 0) throw new StateError(`${path}.${k}`, "entries in a table marked as overflowed");
    return t;
  };
  const uniOverflow = b("uniOverflow");
  const multiOverflow = b("multiOverflow");
  const vlans = field(o, "vlans", path, (v, p) => arr(v, p, 4096, (x, q) => int(x, q, 0, 4095)));
  if (new Set(vlans).size !== vlans.length) throw new StateError(`${path}.vlans`, "a VLAN ID is listed twice");
  return {
    promisc: b("promisc"), allmulti: b("allmulti"), alluni: b("alluni"), nomulti: b("nomulti"), nouni: b("nouni"), nobcast: b("nobcast"),
    unicast: table("unicast", uniOverflow), multicast: table("multicast", multiOverflow), uniOverflow, multiOverflow, vlans,
  };
}


const KEYS = ["linkUp", "counters", "mac", "offer", "filter", "pairs", "announce", "guestOffloadsOff", "pendingQueues", "rxFifo"] as const;

/** Parses a saved virtio-net device (current form) against `cfg`. */
export function parseNetState(u: unknown, path: string, cfg: NetStateConfig): VirtioNetState {
  const o = obj(u, path);
  onlyKeys(o, path, KEYS);
  const f = cfg.negotiated;
  const needs = (cond: boolean, key: string, why: string): void => {
    if (!cond) throw new StateError(`${path}.${key}`, why);
  };
  const c = obj(o.counters, `${path}.counters`);
  const names = Object.keys(emptyCounters()) as (keyof VirtioNetCounters)[];
  onlyKeys(c, `${path}.counters`, names);
  const counters = emptyCounters();
  for (const k of names) counters[k] = field(c, k, `${path}.counters`, (v, p) => int(v, p, 0, Number.MAX_SAFE_INTEGER));
  const mac = field(o, "mac", path, macString);
  needs((parseInt(mac.slice(0, 2), 16) & 1) === 0, "mac", "a multicast address");
  if (mac !== cfg.configuredMac) needs(cfg.live && hasBit(f, VIRTIO_NET_F.CTRL_MAC_ADDR), "mac", "differs from the configured MAC without CTRL_MAC_ADDR on a live device");
  const pairs = field(o, "pairs", path, (v, p) => int(v, p, 1, cfg.maxPairs));
  if (pairs > 1) needs(cfg.live && hasBit(f, VIRTIO_NET_F.MQ), "pairs", "more than one pair without MQ on a live device");
  const announce = field(o, "announce", path, bool);
  if (announce) needs(cfg.live && hasBit(f, VIRTIO_NET_F.GUEST_ANNOUNCE), "announce", "set without GUEST_ANNOUNCE on a live device");
  const off = field(o, "guestOffloadsOff", path, featureHex);
  if (off !== 0n) {
    needs(cfg.live && hasBit(f, VIRTIO_NET_F.CTRL_GUEST_OFFLOADS), "guestOffloadsOff", "set without CTRL_GUEST_OFFLOADS on a live device");
    needs((off & ~(f & GUEST_OFFLOAD_BITS)) === 0n, "guestOffloadsOff", "switches off offloads not negotiated or not switchable");
  }
  const pendingQueues = field(o, "pendingQueues", path, (v, p) => arr(v, p, cfg.queues, (x, q) => int(x, q, 0, cfg.queues - 1)));
  needs(new Set(pendingQueues).size === pendingQueues.length, "pendingQueues", "a queue is listed twice");
  if (pendingQueues.length > 0) needs(cfg.live, "pendingQueues", "work pending on a device that is not live");
  const rxFifo = field(o, "rxFifo", path, (v, p) => parseSavedFrames(v, p, cfg.fifoFrames));
  if (rxFifo.length > 0) needs(cfg.live, "rxFifo", "frames waiting for a device that is not live");
  return {
    linkUp: field(o, "linkUp", path, bool),
    counters,
    mac,
    offer: field(o, "offer", path, parseOffer),
    filter: field(o, "filter", path, parseFilter),
    pairs,
    announce,
    guestOffloadsOff: off.toString(16),
    pendingQueues,
    rxFifo,
  };
}

/**
 * Lifts the device part of a version-1 platform record (`nic`, which the code before the portable
 * state saved as its own `version: 2`) to the current form: no version of its own, the new
 * counter, nothing pending, an empty FIFO.
 */
export function upgradeNetV1(u: unknown, path: string): Record<string, unknown> {
  const o = obj(u, path);
  int(o.version, `${path}.version`, 2, 2);
  const { version: _v, ...rest } = o;
  const counters = typeof o.counters === "object" && o.counters !== null ? { ...(o.counters as object), rxFifoOverflow: 0 } : o.counters;
  return { ...rest, counters, pendingQueues: [], rxFifo: [] };
}

/** Reads a saved MAC string (for the configured MAC's form). */
export const macOf = (s: string): Uint8Array => hexBytes(str(s, "mac", 12), "mac", 6);
