/**
 * Target `snapshot`: saved state as hostile input. Seeds are real saved states: the v1 fixtures
 * saved from running Debian guests (given by the caller, e.g. read from test/fixtures/state-v1) and
 * live saves of freshly built platforms (test device, virtio-net packed, 82576, failover) after
 * firmware enumeration. Each operation takes one seed part, mutates it (structure-aware: wrong
 * types, NaN, 2^32, 2^53, odd hex, dropped and unknown keys, cut and grown arrays) and feeds it to
 * a restore or parse entry point that exists: a whole platform, the PCI topology, one PCI
 * function, a device (igb core, virtio-net, its transport, the test device, the host NIC with its
 * PF agent, the L2 switch), `checkPfAgentState`; or it encodes the seed into bytes, mutates the
 * bytes and feeds them to `decodeStates` or `decodeSnapshot` (then restores what decoded).
 *
 * Checks: only typed errors escape (a TypeError or RangeError is an escape); a rejected restore
 * changes nothing (the component's save before and after are equal), else a `break`; a state that
 * was accepted saves again into something the same component accepts (`invariant`).
 * @module
 */
import { FlatMemory, ManualClock } from "../../devices/igb/testing.js";
import { decodeStates, encodeStates } from "../../devices/state/container.js";
import { decodeSnapshot, encodeSnapshot, fnv1a } from "../../vmm/harness/runner-snapshot.js";
import { defaultLayout, type PlatformEnv } from "../../vmm/machine-platform.js";
import { checkPfAgentState } from "../../vmm/pf-agent/agent.js";
import { FailoverPlatform, IgbPlatform, type PciPlatform, TestDevicePlatform, VirtioNetPlatform } from "../../vmm/pci-platform.js";
import type { PciFunction } from "../../pci/function.js";
import { describeError, isTypedError, type FuzzInstance, type FuzzOp, type FuzzTarget, type Reporter } from "../engine.js";
import { mutateBytes, mutateOnce } from "../mutate.js";
import { Rng } from "../rng.js";
import { firmwareSetup } from "../setup.js";

/** The platform kinds the seeds come from. */
const KINDS = ["testdev", "virtio", "igb", "failover"] as const;
type Kind = (typeof KINDS)[number];

function makeEnv(): PlatformEnv {
  return { dma: new FlatMemory(1 << 20), interrupts: { msi: () => undefined, intx: () => undefined }, clock: new ManualClock(), layout: defaultLayout(256 << 20) };
}

function makePlatform(kind: Kind): PciPlatform {
  const env = makeEnv();
  switch (kind) {
    case "testdev": return new TestDevicePlatform(env);
    case "virtio": return new VirtioNetPlatform(env, { packed: true });
    case "igb": return new IgbPlatform(env);
    default: return new FailoverPlatform(env);
  }
}

/** Which platform a fixture (a `Machine.save()`) was saved from, by its device names. */
function kindOf(machine: unknown): Kind | undefined {
  const devices = (machine as { platform?: { devices?: Record<string, unknown> } } | null)?.platform?.devices;
  if (devices === undefined || devices === null) return undefined;
  if ("igb-host" in devices) return "failover";
  if ("igb" in devices) return "igb";
  if ("virtio-net" in devices) return "virtio";
  return "testdev";
}

/** A restorable part of a platform: how to save it and how to restore into it. */
interface Part {
  readonly name: string;
  save(): unknown;
  restore(s: unknown): void;
}

/** The parts of `p` with a restore entry point. */
function partsOf(p: PciPlatform): Part[] {
  const parts: Part[] = [
    { name: "platform", save: () => p.save(), restore: (s) => p.restore(s) },
    { name: "pci", save: () => p.root.save(), restore: (s) => p.root.restore(s as never) },
  ];
  const fns: [string, PciFunction][] = [];
  p.root.rootPorts.forEach((port, n) => port.functions.forEach((f, i) => fns.push([`port${n}/f${i}`, f])));
  for (const [path, f] of fns) parts.push({ name: `fn ${path}`, save: () => f.save(), restore: (s) => f.restore(s as never) });
  if (p instanceof TestDevicePlatform) parts.push({ name: "testdev", save: () => p.device.save(), restore: (s) => p.device.restore(s as never) });
  if (p instanceof VirtioNetPlatform) {
    parts.push({ name: "virtio-net", save: () => p.nic.save(), restore: (s) => p.nic.restore(s as never) });
    parts.push({ name: "virtio transport", save: () => p.transport.save(), restore: (s) => p.transport.restore(s as never) });
  }
  if (p instanceof IgbPlatform) parts.push({ name: "igb", save: () => p.nic.save(), restore: (s) => p.nic.restore(s as never) });
  if (p instanceof FailoverPlatform) {
    parts.push({ name: "igb-host", save: () => p.host.save(), restore: (s) => p.host.restore(s) });
    parts.push({ name: "pf-agent", save: () => p.host.agent.save(), restore: (s) => p.host.agent.restore(s) });
    parts.push({ name: "l2-switch", save: () => p.net.save(), restore: (s) => p.net.restore(s as never) });
    parts.push({ name: "virtio-net-standby", save: () => p.standby.save(), restore: (s) => p.standby.restore(s as never) });
    parts.push({ name: "checkPfAgentState", save: () => p.host.agent.save(), restore: (s) => void checkPfAgentState(s) });
  }
  return parts;
}

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
  for (const k of KINDS) {
    const p = makePlatform(k);
    firmwareSetup(p.root, { numVfs: 2, ari: true });
    for (const part of partsOf(p)) add(k, part.name, part.save());
    add(k, "machine", { version: 1, memMiB: 256, conf1Latch: 0, platform: p.save() });
  }
  for (const fx of fixtures) {
    const k = kindOf(fx);
    if (k === undefined) continue;
    const platform = (fx as { platform: { pci: { functions: Record<string, unknown> }; devices: Record<string, unknown> } }).platform;
    add(k, "machine", fx);
    add(k, "platform", platform);
    add(k, "pci", platform.pci);
    for (const [path, s] of Object.entries(platform.pci.functions)) add(k, `fn ${path}`, s);
    for (const [name, s] of Object.entries(platform.devices)) {
      if (name === "virtio-net" || name === "virtio-net-standby") {
        const v = s as { nic?: unknown; transport?: unknown };
        add(k, name === "virtio-net" ? "virtio-net" : "virtio-net-standby", v.nic);
        if (name === "virtio-net") add(k, "virtio transport", v.transport);
      } else add(k, name, s);
      if (name === "igb-host") {
        const agent = (s as { agent?: unknown }).agent;
        add(k, "pf-agent", agent);
        add(k, "checkPfAgentState", agent);
      }
    }
  }
  return seeds;
}

let seedCache: { fixtures: readonly unknown[]; seeds: Seeds } | undefined;

class SnapshotInstance implements FuzzInstance {
  readonly budgets = [];
  private readonly platforms = new Map<Kind, { p: PciPlatform; parts: Part[]; saved: Map<Part, string> }>();

  constructor(private readonly seeds: Seeds) {}

  private platform(k: Kind): { p: PciPlatform; parts: Part[]; saved: Map<Part, string> } {
    let e = this.platforms.get(k);
    if (e === undefined) {
      const p = makePlatform(k);
      firmwareSetup(p.root, { numVfs: 2, ari: true });
      e = { p, parts: partsOf(p), saved: new Map() };
      this.platforms.set(k, e);
    }
    return e;
  }

  next(rng: Rng): FuzzOp {
    const kind = rng.below(KINDS.length);
    const m = this.seeds.get(KINDS[kind]!)!;
    const names = [...m.keys()];
    // whole-platform restores and the byte decoders cost most: fewer of them
    // whole-platform parts cost a hundred times more than a function's: draw them less often
    let name = rng.below(names.length);
    for (let i = 0; i < 3 && (m.get(names[name]!)![0]?.length ?? 0) > 20_000 && rng.chance(0.8); i++) name = rng.below(names.length);
    const seedCount = m.get(names[name]!)!.length;
    // 0: restore; 1: through decodeStates; 2: through decodeSnapshot
    const via = names[name] === "machine" ? (rng.chance(0.5) ? 2 : 1) : 0;
    return ["mut", kind, name, rng.below(seedCount), rng.u32(), 1 + rng.below(4), via, rng.below(4)];
  }

  apply(op: FuzzOp, r: Reporter): void {
    const [, kindI = 0, nameI = 0, seedI = 0, mseed = 0, n = 1, via = 0, bytesN = 0] = op;
    const kind = KINDS[kindI];
    if (kind === undefined) return;
    const m = this.seeds.get(kind);
    const name = [...(m?.keys() ?? [])][nameI];
    const text = name === undefined ? undefined : m?.get(name)?.[seedI];
    if (name === undefined || text === undefined) return;
    const rng = new Rng(mseed);
    let state: unknown = JSON.parse(text);
    for (let i = 0; i < n; i++) state = mutateOnce(state, rng);
    const { parts, saved } = this.platform(kind);
    if (name === "machine") {
      // machine state -> bytes -> decoder -> the platform part of what decoded
      let machine: unknown = state;
      if (via === 2) {
        const engine = new Uint8Array(64);
        let fixed: Uint8Array;
        try {
          fixed = encodeSnapshot({ magic: "nicvisor-guest-snapshot", version: 1, memMiB: 256, readyMarker: "ready", engine, engineChecksum: fnv1a(engine), machine: state as never });
        } catch {
          return; // the mutation made the state unencodable; nothing to decode
        }
        const mutated = bytesN > 0 ? mutateBytes(fixed, rng, bytesN) : fixed;
        const snap = decode(() => decodeSnapshot(mutated), "decodeSnapshot", r);
        if (snap === undefined) return;
        machine = snap.machine;
      } else {
        let bytes: Uint8Array;
        try {
          bytes = encodeStates([{ name: "machine", kind: "machine", version: 1, state }]);
        } catch {
          return;
        }
        const mutated = bytesN > 0 ? mutateBytes(bytes, rng, bytesN) : bytes;
        const recs = decode(() => decodeStates(mutated), "decodeStates", r);
        if (recs === undefined || recs[0] === undefined) return;
        machine = recs[0].state;
      }
      const plat = parts.find((x) => x.name === "platform")!;
      this.restoreChecked(plat, (machine as { platform?: unknown } | null)?.platform, saved, r);
      return;
    }
    const part = parts.find((x) => x.name === name);
    if (part === undefined) return;
    this.restoreChecked(part, state, saved, r);
  }

  /**
   * Restores `state` into `part` and checks the outcome. `saved` caches each part's save text
   * while nothing changed the platform (a rejected restore that changed nothing keeps it valid).
   */
  private restoreChecked(part: Part, state: unknown, saved: Map<Part, string>, r: Reporter): void {
    let before = saved.get(part);
    if (before === undefined) {
      before = JSON.stringify(part.save());
      saved.set(part, before);
    }
    try {
      part.restore(state);
    } catch (e) {
      if (!isTypedError(e)) r.report("escape", `${part.name} restore: ${describeError(e)}`);
      if (JSON.stringify(part.save()) !== before) {
        r.report("break", `${part.name}: a rejected restore (${describeError(e)}) changed state`);
        saved.clear();
      }
      return;
    }
    saved.clear();
    // accepted: what it saves now must be accepted again
    const again = part.save();
    try {
      part.restore(JSON.parse(JSON.stringify(again)));
    } catch (e) {
      r.report("invariant", `${part.name}: re-restoring its own save after an accepted hostile state fails: ${describeError(e)}`);
    }
  }
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
 * The `snapshot` target over `fixtures` (parsed `Machine.save()` JSON, e.g. the files of
 * test/fixtures/state-v1) plus live saves.
 */
export function createSnapshotTarget(fixtures: readonly unknown[]): FuzzTarget {
  return {
    name: "snapshot",
    description: "mutated real saved states into platform/PCI/function/device restores, checkPfAgentState, decodeStates, decodeSnapshot",
    budget: "budget: not exposed (restore does no guest-driven work)",
    create: () => {
      if (seedCache === undefined || seedCache.fixtures !== fixtures) seedCache = { fixtures, seeds: collectSeeds(fixtures) };
      return new SnapshotInstance(seedCache.seeds);
    },
  };
}
