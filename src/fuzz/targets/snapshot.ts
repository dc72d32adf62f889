/**
 * Target `snapshot`: saved state as hostile input. Seeds are real saved states: the v1 fixtures
 * saved from running Debian guests (given by the caller, e.g. read from test/fixtures/state-v1) and
 * live saves (format 2) of freshly built platforms (test device, virtio-net packed, 82576, the
 * `net_failover` pair, the failover VF) after firmware enumeration. Each operation takes one seed,
 * mutates it (structure-aware: wrong types, NaN, 2^32, 2^53, odd hex, dropped and unknown keys,
 * cut and grown arrays) and feeds it to a parser:
 * - applied when accepted: the whole platform (`PciPlatform.parseState`, then `applyState`), the
 *   PCI topology (`PciRoot.stateType`), each device model by name (`model.stateType`, then
 *   `model.restore` and RUNNING), the host stub;
 * - parsed only (their restore is the owner's business): each root port, each function, the PF
 *   agent and the host NIC's 82576 core;
 * - or, for the machine's records, encoded as a state container (`encodeStates`, optionally inside
 *   a guest snapshot, `encodeSnapshot`), the bytes mutated, then `decodeSnapshot`, `decodeStates`
 *   and what `Machine.restoreBytes` does with the records (`PciPlatform.parseRecords`, or the
 *   format-1 machine record's platform through `parseState`).
 *
 * Checks: only typed errors escape (a TypeError or RangeError is an escape); a rejected parse
 * changes nothing (the whole platform's save before and after are equal), else a `break`; an
 * accepted state then survives guest config and memory accesses and the clock (no escape), and
 * the platform still saves a state its own parser accepts (`invariant`).
 * @module
 */
import { FlatMemory, ManualClock } from "../../devices/testing.js";
import type { DeviceModel } from "../../devices/lifecycle/model.js";
import type { PciFunction } from "../../pci/function.js";
import { rootPath } from "../../pci/topology/topology-state.js";
import { decodeStates, encodeStates, type StateRecord } from "../../state/container.js";
import { decodeSnapshot, encodeSnapshot, fnv1a } from "../../vmm/harness/runner-snapshot.js";
import { defaultLayout, type PlatformEnv } from "../../vmm/machine-platform.js";
import type { PciPlatform, ParsedPlatformState } from "../../vmm/pci-platform.js";
import type { IgbHostNic } from "../../vmm/pf-agent/host-nic.js";
import { FailoverPlatform, FailoverVfPlatform, IgbPlatform, TestDevicePlatform, VirtioNetPlatform } from "../../vmm/platforms.js";
import { describeError, isTypedError, opsHash, type FuzzInstance, type FuzzOp, type FuzzTarget, type Reporter } from "../engine.js";
import { mutateBytes, mutateOnce } from "../mutate.js";
import { guarded, watchBarHandlers } from "../probes.js";
import { Rng } from "../rng.js";
import { firmwareSetup } from "../setup.js";
import { applyPciOp, genConfigOp, genMmioOp } from "./pci.js";

/** The platform kinds the seeds come from. */
const KINDS = ["testdev", "virtio", "igb", "failover", "failover-vf"] as const;
type Kind = (typeof KINDS)[number];

/** Guest accesses made after an accepted restore. */
const GUEST_OPS = 24;
/** Device time that passes after them (timers the restored state armed fire). */
const AFTER_NS = 200_000;

/** A platform of `kind` on flat memory and a manual clock. */
function makePlatform(kind: Kind, clock: ManualClock): PciPlatform {
  const env: PlatformEnv = { dma: new FlatMemory(1 << 20), interrupts: { msi: () => undefined, intx: () => undefined }, clock, layout: defaultLayout(256 << 20) };
  switch (kind) {
    case "testdev": return new TestDevicePlatform(env);
    case "virtio": return new VirtioNetPlatform(env, { packed: true });
    case "igb": return new IgbPlatform(env);
    case "failover": return new FailoverPlatform(env);
    default: return new FailoverVfPlatform(env);
  }
}

/** Which platform a fixture (a format-1 `Machine.save()`) was saved from, by its device names. */
function kindOf(machine: unknown): Kind | undefined {
  const devices = (machine as { platform?: { devices?: Record<string, unknown> } } | null)?.platform?.devices;
  if (devices === undefined || devices === null) return undefined;
  if ("igb-host" in devices) return "failover";
  if ("igb" in devices) return "igb";
  if ("virtio-net" in devices) return "virtio";
  return "testdev";
}

/**
 * A parser entry point of a platform: how to save what it covers, and how to parse a state
 * (throwing what the parser throws) into a function that applies it, or `undefined` for one that
 * is parsed only.
 */
interface Part {
  readonly name: string;
  save(): unknown;
  parse(u: unknown): (() => void) | undefined;
}

/** The host NICs (PF agent plus 82576 core) a platform holds. */
function hostNics(p: PciPlatform): [string, IgbHostNic][] {
  if (p instanceof FailoverPlatform) return [["igb-host", p.host]];
  if (p instanceof FailoverVfPlatform) return [["failover host", p.model.host], ["failover emu", p.model.emu]];
  return [];
}

/** A model's parser and apply (RESUMING, then running again, as a platform does). */
function modelPart(name: string, m: DeviceModel): Part {
  return {
    name: `dev ${name}`,
    save: () => m.save(),
    parse: (u) => {
      const s = m.stateType.parse(u, name);
      return () => {
        m.restore(s);
        m.migration.set("RUNNING");
      };
    },
  };
}

/** Every parser entry point of `p`. */
function partsOf(p: PciPlatform): Part[] {
  const parts: Part[] = [
    { name: "platform", save: () => p.save(), parse: (u) => { const s = p.parseState(u); return () => p.applyState(s); } },
    { name: "pci", save: () => p.root.save(), parse: (u) => { const s = p.root.stateType.parse(u, "pci"); return () => p.root.restore(s); } },
  ];
  for (const fnPath of Object.keys(p.root.save().functions)) {
    const fn = p.root.lookup(0, devfnOf(fnPath));
    if (fn !== undefined) parts.push(fnPart(`fn ${fnPath}`, fn));
  }
  for (const port of p.root.rootPorts) {
    const path = rootPath(port.fn.rid & 0xff);
    parts.push({ name: `port ${path}`, save: () => port.save(), parse: (u) => void port.stateType.parse(u, `port ${path}`) });
    port.functions.forEach((f, i) => parts.push(fnPart(`fn ${path}/${i}`, f)));
  }
  for (const [name, m] of p.devices) parts.push(modelPart(name, m));
  for (const [name, nic] of hostNics(p)) {
    parts.push({ name: `pf-agent ${name}`, save: () => nic.agent.save(), parse: (u) => void nic.agent.stateType.parse(u, "agent") });
    parts.push({ name: `igb-core ${name}`, save: () => nic.core.save(), parse: (u) => void nic.core.stateType.parse(u, "core") });
  }
  const stub = p instanceof VirtioNetPlatform || p instanceof IgbPlatform || p instanceof FailoverPlatform || p instanceof FailoverVfPlatform ? p.stub : undefined;
  if (stub !== undefined) {
    parts.push({ name: "host-stub", save: () => stub.save(), parse: (u) => { const s = stub.stateType.parse(u, "stub"); return () => stub.restore(s); } });
  }
  return parts;
}

function fnPart(name: string, fn: PciFunction): Part {
  return { name, save: () => fn.save(), parse: (u) => void fn.stateType.parse(u, name) };
}

/** The devfn of a root-bus path `00:dd.f`. */
function devfnOf(path: string): number {
  const m = /^00:([0-9a-f]{2})\.([0-7])$/.exec(path);
  return m === null ? -1 : (parseInt(m[1]!, 16) << 3) | Number(m[2]);
}

/** The machine's records as `Machine.saveRecords()` would give them (memory 256 MiB). */
function machineRecords(p: PciPlatform): StateRecord[] {
  return [{ name: "machine", kind: "machine", version: 2, state: { version: 2, memMiB: 256, conf1Latch: 0 } }, ...p.saveRecords()];
}

/** The name of the seed list holding machine records. */
const MACHINE = "machine records";

/** A stable 32-bit tag of a part name (operations name parts by it, so that reproducers survive new parts). */
const tagOf = (name: string): number => parseInt(opsHash([[name]]), 16);

/** Seeds: per platform kind, per part name, the saved JSON texts to mutate. */
type Seeds = Map<Kind, Map<string, string[]>>;

function collectSeeds(fixtures: readonly unknown[]): Seeds {
  const seeds: Seeds = new Map();
  const add = (k: Kind, part: string, v: unknown): void => {
    if (v === undefined) return;
    const m = seeds.get(k) ?? new Map<string, string[]>();
    seeds.set(k, m);
    m.set(part, [...(m.get(part) ?? []), JSON.stringify(v)]);
  };
  const live = new Map<Kind, PciPlatform>();
  for (const k of KINDS) {
    const p = makePlatform(k, new ManualClock());
    firmwareSetup(p.root, { numVfs: 2, ari: true });
    live.set(k, p);
    for (const part of partsOf(p)) add(k, part.name, part.save());
    add(k, MACHINE, machineRecords(p));
  }
  for (const fx of fixtures) {
    const k = kindOf(fx);
    if (k === undefined) continue;
    const ports = live.get(k)!.root.rootPorts;
    const platform = (fx as { platform: { pci: { functions: Record<string, unknown> }; devices: Record<string, unknown> } }).platform;
    add(k, MACHINE, [{ name: "machine", kind: "machine", version: 1, state: fx }]);
    add(k, "platform", platform);
    add(k, "pci", platform.pci);
    for (const [path, s] of Object.entries(platform.pci.functions)) {
      // format 1 names slot functions `port<n>/f<i>`
      const m = /^port(\d+)\/f(\d+)$/.exec(path);
      const port = m === null ? undefined : ports[Number(m[1])];
      add(k, port === undefined ? `fn ${path}` : `fn ${rootPath(port.fn.rid & 0xff)}/${m![2]}`, s);
    }
    for (const [name, s] of Object.entries(platform.devices)) {
      add(k, `dev ${name}`, s);
      if (name === "igb-host") {
        add(k, "pf-agent igb-host", (s as { agent?: unknown }).agent);
        add(k, "igb-core igb-host", (s as { core?: unknown }).core);
      }
    }
  }
  return seeds;
}

let seedCache: { fixtures: readonly unknown[]; seeds: Seeds } | undefined;

/** One live platform of the instance. */
interface Live {
  readonly p: PciPlatform;
  readonly clock: ManualClock;
  readonly parts: Part[];
  /** The platform's save (JSON text) while nothing changed it, else undefined. */
  saved: string | undefined;
  /** Where the BAR watchers report (set around guest accesses). */
  reporter: Reporter | undefined;
}

class SnapshotInstance implements FuzzInstance {
  readonly budgets = [];
  private readonly live = new Map<Kind, Live>();

  constructor(private readonly seeds: Seeds) {}

  private platform(k: Kind): Live {
    let e = this.live.get(k);
    if (e === undefined) {
      const clock = new ManualClock();
      const p = makePlatform(k, clock);
      firmwareSetup(p.root, { numVfs: 2, ari: true });
      const l: Live = { p, clock, parts: partsOf(p), saved: undefined, reporter: undefined };
      for (const port of p.root.rootPorts) {
        for (const f of port.functions) {
          watchBarHandlers(f, `${rootPath(port.fn.rid & 0xff)} fn ${f.rid.toString(16)}`, () => l.reporter);
          f.sriov?.vfs.forEach((vf, n) => watchBarHandlers(vf, `${rootPath(port.fn.rid & 0xff)} VF ${n}`, () => l.reporter));
        }
      }
      e = l;
      this.live.set(k, e);
    }
    return e;
  }

  next(rng: Rng): FuzzOp {
    const kind = rng.below(KINDS.length);
    const m = this.seeds.get(KINDS[kind]!)!;
    const names = [...m.keys()];
    // whole-platform parts cost a hundred times more than a function's: draw them less often
    let name = rng.below(names.length);
    for (let i = 0; i < 3 && (m.get(names[name]!)![0]?.length ?? 0) > 20_000 && rng.chance(0.8); i++) name = rng.below(names.length);
    const seedCount = m.get(names[name]!)!.length;
    // for machine records: 1 through decodeStates, 2 through decodeSnapshot too
    const via = names[name] === MACHINE ? (rng.chance(0.5) ? 2 : 1) : 0;
    return ["mut", kind, tagOf(names[name]!), rng.below(seedCount), rng.u32(), 1 + rng.below(4), via, rng.below(4)];
  }

  apply(op: FuzzOp, r: Reporter): void {
    const [, kindI = 0, tag = 0, seedI = 0, mseed = 0, n = 1, via = 0, bytesN = 0] = op;
    const kind = KINDS[kindI];
    if (kind === undefined) return;
    const m = this.seeds.get(kind);
    const name = [...(m?.keys() ?? [])].find((x) => tagOf(x) === tag);
    const text = name === undefined ? undefined : m?.get(name)?.[seedI];
    if (name === undefined || text === undefined) return;
    const rng = new Rng(mseed);
    let state: unknown = JSON.parse(text);
    for (let i = 0; i < n; i++) state = mutateOnce(state, rng);
    const e = this.platform(kind);
    if (name === MACHINE) {
      const records = this.machineBytes(state, via, bytesN, rng, r);
      if (records !== undefined) this.checked(e, "machine records", () => this.parseMachine(e.p, records), mseed, r);
      return;
    }
    const part = e.parts.find((x) => x.name === name);
    if (part !== undefined) this.checked(e, part.name, () => part.parse(state), mseed, r);
  }

  /**
   * Encodes mutated machine records into a state container (inside a guest snapshot for `via`
   * 2), mutates `bytesN` bytes, and decodes; undefined when encoding or decoding refused.
   */
  private machineBytes(state: unknown, via: number, bytesN: number, rng: Rng, r: Reporter): readonly StateRecord[] | undefined {
    let bytes: Uint8Array;
    try {
      bytes = encodeStates(state as StateRecord[]);
      if (via === 2) {
        const engine = new Uint8Array(64);
        bytes = encodeSnapshot({ magic: "nicvisor-guest-snapshot", version: 2, memMiB: 256, readyMarker: "ready", engine, engineChecksum: fnv1a(engine), devices: bytes });
      }
    } catch {
      return undefined; // the mutation made the records unencodable: nothing to decode
    }
    const mutated = bytesN > 0 ? mutateBytes(bytes, rng, bytesN) : bytes;
    let devices = mutated;
    if (via === 2) {
      const snap = decode(() => decodeSnapshot(mutated), "decodeSnapshot", r);
      if (snap === undefined) return undefined;
      devices = snap.devices;
    }
    return decode(() => decodeStates(devices), "decodeStates", r);
  }

  /** What `Machine.restoreBytes` checks of the records, down to the platform's parsers. */
  private parseMachine(p: PciPlatform, records: readonly StateRecord[]): () => void {
    const mine = records.find((x) => x.name === "machine");
    let s: ParsedPlatformState;
    if (mine === undefined) throw new MachineRecordsError("no machine record");
    if (mine.version === 1) {
      if (records.length !== 1) throw new MachineRecordsError("a format-1 machine record stands alone");
      const o = mine.state;
      if (typeof o !== "object" || o === null) throw new MachineRecordsError("machine record is not an object");
      s = p.parseState((o as { platform?: unknown }).platform);
    } else s = p.parseRecords(records.filter((x) => x !== mine));
    return () => p.applyState(s);
  }

  /**
   * Runs a parse of `what` and checks the outcome: only typed errors; a rejection changes nothing
   * in the platform; an accepted state is applied, survives guest accesses and the clock, and
   * leaves a platform whose own save parses again.
   */
  private checked(e: Live, what: string, parse: () => (() => void) | undefined, seed: number, r: Reporter): void {
    e.saved ??= JSON.stringify(e.p.save());
    let apply: (() => void) | undefined;
    try {
      apply = parse();
    } catch (err) {
      if (!isTypedError(err)) r.report("escape", `${what} parse: ${describeError(err)}`);
      if (JSON.stringify(e.p.save()) !== e.saved) {
        r.report("break", `${what}: a rejected state (${describeError(err)}) changed the platform`);
        e.saved = undefined;
      }
      return;
    }
    if (apply === undefined) {
      if (JSON.stringify(e.p.save()) !== e.saved) {
        r.report("break", `${what}: an accepted parse (not applied) changed the platform`);
        e.saved = undefined;
      }
      return;
    }
    e.saved = undefined;
    guarded(r, `${what} apply`, apply);
    // the restored platform meets a guest and its clock
    const rng = new Rng(seed ^ 0x5eed);
    e.reporter = r;
    for (let i = 0; i < GUEST_OPS; i++) {
      const op = rng.chance(0.5) ? genConfigOp(rng, e.p.root, rng.chance(0.5)) : genMmioOp(rng, e.p.root, rng.chance(0.5));
      guarded(r, `guest ${op[0]} after an accepted ${what}`, () => void applyPciOp(e.p.root, op));
    }
    guarded(r, `timers after an accepted ${what}`, () => e.clock.advance(AFTER_NS));
    e.reporter = undefined;
    try {
      e.p.parseState(JSON.parse(JSON.stringify(e.p.save())));
    } catch (err) {
      r.report("invariant", `after an accepted ${what}, the platform's own save does not parse: ${describeError(err)}`);
    }
  }
}

/** Machine records that `Machine.restoreBytes` would refuse before any parser runs. */
class MachineRecordsError extends Error {
  override readonly name = "MachineRecordsError";
}

function decode<T>(f: () => T, what: string, r: Reporter): T | undefined {
  try {
    return f();
  } catch (e) {
    if (!isTypedError(e)) r.report("escape", `${what}: ${describeError(e)}`);
    return undefined;
  }
}

/**
 * The `snapshot` target over `fixtures` (parsed format-1 `Machine.save()` JSON, e.g. the files of
 * test/fixtures/state-v1) plus live saves.
 */
export function createSnapshotTarget(fixtures: readonly unknown[]): FuzzTarget {
  return {
    name: "snapshot",
    description: "mutated real saved states into the state parsers (platform, PCI root/ports/functions, device models, PF agent, igb core, host stub), decodeStates, decodeSnapshot",
    budget: "budget: not exposed (restore does no guest-driven work)",
    create: () => {
      if (seedCache === undefined || seedCache.fixtures !== fixtures) seedCache = { fixtures, seeds: collectSeeds(fixtures) };
      return new SnapshotInstance(seedCache.seeds);
    },
  };
}
