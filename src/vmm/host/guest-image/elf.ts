/**
 * Reads the shared libraries an ELF executable or library needs (its DT_NEEDED entries) and its
 * program interpreter, so the image builder copies exactly those libraries; and a kernel module's
 * `.modinfo` fields (`depends=`, `alias=`), which modules.dep and modules.alias are made of.
 * @module
 */

/** What an ELF file asks of the dynamic loader; `undefined` for a file that is not ELF. */
export interface ElfDeps {
  needed: string[];
  interpreter: string | undefined;
}

/** Parses `b` as ELF32 or ELF64 (little-endian); never throws on garbage (returns undefined). */
export function elfDeps(b: Uint8Array): ElfDeps | undefined {
  try {
    if (b.length < 52 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46 || b[5] !== 1) return undefined;
    const is64 = b[4] === 2;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const u = (o: number): number => (is64 ? Number(v.getBigUint64(o, true)) : v.getUint32(o, true));
    const phoff = u(is64 ? 0x20 : 0x1c);
    const phentsize = v.getUint16(is64 ? 0x36 : 0x2a, true);
    const phnum = v.getUint16(is64 ? 0x38 : 0x2c, true);
    const loads: Array<{ vaddr: number; off: number; filesz: number }> = [];
    let dyn: { off: number; size: number } | undefined;
    let interpreter: string | undefined;
    const cstr = (o: number): string => {
      let e = o;
      while (e < b.length && b[e] !== 0) e++;
      return new TextDecoder().decode(b.subarray(o, e));
    };
    for (let i = 0; i < phnum && i < 64; i++) {
      const p = phoff + i * phentsize;
      const type = v.getUint32(p, true);
      const off = u(p + (is64 ? 8 : 4));
      const vaddr = u(p + (is64 ? 16 : 8));
      const filesz = u(p + (is64 ? 32 : 16));
      if (type === 1) loads.push({ vaddr, off, filesz });
      if (type === 2) dyn = { off, size: filesz };
      if (type === 3) interpreter = cstr(off);
    }
    if (dyn === undefined) return { needed: [], interpreter };
    const ent = is64 ? 16 : 8;
    const tags: Array<[number, number]> = [];
    for (let o = dyn.off; o + ent <= dyn.off + dyn.size && o + ent <= b.length; o += ent) {
      const tag = is64 ? Number(v.getBigInt64(o, true)) : v.getInt32(o, true);
      if (tag === 0) break;
      tags.push([tag, u(o + (is64 ? 8 : 4))]);
    }
    const strtabVaddr = tags.find(([t]) => t === 5)?.[1];
    if (strtabVaddr === undefined) return { needed: [], interpreter };
    const seg = loads.find((l) => strtabVaddr >= l.vaddr && strtabVaddr < l.vaddr + l.filesz);
    if (seg === undefined) return { needed: [], interpreter };
    const strtab = seg.off + (strtabVaddr - seg.vaddr);
    return { needed: tags.filter(([t]) => t === 1).map(([, o]) => cstr(strtab + o)), interpreter };
  } catch {
    return undefined;
  }
}

/**
 * The NUL-separated `key=value` fields of a kernel module's `.modinfo` section, in file order
 * (`[]` when it has none), or `undefined` if `b` is not an ELF module. Never throws.
 */
export function moduleInfo(b: Uint8Array): string[] | undefined {
  try {
    if (b.length < 52 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46 || b[5] !== 1) return undefined;
    const is64 = b[4] === 2;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const u = (o: number): number => (is64 ? Number(v.getBigUint64(o, true)) : v.getUint32(o, true));
    const shoff = u(is64 ? 0x28 : 0x20);
    const shentsize = v.getUint16(is64 ? 0x3a : 0x2e, true);
    const shnum = v.getUint16(is64 ? 0x3c : 0x30, true);
    const shstrndx = v.getUint16(is64 ? 0x3e : 0x32, true);
    const sh = (i: number): { name: number; off: number; size: number } => {
      const p = shoff + i * shentsize;
      return { name: v.getUint32(p, true), off: u(p + (is64 ? 0x18 : 0x10)), size: u(p + (is64 ? 0x20 : 0x14)) };
    };
    const strtab = sh(shstrndx);
    const dec = new TextDecoder();
    for (let i = 0; i < shnum && i < 4096; i++) {
      const s = sh(i);
      let e = strtab.off + s.name;
      while (e < b.length && b[e] !== 0) e++;
      if (dec.decode(b.subarray(strtab.off + s.name, e)) !== ".modinfo") continue;
      return dec.decode(b.subarray(s.off, s.off + s.size)).split("\0").filter((f) => f !== "");
    }
    return [];
  } catch {
    return undefined;
  }
}

/**
 * The `depends=` list of a kernel module's `.modinfo` section (what modules.dep would record), or
 * `undefined` if `b` is not an ELF module.
 */
export function moduleDepends(b: Uint8Array): string[] | undefined {
  const info = moduleInfo(b);
  if (info === undefined) return undefined;
  const dep = info.find((f) => f.startsWith("depends="));
  return dep === undefined ? [] : dep.slice("depends=".length).split(",").filter((x) => x !== "");
}

/**
 * The `alias=` patterns of a kernel module's `.modinfo` section, in file order (what depmod puts
 * in modules.alias: `pci:v00008086d000010CAsv*sd*bc*sc*i*`, `rtnl-link-vlan`), or `undefined` if
 * `b` is not an ELF module.
 */
export function moduleAliases(b: Uint8Array): string[] | undefined {
  return moduleInfo(b)?.filter((f) => f.startsWith("alias=")).map((f) => f.slice("alias=".length)).filter((a) => a !== "");
}
