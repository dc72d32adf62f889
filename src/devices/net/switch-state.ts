/**
 * Saved state of an `L2Switch`, read as untrusted input with the state toolkit: the MAC table
 * (ages relative to the switch's clock, bounded by its aging time), the counters, and each port's
 * backlog of frames (base64) with their offload metadata. Version 2; version 1 (where `backlog`
 * could be absent) loads through an upgrade. The parser closes over the switch it restores into
 * (its ports, bounds, VLAN mode) and throws `StateError` naming the field.
 *
 * Platform-neutral.
 * @module
 */
import type { FrameMeta } from "./backend.js";
import { decodeBase64, encodeBase64 } from "./base64.js";
import { parseMac } from "./frames.js";
import { StateError, arr, bool, field, int, num, obj, oneOf, onlyKeys, optField, str, u16 } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";

/** Largest frame accepted in a saved backlog. */
export const MAX_SAVED_FRAME = 65536 + 4096;

/** Counters of one port, from the switch's point of view of the attached device. */
export interface SwitchPortCounters {
  /** Frames (and bytes) the device sent into the switch. */
  rxFrames: number;
  rxBytes: number;
  /** Frames from the device dropped at ingress (runt, VLAN not allowed, detached, offload error). */
  rxDropped: number;
  /** Frames (and bytes) delivered to the device's receiver. */
  txFrames: number;
  txBytes: number;
  /** Frames for the device dropped (no receiver, backlog full). */
  txDropped: number;
}

/** Switch-wide counters. */
export interface L2SwitchCounters {
  /** Frames forwarded to one known port. */
  unicast: number;
  /** Frames flooded (broadcast, multicast, unknown unicast). */
  flooded: number;
  /** Frames whose destination is on the port they came from (dropped). */
  filtered: number;
  /** New addresses not learned because the table was full. */
  learnFull: number;
  /** Frames dropped because the re-entrant delivery queue was full. */
  queueDropped: number;
}

/** One learned address, as returned by `L2Switch.macTable` and saved. */
export interface MacEntry {
  vlan: number;
  mac: string;
  port: number;
  /** Nanoseconds since the address was last seen. */
  ageNs: number;
}

/** A frame waiting in a port's backlog, as saved: base64 bytes and the offload metadata. */
export interface SavedFrame {
  frame: string;
  meta?: FrameMeta;
}

/** Saved state of an `L2Switch` (version 2): the MAC table, the counters and the frames in backlogs. */
export interface L2SwitchState {
  version: 2;
  entries: MacEntry[];
  counters: L2SwitchCounters;
  ports: { id: number; counters: SwitchPortCounters; backlog: SavedFrame[] }[];
}

/** What the parser needs to know of the switch it restores into. */
export interface SwitchStateLimits {
  /** Attached ports: id -> whether its receiver takes offload metadata as is. */
  ports(): ReadonlyMap<number, { acceptOffloads: boolean }>;
  maxMacs: number;
  maxPorts: number;
  backlogMax: number;
  agingNs: number;
  vlanAware: boolean;
}

const SWITCH_COUNTERS = ["unicast", "flooded", "filtered", "learnFull", "queueDropped"] as const;
const PORT_COUNTERS = ["rxFrames", "rxBytes", "rxDropped", "txFrames", "txBytes", "txDropped"] as const;

const count = (v: unknown, path: string): number => int(v, path, 0, Number.MAX_SAFE_INTEGER);

function counters<K extends string>(v: unknown, path: string, keys: readonly K[]): Record<K, number> {
  const o = obj(v, path);
  onlyKeys(o, path, keys);
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = field(o, k, path, count);
  return out;
}

/** A JSON-safe copy of offload metadata. */
export function structuredMeta(m: FrameMeta): FrameMeta {
  const out: FrameMeta = {};
  if (m.needsCsum !== undefined) out.needsCsum = { start: m.needsCsum.start, offset: m.needsCsum.offset };
  if (m.csumValid !== undefined) out.csumValid = m.csumValid;
  if (m.gso !== undefined) {
    out.gso = { type: m.gso.type, size: m.gso.size, hdrLen: m.gso.hdrLen };
    if (m.gso.ecn !== undefined) out.gso.ecn = m.gso.ecn;
  }
  return out;
}

/** Checked offload metadata. */
export function parseMeta(v: unknown, path: string): FrameMeta {
  const m = obj(v, path);
  onlyKeys(m, path, ["needsCsum", "csumValid", "gso"]);
  const out: FrameMeta = {};
  if (m.needsCsum !== undefined) {
    const n = obj(m.needsCsum, `${path}.needsCsum`);
    onlyKeys(n, `${path}.needsCsum`, ["start", "offset"]);
    out.needsCsum = { start: field(n, "start", `${path}.needsCsum`, u16), offset: field(n, "offset", `${path}.needsCsum`, u16) };
  }
  if (m.csumValid !== undefined) out.csumValid = bool(m.csumValid, `${path}.csumValid`);
  if (m.gso !== undefined) {
    const p = `${path}.gso`;
    const g = obj(m.gso, p);
    onlyKeys(g, p, ["type", "size", "hdrLen", "ecn"]);
    out.gso = { type: field(g, "type", p, (x, q) => oneOf(x, q, ["tcpv4", "tcpv6", "udp"] as const)), size: field(g, "size", p, u16), hdrLen: field(g, "hdrLen", p, u16) };
    if (g.ecn !== undefined) out.gso.ecn = bool(g.ecn, `${p}.ecn`);
  }
  return out;
}

/** A frame in base64: canonical (re-encodes to the same text), 14 bytes up to {@link MAX_SAVED_FRAME}. */
export function parseFrameB64(v: unknown, path: string): string {
  const s = str(v, path, Math.ceil(MAX_SAVED_FRAME / 3) * 4);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new StateError(path, "not canonical base64");
  const bytes = decodeBase64(s);
  if (encodeBase64(bytes) !== s) throw new StateError(path, "not canonical base64");
  if (bytes.length < 14) throw new StateError(path, `a frame of ${bytes.length} bytes, at least 14`);
  return s;
}

/**
 * The switch's state type, closed over the switch it restores into.
 * @example
 * sw.restore(sw.stateType.parse(JSON.parse(text)));
 */
export function l2SwitchStateType(lim: SwitchStateLimits): StateType<L2SwitchState> {
  return defineState<L2SwitchState>(
    "l2-switch",
    2,
    {
      1: (o, path) => ({
        ...o,
        version: 2,
        ports: arr(o.ports, `${path}.ports`, lim.maxPorts, (p, pp) => {
          const x = obj(p, pp);
          return x.backlog === undefined ? { ...x, backlog: [] } : x;
        }),
      }),
    },
    (o, path) => {
      onlyKeys(o, path, ["version", "entries", "counters", "ports"]);
      const ports = lim.ports();
      const seen = new Set<string>();
      const entries = field(o, "entries", path, (v, p) =>
        arr(v, p, lim.maxMacs, (x, q): MacEntry => {
          const e = obj(x, q);
          onlyKeys(e, q, ["vlan", "mac", "port", "ageNs"]);
          const vlan = field(e, "vlan", q, (y, r) => (lim.vlanAware ? int(y, r, 1, 4095) : int(y, r, 0, 0)));
          const mac = field(e, "mac", q, (y, r) => {
            let b: Uint8Array;
            try {
              b = parseMac(str(y, r, 17));
            } catch (err) {
              if (err instanceof StateError) throw err;
              throw new StateError(r, "not a MAC address");
            }
            if ((b[0]! & 1) === 1) throw new StateError(r, "a multicast address is never learned");
            return y as string;
          });
          const key = `${vlan}/${parseMac(mac).join(",")}`;
          if (seen.has(key)) throw new StateError(`${q}.mac`, "learned twice in one VLAN");
          seen.add(key);
          const port = field(e, "port", q, (y, r) => {
            const id = int(y, r, 0, Number.MAX_SAFE_INTEGER);
            if (!ports.has(id)) throw new StateError(r, `no port ${id} on this switch`);
            return id;
          });
          return { vlan, mac, port, ageNs: field(e, "ageNs", q, (y, r) => num(y, r, 0, lim.agingNs)) };
        }),
      );
      const ids = new Set<number>();
      const savedPorts = field(o, "ports", path, (v, p) =>
        arr(v, p, lim.maxPorts, (x, q) => {
          const po = obj(x, q);
          onlyKeys(po, q, ["id", "counters", "backlog"]);
          const id = field(po, "id", q, (y, r) => int(y, r, 0, Number.MAX_SAFE_INTEGER));
          const port = ports.get(id);
          if (port === undefined) throw new StateError(`${q}.id`, `no port ${id} on this switch`);
          if (ids.has(id)) throw new StateError(`${q}.id`, `port ${id} appears twice`);
          ids.add(id);
          const backlog = field(po, "backlog", q, (y, r) =>
            arr(y, r, lim.backlogMax, (z, s): SavedFrame => {
              const f = obj(z, s);
              onlyKeys(f, s, ["frame", "meta"]);
              const frame = field(f, "frame", s, parseFrameB64);
              const meta = optField<FrameMeta | undefined>(f, "meta", s, parseMeta, undefined);
              if (meta === undefined) return { frame };
              if (!port.acceptOffloads && (meta.gso !== undefined || meta.needsCsum !== undefined)) {
                throw new StateError(`${s}.meta`, "offloads pending for a receiver that does not take them");
              }
              return { frame, meta };
            }),
          );
          return { id, counters: field(po, "counters", q, (y, r) => counters(y, r, PORT_COUNTERS)), backlog };
        }),
      );
      return { version: 2, entries, counters: field(o, "counters", path, (v, p) => counters(v, p, SWITCH_COUNTERS)), ports: savedPorts };
    },
  );
}
