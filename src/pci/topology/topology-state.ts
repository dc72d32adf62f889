/**
 * Saved state of root ports and of the root complex as untrusted input: parsers (versions 1 and
 * 2) checked against live instances, whose results the instances' `restore` applies with no
 * failure point.
 *
 * - A root port's state is its own function's state, the number of functions in its slot (which
 *   must match: the slot's contents come from devices, not from state) and, unless they are saved
 *   with their devices, the slot functions' states. The slot must be coherent: Presence Detect
 *   State set exactly when the slot is occupied, the link up (Data Link Layer Link Active) exactly
 *   when it is occupied and powered.
 * - The root complex's state names every root-bus function and every root port by its address
 *   (`00:03.0`).
 *
 * Version 1 (what the code before the portable-state change saved): a root port saved
 * `{ fn, irqAsserted }` (no version); the root complex saved `{ version: 1, functions, ports }`
 * with ports by position and slot functions as `functions["port<N>/f<M>"]`. The hotplug
 * interrupt's level is no longer saved: it is what Slot Control and Slot Status say.
 * @module
 */
import { StateError, arr, bool, field, int, obj, onlyKeys, record } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import { LNKSTA_DLLLA, PCIE, SLTCTL, SLTSTA } from "../caps/pcie.js";
import { configPath, le16 } from "../function-state.js";
import type { PciFunction, PciFunctionState } from "../function.js";
import { fromHex } from "../hex.js";
import type { PciRoot } from "./root-complex.js";
import type { RootPort } from "./root-port.js";

/** Saved state of a root port, version 2. */
export interface RootPortState {
  version: 2;
  /** The port's own function. */
  fn: PciFunctionState;
  /** Number of functions in the slot (0 = empty); must match the port it is restored onto. */
  occupied: number;
  /** The slot functions' states by function number; absent when they travel with their devices. */
  slot?: PciFunctionState[];
}

/** Saved state of the root complex, version 2. */
export interface PciRootState {
  version: 2;
  /** Root-bus functions other than root ports (the host bridge...), by address `00:dd.f`. */
  functions: Record<string, PciFunctionState>;
  /** Root ports by address `00:dd.f`. */
  ports: Record<string, RootPortState>;
}

/** Options of the topology parsers. */
export interface TopologyParseOptions {
  /** `true`: every slot's function states must be present; `false`: absent; default: either. */
  slotFunctions?: boolean;
}

/** The root complex as the parser sees it. */
export interface RootShape {
  /** Root-bus functions that are not root ports, by address. */
  functions: ReadonlyMap<string, PciFunction>;
  /** Root ports by address, in the order they were added. */
  ports: ReadonlyArray<{ path: string; port: RootPort }>;
}

/** `00:dd.f` of a root-bus devfn. */
export function rootPath(devfn: number): string {
  return `00:${(devfn >>> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;
}

function parsePort(port: RootPort, o: Record<string, unknown>, path: string, opts: TopologyParseOptions): RootPortState {
  onlyKeys(o, path, ["version", "fn", "occupied", "slot"]);
  const fns = port.functions;
  const fn = port.fn.stateType.parse(o.fn, `${path}.fn`);
  const occupied = field(o, "occupied", path, (v, p) => int(v, p, 0, 256));
  if (occupied !== fns.length) throw new StateError(`${path}.occupied`, `${occupied} functions, but this port's slot holds ${fns.length}`);
  const cfg = fromHex(fn.config);
  const pcie = port.pcie.offset;
  const sta = le16(cfg, pcie + PCIE.SLTSTA);
  const powered = (le16(cfg, pcie + PCIE.SLTCTL) & SLTCTL.PCC) === 0;
  if (((sta & SLTSTA.PDS) !== 0) !== occupied > 0) {
    throw new StateError(configPath(`${path}.fn`, pcie + PCIE.SLTSTA, "Slot Status"), `Presence Detect State ${(sta & SLTSTA.PDS) !== 0} for a slot ${occupied > 0 ? "occupied" : "empty"}`);
  }
  const link = (le16(cfg, pcie + PCIE.LNKSTA) & LNKSTA_DLLLA) !== 0;
  if (link !== (occupied > 0 && powered)) {
    throw new StateError(configPath(`${path}.fn`, pcie + PCIE.LNKSTA, "Link Status"), `Data Link Layer Link Active ${link} for a slot ${occupied > 0 ? "occupied" : "empty"} and powered ${powered}`);
  }
  const out: RootPortState = { version: 2, fn, occupied };
  if (o.slot === undefined) {
    if (opts.slotFunctions === true) throw new StateError(`${path}.slot`, "missing (the slot functions' states are required here)");
  } else {
    if (opts.slotFunctions === false) throw new StateError(`${path}.slot`, "present, but the slot functions' states travel with their devices here");
    let i = -1;
    out.slot = arr(o.slot, `${path}.slot`, fns.length, (v, p) => fns[++i]!.stateType.parse(v, p), true);
  }
  return out;
}

/** The state type of one root port (versions 1 and 2). */
export function rootPortStateType(port: RootPort, opts: TopologyParseOptions = {}): StateType<RootPortState> {
  const inner = defineState<RootPortState>(
    "root-port",
    2,
    {
      1: (o, path) => {
        field(o, "irqAsserted", path, bool);
        return { version: 2, fn: o.fn, occupied: port.functions.length };
      },
    },
    (o, path) => parsePort(port, o, path, opts),
  );
  return {
    kind: inner.kind,
    version: inner.version,
    oldest: inner.oldest,
    // Version 1 of a root port carried no version field.
    parse: (u, path = "root-port") => {
      const o = obj(u, path);
      return inner.parse(o.version === undefined ? { ...o, version: 1 } : o, path);
    },
  };
}

function upgradeRootV1(shape: RootShape, o: Record<string, unknown>, path: string): Record<string, unknown> {
  onlyKeys(o, path, ["version", "functions", "ports"]);
  const fnsIn = obj(o.functions, `${path}.functions`);
  const portsIn = arr(o.ports, `${path}.ports`, shape.ports.length, (v, p) => obj(v, p), true);
  const functions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fnsIn)) if (!/^port\d+\/f\d+$/.test(k)) functions[k] = v;
  const ports: Record<string, unknown> = {};
  shape.ports.forEach(({ path: at }, n) => {
    const po = portsIn[n]!;
    onlyKeys(po, `${path}.ports[${n}]`, ["occupied", "port"]);
    const occupied = field(po, "occupied", `${path}.ports[${n}]`, (v, p) => int(v, p, 0, 256));
    const port = field(po, "port", `${path}.ports[${n}]`, obj);
    const slot: unknown[] = [];
    for (let i = 0; i < occupied; i++) {
      const key = `port${n}/f${i}`;
      if (fnsIn[key] === undefined) throw new StateError(`${path}.functions.${key}`, "missing");
      slot.push(fnsIn[key]);
    }
    ports[at] = { ...port, version: 1, occupied, slot };
  });
  for (const k of Object.keys(fnsIn)) {
    const m = /^port(\d+)\/f(\d+)$/.exec(k);
    if (m !== null && !(Number(m[1]) < portsIn.length && Number(m[2]) < Number(portsIn[Number(m[1])]!.occupied))) throw new StateError(`${path}.functions.${k}`, "no such slot function");
  }
  return { version: 2, functions, ports };
}

/** The state type of a root complex (versions 1 and 2). */
export function pciRootStateType(shape: RootShape, opts: TopologyParseOptions = {}): StateType<PciRootState> {
  return defineState<PciRootState>("pci-root", 2, { 1: (o, path) => upgradeRootV1(shape, o, path) }, (o, path) => {
    onlyKeys(o, path, ["version", "functions", "ports"]);
    const fnsIn = record(o.functions, `${path}.functions`, shape.functions.size, (v) => v);
    const functions: Record<string, PciFunctionState> = {};
    for (const [at, fn] of shape.functions) {
      if (!fnsIn.has(at)) throw new StateError(`${path}.functions.${at}`, "missing");
      functions[at] = fn.stateType.parse(fnsIn.get(at), `${path}.functions.${at}`);
    }
    for (const k of fnsIn.keys()) if (!shape.functions.has(k)) throw new StateError(`${path}.functions.${k}`, "no such root-bus function");
    const portsIn = record(o.ports, `${path}.ports`, shape.ports.length, (v) => v);
    const ports: Record<string, RootPortState> = {};
    for (const { path: at, port } of shape.ports) {
      if (!portsIn.has(at)) throw new StateError(`${path}.ports.${at}`, "missing");
      ports[at] = rootPortV1WithSlot(port, portsIn.get(at), `${path}.ports.${at}`, opts);
    }
    for (const k of portsIn.keys()) if (!shape.ports.some((p) => p.path === k)) throw new StateError(`${path}.ports.${k}`, "no such root port");
    return { version: 2, functions, ports };
  });
}

/** A port's state as the root complex holds it: version 2, or version 1 lifted with its slot. */
function rootPortV1WithSlot(port: RootPort, u: unknown, path: string, opts: TopologyParseOptions): RootPortState {
  const o = obj(u, path);
  if (o.version === 1) {
    // Lifted from a version 1 root complex: the occupancy and slot came from the root's record.
    const { irqAsserted, version: _v, ...rest } = o;
    bool(irqAsserted, `${path}.irqAsserted`);
    return parsePort(port, { ...rest, version: 2 }, path, opts);
  }
  return rootPortStateType(port, opts).parse(o, path);
}

/**
 * Parses a root port's saved state (versions 1 and 2) against `port`; apply it with
 * `port.restore(parsed)`. Throws `StateError` naming the field; changes nothing.
 */
export function parseRootPortState(port: RootPort, u: unknown, path = "root-port", opts: TopologyParseOptions = {}): RootPortState {
  return port.stateTypeWith(opts).parse(u, path);
}

/**
 * Parses a root complex's saved state (versions 1 and 2) against `root`; apply it with
 * `root.restore(parsed)`. Throws `StateError` naming the field; changes nothing.
 */
export function parsePciRootState(root: PciRoot, u: unknown, path = "pci-root", opts: TopologyParseOptions = {}): PciRootState {
  return root.stateTypeWith(opts).parse(u, path);
}
