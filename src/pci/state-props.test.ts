/**
 * Properties of PCI saved state, at full size (fast-check's default size would cap the operation
 * lists at about ten):
 *
 * - save -> parse -> restore -> save is the identity after any sequence of guest config writes
 *   and MMIO (NumVFs, VF Enable, ARI, MSI-X control and table, BAR sizing, FLR, power states,
 *   slot control...);
 * - a randomly mutated saved state is either rejected with a StateError naming a field under the
 *   state's root (and the target is unchanged), or accepted, and then guest traffic never throws
 *   and the state the target saves afterwards still parses.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StateError } from "../state/parse.js";
import type { MsixState } from "./caps/msix.js";
import { PCIE } from "./caps/pcie.js";
import { SRIOV } from "./caps/sriov.js";
import { demoTopology, type DemoTopology } from "./demo-topology.js";
import { PCI } from "./regs.js";

type Op =
  | { k: "cfg"; target: number; reg: number; size: 1 | 2 | 4; value: number }
  | { k: "mmio"; fn: number; bar: 0 | 2; off: number; size: 1 | 2 | 4; value: number }
  | { k: "notify"; fn: number; vector: number }
  /** What Linux does for sriov_numvfs: VF Enable off, NumVFs, then Control (ARI, VF Enable, MSE). */
  | { k: "numvfs"; n: number; ctrl: number };

const t0 = demoTopology();
const SR = t0.device.sriov.offset;
const PF_PCIE = t0.device.pf.config.findCapability(0x10)!;
const PF_MSIX = t0.device.pf.config.findCapability(0x11)!;
const PF_MSI = t0.device.pf.config.findCapability(0x05)!;
const PF_PM = t0.device.pf.config.findCapability(0x01)!;
const PORT_PCIE = t0.root.rootPorts[0]!.pcie.offset;

/** Config targets: the root port, the PF, and VF routing IDs with and without ARI. */
const TARGETS: ReadonlyArray<readonly [number, number]> = [[0, 0x08], [1, 0], [1, 1], [1, 2], [1, 3], [1, 8], [1, 0x10]];
/** Registers worth hitting often (the rest of config space is hit at random too). */
const REGS = [
  PCI.COMMAND, PCI.STATUS, PCI.BAR0, PCI.BAR0 + 8, PCI.BAR0 + 12, PCI.INT_LINE, PCI.BRIDGE_CONTROL, PCI.PRIMARY_BUS, PCI.MEM_BASE, PCI.PREF_BASE,
  SR + SRIOV.CTRL, SR + SRIOV.NUM_VFS, SR + SRIOV.VF_BAR0, SR + SRIOV.VF_BAR0 + 8, SR + SRIOV.VF_BAR0 + 12, SR + SRIOV.SYSTEM_PGSIZE,
  PF_PCIE + PCIE.DEVCTL, PF_PCIE + PCIE.DEVCTL2, PF_MSIX + 2, PF_MSI + 2, PF_MSI + 4, PF_MSI + 0x10, PF_PM + 4,
  PORT_PCIE + PCIE.SLTCTL, PORT_PCIE + PCIE.SLTSTA, PORT_PCIE + PCIE.DEVCTL2,
];
const VALUES = [0, 1, 2, 3, 4, 6, 7, 8, 0x10, 0x11, 0x19, 0x1f, 0x8000, 0xc000, 0x4000, 0xffff, 0xffffffff, 0xc0000000, 0xc0010000, 0xc0100000, 0x00010100];

const cfgOp: fc.Arbitrary<Op> = fc.record({
  k: fc.constant("cfg" as const),
  target: fc.nat(TARGETS.length - 1),
  reg: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...REGS) }, { weight: 1, arbitrary: fc.nat(0xfff) }),
  size: fc.constantFrom(1 as const, 2 as const, 4 as const),
  value: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...VALUES) }, { weight: 1, arbitrary: fc.nat(0xffffffff) }),
});
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: cfgOp },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("mmio" as const),
      fn: fc.integer({ min: -1, max: 7 }),
      bar: fc.constantFrom(0 as const, 2 as const),
      off: fc.oneof(fc.constantFrom(0x80, 0x84, 0x0c, 0x1c, 0x2c, 0x3c, 0x800, 0x10), fc.nat(0xfff)),
      size: fc.constantFrom(1 as const, 2 as const, 4 as const),
      value: fc.oneof(fc.constantFrom(0, 1, 2, 3, 0xfee00000), fc.nat(0xffffffff)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("notify" as const), fn: fc.integer({ min: -1, max: 7 }), vector: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("numvfs" as const), n: fc.nat(9), ctrl: fc.nat(0x1f) }) },
  // MSI-X Message Control of the PF or a VF: enable, function mask.
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("cfg" as const), target: fc.nat(TARGETS.length - 1), reg: fc.constant(PF_MSIX + 2), size: fc.constant(2 as const), value: fc.constantFrom(0x8000, 0xc000, 0) }),
  },
);

/** Runs one guest or device operation; returns nothing, must not throw. */
function run(t: DemoTopology, op: Op): void {
  if (op.k === "cfg") {
    const [bus, devfn] = TARGETS[op.target]!;
    t.root.configWrite(bus, devfn, op.reg & ~(op.size - 1), op.size, op.value);
    return;
  }
  if (op.k === "numvfs") {
    t.root.configWrite(1, 0, SR + SRIOV.CTRL, 2, op.ctrl & ~1);
    t.root.configWrite(1, 0, SR + SRIOV.NUM_VFS, 2, op.n);
    t.root.configWrite(1, 0, SR + SRIOV.CTRL, 2, op.ctrl);
    return;
  }
  const fn = op.fn < 0 ? t.device.pf : t.device.sriov.vfs[op.fn]!;
  if (op.k === "notify") {
    fn.notify(op.vector);
    return;
  }
  const base = fn.barAddress(op.bar);
  if (base !== undefined) t.root.mmioWrite(base + (op.off & ~(op.size - 1)), op.size, op.value);
}

function snapshot(t: DemoTopology): unknown {
  return JSON.parse(JSON.stringify({ pci: t.root.save(), dev: t.device.save() }));
}

describe("PCI state properties (full size)", () => {
  it("save -> parse -> restore -> save is the identity after random guest traffic", () => {
    let ran = 0;
    let runs = 0;
    const seen = { vfsReenabled: 0, noAri: 0, pending: 0, barsMoved: 0 };
    fc.assert(
      fc.property(fc.array(ops, { minLength: 1, maxLength: 400, size: "max" }), (list) => {
        const a = demoTopology();
        for (const op of list) run(a, op);
        ran += list.length;
        runs++;
        const sr = a.device.sriov;
        if (sr.vfEnabled && sr.numVfs !== 2) seen.vfsReenabled++;
        if (!sr.ariCapableHierarchy) seen.noAri++;
        const fns = [a.device.pf, ...sr.vfs];
        if (fns.some((f) => (f.save().caps.msix as MsixState).pending.length > 0)) seen.pending++;
        if (a.root.configRead(1, 0, PCI.BAR0, 4) !== 0xc0000000) seen.barsMoved++;
        const saved = snapshot(a) as { pci: unknown; dev: unknown };
        const b = demoTopology();
        b.root.restore(b.root.stateType.parse(saved.pci));
        b.device.restore(b.device.stateType.parse(saved.dev));
        expect(snapshot(b)).toEqual(saved);
      }),
      { numRuns: 150 },
    );
    expect(runs).toBe(150);
    expect(ran).toBeGreaterThan(150 * 100); // full size: long sequences really ran
    // The sequences reach the states that matter (counted over the runs, not asserted per run).
    for (const [k, n] of Object.entries(seen)) expect(n, k).toBeGreaterThan(5);
  });

  it("a mutated saved state is rejected naming a field (changing nothing), or accepted and stays valid under traffic", () => {
    /** Every path to a leaf (or a config byte) of a JSON value. */
    function leaves(v: unknown, path: Array<string | number>, out: Array<Array<string | number>>): void {
      if (Array.isArray(v)) v.forEach((x, i) => leaves(x, [...path, i], out));
      else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) leaves(x, [...path, k], out);
      else out.push(path);
    }
    const base = demoTopology();
    for (const op of [
      { k: "cfg", target: 1, reg: PF_MSIX + 2, size: 2, value: 0xc000 },
      { k: "notify", fn: -1, vector: 1 },
    ] as Op[]) run(base, op);
    const good = (snapshot(base) as { pci: Record<string, unknown> }).pci;
    const paths: Array<Array<string | number>> = [];
    leaves(good, [], paths);
    const junk = fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constantFrom(null, true, false, "", "zz", 0xffffffff, 2 ** 53, -0.5, [], {}), fc.nat(0xffffffff));
    const mutation = fc.record({
      path: fc.nat(paths.length - 1),
      kind: fc.constantFrom("byte", "byte", "byte", "junk", "delete", "extra"),
      at: fc.nat(4095),
      byte: fc.nat(255),
      junk,
    });
    let accepted = 0;
    let rejected = 0;
    let traffic = 0;
    fc.assert(
      fc.property(mutation, fc.array(ops, { maxLength: 200, size: "max" }), (m, after) => {
        const s = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
        const p = paths[m.path]!;
        let parent: Record<string | number, unknown> = s;
        for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
        const key = p[p.length - 1]!;
        const old = parent[key];
        if (m.kind === "byte" && typeof old === "string" && old.length >= 2) {
          const i = (m.at % (old.length / 2)) * 2;
          parent[key] = old.slice(0, i) + m.byte.toString(16).padStart(2, "0") + old.slice(i + 2);
        } else if (m.kind === "delete") delete parent[key];
        else if (m.kind === "extra") parent[`${String(key)}X`] = m.junk;
        else parent[key] = m.junk;
        const t = demoTopology();
        const before = JSON.stringify(t.root.save());
        let parsed;
        try {
          parsed = t.root.stateType.parse(s);
        } catch (e) {
          expect(e).toBeInstanceOf(StateError);
          expect((e as StateError).path.startsWith("pci-root")).toBe(true);
          expect(JSON.stringify(t.root.save())).toBe(before);
          rejected++;
          return;
        }
        accepted++;
        t.root.restore(parsed);
        for (const op of after) expect(() => run(t, op)).not.toThrow();
        traffic += after.length;
        const again = JSON.parse(JSON.stringify(t.root.save()));
        expect(() => demoTopology().root.stateType.parse(again)).not.toThrow();
      }),
      { numRuns: 600 },
    );
    expect(rejected).toBeGreaterThan(100);
    expect(accepted).toBeGreaterThan(20);
    expect(traffic).toBeGreaterThan(accepted * 20);
  });
});
