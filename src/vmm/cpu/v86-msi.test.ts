import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { CpuBackendError } from "./backend.js";
import { V86MsiAdapter, decodeMsi } from "./v86-msi.js";

/** A fake of v86's CPU with an Apic struct at byte 64 of a small memory. */
function fakeCpu(): { cpu: { wasm_memory: { buffer: ArrayBuffer }; get_apic_addr(): number; handle_irqs(): void }; words: () => Uint32Array; calls: { n: number } } {
  const buffer = new ArrayBuffer(4096);
  const calls = { n: 0 };
  return {
    cpu: { wasm_memory: { buffer }, get_apic_addr: () => 64, handle_irqs: () => void calls.n++ },
    words: () => new Uint32Array(buffer, 64, 46),
    calls,
  };
}

describe("decodeMsi", () => {
  it("decodes vector, delivery mode, trigger and destination", () => {
    expect(decodeMsi(0xfee01000, 0x8141)).toEqual({ vector: 0x41, deliveryMode: 1, level: true, destId: 1 });
  });
  it("rejects addresses outside 0xFEExxxxx", () => {
    expect(decodeMsi(0xfed00000, 0x41)).toBeUndefined();
    expect(decodeMsi(0x1_fee0_0000, 0x41)).toBeUndefined();
    expect(decodeMsi(-1, 0x41)).toBeUndefined();
  });
});

describe("V86MsiAdapter", () => {
  it("refuses another v86 version", () => {
    expect(() => new V86MsiAdapter(fakeCpu().cpu, "0.5.300")).toThrow(CpuBackendError);
  });
  it("sets the IRR bit (and clears TMR for edge), then lets the core dispatch", () => {
    const f = fakeCpu();
    const a = new V86MsiAdapter(f.cpu, "0.5.462+g5f9a90f");
    f.words()[32 + 2] = 0xffffffff;
    expect(a.deliver(0xfee00000, 0x0045)).toBe(true);
    expect(f.words()[16 + 2]).toBe(1 << 5);
    expect(f.words()[32 + 2]).toBe((0xffffffff & ~(1 << 5)) >>> 0);
    expect(a.isPending(0x45)).toBe(true);
    expect(f.calls.n).toBe(1);
  });
  it("with dispatch off, only makes the vector pending (the backend dispatches at an instruction boundary)", () => {
    const f = fakeCpu();
    const a = new V86MsiAdapter(f.cpu, "0.5.462");
    expect(a.deliver(0xfee00000, 0x0051, false)).toBe(true);
    expect(a.isPending(0x51)).toBe(true);
    expect(f.calls.n).toBe(0);
  });
  it("drops non-fixed delivery, reserved vectors and bad addresses, counting them", () => {
    const f = fakeCpu();
    const a = new V86MsiAdapter(f.cpu, "0.5.462");
    expect(a.deliver(0xfee00000, 0x0400 | 0x45)).toBe(false); // NMI
    expect(a.deliver(0xfee00000, 0x000f)).toBe(false);
    expect(a.deliver(0xb0000000, 0x0045)).toBe(false);
    expect(a.dropped).toBe(3);
    expect([...f.words()].every((w) => w === 0)).toBe(true);
  });
  it("property: only the decoded vector's IRR bit changes, never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (addr, data) => {
        const f = fakeCpu();
        const a = new V86MsiAdapter(f.cpu, "0.5.462");
        const ok = a.deliver(addr, data);
        const irr = [...f.words().subarray(16, 24)];
        const set = irr.reduce((n, w) => n + (w.toString(2).split("1").length - 1), 0);
        expect(set).toBe(ok ? 1 : 0);
        if (ok) expect(a.isPending(data & 0xff)).toBe(true);
      }),
    );
  });
});
