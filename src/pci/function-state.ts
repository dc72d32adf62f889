/**
 * The saved state of a PCI function as untrusted input: its parser (versions 1 and 2) checked
 * against a live function, so that `fn.restore(fn.stateType.parse(u, path))` is "parse
 * everything, then apply". What is checked:
 *
 * - the config space has this function's size, and every byte under
 *   `cmask & ~wmask & ~w1cmask` equals this function's (a state of another kind of function
 *   differs there; bytes under `wmask` are free);
 * - each BAR is aligned to its size (the bits between the type bits and the size are 0);
 * - every other bit that neither the guest can write (`wmask`, `w1cmask`) nor the device model
 *   changes (`dynamic`) equals this function's;
 * - the INTx level is a boolean and Status.Interrupt follows it;
 * - the checks the capabilities declared on config (MSI) and the capabilities' own state (MSI-X
 *   table and pending vectors, SR-IOV with every VF's state), each naming the field.
 *
 * Version 1 (what the code before the portable-state change saved) differs in the capability
 * state: MSI-X's table and PBA were raw hex, and MSI saved an empty object. Its upgrade turns the
 * table into named entries and the PBA into the list of pending vectors, and drops MSI.
 * @module
 */
import { StateError, bool, field, hexBytes, obj, onlyKeys, str } from "../state/parse.js";
import { defineState, type StateType } from "../state/versioned.js";
import type { PciFunction, PciFunctionState } from "./function.js";
import { toHex } from "./hex.js";
import { PCI, STS } from "./regs.js";
import type { ConfigSpace } from "./config-space.js";

/** A path naming a config register: `fn.config[0x170 SR-IOV NumVFs]`. */
export function configPath(path: string, off: number, name: string): string {
  return `${path}.config[0x${off.toString(16)} ${name}]`;
}

/** Little-endian reads of parsed config bytes. */
export function le16(b: Uint8Array, off: number): number {
  return (b[off] ?? 0) | ((b[off + 1] ?? 0) << 8);
}
/** Little-endian 32-bit read of parsed config bytes. */
export function le32(b: Uint8Array, off: number): number {
  return (le16(b, off) | (le16(b, off + 2) << 16)) >>> 0;
}

/** The mask bytes of `off..off+4` as one little-endian value. */
function mask32(m: Uint8Array, off: number): number {
  return le32(m, off);
}

/** Upgrades a version 1 function state (hex MSI-X table and PBA, MSI `{}`) to version 2. */
function upgradeV1(o: Record<string, unknown>, path: string): Record<string, unknown> {
  const caps = obj(o.caps, `${path}.caps`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(caps)) {
    if (k === "msi") continue; // MSI state lives in config space; version 1 saved `{}`
    if (k !== "msix") {
      out[k] = v;
      continue;
    }
    const m = obj(v, `${path}.caps.msix`);
    const table = hexBytes(m.table, `${path}.caps.msix.table`, 2048 * 16, false);
    if (table.length % 16 !== 0) throw new StateError(`${path}.caps.msix.table`, `${table.length} bytes is not a whole number of 16-byte entries`);
    const pba = hexBytes(m.pending, `${path}.caps.msix.pending`, 256, false);
    const entries = [];
    const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
    for (let e = 0; e < table.length / 16; e++) {
      // Version 1 masked Vector Control to bit 0 on restore; keep only that bit as it did.
      entries.push({ addr: dv.getUint32(e * 16, true), upperAddr: dv.getUint32(e * 16 + 4, true), data: dv.getUint32(e * 16 + 8, true), masked: (dv.getUint32(e * 16 + 12, true) & 1) !== 0 });
    }
    const pending: number[] = [];
    for (let v = 0; v < pba.length * 8; v++) if ((pba[v >>> 3]! & (1 << (v & 7))) !== 0) pending.push(v);
    out.msix = { table: entries, pending };
  }
  return { ...o, version: 2, caps: out };
}

/**
 * Parses a function state (version 1 or 2) against `fn`; throws `StateError` naming the field.
 * Does not change `fn`.
 */
export function parsePciFunctionState(fn: PciFunction, u: unknown, path = "pci-function"): PciFunctionState {
  return fn.stateType.parse(u, path);
}

/** Builds the state type of one function (closes over the function's layout and masks). */
export function pciFunctionStateType(fn: PciFunction): StateType<PciFunctionState> {
  return defineState<PciFunctionState>("pci-function", 2, { 1: upgradeV1 }, (o, path) => parseCurrent(fn, o, path));
}

/** Whether some 32-bit word of `bytes` differs from `cs`'s in a read-only identity bit or a fixed bit. */
function mayBreakFixedBits(bytes: Uint8Array, cs: ConfigSpace): boolean {
  const arrays = [bytes, cs.config, cs.cmask, cs.wmask, cs.w1cmask, cs.dynamic];
  if (cs.size % 4 !== 0 || arrays.some((a) => a.byteOffset % 4 !== 0)) return true;
  const [b, c, cm, wm, w1, dy] = arrays.map((a) => new Uint32Array(a.buffer, a.byteOffset, cs.size >>> 2)) as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  for (let k = 0; k < b.length; k++) {
    const d = b[k]! ^ c[k]!;
    if (d === 0) continue;
    const ro = cm[k]! & ~wm[k]! & ~w1[k]!;
    const fixed = ~(wm[k]! | w1[k]! | dy[k]!);
    if ((d & (ro | fixed)) !== 0) return true;
  }
  return false;
}

/** Byte by byte: throws naming the first read-only identity byte that `bytes` changes. */
function checkIdentityBytes(bytes: Uint8Array, cs: ConfigSpace, path: string): void {
  for (let i = 0; i < cs.size; i++) {
    const ro = cs.cmask[i]! & ~cs.wmask[i]! & ~cs.w1cmask[i]!;
    if (((bytes[i]! ^ cs.config[i]!) & ro) !== 0) {
      throw new StateError(
        `${path}.config[0x${i.toString(16)}]`,
        `read-only byte is 0x${bytes[i]!.toString(16)}, this function has 0x${cs.config[i]!.toString(16)} (a state of another kind of function)`,
      );
    }
  }
}

/** Byte by byte: throws naming the first byte whose fixed bits (neither guest nor device can change them) `bytes` changes. */
function checkFixedByteBits(bytes: Uint8Array, cs: ConfigSpace, path: string): void {
  for (let i = 0; i < cs.size; i++) {
    const fixed = ~(cs.wmask[i]! | cs.w1cmask[i]! | cs.dynamic[i]!) & 0xff;
    if (((bytes[i]! ^ cs.config[i]!) & fixed) !== 0) {
      throw new StateError(
        `${path}.config[0x${i.toString(16)}]`,
        `0x${bytes[i]!.toString(16)} differs from this function's 0x${cs.config[i]!.toString(16)} in bits 0x${((bytes[i]! ^ cs.config[i]!) & fixed).toString(16)}, which neither the guest nor the device can change`,
      );
    }
  }
}

function parseCurrent(fn: PciFunction, o: Record<string, unknown>, path: string): PciFunctionState {
  onlyKeys(o, path, ["version", "config", "intxLevel", "caps"]);
  const cs = fn.config;
  const configHex = str(o.config, `${path}.config`, cs.size * 2);
  const bytes = hexBytes(configHex, `${path}.config`, cs.size);
  // Word-wise first (a migration's stop parses every function's 4 KiB): the byte loops run only
  // where a word differs in a bit the guest cannot change, and give the exact error.
  const suspect = mayBreakFixedBits(bytes, cs);
  if (suspect) checkIdentityBytes(bytes, cs, path);
  if (!fn.isVf) {
    for (let i = 0; i < 6; i++) {
      const decl = fn.bars[i];
      if (decl === undefined) continue;
      const off = PCI.BAR0 + 4 * i;
      const stray = le32(bytes, off) & ~mask32(cs.wmask, off) & ~mask32(cs.cmask, off);
      if (stray !== 0) throw new StateError(configPath(path, off, `BAR${i}`), `0x${le32(bytes, off).toString(16)} is not aligned to its size 0x${decl.size.toString(16)}`);
    }
  }
  if (suspect) checkFixedByteBits(bytes, cs, path);
  const intxLevel = field(o, "intxLevel", path, bool);
  const status = le16(bytes, PCI.STATUS);
  if (((status & STS.INTERRUPT) !== 0) !== intxLevel) {
    throw new StateError(configPath(path, PCI.STATUS, "Status.Interrupt"), `is ${(status & STS.INTERRUPT) !== 0}, the INTx level ${intxLevel}: Status.Interrupt follows the level`);
  }
  for (const check of fn.configChecks) check(bytes, path);
  const capsIn = field(o, "caps", path, obj);
  onlyKeys(capsIn, `${path}.caps`, fn.statefulCaps.map((c) => c.stateKey));
  const caps: Record<string, unknown> = {};
  for (const c of fn.statefulCaps) {
    if (capsIn[c.stateKey] === undefined) throw new StateError(`${path}.caps.${c.stateKey}`, "missing");
    caps[c.stateKey] = c.parse(capsIn[c.stateKey], `${path}.caps.${c.stateKey}`, bytes);
  }
  return { version: 2, config: configHex.toLowerCase(), intxLevel, caps };
}

/**
 * Why a parsed state is not the state `fn` has right after a reset (Status.Interrupt and the
 * INTx level aside: a device may drive INTx on any function), or `undefined` if it is.
 */
export function differsFromReset(fn: PciFunction, s: PciFunctionState): string | undefined {
  const img = fn.resetImage;
  if (img === undefined) return "function not realized";
  const bytes = hexBytes(s.config, "config", fn.config.size);
  // Word-wise where it can (an absent VF's state is checked this way at every restore): when only
  // the word holding Command and Status differs, that word alone goes bytewise.
  let [from, to] = [0, img.length];
  if (img.length === bytes.length && img.length % 4 === 0 && img.byteOffset % 4 === 0 && bytes.byteOffset % 4 === 0) {
    const [a, b] = [new Uint32Array(img.buffer, img.byteOffset, img.length >>> 2), new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2)];
    const sw = PCI.STATUS >>> 2;
    let k = 0;
    while (k < a.length && (a[k] === b[k] || k === sw)) k++;
    if (k === a.length) [from, to] = [sw * 4, sw * 4 + 4];
  }
  for (let i = from; i < to; i++) {
    const ignore = i === PCI.STATUS ? STS.INTERRUPT : 0;
    if (((bytes[i]! ^ img[i]!) & ~ignore) !== 0) return `config byte 0x${i.toString(16)} is 0x${bytes[i]!.toString(16)}, not its reset value 0x${img[i]!.toString(16)}`;
  }
  for (const c of fn.statefulCaps) {
    if (JSON.stringify(s.caps[c.stateKey]) !== JSON.stringify(c.resetState())) return `${c.stateKey} is not in its reset state`;
  }
  return undefined;
}

/** The state `fn` has right after a reset (its reset image, INTx low, every capability reset). */
export function resetStateOf(fn: PciFunction): PciFunctionState {
  const caps: Record<string, unknown> = {};
  for (const c of fn.statefulCaps) caps[c.stateKey] = c.resetState();
  return { version: 2, config: toHex(fn.resetImage ?? fn.config.config), intxLevel: false, caps };
}
