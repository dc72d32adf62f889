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
