/**
 * An in-process learning Ethernet switch. Each device gets a port ({@link L2Switch.port}), which is
 * a {@link NetBackend}; other backends (host stub, TAP, sockets) join with {@link L2Switch.connect}.
 *
 * - MAC learning per VLAN with lazy aging against the {@link Clock}; the table is bounded (expired
 *   entries are swept when it is full; beyond that new addresses are not learned, and counted).
 * - Broadcast, multicast and unknown unicast are flooded to the other ports of the VLAN.
 * - Optionally VLAN-aware (IEEE 802.1Q): each port has a PVID (untagged frames belong to it and
 *   leave untagged) and a set of VLANs it carries tagged; tags are added and removed on egress.
 * - A receiver that refuses a frame (no RX buffers) gets it again on `rxReady()`: each port keeps a
 *   bounded backlog, beyond which frames are dropped and counted.
 * - Delivery is synchronous but never re-entrant: frames sent from inside a receiver are queued
 *   (bounded) and forwarded after the current frame.
 * - Receivers must treat delivered frames as read-only: a flooded frame is shared between ports.
 * @module
 */
import type { Clock } from "../../pci/interfaces.js";
import type { FrameMeta, FrameSink, NetBackend } from "./backend.js";
import { encodeBase64 } from "./base64.js";
import { formatMac, parseMac } from "./frames.js";
import { segmentTso } from "./segment.js";
import {
  l2SwitchStateType, structuredMeta,
  type L2SwitchCounters, type L2SwitchState, type MacEntry, type SavedFrame, type SwitchPortCounters,
} from "./switch-state.js";
import { decodeBase64 } from "./base64.js";
import type { StateType } from "../../state/versioned.js";
import { retag } from "./vlan.js";

export type { L2SwitchCounters, L2SwitchState, MacEntry, SavedFrame, SwitchPortCounters };

/** Options of {@link L2Switch}. */
export interface L2SwitchOptions {
  /** Time source for MAC aging. */
  clock: Clock;
  /** A learned address is forgotten after this long without traffic (default 300 s, as 802.1D). */
  agingNs?: number;
  /** Bound of the MAC table over all VLANs (default 4096). */
  maxMacEntries?: number;
  /** Bound of the number of ports (default 64). */
  maxPorts?: number;
  /** Enables 802.1Q VLAN handling (default false: tags are ignored and passed through). */
  vlanAware?: boolean;
  /** Frames kept per port while its receiver has no buffers (default 256). */
  rxBacklog?: number;
}

/** Options of {@link L2Switch.port} and {@link L2Switch.connect}. */
export interface SwitchPortOptions {
  /** A name for counters and captures (default `port<id>`). */
  name?: string;
  /** VLAN-aware switches: VLAN of untagged frames, which also leave untagged (default 1; 0 = none). */
  pvid?: number;
  /** VLAN-aware switches: VLANs this port carries tagged. */
  taggedVlans?: readonly number[];
  /** The receiver takes offload metadata as is (default false: offloads completed in software first). */
  acceptOffloads?: boolean;
}

/** Thrown by {@link L2Switch.port} / {@link L2Switch.connect} past `maxPorts` (API misuse). */
export class SwitchPortLimitError extends Error {
  override readonly name = "SwitchPortLimitError";
}

interface PortState {
  id: number;
  name: string;
  pvid: number;
  tagged: Set<number>;
  acceptOffloads: boolean;
  sink: FrameSink | undefined;
  backlog: { frame: Uint8Array; meta: FrameMeta | undefined }[];
  counters: SwitchPortCounters;
  attached: boolean;
}

interface Learned {
  port: number;
  seen: number;
}

const zeroPortCounters = (): SwitchPortCounters => ({
  rxFrames: 0, rxBytes: 0, rxDropped: 0, txFrames: 0, txBytes: 0, txDropped: 0,
});

function macAt(f: Uint8Array, o: number): number {
  return f[o]! * 0x10000000000 + f[o + 1]! * 0x100000000 + (((f[o + 2]! << 24) | (f[o + 3]! << 16) | (f[o + 4]! << 8) | f[o + 5]!) >>> 0);
}

function macToString(m: number): string {
  const b = new Uint8Array(6);
  let v = m;
  for (let i = 5; i >= 0; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return formatMac(b);
}

/**
 * A device's attachment to an {@link L2Switch}: a {@link NetBackend} with counters that can be
 * detached.
 */
export class SwitchPort implements NetBackend {
  /** Offloads are completed in software where a receiver needs it, so a device may hand them over. */
  readonly offloads = { csum: true, tso4: true, tso6: true } as const;
  readonly #sw: L2Switch;
  readonly #st: PortState;

  /** @internal Created by {@link L2Switch.port}. */
  constructor(sw: L2Switch, st: PortState) {
    this.#sw = sw;
    this.#st = st;
  }
  /** Port number, unique within the switch. */
  get id(): number {
    return this.#st.id;
  }
  /** Port name. */
  get name(): string {
    return this.#st.name;
  }
  /** Live counters (read-only view). */
  get counters(): Readonly<SwitchPortCounters> {
    return this.#st.counters;
  }
  /** Whether the port is still attached. */
  get attached(): boolean {
    return this.#st.attached;
  }
  /** Frames waiting for the receiver to have buffers. */
  get backlog(): number {
    return this.#st.backlog.length;
  }
  /** The device sends a frame into the switch. */
  transmit(frame: Uint8Array, meta?: FrameMeta): void {
    this.#sw.ingress(this.#st, frame, meta);
  }
  /** Installs (or removes) the device's receive path. Removing it drops the backlog. */
  setReceiver(sink: FrameSink | undefined): void {
    this.#st.sink = sink;
    if (sink === undefined) {
      this.#st.counters.txDropped += this.#st.backlog.length;
      this.#st.backlog.length = 0;
    }
  }
  /** The device has receive buffers again: delivers the backlog. */
  rxReady(): void {
    this.#sw.drainBacklog(this.#st);
  }
  /** Detaches the port from the switch (idempotent). Its learned addresses are forgotten. */
  detach(): void {
    this.#sw.detachPort(this.#st);
  }
  /** Same as {@link SwitchPort.detach}. */
  close(): void {
    this.detach();
  }
}

/** What a tap sees: every frame entering the switch. */
export type SwitchTap = (frame: Uint8Array, meta: FrameMeta | undefined, port: { id: number; name: string }) => void;

/**
 * A learning L2 switch.
 * @example
 * const sw = new L2Switch({ clock });
 * const a = sw.port({ name: "vm0" });      // give to a device as its NetBackend
 * new HostStub({ backend: sw.port({ name: "host" }) });
 */
export class L2Switch {
  readonly #clock: Clock;
  readonly #aging: number;
  readonly #maxMacs: number;
  readonly #maxPorts: number;
  readonly #vlanAware: boolean;
  readonly #backlogMax: number;
  readonly #ports = new Map<number, PortState>();
  readonly #tables = new Map<number, Map<number, Learned>>();
  #macCount = 0;
  #nextId = 0;
  readonly #taps = new Set<SwitchTap>();
  readonly #pending: { port: PortState; frame: Uint8Array; meta: FrameMeta | undefined }[] = [];
  #busy = false;
  readonly #counters: L2SwitchCounters = { unicast: 0, flooded: 0, filtered: 0, learnFull: 0, queueDropped: 0 };
  /** Static entries: unicast MAC to port id, on every VLAN; not learned over, not saved. */
  readonly #static = new Map<number, number>();
  /**
   * Parses untrusted saved state against this switch (its attached ports, table and backlog
   * bounds, aging time, VLAN mode); throws `StateError` naming the field. Version 1 loads too.
   */
  readonly stateType: StateType<L2SwitchState>;

  /** Creates an empty switch. */
  constructor(options: L2SwitchOptions) {
    this.#clock = options.clock;
    this.#aging = options.agingNs ?? 300e9;
    this.#maxMacs = Math.max(1, options.maxMacEntries ?? 4096);
    this.#maxPorts = Math.max(1, options.maxPorts ?? 64);
    this.#vlanAware = options.vlanAware ?? false;
    this.#backlogMax = Math.max(0, options.rxBacklog ?? 256);
    this.stateType = l2SwitchStateType({
      ports: () => this.#ports,
      maxMacs: this.#maxMacs,
      maxPorts: this.#maxPorts,
      backlogMax: this.#backlogMax,
      agingNs: this.#aging,
      vlanAware: this.#vlanAware,
    });
  }

  /** Adds a port for a device and returns it as the device's {@link NetBackend}. */
  port(options: SwitchPortOptions = {}): SwitchPort {
    if (this.#ports.size >= this.#maxPorts) throw new SwitchPortLimitError(`switch has ${this.#maxPorts} ports`);
    const id = this.#nextId++;
    const st: PortState = {
      id,
      name: options.name ?? `port${id}`,
      pvid: options.pvid ?? 1,
      tagged: new Set((options.taggedVlans ?? []).filter((v) => Number.isInteger(v) && v > 0 && v < 4095)),
      acceptOffloads: options.acceptOffloads ?? false,
      sink: undefined,
      backlog: [],
      counters: zeroPortCounters(),
      attached: true,
    };
    this.#ports.set(id, st);
    return new SwitchPort(this, st);
  }

  /**
   * Joins another backend (host stub side, TAP, socket) to the switch: frames leaving through this
   * port go to `backend.transmit` (offloads completed unless `backend.offloads` accepts them), and
   * what the backend receives enters the switch. Detaching the port unhooks the backend.
   */
  connect(backend: NetBackend, options: SwitchPortOptions = {}): SwitchPort {
    const o = backend.offloads;
    const accept = options.acceptOffloads ?? (o !== undefined && o.csum && o.tso4 && o.tso6);
    const p = this.port({ ...options, acceptOffloads: accept });
    p.setReceiver((frame, meta) => {
      backend.transmit(frame, meta);
      return true;
    });
    backend.setReceiver((frame, meta) => {
      if (!p.attached) return false;
      p.transmit(frame, meta);
      return true;
    });
    return p;
  }

  /** Ports currently attached. */
  ports(): SwitchPort[] {
    return [...this.#ports.values()].map((st) => new SwitchPort(this, st));
  }

  /** Switch-wide counters (read-only view). */
  get counters(): Readonly<L2SwitchCounters> {
    return this.#counters;
  }

  /** Adds a tap that sees every frame entering the switch. Returns a function removing it. */
  addTap(tap: SwitchTap): () => void {
    this.#taps.add(tap);
    return () => void this.#taps.delete(tap);
  }

  /** The learned, unexpired addresses. */
  macTable(): MacEntry[] {
    const now = this.#clock.now();
    const out: MacEntry[] = [];
    for (const [vlan, t] of this.#tables) {
      for (const [mac, e] of t) {
        if (now - e.seen <= this.#aging) out.push({ vlan, mac: macToString(mac), port: e.port, ageNs: now - e.seen });
      }
    }
    return out;
  }

  /**
   * Pins unicast `mac` to port `port` (as `bridge fdb add MAC dev PORT static`): frames for it go
   * there whatever was learned, and frames from it elsewhere teach nothing; `undefined` removes
   * the pin. A NIC's own MAC filter does this for its VFs (the failover platform keeps a VF's MAC
   * pinned to the NIC while the VF receives). Not part of the saved state: its owner sets it again.
   * Returns false for a port not of this switch.
   */
  setStatic(mac: Uint8Array, port: SwitchPort | undefined): boolean {
    const key = macAt(mac, 0);
    if (port === undefined) return this.#static.delete(key) || true;
    const st = this.#ports.get(port.id);
    if (st === undefined || !st.attached) return false;
    this.#static.set(key, st.id);
    return true;
  }

  /** Forgets all learned addresses. */
  flush(): void {
    this.#tables.clear();
    this.#macCount = 0;
  }

  /** @internal */
  ingress(st: PortState, frame: Uint8Array, meta: FrameMeta | undefined): void {
    if (!st.attached) {
      st.counters.rxDropped++;
      return;
    }
    if (this.#busy) {
      if (this.#pending.length >= 4096) {
        this.#counters.queueDropped++;
        st.counters.rxDropped++;
      } else {
        this.#pending.push({ port: st, frame, meta });
      }
      return;
    }
    this.#busy = true;
    try {
      this.#forward(st, frame, meta);
      for (let p = this.#pending.shift(); p !== undefined; p = this.#pending.shift()) {
        this.#forward(p.port, p.frame, p.meta);
      }
    } finally {
      this.#busy = false;
    }
  }

  #forward(src: PortState, frame: Uint8Array, meta: FrameMeta | undefined): void {
    if (!src.attached) {
      src.counters.rxDropped++;
      return;
    }
    if (frame.length < 14) {
      src.counters.rxDropped++;
      return;
    }
    let vlan = 0;
    let tagged = false;
    if (this.#vlanAware) {
      const et = (frame[12]! << 8) | frame[13]!;
      let vid = src.pvid;
      if (et === 0x8100) {
        if (frame.length < 18) {
          src.counters.rxDropped++;
          return;
        }
        const v = ((frame[14]! << 8) | frame[15]!) & 0xfff;
        if (v !== 0) {
          vid = v;
          tagged = true;
          if (!src.tagged.has(v) && v !== src.pvid) {
            src.counters.rxDropped++;
            return;
          }
        } else {
          // Priority-tagged: belongs to the PVID; normalise to untagged.
          frame = retag(frame, meta, false, 0).frame;
        }
      }
      if (vid === 0) {
        src.counters.rxDropped++;
        return;
      }
      vlan = vid;
    }
    src.counters.rxFrames++;
    src.counters.rxBytes += frame.length;
    for (const tap of this.#taps) tap(frame, meta, { id: src.id, name: src.name });
    const now = this.#clock.now();
    if ((frame[6]! & 1) === 0 && (this.#static.size === 0 || !this.#static.has(macAt(frame, 6)))) this.#learn(vlan, macAt(frame, 6), src.id, now);
    const dstMulticast = (frame[0]! & 1) !== 0;
    if (!dstMulticast && this.#static.size > 0) {
      const pinned = this.#static.get(macAt(frame, 0));
      const dst = pinned === undefined ? undefined : this.#ports.get(pinned);
      if (dst !== undefined && dst.attached) {
        if (dst === src) this.#counters.filtered++;
        else {
          this.#counters.unicast++;
          this.#egress(dst, vlan, tagged, frame, meta);
        }
        return;
      }
    }
    if (!dstMulticast) {
      const e = this.#tables.get(vlan)?.get(macAt(frame, 0));
      if (e !== undefined && now - e.seen <= this.#aging) {
        if (e.port === src.id) {
          this.#counters.filtered++;
          return;
        }
        const dst = this.#ports.get(e.port);
        if (dst !== undefined) {
          this.#counters.unicast++;
          this.#egress(dst, vlan, tagged, frame, meta);
          return;
        }
      }
    }
    this.#counters.flooded++;
    for (const dst of this.#ports.values()) {
      if (dst !== src) this.#egress(dst, vlan, tagged, frame, meta);
    }
  }

  #learn(vlan: number, mac: number, port: number, now: number): void {
    let t = this.#tables.get(vlan);
    const e = t?.get(mac);
    if (e !== undefined) {
      e.port = port;
      e.seen = now;
      return;
    }
    if (this.#macCount >= this.#maxMacs) this.#sweep(now);
    if (this.#macCount >= this.#maxMacs) {
      this.#counters.learnFull++;
      return;
    }
    if (t === undefined) {
      t = new Map();
      this.#tables.set(vlan, t);
    }
    t.set(mac, { port, seen: now });
    this.#macCount++;
  }

  #sweep(now: number): void {
    for (const [vlan, t] of this.#tables) {
      for (const [mac, e] of t) {
        if (now - e.seen > this.#aging) {
          t.delete(mac);
          this.#macCount--;
        }
      }
      if (t.size === 0) this.#tables.delete(vlan);
    }
  }

  #egress(dst: PortState, vlan: number, tagged: boolean, frame: Uint8Array, meta: FrameMeta | undefined): void {
    let f = frame;
    let m = meta;
    if (this.#vlanAware) {
      const wantTagged = dst.tagged.has(vlan);
      if (!wantTagged && dst.pvid !== vlan) return; // not a member of this VLAN
      if (wantTagged !== tagged) ({ frame: f, meta: m } = retag(f, m, wantTagged, vlan));
    }
    if (dst.sink === undefined) {
      dst.counters.txDropped++;
      return;
    }
    if (!dst.acceptOffloads && m !== undefined && (m.gso !== undefined || m.needsCsum !== undefined)) {
      const r = segmentTso(wantCopy(f, m), m);
      if (!r.ok) {
        dst.counters.txDropped++;
        return;
      }
      for (const s of r.frames) this.#deliver(dst, s, { csumValid: true });
      return;
    }
    this.#deliver(dst, f, m);
  }

  #deliver(dst: PortState, frame: Uint8Array, meta: FrameMeta | undefined): void {
    if (dst.backlog.length === 0 && dst.sink !== undefined && dst.sink(frame, meta)) {
      dst.counters.txFrames++;
      dst.counters.txBytes += frame.length;
      return;
    }
    if (dst.backlog.length < this.#backlogMax) dst.backlog.push({ frame, meta });
    else dst.counters.txDropped++;
  }

  /** @internal */
  drainBacklog(st: PortState): void {
    while (st.backlog.length > 0 && st.sink !== undefined) {
      const b = st.backlog[0]!;
      if (!st.sink(b.frame, b.meta)) return;
      st.backlog.shift();
      st.counters.txFrames++;
      st.counters.txBytes += b.frame.length;
    }
  }

  /** @internal */
  detachPort(st: PortState): void {
    if (!st.attached) return;
    st.attached = false;
    st.counters.txDropped += st.backlog.length;
    st.backlog.length = 0;
    st.sink = undefined;
    this.#ports.delete(st.id);
    for (const [vlan, t] of this.#tables) {
      for (const [mac, e] of t) {
        if (e.port === st.id) {
          t.delete(mac);
          this.#macCount--;
        }
      }
      if (t.size === 0) this.#tables.delete(vlan);
    }
  }

  /** Saves the MAC table (ages relative to the clock), the counters and the ports' backlogs. */
  save(): L2SwitchState {
    return {
      version: 2,
      entries: this.macTable(),
      counters: { ...this.#counters },
      ports: [...this.#ports.values()].map((p) => ({
        id: p.id,
        counters: { ...p.counters },
        backlog: p.backlog.map((b) => (b.meta === undefined ? { frame: encodeBase64(b.frame) } : { frame: encodeBase64(b.frame), meta: structuredMeta(b.meta) })),
      })),
    };
  }

  /**
   * Applies a state from {@link L2Switch.stateType} (parsed against this switch, with the same
   * ports attached since). Ports the state does not name keep their counters and lose their
   * backlog. Never throws.
   */
  restore(s: L2SwitchState): void {
    const now = this.#clock.now();
    this.#tables.clear();
    this.#macCount = 0;
    for (const e of s.entries) {
      if (!this.#ports.has(e.port)) continue; // the parser checked it; a port detached since is skipped
      let t = this.#tables.get(e.vlan);
      if (t === undefined) this.#tables.set(e.vlan, (t = new Map()));
      const mac = macAt(parseMac(e.mac), 0);
      if (!t.has(mac)) this.#macCount++;
      t.set(mac, { port: e.port, seen: now - e.ageNs });
    }
    Object.assign(this.#counters, s.counters);
    for (const target of this.#ports.values()) target.backlog.length = 0;
    for (const p of s.ports) {
      const target = this.#ports.get(p.id);
      if (target === undefined) continue;
      Object.assign(target.counters, p.counters);
      for (const b of p.backlog) target.backlog.push({ frame: decodeBase64(b.frame), meta: b.meta === undefined ? undefined : structuredMeta(b.meta) });
    }
  }
}

/** Segmentation modifies nothing in place, but checksum completion does: copy shared frames first. */
function wantCopy(f: Uint8Array, m: FrameMeta): Uint8Array {
  return m.gso === undefined ? f.slice() : f;
}
