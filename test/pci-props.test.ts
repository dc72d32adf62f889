/**
 * Properties of the PCI core under a hostile guest: random config-write sequences of any offset,
 * size and value, aimed at every function of the demo topology (host bridge, root port, SR-IOV PF
 * and its VFs) and at functions that do not exist.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SRIOV, SRIOV_CTRL } from "../src/pci/caps/sriov.js";
import { demoTopology } from "../src/pci/demo-topology.js";
import type { PciFunction } from "../src/pci/function.js";
import type { PciRoot } from "../src/pci/topology/root-complex.js";

type Size = 1 | 2 | 4;
/** Where writes go: existing functions, VFs that may or may not be enabled, and empty slots. */
const TARGETS: Array<[number, number]> = [[0, 0], [0, 0x08], [1, 0], [1, 1], [1, 2], [1, 5], [1, 8], [2, 0], [0, 0x10]];

const op = fc.record({
  target: fc.nat(TARGETS.length - 1),
  reg: fc.oneof(fc.nat(0xfff), fc.nat(0x3f), fc.integer({ min: 0x100, max: 0x180 })), // bias to header and ext caps
  size: fc.constantFrom<Size>(1, 2, 4),
  value: fc.oneof(fc.nat(0xffffffff), fc.constant(0xffffffff), fc.constant(0)),
});

function allFunctions(root: PciRoot, pf: PciFunction): PciFunction[] {
  const fns = root.enumerate().map((r) => r.fn);
  for (const vf of pf.sriov?.vfs ?? []) if (!fns.includes(vf)) fns.push(vf);
  return fns;
}

/** Identity bytes: checked on restore and not guest-writable. */
function identity(fn: PciFunction): number[] {
  const cs = fn.config;
  const out: number[] = [];
  for (let i = 0; i < cs.size; i++) {
    const ro = cs.cmask[i]! & ~cs.wmask[i]! & ~cs.w1cmask[i]!;
    out.push(cs.config[i]! & ro);
  }
  return out;
}

function walkStd(fn: PciFunction): void {
  const seen = new Set<number>();
  let p = fn.configRead(0x34, 1);
  while (p !== 0) {
    expect(p % 4).toBe(0);
    expect(p).toBeGreaterThanOrEqual(0x40);
    expect(p).toBeLessThanOrEqual(0xfc);
    expect(seen.has(p)).toBe(false);
    seen.add(p);
    p = fn.configRead(p + 1, 1);
  }
}

function walkExt(fn: PciFunction): void {
  if (fn.config.size !== 4096) return;
  const seen = new Set<number>();
  let p = 0x100;
  for (;;) {
    const hdr = fn.configRead(p, 4);
    if (hdr === 0) return;
    expect(seen.has(p)).toBe(false);
    seen.add(p);
    const next = hdr >>> 20;
    if (next === 0) return;
    expect(next % 4).toBe(0);
    expect(next).toBeGreaterThanOrEqual(0x100);
    expect(next).toBeLessThan(4096);
    p = next;
  }
}

describe("PCI core under hostile config writes", () => {
  it("never changes identity bytes, keeps both capability lists well-formed, and never throws", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const { root, device } = demoTopology();
        const fns = allFunctions(root, device.pf);
        const before = fns.map(identity);
        for (const o of ops) {
          const [bus, devfn] = TARGETS[o.target]!;
          root.configWrite(bus, devfn, o.reg, o.size, o.value);
          root.configRead(bus, devfn, o.reg, o.size);
        }
        fns.forEach((fn, i) => {
          expect(identity(fn)).toEqual(before[i]);
          walkStd(fn);
          walkExt(fn);
        });
      }),
      { numRuns: 150 },
    );
  });

  it("clears RW1C bits only where 1 is written", () => {
    const regs: Array<{ fn: (t: ReturnType<typeof demoTopology>) => PciFunction; reg: number; size: 2 | 4 }> = [
      { fn: (t) => t.device.pf, reg: 0x06, size: 2 }, // Status
      { fn: (t) => t.root.rootPorts[0]!.fn, reg: 0x1e, size: 2 }, // Secondary Status
      { fn: (t) => t.device.pf, reg: 0x100 + 0x04, size: 4 }, // AER uncorrectable status
      { fn: (t) => t.device.pf, reg: 0x100 + 0x10, size: 4 }, // AER correctable status
    ];
    fc.assert(
      fc.property(fc.nat(regs.length - 1), fc.nat(0xffffffff), fc.nat(0xffffffff), (which, prior, value) => {
        const t = demoTopology();
        const r = regs[which]!;
        const fn = r.fn(t);
        const cs = fn.config;
        const w1c = r.size === 2 ? cs.w1cmask[r.reg]! | (cs.w1cmask[r.reg + 1]! << 8) : new DataView(cs.w1cmask.buffer).getUint32(r.reg, true);
        // The device has set some RW1C bits.
        const set = (prior & w1c) >>> 0;
        if (r.size === 2) cs.set16(r.reg, cs.get16(r.reg) | set);
        else cs.set32(r.reg, (cs.get32(r.reg) | set) >>> 0);
        const before = fn.configRead(r.reg, r.size);
        fn.configWrite(r.reg, r.size, value);
        const after = fn.configRead(r.reg, r.size);
        const mask = r.size === 2 ? 0xffff : 0xffffffff;
        expect((after & w1c) >>> 0).toBe((before & w1c & ~value & mask) >>> 0);
      }),
      { numRuns: 300 },
    );
  });

  it("sizes every BAR and VF BAR as ~(size-1) with its type bits", () => {
    const t = demoTopology();
    const pf = t.device.pf;
    const sr = t.device.sriov;
    for (const [i, decl] of pf.bars.entries()) {
      if (decl === undefined) continue;
      pf.configWrite(0x10 + 4 * i, 4, 0xffffffff);
      const type = decl.kind === "mem64" ? 0x4 : decl.kind === "io" ? 0x1 : 0;
      expect(pf.configRead(0x10 + 4 * i, 4)).toBe(((~(decl.size - 1) & 0xfffffff0) | type | (decl.prefetchable ? 8 : 0)) >>> 0);
    }
    // VF BARs size the same way, through the SR-IOV capability, per VF.
    t.root.configWrite(1, 0, sr.offset + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
    for (const i of [0, 2]) {
      pf.configWrite(sr.offset + SRIOV.VF_BAR0 + 4 * i, 4, 0xffffffff);
      expect(pf.configRead(sr.offset + SRIOV.VF_BAR0 + 4 * i, 4)).toBe((((~(sr.vfBarSize(i) - 1)) & 0xfffffff0) | (i === 2 ? 4 : 0)) >>> 0);
    }
  });

  it("keeps NumVFs fixed while VF Enable is set; VF routing IDs and VF BARs follow offset, stride and size", () => {
    const pfOp = fc.record({
      reg: fc.oneof(fc.constantFrom(SRIOV.CTRL, SRIOV.NUM_VFS, SRIOV.VF_BAR0, SRIOV.VF_BAR0 + 8, SRIOV.SYSTEM_PGSIZE), fc.nat(0x3f)),
      size: fc.constantFrom<Size>(1, 2, 4),
      value: fc.nat(0xffffffff),
    });
    fc.assert(
      fc.property(fc.array(pfOp, { maxLength: 40 }), (ops) => {
        const { root, device } = demoTopology();
        const sr = device.sriov;
        for (const o of ops) {
          const vfeBefore = sr.vfEnabled;
          const numBefore = sr.numVfs;
          root.configWrite(1, 0, sr.offset + o.reg, o.size, o.value);
          if (vfeBefore && sr.vfEnabled) expect(sr.numVfs).toBe(numBefore);
          expect(sr.numVfs).toBeLessThanOrEqual(sr.totalVfs);
          const live = sr.liveVfs();
          expect(live.length).toBe(sr.vfEnabled ? sr.numVfs : 0);
          live.forEach(({ vf, rid }, n) => {
            expect(rid).toBe(device.pf.rid + sr.firstVfOffset + n * sr.vfStride);
            for (const bar of [0, 2]) {
              const base = sr.vfBarBase(bar);
              const want = sr.vfMse && base !== undefined ? base + n * sr.vfBarSize(bar) : undefined;
              expect(vf.barAddress(bar)).toBe(want);
            }
          });
          // What the bus routes agrees with the capability.
          for (const { vf, rid } of live) if (rid <= 0x1ff) expect(root.lookup(rid >>> 8, rid & 0xff)).toBe(vf);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("saves, restores and saves again to the same state; absent functions read all ones", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const a = demoTopology();
        for (const o of ops) {
          const [bus, devfn] = TARGETS[o.target]!;
          a.root.configWrite(bus, devfn, o.reg, o.size, o.value);
        }
        const saved = JSON.parse(JSON.stringify({ pci: a.root.save(), dev: a.device.save() }));
        const b = demoTopology();
        b.root.restore(b.root.stateType.parse(saved.pci));
        b.device.restore(b.device.stateType.parse(saved.dev));
        expect(JSON.parse(JSON.stringify({ pci: b.root.save(), dev: b.device.save() }))).toEqual(saved);
        expect(b.root.configRead(2, 0, 0, 4)).toBe(0xffffffff);
        expect(b.root.configRead(0, 0x10, 0, 2)).toBe(0xffff);
        expect(b.root.configRead(9, 0x33, 0x100, 1)).toBe(0xff);
      }),
      { numRuns: 100 },
    );
  });
});
