/**
 * The IOMMU domain: map/unmap rules, faults with their address, no partial write, the DMA write
 * log; and, at full size with fast-check, a host VF driven by hostile descriptors through the
 * domain never reads or writes guest memory outside the pages mapped for it (every access is
 * recorded at the underlying memory).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { DmaSpace } from "../../pci/interfaces.js";
import { FlatMemory, ManualClock } from "../../devices/igb/testing.js";
import { CountingBackend } from "../../devices/net/testing.js";
import { B, VR } from "../../devices/igb/regs.js";
import { IgbHostNic } from "../pf-agent/host-nic.js";
import { IgbVfioDevice } from "../failover/vfio.js";
import { IOMMU_PAGE, IommuDomain, IommuError } from "./domain.js";

const P = IOMMU_PAGE;

/** Guest memory that records every access made to it, and checks each against `allowed`. */
class RecordingMemory implements DmaSpace {
  readonly flat: FlatMemory;
  accesses = 0;
  violations: string[] = [];
  allowed: (addr: number, len: number) => boolean = () => true;
  constructor(size: number) {
    this.flat = new FlatMemory(size);
  }
  private note(addr: number, len: number, w: boolean): void {
    this.accesses++;
    if (!this.allowed(addr, len) && this.violations.length < 10) this.violations.push(`${w ? "write" : "read"} 0x${addr.toString(16)}+${len}`);
  }
  read(addr: number, len: number): Uint8Array | undefined {
    this.note(addr, len, false);
    return this.flat.read(addr, len);
  }
  write(addr: number, data: Uint8Array): boolean {
    this.note(addr, data.length, true);
    return this.flat.write(addr, data);
  }
}

describe("IommuDomain", () => {
  it("maps at 4 KiB granularity, refuses overlaps and misalignment, cuts mappings on unmap, bounds the number of mappings", () => {
    const dom = new IommuDomain(new FlatMemory(1 << 20), { maxMappings: 3 });
    expect(dom.map(0x1000, 0x2000)).toBeUndefined();
    expect(dom.map(0x2000, 0x1000)).toBeInstanceOf(IommuError);
    expect(dom.map(0x3001, 0x1000)).toBeInstanceOf(IommuError);
    expect(dom.map(0x3000, 0)).toBeInstanceOf(IommuError);
    expect(dom.map(0x8000, 0x1000, 0x10000)).toBeUndefined();
    expect(dom.map(0x10000, 0x1000)).toBeUndefined();
    expect(dom.map(0x20000, 0x1000)).toBeInstanceOf(IommuError); // 3 mappings already
    expect(dom.unmap(0x1000, 0x1000)).toBe(0x1000); // cut the first at its start
    expect(dom.mappings()).toEqual([
      { iova: 0x2000, size: 0x1000, phys: 0x2000 },
      { iova: 0x8000, size: 0x1000, phys: 0x10000 },
      { iova: 0x10000, size: 0x1000, phys: 0x10000 },
    ]);
    expect(dom.unmap(0, 0x100000)).toBe(0x3000);
    expect(dom.mappingCount).toBe(0);
  });

  it("faults count the address, write nothing, and the write log names the guest pages written", () => {
    const mem = new FlatMemory(1 << 20);
    const dom = new IommuDomain(mem);
    dom.map(0x0, 0x2000);
    dom.map(0x4000, 0x1000, 0x9000);
    expect(dom.write(0x1fe0, new Uint8Array(0x20).fill(7))).toBe(true);
    expect(dom.write(0x1ff0, new Uint8Array(0x2020).fill(9))).toBe(false); // runs into 0x2000
    expect(dom.faults).toBe(1);
    expect(dom.lastFault).toEqual({ iova: 0x1ff0, len: 0x2020, write: true, unmapped: 0x2000 });
    expect(mem.bytes[0x1ff0]).toBe(7); // nothing of the refused write landed
    expect(dom.read(0x4ff0, 0x20)).toBeUndefined();
    expect(dom.lastFault?.unmapped).toBe(0x5000);
    expect(dom.write(0x4010, Uint8Array.of(1, 2))).toBe(true);
    expect(mem.bytes[0x9010]).toBe(1);
    expect(dom.takeDirty()).toEqual([0x1000, 0x9000]);
    expect(dom.takeDirty()).toEqual([]);
  });

  it("fast-check: an access succeeds exactly when every page is mapped; a refused one touches nothing", () => {
    let ops = 0;
    let faults = 0;
    let passed = 0;
    const op = fc.oneof(
      fc.record({ k: fc.constant("map" as const), page: fc.nat(600), n: fc.integer({ min: 1, max: 40 }), phys: fc.nat(200) }),
      fc.record({ k: fc.constant("unmap" as const), page: fc.nat(600), n: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ k: fc.constant("read" as const), addr: fc.nat(520 * P), len: fc.integer({ min: 1, max: 3 * P }) }),
      fc.record({ k: fc.constant("write" as const), addr: fc.nat(520 * P), len: fc.integer({ min: 1, max: 3 * P }), b: fc.integer({ min: 1, max: 255 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 400, size: "max" }), (list) => {
        const mem = new RecordingMemory(256 * P);
        const dom = new IommuDomain(mem, { maxMappings: 64 });
        const model = new Map<number, number>(); // IOVA page -> guest page
        for (const o of list) {
          ops++;
          if (o.k === "map") {
            const free = Array.from({ length: o.n }, (_, i) => !model.has(o.page + i)).every(Boolean);
            const fits = o.phys + o.n <= 256;
            const before = dom.mappingCount;
            const r = fits ? dom.map(o.page * P, o.n * P, o.phys * P) : undefined;
            if (!fits) continue;
            expect(r === undefined).toBe(free && before < 64);
            if (r === undefined) for (let i = 0; i < o.n; i++) model.set(o.page + i, o.phys + i);
          } else if (o.k === "unmap") {
            const r = dom.unmap(o.page * P, o.n * P);
            if (typeof r === "number") {
              let n = 0;
              for (let i = 0; i < o.n; i++) if (model.delete(o.page + i)) n++;
              expect(r).toBe(n * P);
            }
          } else {
            const first = Math.floor(o.addr / P);
            const last = Math.floor((o.addr + o.len - 1) / P);
            let ok = true;
            for (let p = first; p <= last; p++) if (!model.has(p)) ok = false;
            const pages = new Set<number>();
            for (let p = first; p <= last; p++) if (model.has(p)) pages.add(model.get(p)!);
            mem.allowed = (a, l) => {
              for (let p = Math.floor(a / P); p <= Math.floor((a + l - 1) / P); p++) if (!pages.has(p)) return false;
              return ok;
            };
            const acc0 = mem.accesses;
            const f0 = dom.faults;
            if (o.k === "read") {
              const got = dom.read(o.addr, o.len);
              expect(got !== undefined).toBe(ok);
              if (got) for (let i = 0; i < o.len; i += 997) expect(got[i]).toBe(mem.flat.bytes[model.get(Math.floor((o.addr + i) / P))! * P + ((o.addr + i) % P)]);
            } else {
              const ok2 = dom.write(o.addr, new Uint8Array(o.len).fill(o.b));
              expect(ok2).toBe(ok);
              if (ok2) for (let i = 0; i < o.len; i += 997) expect(mem.flat.bytes[model.get(Math.floor((o.addr + i) / P))! * P + ((o.addr + i) % P)]).toBe(o.b);
            }
            if (ok) passed++;
            else {
              faults++;
              expect(mem.accesses).toBe(acc0); // nothing read or written
              expect(dom.faults).toBe(f0 + 1);
              const firstBad = Array.from({ length: last - first + 1 }, (_, i) => first + i).find((p) => !model.has(p))!;
              expect(dom.lastFault!.unmapped).toBe(Math.max(o.addr, firstBad * P));
            }
          }
        }
        expect(mem.violations).toEqual([]);
      }),
      { numRuns: 120 },
    );
    expect(ops).toBeGreaterThan(120 * 150);
    expect(faults).toBeGreaterThan(1000);
    expect(passed).toBeGreaterThan(200);
  });
});

describe("a host VF behind the IOMMU domain, driven by hostile descriptors", () => {
  const VF_REGS = [VR.RDBAL, VR.RDBAH, VR.RDLEN, VR.RDH, VR.RDT, VR.SRRCTL, VR.RXDCTL, VR.TDBAL, VR.TDBAH, VR.TDLEN, VR.TDH, VR.TDT, VR.TXDCTL, VR.TDWBAL, VR.TDWBAH];
  const MEM_PAGES = 256;

  it("never reads or writes guest memory outside the pages mapped for it (fast-check, full size)", () => {
    let ops = 0;
    let devAccesses = 0;
    let devFaults = 0;
    let framesIn = 0;
    const mac = Uint8Array.of(0x02, 0, 0, 0, 0x01, 0);
    const addr = fc.oneof(fc.nat(MEM_PAGES * P + 2 * P), fc.constantFrom(0, 0xffffffff, MEM_PAGES * P - 16, 0x7fffff80));
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ k: fc.constant("reg" as const), reg: fc.nat(VF_REGS.length - 1), q: fc.nat(1), v: fc.oneof(addr, fc.nat(0xffffffff), fc.nat(64)) }) },
      { weight: 3, arbitrary: fc.record({ k: fc.constant("scribble" as const), at: fc.nat(MEM_PAGES * P - 64), bytes: fc.uint8Array({ minLength: 16, maxLength: 64 }) }) },
      { weight: 3, arbitrary: fc.record({ k: fc.constant("frame" as const), len: fc.integer({ min: 14, max: 9000 }) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant("map" as const), page: fc.nat(MEM_PAGES - 1), n: fc.integer({ min: 1, max: 16 }) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant("unmap" as const), page: fc.nat(MEM_PAGES - 1), n: fc.integer({ min: 1, max: 16 }) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant("time" as const), us: fc.nat(200) }) },
      { weight: 4, arbitrary: fc.record({ k: fc.constant("desc" as const), tx: fc.boolean(), i: fc.nat(255), addr, len: fc.nat(0xffff), cmd: fc.oneof(fc.nat(0xffffffff), fc.constantFrom(0x2b300000, 0x2b200000, 0x23300000)) }) },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(MEM_PAGES - 1), fc.integer({ min: 1, max: 32 })), { maxLength: 8, size: "max" }), fc.array(op, { minLength: 20, maxLength: 300, size: "max" }), (maps, list) => {
        const clock = new ManualClock();
        const up = new CountingBackend();
        const nic = new IgbHostNic({ pfMac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), numVfs: 2, clock, backend: up });
        const mem = new RecordingMemory(MEM_PAGES * P);
        const dev = new IgbVfioDevice(nic, 0, mem);
        const mapped = new Set<number>();
        const doMap = (page: number, n: number): void => {
          if (dev.dmaMap(page * P, n * P) === undefined) for (let i = 0; i < n; i++) mapped.add(page + i);
        };
        for (const [page, n] of maps) doMap(page, Math.min(n, MEM_PAGES - page));
        mem.allowed = (a, l) => {
          for (let p = Math.floor(a / P); p <= Math.floor((a + l - 1) / P); p++) if (!mapped.has(p)) return false;
          return true;
        };
        nic.agent.setVfMac(0, mac);
        const r = nic.core.regs;
        r.set("VFRE", 0, r.get("VFRE") | 1);
        r.set("VFTE", 0, r.get("VFTE") | 1);
        // a working ring set-up to start from (the operations then make it hostile)
        const [rxPage, txPage] = [...mapped, 0, 1];
        const w = (off: number, v: number): void => dev.regionWrite(0, off, 4, v);
        w(VR.RDBAL(0), (rxPage ?? 0) * P);
        w(VR.RDLEN(0), 4096);
        w(VR.SRRCTL(0), 2 | B.SRRCTL_DESCTYPE_ONEBUF);
        w(VR.RXDCTL(0), B.RXDCTL_ENABLE);
        w(VR.RDT(0), 255);
        w(VR.TDBAL(0), (txPage ?? 0) * P);
        w(VR.TDLEN(0), 4096);
        w(VR.TXDCTL(0), B.TXDCTL_ENABLE);
        for (const o of list) {
          ops++;
          switch (o.k) {
            case "reg":
              dev.regionWrite(0, VF_REGS[o.reg]!(o.q), 4, o.v);
              break;
            case "scribble":
              mem.flat.write(o.at, o.bytes); // the guest writes its memory: not a device access
              break;
            case "frame": {
              const f = new Uint8Array(o.len).fill(0x5a);
              f.set(mac, 0);
              f.set([0x02, 9, 9, 9, 9, 9], 6);
              framesIn++;
              up.sink?.(f);
              break;
            }
            case "map":
              doMap(o.page, Math.min(o.n, MEM_PAGES - o.page));
              break;
            case "unmap": {
              const got = dev.dmaUnmap(o.page * P, o.n * P);
              if (typeof got === "number") for (let i = 0; i < o.n; i++) mapped.delete(o.page + i);
              break;
            }
            case "time":
              clock.advance(o.us * 1000);
              break;
            case "desc": {
              const q = o.tx ? VR.TDBAL(0) : VR.RDBAL(0);
              const base = dev.regionRead(0, q, 4);
              const d = new Uint8Array(16);
              const v = new DataView(d.buffer);
              v.setUint32(0, o.addr, true);
              v.setUint32(8, (o.cmd & 0xffff0000) | o.len, true);
              v.setUint32(12, (o.len << 14) >>> 0, true);
              mem.flat.write(base + o.i * 16, d);
              if (o.tx) w(VR.TDT(0), (o.i + 1) % 256);
              break;
            }
          }
        }
        devAccesses += mem.accesses;
        devFaults += dev.iommu.faults;
        expect(mem.violations).toEqual([]);
      }),
      { numRuns: 150 },
    );
    expect(ops).toBeGreaterThan(150 * 100);
    // the device really did DMA, and really ran into unmapped pages
    expect(devAccesses).toBeGreaterThan(1000);
    expect(devFaults).toBeGreaterThan(100);
    expect(framesIn).toBeGreaterThan(1000);
  });
});
