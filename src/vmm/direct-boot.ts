/**
 * Direct kernel boot: skip the bzImage's own decompressor.
 *
 * On v86 about a third of a Debian i386 boot is the kernel's xz decompressor running on the
 * emulated CPU. The host can do that work once (the guest-image builder keeps the decompressed
 * `vmlinux` ELF next to the bzImage). The machine then still boots the bzImage through the normal
 * 16-bit setup code (which fills in boot_params: e820 from the BIOS, command line, initrd), but the
 * loader places vmlinux's PT_LOAD segments at their physical addresses and points the setup
 * header's `code32_start` at vmlinux's 32-bit entry. The setup code jumps there with `%esi` =
 * boot_params, exactly as the decompressor would after unpacking — the path the x86 boot protocol
 * documents for boot loaders that load the kernel themselves (and the one kexec's ELF loader takes).
 * A relocatable kernel loaded at its link address needs no relocations; KASLR is not applied.
 *
 * Platform-neutral (the decompression itself is in the Node-only guest-image builder).
 * @module
 */

/** A vmlinux that cannot be booted directly. */
export class DirectBootError extends Error {
  override readonly name = "DirectBootError";
}

/** One loadable segment. */
export interface KernelSegment {
  paddr: number;
  data: Uint8Array;
  /** Bytes in memory (≥ data.length; the rest is zeroed). */
  memsz: number;
}

/** A parsed vmlinux. */
export interface KernelElf {
  /** Physical 32-bit entry (`startup_32`). */
  entry: number;
  segments: KernelSegment[];
  /** Lowest and highest physical byte it occupies. */
  lo: number;
  hi: number;
}

/**
 * Parses an i386 ELF executable's PT_LOAD segments.
 * @throws DirectBootError on anything but a well-formed little-endian ELF32 for i386.
 */
export function parseKernelElf(elf: Uint8Array): KernelElf {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.length < 52 || v.getUint32(0, false) !== 0x7f454c46) throw new DirectBootError("not an ELF file");
  if (elf[4] !== 1 || elf[5] !== 1) throw new DirectBootError("not a little-endian 32-bit ELF");
  if (v.getUint16(18, true) !== 3) throw new DirectBootError("not an i386 ELF");
  if (v.getUint16(16, true) !== 2) throw new DirectBootError("not an executable ELF");
  const entry = v.getUint32(24, true);
  const phoff = v.getUint32(28, true);
  const phentsize = v.getUint16(42, true);
  const phnum = v.getUint16(44, true);
  if (phentsize < 32 || phnum === 0 || phnum > 64 || phoff + phentsize * phnum > elf.length) throw new DirectBootError("bad program header table");
  const segments: KernelSegment[] = [];
  let lo = Infinity;
  let hi = 0;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (v.getUint32(o, true) !== 1) continue; // PT_LOAD only
    const off = v.getUint32(o + 4, true);
    const paddr = v.getUint32(o + 12, true);
    const filesz = v.getUint32(o + 16, true);
    const memsz = v.getUint32(o + 20, true);
    if (off + filesz > elf.length || memsz < filesz) throw new DirectBootError(`segment ${i} lies outside the file`);
    if (memsz === 0) continue;
    segments.push({ paddr, data: elf.subarray(off, off + filesz), memsz });
    lo = Math.min(lo, paddr);
    hi = Math.max(hi, paddr + memsz);
  }
  if (segments.length === 0) throw new DirectBootError("no loadable segments");
  if (entry < lo || entry >= hi) throw new DirectBootError(`entry 0x${entry.toString(16)} is not a physical address inside the kernel (not a 32-bit vmlinux?)`);
  return { entry, segments, lo, hi };
}

/**
 * The real-mode part of a bzImage (boot sector and setup code, `(setup_sects + 1) * 512` bytes), as
 * a fresh copy. With direct boot the protected-mode part (the compressed kernel and its
 * decompressor) is never run, so the engine's loader is handed only this part: it patches the setup
 * header in place and would otherwise copy megabytes of payload into RAM for vmlinux to overwrite.
 * @throws DirectBootError when `bz` has no bzImage setup header.
 */
export function bzImageSetupPart(bz: Uint8Array): Uint8Array {
  const len = bzImageSetupSize(bz);
  if (len === undefined) throw new DirectBootError("not a bzImage (no HdrS setup header)");
  if (len > bz.length) throw new DirectBootError(`bzImage setup part (${len} bytes) is longer than the file`);
  return bz.slice(0, len);
}

/**
 * Bytes before a bzImage's protected-mode part, `(setup_sects + 1) * 512` (a setup_sects of 0
 * means 4), or undefined without the "HdrS" setup header of boot protocol 2.08 or later (which
 * has payload_offset/payload_length). May exceed `bz.length` on a truncated file.
 */
export function bzImageSetupSize(bz: Uint8Array): number | undefined {
  if (bz.length < 0x264) return undefined;
  const v = new DataView(bz.buffer, bz.byteOffset, bz.byteLength);
  if (v.getUint32(0x202, true) !== 0x53726448 || v.getUint16(0x206, true) < 0x208) return undefined;
  return ((bz[0x1f1] || 4) + 1) * 512;
}

/** Where v86 0.5 puts the real-mode part of a bzImage (its setup header is at +0x1F1). */
export const V86_REAL_MODE_BASE = 0x80000;
/** Offset of `code32_start` in the real-mode part. */
const CODE32_START = 0x214;

/** Guest memory as the loader needs it. */
export interface LoaderMemory {
  write(addr: number, data: Uint8Array): boolean;
  read(addr: number, len: number): Uint8Array | undefined;
}

/**
 * Loads `kernel` into guest RAM and redirects the setup code's jump to it.
 * @param avoid ranges that must stay untouched (e.g. the initrd), as [start, end).
 * @throws DirectBootError when the kernel would not fit or overlaps `avoid`, or the setup header is
 *   not where it should be.
 */
export function loadKernelElf(mem: LoaderMemory, ramBytes: number, kernel: KernelElf, avoid: ReadonlyArray<readonly [number, number]>): void {
  if (kernel.lo < 0x100000 || kernel.hi > ramBytes) throw new DirectBootError(`kernel [0x${kernel.lo.toString(16)}, 0x${kernel.hi.toString(16)}) does not fit in RAM above 1 MiB`);
  for (const [a, b] of avoid) {
    if (kernel.lo < b && a < kernel.hi) throw new DirectBootError(`kernel [0x${kernel.lo.toString(16)}, 0x${kernel.hi.toString(16)}) overlaps [0x${a.toString(16)}, 0x${b.toString(16)})`);
  }
  const hdr = mem.read(V86_REAL_MODE_BASE + 0x202, 4);
  if (hdr === undefined || String.fromCharCode(...hdr) !== "HdrS") throw new DirectBootError("no bzImage setup header where the loader put it");
  for (const s of kernel.segments) {
    if (!mem.write(s.paddr, s.data)) throw new DirectBootError("cannot write a kernel segment");
    if (s.memsz > s.data.length && !mem.write(s.paddr + s.data.length, new Uint8Array(s.memsz - s.data.length))) throw new DirectBootError("cannot clear a kernel segment");
  }
  const e = kernel.entry;
  mem.write(V86_REAL_MODE_BASE + CODE32_START, Uint8Array.of(e & 0xff, (e >>> 8) & 0xff, (e >>> 16) & 0xff, (e >>> 24) & 0xff));
}
