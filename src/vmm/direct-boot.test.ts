import { describe, expect, it } from "vitest";
import { DirectBootError, bzImageSetupPart, loadKernelElf, parseKernelElf, V86_REAL_MODE_BASE, type LoaderMemory } from "./direct-boot.js";

/** A minimal i386 ELF executable with the given PT_LOAD segments. */
function elf(entry: number, segs: Array<{ paddr: number; data: number[]; memsz?: number }>, tweak?: (v: DataView) => void): Uint8Array {
  const phoff = 52;
  let off = phoff + 32 * segs.length;
  const total = off + segs.reduce((n, s) => n + s.data.length, 0);
  const b = new Uint8Array(total);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  v.setUint16(16, 2, true);
  v.setUint16(18, 3, true);
  v.setUint32(24, entry, true);
  v.setUint32(28, phoff, true);
  v.setUint16(42, 32, true);
  v.setUint16(44, segs.length, true);
  segs.forEach((s, i) => {
    const o = phoff + 32 * i;
    v.setUint32(o, 1, true);
    v.setUint32(o + 4, off, true);
    v.setUint32(o + 8, 0xc0000000 + s.paddr, true);
    v.setUint32(o + 12, s.paddr, true);
    v.setUint32(o + 16, s.data.length, true);
    v.setUint32(o + 20, s.memsz ?? s.data.length, true);
    b.set(s.data, off);
    off += s.data.length;
  });
  tweak?.(v);
  return b;
}

class Ram implements LoaderMemory {
  readonly m = new Uint8Array(64 << 20);
  constructor() {
    this.m.set([0x48, 0x64, 0x72, 0x53], V86_REAL_MODE_BASE + 0x202); // "HdrS"
  }
  write(a: number, d: Uint8Array): boolean {
    if (a + d.length > this.m.length) return false;
    this.m.set(d, a);
    return true;
  }
  read(a: number, n: number): Uint8Array | undefined {
    return a + n > this.m.length ? undefined : this.m.subarray(a, a + n);
  }
}

describe("direct kernel boot", () => {
  it("loads PT_LOAD segments at their physical addresses, clears bss and points code32_start at the entry", () => {
    const ram = new Ram();
    ram.m.fill(0xee, 0x1000000, 0x1000010);
    const k = parseKernelElf(elf(0x1000000, [{ paddr: 0x1000000, data: [1, 2, 3, 4] }, { paddr: 0x1000008, data: [5], memsz: 8 }]));
    expect(k).toMatchObject({ entry: 0x1000000, lo: 0x1000000, hi: 0x1000010 });
    loadKernelElf(ram, ram.m.length, k, [[0x2000000, 0x3000000]]);
    expect([...ram.m.subarray(0x1000000, 0x1000010)]).toEqual([1, 2, 3, 4, 0xee, 0xee, 0xee, 0xee, 5, 0, 0, 0, 0, 0, 0, 0]);
    expect(new DataView(ram.m.buffer).getUint32(V86_REAL_MODE_BASE + 0x214, true)).toBe(0x1000000);
  });

  it("rejects what is not a bootable i386 vmlinux, and kernels that do not fit or overlap the initrd", () => {
    const good = (): Uint8Array => elf(0x1000000, [{ paddr: 0x1000000, data: [1, 2, 3, 4] }]);
    expect(() => parseKernelElf(new Uint8Array(10))).toThrow(DirectBootError);
    expect(() => parseKernelElf(elf(0x1000000, [{ paddr: 0x1000000, data: [1] }], (v) => v.setUint16(18, 62, true)))).toThrow(/i386/);
    expect(() => parseKernelElf(elf(0x1000000, [{ paddr: 0x1000000, data: [1] }], (v) => v.setUint8(4, 2)))).toThrow(/32-bit/);
    expect(() => parseKernelElf(elf(0xc1000000, [{ paddr: 0x1000000, data: [1] }]))).toThrow(/entry/);
    expect(() => parseKernelElf(elf(0x1000000, [{ paddr: 0x1000000, data: [1] }], (v) => v.setUint32(52 + 4, 1 << 30, true)))).toThrow(/outside/);
    expect(() => parseKernelElf(elf(0x1000000, [{ paddr: 0x1000000, data: [1] }], (v) => v.setUint16(44, 1000, true)))).toThrow(/program header/);
    const ram = new Ram();
    expect(() => loadKernelElf(ram, ram.m.length, parseKernelElf(good()), [[0x1000002, 0x1000003]])).toThrow(/overlaps/);
    expect(() => loadKernelElf(ram, 0x1000002, parseKernelElf(good()), [])).toThrow(/does not fit/);
    const noHdr = new Ram();
    noHdr.m.fill(0, V86_REAL_MODE_BASE + 0x202, V86_REAL_MODE_BASE + 0x206);
    expect(() => loadKernelElf(noHdr, noHdr.m.length, parseKernelElf(good()), [])).toThrow(/setup header/);
  });
  it("hands the engine only a bzImage's real-mode part, as a copy", () => {
    const bz = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
    bz.set([0x48, 0x64, 0x72, 0x53], 0x202);
    bz[0x1f1] = 27;
    const part = bzImageSetupPart(bz);
    expect(part.length).toBe(28 * 512);
    expect(part).toEqual(bz.subarray(0, 28 * 512));
    part[0x214] = 0xee;
    expect(bz[0x214]).toBe(0x14); // the caller's image is untouched when the loader patches the header
    bz[0x1f1] = 0; // setup_sects 0 means 4
    expect(bzImageSetupPart(bz).length).toBe(5 * 512);
    bz[0x1f1] = 200; // longer than the file
    expect(() => bzImageSetupPart(bz.subarray(0, 4096))).toThrow(DirectBootError);
    bz[0x202] = 0;
    expect(() => bzImageSetupPart(bz)).toThrow(/HdrS/);
  });
});
