/**
 * Config-space dumps in exactly the text format `lspci -x`/`-xxx`/`-xxxx` writes, which pciutils'
 * dump reader (`lspci -F <file>`) reads back: per function a line `BB:DD.F <description>`, then
 * rows of 16 bytes `OO: xx xx ...` (the offset in at least two hex digits), then a blank line.
 * @module
 */
import type { RoutedFunction } from "./topology/root-complex.js";

/** One function to dump. */
export interface DumpFunction {
  bus: number;
  devfn: number;
  /** Config space size: 4096 for PCI Express functions. */
  size: 256 | 4096;
  /** Reads one config byte (as a guest's config read would). */
  read(reg: number): number;
}

/** How much to dump: `-x` (64 bytes), `-xxx` (256), `-xxxx` (4096 for PCIe functions). */
export type DumpLevel = 1 | 3 | 4;

/** Names of the classes nicvisor's functions use, by class and subclass (`0x0200`), as pciutils names them. */
export const CLASS_NAMES: Readonly<Record<number, string>> = {
  0x0000: "Non-VGA unclassified device",
  0x0200: "Ethernet controller",
  0x0600: "Host bridge",
  0x0604: "PCI bridge",
  0x00ff: "Unclassified device",
  0xff00: "Unassigned class",
};

function hex(n: number, w: number): string {
  return n.toString(16).padStart(w, "0");
}

/** The `BB:DD.F` name of a function. */
export function bdfName(bus: number, devfn: number): string {
  return `${hex(bus, 2)}:${hex(devfn >>> 3, 2)}.${devfn & 7}`;
}

/** The description line lspci prints for a function (ids instead of names, as `lspci -n` would). */
function describe(f: DumpFunction): string {
  const rd16 = (o: number): number => f.read(o) | (f.read(o + 1) << 8);
  const cls = rd16(0x0a);
  const vendor = rd16(0);
  const device = rd16(2);
  const rev = f.read(8);
  const name = CLASS_NAMES[cls] ?? `Class ${hex(cls, 4)}`;
  return `${bdfName(f.bus, f.devfn)} ${name}: Device ${hex(vendor, 4)}:${hex(device, 4)}${rev !== 0 ? ` (rev ${hex(rev, 2)})` : ""}`;
}

/** Formats a dump of `fns` at `level`. */
export function formatLspciDump(fns: readonly DumpFunction[], level: DumpLevel): string {
  const out: string[] = [];
  for (const f of fns) {
    out.push(describe(f));
    const count = level === 1 ? 64 : level === 3 ? 256 : f.size;
    for (let row = 0; row < count; row += 16) {
      let line = `${hex(row, 2)}:`;
      for (let i = 0; i < 16; i++) line += " " + hex(f.read(row + i) & 0xff, 2);
      out.push(line);
    }
    out.push("");
  }
  return out.map((l) => l + "\n").join("");
}

/** Turns a topology's enumeration into dump functions (reads go through the functions' config space). */
export function dumpFunctions(fns: readonly RoutedFunction[]): DumpFunction[] {
  return fns.map(({ bus, devfn, fn }) => ({ bus, devfn, size: fn.config.size, read: (reg: number) => fn.configRead(reg, 1) }));
}
