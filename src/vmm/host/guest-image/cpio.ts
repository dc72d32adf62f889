/**
 * A newc ("070701") cpio writer, the initramfs format Linux unpacks at boot.
 * @module
 */

/** One archive entry: a directory, a regular file, a symlink (data = target) or a device node. */
export interface CpioEntry {
  name: string;
  /** Full st_mode: type bits | permissions (0o40755 directory, 0o100644 file, 0o120777 symlink). */
  mode: number;
  data?: Uint8Array;
  /** Device number for character/block nodes. */
  rdev?: [number, number];
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Packs entries (in order) into a newc archive with its TRAILER!!! entry. */
export function newc(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  let ino = 1;
  let total = 0;
  const push = (e: CpioEntry): void => {
    const data = e.data ?? new Uint8Array(0);
    const hex = (v: number): string => (v >>> 0).toString(16).padStart(8, "0");
    const fields = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, enc.encode(e.name).length + 1, 0];
    const h = enc.encode("070701" + fields.map(hex).join("") + e.name + "\0");
    for (const p of [h, new Uint8Array(pad4(h.length)), data, new Uint8Array(pad4(data.length))]) {
      parts.push(p);
      total += p.length;
    }
  };
  for (const e of entries) push(e);
  push({ name: "TRAILER!!!", mode: 0 });
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A newc archive that {@link parseNewc} cannot read. */
export class CpioFormatError extends Error {
  override readonly name = "CpioFormatError";
}

/** One entry read back by {@link parseNewc} (the data is a view into the archive). */
export interface CpioReadEntry {
  name: string;
  mode: number;
  data: Uint8Array;
  rdev: [number, number];
}

/**
 * Reads a newc archive up to its `TRAILER!!!` entry (to check a built image; at most
 * `maxEntries` entries are read). Throws {@link CpioFormatError} on a bad magic or header field, a
 * truncated header, or data that runs past the end.
 */
export function parseNewc(b: Uint8Array, maxEntries = 100_000): CpioReadEntry[] {
  const dec = new TextDecoder();
  const out: CpioReadEntry[] = [];
  let o = 0;
  for (let n = 0; n < maxEntries; n++) {
    if (o + 110 > b.length) throw new CpioFormatError(`truncated header at ${o}`);
    const h = dec.decode(b.subarray(o, o + 110));
    if (!h.startsWith("070701")) throw new CpioFormatError(`bad magic at ${o}`);
    const field = (i: number): number => {
      const s = h.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new CpioFormatError(`bad header field ${i} at ${o}`);
      return parseInt(s, 16);
    };
    const mode = field(1);
    const size = field(6);
    const rdev: [number, number] = [field(9), field(10)];
    const nameSize = field(11);
    if (nameSize < 1 || o + 110 + nameSize > b.length) throw new CpioFormatError(`bad name size at ${o}`);
    const name = dec.decode(b.subarray(o + 110, o + 110 + nameSize - 1));
    const dataOff = o + 110 + nameSize + pad4(110 + nameSize);
    if (dataOff + size > b.length) throw new CpioFormatError(`${name}: data runs past the end`);
    if (name === "TRAILER!!!") return out;
    out.push({ name, mode, data: b.subarray(dataOff, dataOff + size), rdev });
    o = dataOff + size + pad4(size);
  }
  throw new CpioFormatError(`more than ${maxEntries} entries`);
}
