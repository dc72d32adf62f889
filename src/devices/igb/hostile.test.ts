import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { saveVf } from "./vf.js";
import { B, R, VR } from "./regs.js";
import { CountingBackend } from "../net/testing.js";

const access = fc.record({
  off: fc.oneof(fc.integer({ min: 0, max: 0x1ffff }), fc.constantFrom(R.CTRL, R.ICR, R.EICR, R.EIMS, R.GPIE, R.MDIC, R.EERD, R.P2VMAILBOX(0), R.RDT(0), R.TDT(0), R.TXDCTL(0), R.RCTL, R.TCTL, R.MRQC, R.VT_CTL, R.PVTCTRL(1), R.PVTEICS(1))),
  size: fc.constantFrom(1 as const, 2 as const, 4 as const),
  value: fc.integer({ min: 0, max: 0xffffffff }),
  read: fc.boolean(),
});

/** Brings VF 0 up and checks a frame goes out and one comes in. */
function works(tb: ReturnType<typeof createIgbTestbed>, up: CountingBackend): void {
  const d = tb.vfs[0]!;
  expect(d.reset()).toBe(true);
  d.open();
  passesTraffic(d, up);
}

/** Checks that an open VF driver sends a frame to the uplink and receives one from it. */
function passesTraffic(d: ReturnType<typeof createIgbTestbed>["vfs"][number], up: CountingBackend): void {
  const f = new Uint8Array(60);
  f.set([0x02, 9, 9, 9, 9, 9], 0);
  f.set(d.mac, 6);
  const before = up.sent;
  expect(d.send(f)).toBe(true);
  expect(up.sent).toBe(before + 1);
  const r = new Uint8Array(60);
  r.set(d.mac, 0);
  r.set([0x02, 9, 9, 9, 9, 9], 6);
  expect(up.sink?.(r)).toBe(true);
  expect(d.receive().length).toBe(1);
}

describe("hostile guests", () => {
  it("random PF register sequences never throw, and the device works after CTRL.RST", () => {
    fc.assert(
      fc.property(fc.array(access, { maxLength: 200 }), (ops) => {
        const up = new CountingBackend();
        const tb = createIgbTestbed({ numVfs: 2, backend: up });
        for (const o of ops) {
          if (o.read) tb.core.mmioRead(o.off, o.size);
          else tb.core.mmioWrite(o.off, o.size, o.value);
          tb.clock.advance(1000);
        }
        tb.core.mmioWrite(R.CTRL, 4, B.CTRL_RST);
        tb.agent.init(2);
        works(tb, up);
      }),
      { numRuns: 60 },
    );
  });

  it("random VF register sequences from VF 1 never touch VF 0/2 or the PF's filters", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ off: fc.integer({ min: 0, max: 0x3fff }), value: fc.integer({ min: 0, max: 0xffffffff }), read: fc.boolean() }), { maxLength: 300 }), (ops) => {
        const up = new CountingBackend();
        const tb = createIgbTestbed({ numVfs: 3, backend: up });
        const others = [0, 2].map((v) => JSON.stringify(saveVf(tb.core, v)));
        const filt = () => JSON.stringify((["RAL", "RAH", "VLVF", "MTA"] as const).map((n) => Array.from({ length: n === "MTA" ? 128 : n === "VLVF" ? 32 : 24 }, (_, i) => tb.core.regs.get(n, i))));
        const f0 = filt();
        const bar = tb.vfRegs[1]!;
        for (const o of ops) {
          if (o.read) bar.read(o.off, 4);
          else bar.write(o.off & ~3, 4, o.value);
        }
        tb.clock.advance(10_000_000);
        expect([0, 2].map((v) => JSON.stringify(saveVf(tb.core, v)))).toEqual(others);
        expect(filt()).toBe(f0);
      }),
      { numRuns: 60 },
    );
  });

  it("garbage descriptors and ring registers never throw or hang, and the VF recovers after reset", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16 * 64, maxLength: 16 * 64 }),
        fc.array(fc.record({ reg: fc.constantFrom(VR.TDT(0), VR.TDH(0), VR.TDLEN(0), VR.RDT(0), VR.RDH(0), VR.RDLEN(0), VR.SRRCTL(0), VR.TDBAL(0), VR.TDWBAL(0)), value: fc.integer({ min: 0, max: 0xffffffff }) }), { maxLength: 30 }),
        (ring, writes) => {
          const up = new CountingBackend();
          const tb = createIgbTestbed({ numVfs: 1, backend: up, driver: { ringSize: 64 } });
          const d = tb.vfs[0]!;
          d.reset();
          d.open();
          const base = tb.core.regs.get("TDBAL", 0);
          tb.mem.write(base, ring);
          for (const w of writes) {
            tb.vfRegs[0]!.write(w.reg, 4, w.value);
            const r = new Uint8Array(64);
            r.set(d.mac, 0);
            up.sink?.(r);
          }
          works(tb, up);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("garbage mailbox messages are answered or ignored, never crash the agent, and reset still works", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 16 }), { maxLength: 20 }), (msgs) => {
        const up = new CountingBackend();
        const tb = createIgbTestbed({ numVfs: 1, backend: up });
        const d = tb.vfs[0]!;
        d.reset();
        for (const m of msgs) d.request(m);
        works(tb, up);
      }),
      { numRuns: 40 },
    );
  });
});

describe("hostile VF on the mailbox", () => {
  it("random requests from VF 1 never change VF 0's filters or stop its traffic", () => {
    const msg = fc.tuple(
      fc.constantFrom(1, 2, 3, 4, 5, 6, 0x100, 7),
      fc.integer({ min: 0, max: 0xff }),
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 15 }),
    );
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 25 }), fc.boolean(), (msgs, copyMac) => {
        const up = new CountingBackend();
        const tb = createIgbTestbed({ numVfs: 2, backend: up });
        const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
        d0.reset();
        d0.open();
        d1.reset();
        const vf0Filters = () => {
          const rar: number[] = [];
          for (let i = 0; i < 24; i++) if ((tb.core.regs.get("RAH", i) >>> 18) & 1) rar.push(tb.core.regs.get("RAL", i), tb.core.regs.get("RAH", i));
          const vlvf = Array.from({ length: 32 }, (_, i) => (tb.core.regs.get("VLVF", i) >>> 12) & 1);
          return JSON.stringify([rar, vlvf, tb.core.regs.get("VMOLR", 0), tb.core.regs.get("VMVIR", 0)]);
        };
        const before = vf0Filters();
        if (copyMac) expect(d1.setMac(d0.mac)).toBe(false);
        for (const [id, info, rest] of msgs) d1.request([(id | (info << 16)) >>> 0, ...rest]);
        expect(vf0Filters()).toBe(before);
        const r = new Uint8Array(60);
        r.set(d0.mac, 0);
        r.set([0x02, 9, 9, 9, 9, 9], 6);
        expect(up.sink?.(r)).toBe(true);
        expect(d0.receive().length).toBe(1);
      }),
      { numRuns: 60 },
    );
  });
});

describe("VF state completeness", () => {
  it("every register a VF can reach reads the same after saveVf -> restoreVf into another VF of another device", async () => {
    const { vfToPf, restoreVf } = await import("./vf.js");
    const { IGB_SIZES } = await import("./regs.js");
    /** Raw view of everything VF `vf` reaches (no read side effects). */
    const view = (tb: ReturnType<typeof createIgbTestbed>, vf: number): number[] => {
      const out: number[] = [];
      for (let off = 0; off < IGB_SIZES.vfBar0; off += 4) {
        const pf = vfToPf(off, vf, false);
        if (pf === undefined) continue;
        const loc = tb.core.regs.locate(pf);
        if (loc === undefined) continue;
        const sh = 22 - 3 * vf;
        const mirror = loc.def.name.startsWith("PVTE") ? loc.def.name : undefined;
        if (mirror === "PVTEIMS") out.push((tb.core.regs.get("EIMS") >>> sh) & 7);
        else if (mirror === "PVTEIAC") out.push((tb.core.regs.get("EIAC") >>> sh) & 7);
        else if (mirror === "PVTEIAM") out.push((tb.core.regs.get("EIAM") >>> sh) & 7);
        else if (mirror === "PVTEICR") out.push((tb.core.regs.get("EICR") >>> sh) & 7);
        else if (loc.def.name === "STATUS" || loc.def.name === "FRTIMER" || loc.def.wo) continue;
        else out.push(tb.core.regs.slots[loc.slot] ?? 0);
      }
      return out;
    };
    fc.assert(
      fc.property(
        fc.array(fc.record({ off: fc.integer({ min: 0, max: 0x3fff }), value: fc.integer({ min: 0, max: 0xffffffff }) }), { maxLength: 150 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        (ops, from, to) => {
          const a = createIgbTestbed({ numVfs: 4 });
          a.vfs[from]!.reset();
          a.vfs[from]!.open();
          for (const o of ops) a.vfRegs[from]!.write(o.off & ~3, 4, o.value);
          const s = JSON.parse(JSON.stringify(saveVf(a.core, from)));
          const b = createIgbTestbed({ numVfs: 4 });
          restoreVf(b.core, to, s);
          expect(view(b, to)).toEqual(view(a, from));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("VF isolation with a memory per VF (VFs of different guests)", () => {
  /** Bytes of `after` that differ from `before` and lie outside every [addr, len) region. */
  const strayWrites = (before: Uint8Array, after: Uint8Array, regions: [number, number][]): number[] => {
    const out: number[] = [];
    for (let i = 0; i < after.length; i++) {
      if (after[i] === before[i]) continue;
      if (!regions.some(([a, l]) => i >= a && i < a + l)) out.push(i);
      if (out.length > 8) break;
    }
    return out;
  };
  const hostileOp = fc.oneof(
    // any VF register, any value (ring bases, lengths, heads, tails, interrupt and mailbox registers)
    fc.record({ kind: fc.constant("reg" as const), off: fc.integer({ min: 0, max: 0x3fff }), value: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({
      kind: fc.constant("reg" as const),
      off: fc.constantFrom(VR.TDT(0), VR.TDH(0), VR.TDBAL(0), VR.TDBAH(0), VR.TDLEN(0), VR.RDT(0), VR.RDBAL(0), VR.RDLEN(0), VR.SRRCTL(0), VR.TXDCTL(0), VR.RXDCTL(0), VR.V2PMAILBOX, VR.VMBMEM, VR.CTRL),
      value: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0x20000 })),
    }),
    // garbage descriptors anywhere in the VF's own memory (it can reach nothing else)
    fc.record({ kind: fc.constant("mem" as const), addr: fc.integer({ min: 0, max: 0x40000 }), bytes: fc.uint8Array({ minLength: 16, maxLength: 256 }) }),
    // a frame from the wire to the hostile VF's MAC, to broadcast, or to nobody
    fc.record({ kind: fc.constant("wire" as const), to: fc.constantFrom("vf1", "bcast", "other"), len: fc.integer({ min: 14, max: 9000 }) }),
  );

  it("a hostile VF's registers, descriptors, mailbox and traffic never reach another VF's memory, rings or mailbox, or the PF's memory", () => {
    fc.assert(
      fc.property(fc.array(hostileOp, { maxLength: 60 }), (ops) => {
        const up = new CountingBackend();
        const tb = createIgbTestbed({ numVfs: 3, backend: up, isolated: true, memSize: 1 << 20, driver: { ringSize: 32 } });
        const victims = [0, 2];
        for (const v of victims) {
          expect(tb.vfs[v]!.reset()).toBe(true);
          tb.vfs[v]!.open();
        }
        const hostile = tb.vfs[1]!;
        hostile.reset();
        hostile.open();
        const snapshot = victims.map((v) => tb.vfMem[v]!.bytes.slice());
        const fixed = (v: number) => {
          const s = saveVf(tb.core, v);
          // what the victim's own receive path may change: its RX head, counters, interrupt causes and
          // the mask bits auto-cleared (EIAM) when its RX interrupt fires
          return JSON.stringify({ ...s, queues: { ...s.queues, RDH: undefined }, stats: undefined, eicr: undefined, eims: undefined });
        };
        const victimState = victims.map(fixed);
        const pfAccesses = tb.mem.accesses;
        const bar = tb.vfRegs[1]!;
        for (const o of ops) {
          if (o.kind === "reg") bar.write(o.off & ~3, 4, o.value);
          else if (o.kind === "mem") tb.vfMem[1]!.write(o.addr, o.bytes);
          else {
            const f = new Uint8Array(o.len);
            f.set(o.to === "vf1" ? hostile.mac : o.to === "bcast" ? [255, 255, 255, 255, 255, 255] : [0x02, 0x77, 0, 0, 0, 1], 0);
            f.set([0x02, 9, 9, 9, 9, 9], 6);
            up.sink?.(f);
          }
          tb.clock.advance(2000);
        }
        tb.clock.advance(10_000_000);
        victims.forEach((v, i) => {
          expect(strayWrites(snapshot[i]!, tb.vfMem[v]!.bytes, tb.vfs[v]!.rxRegions())).toEqual([]);
          expect(fixed(v)).toBe(victimState[i]);
        });
        expect(tb.mem.accesses).toBe(pfAccesses);
        // the victims still pass traffic both ways
        for (const v of victims) {
          const d = tb.vfs[v]!;
          d.receive(); // what the hostile VF's broadcasts left in its ring
          passesTraffic(d, up);
        }
      }),
      { numRuns: 50 },
    );
  }, 120_000);

  it("anti-spoofing drops and counts exactly the frames whose source MAC is not the VF's, and only those", () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    fc.assert(
      fc.property(fc.array(fc.record({ spoof: fc.boolean(), src: mac, dst: mac, len: fc.integer({ min: 60, max: 1500 }) }), { minLength: 1, maxLength: 30 }), (frames) => {
        const sent: Uint8Array[] = [];
        const up = new CountingBackend();
        up.transmit = (f?: Uint8Array) => {
          up.sent++;
          if (f) sent.push(f.slice());
        };
        const tb = createIgbTestbed({ numVfs: 2, backend: up, isolated: true, memSize: 1 << 20, driver: { ringSize: 64 } });
        const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
        for (const d of [d0, d1]) {
          d.reset();
          d.open();
        }
        let spoofed = 0;
        const legit: string[] = [];
        for (const fr of frames) {
          const f = new Uint8Array(fr.len);
          const dst = Uint8Array.from(fr.dst);
          dst[0] = (dst[0]! & 0xfe) | 0x02; // unicast, never VF 0's or VF 1's MAC
          if (dst.every((b, i) => b === d0.mac[i]) || dst.every((b, i) => b === d1.mac[i])) dst[5] = dst[5]! ^ 0xff;
          const src = Uint8Array.from(fr.src);
          const isSpoof = fr.spoof && !src.every((b, i) => b === d1.mac[i]);
          f.set(dst, 0);
          f.set(isSpoof ? src : d1.mac, 6);
          f[12] = 0x08;
          if (isSpoof) spoofed++;
          else legit.push(Buffer.from(f).toString("hex"));
          expect(d1.send(f)).toBe(true);
        }
        expect(tb.core.counters.spoofDrops[1]).toBe(spoofed);
        expect(tb.core.counters.spoofDrops[0]).toBe(0);
        expect(sent.map((f) => Buffer.from(f).toString("hex"))).toEqual(legit);
        expect(d0.receive().length).toBe(0);
        expect((tb.core.mmioRead(R.WVBR, 4) >>> 1) & 1).toBe(spoofed > 0 ? 1 : 0);
      }),
      { numRuns: 60 },
    );
  });
});
