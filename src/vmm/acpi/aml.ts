/**
 * A small AML (ACPI Machine Language) encoder: just what nicvisor's DSDT needs (names, scopes,
 * devices, packages, buffers, resource templates, and methods with `If`, `LEqual`, `Or`,
 * `CreateDWordField` and `Return`). Every builder returns the encoded bytes; terms nest by passing
 * byte arrays. Encodings follow the ACPI 6.x specification, chapter 20 (AML grammar) and chapter 6.4
 * (resource descriptors).
 *
 * Platform-neutral.
 * @module
 */

/** A term's encoded bytes. */
export type Aml = Uint8Array;

/** An AML value that was given something it cannot encode (a builder bug, not a guest input). */
export class AmlError extends Error {
  override readonly name = "AmlError";
}

const OP = {
  Zero: 0x00,
  One: 0x01,
  Alias: 0x06,
  Name: 0x08,
  BytePrefix: 0x0a,
  WordPrefix: 0x0b,
  DWordPrefix: 0x0c,
  StringPrefix: 0x0d,
  QWordPrefix: 0x0e,
  Scope: 0x10,
  Buffer: 0x11,
  Package: 0x12,
  Method: 0x14,
  DualNamePrefix: 0x2e,
  MultiNamePrefix: 0x2f,
  ExtPrefix: 0x5b,
  RootChar: 0x5c,
  ParentPrefix: 0x5e,
  Local0: 0x60,
  Arg0: 0x68,
  Store: 0x70,
  Or: 0x7d,
  CreateDWordField: 0x8a,
  LNot: 0x92,
  LEqual: 0x93,
  If: 0xa0,
  Else: 0xa1,
  Return: 0xa4,
  ExtDevice: 0x82,
} as const;

/** Concatenates encoded pieces. */
export function cat(...parts: ReadonlyArray<Aml | readonly number[]>): Aml {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * PkgLength for a body of `bodyLen` bytes: the encoded length counts its own bytes. One byte up
 * to 63, then 2-4 bytes (a 4-bit low nibble plus 8-bit groups).
 */
export function pkgLength(bodyLen: number): Aml {
  if (!Number.isInteger(bodyLen) || bodyLen < 0) throw new AmlError(`bad package length ${bodyLen}`);
  if (bodyLen + 1 <= 0x3f) return Uint8Array.of(bodyLen + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLen + 1 + extra;
    if (total < 1 << (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0xf);
      for (let i = 0; i < extra; i++) out[1 + i] = (total >>> (4 + 8 * i)) & 0xff;
      return out;
    }
  }
  throw new AmlError(`package of ${bodyLen} bytes is too long for AML`);
}

function withPkg(prefix: readonly number[], body: Aml): Aml {
  return cat(prefix, pkgLength(body.length), body);
}

function nameSeg(seg: string): number[] {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new AmlError(`bad AML name segment '${seg}'`);
  const s = seg.padEnd(4, "_");
  return [...s].map((c) => c.charCodeAt(0));
}

/**
 * A NameString: `\_SB.PCI0`, `^LNKA`, `_HID`. Segments are 1-4 characters of A-Z, 0-9 and `_`,
 * padded with `_`.
 */
export function nameString(path: string): Aml {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith("\\")) {
    prefix.push(OP.RootChar);
    i = 1;
  } else {
    while (path[i] === "^") {
      prefix.push(OP.ParentPrefix);
      i++;
    }
  }
  const rest = path.slice(i);
  const segs = rest === "" ? [] : rest.split(".");
  if (segs.length === 0) return Uint8Array.from([...prefix, 0x00]);
  const bytes = segs.flatMap(nameSeg);
  if (segs.length === 1) return Uint8Array.from([...prefix, ...bytes]);
  if (segs.length === 2) return Uint8Array.from([...prefix, OP.DualNamePrefix, ...bytes]);
  if (segs.length > 255) throw new AmlError("too many name segments");
  return Uint8Array.from([...prefix, OP.MultiNamePrefix, segs.length, ...bytes]);
}

/** An integer constant in the shortest encoding (Zero, One, Byte/Word/DWord/QWord). */
export function int(v: number | bigint): Aml {
  const n = BigInt(v);
  if (n < 0n || n > 0xffffffffffffffffn) throw new AmlError(`integer ${n} out of range`);
  if (n === 0n) return Uint8Array.of(OP.Zero);
  if (n === 1n) return Uint8Array.of(OP.One);
  const le = (bytes: number): number[] => Array.from({ length: bytes }, (_, k) => Number((n >> BigInt(8 * k)) & 0xffn));
  if (n <= 0xffn) return Uint8Array.from([OP.BytePrefix, ...le(1)]);
  if (n <= 0xffffn) return Uint8Array.from([OP.WordPrefix, ...le(2)]);
  if (n <= 0xffffffffn) return Uint8Array.from([OP.DWordPrefix, ...le(4)]);
  return Uint8Array.from([OP.QWordPrefix, ...le(8)]);
}

/** An ASCII string constant. */
export function str(s: string): Aml {
  if (!/^[\x01-\x7f]*$/.test(s)) throw new AmlError("AML strings are 7-bit ASCII without NUL");
  return Uint8Array.from([OP.StringPrefix, ...[...s].map((c) => c.charCodeAt(0)), 0]);
}

/** A compressed EISA ID such as `PNP0A08`, as the DWord integer `EisaId()` produces. */
export function eisaId(id: string): Aml {
  return int(eisaIdValue(id));
}

/** The DWord value of a compressed EISA ID. */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AmlError(`bad EISA ID '${id}'`);
  const c = (k: number): number => id.charCodeAt(k) - 0x40;
  const letters = (c(0) << 10) | (c(1) << 5) | c(2);
  const hex = parseInt(id.slice(3), 16);
  return ((letters >>> 8) | ((letters & 0xff) << 8) | ((hex >>> 8) << 16) | ((hex & 0xff) << 24)) >>> 0;
}

/** The 16 bytes `ToUUID("...")` produces (first three fields little-endian). */
export function uuidBytes(uuid: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(uuid);
  if (m === null) throw new AmlError(`bad UUID '${uuid}'`);
  const hex = (s: string): number[] => (s.match(/../g) ?? []).map((b) => parseInt(b, 16));
  return Uint8Array.from([...hex(m[1] ?? "").reverse(), ...hex(m[2] ?? "").reverse(), ...hex(m[3] ?? "").reverse(), ...hex(m[4] ?? ""), ...hex(m[5] ?? "")]);
}

/** `Buffer() {bytes}`. */
export function buffer(bytes: Uint8Array | readonly number[]): Aml {
  return withPkg([OP.Buffer], cat(int(bytes.length), bytes));
}

/** `Package() {...}`: elements are encoded data objects or name references. */
export function pkg(...elements: Aml[]): Aml {
  if (elements.length > 255) throw new AmlError("a Package holds at most 255 elements (VarPackage not supported)");
  return withPkg([OP.Package], cat([elements.length], ...elements));
}

/** `Name(path, value)`. */
export function name(path: string, value: Aml): Aml {
  return cat([OP.Name], nameString(path), value);
}

/** `Scope(path) {...}`. */
export function scope(path: string, ...body: Aml[]): Aml {
  return withPkg([OP.Scope], cat(nameString(path), ...body));
}

/** `Device(path) {...}`. */
export function device(path: string, ...body: Aml[]): Aml {
  return withPkg([OP.ExtPrefix, OP.ExtDevice], cat(nameString(path), ...body));
}

/** `Method(path, argCount, serialized) {...}`. */
export function method(path: string, argCount: number, serialized: boolean, ...body: Aml[]): Aml {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) throw new AmlError("a method takes 0-7 arguments");
  return withPkg([OP.Method], cat(nameString(path), [argCount | (serialized ? 8 : 0)], ...body));
}

/** `ArgN` (0-6). */
export function arg(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 6) throw new AmlError("Arg0-Arg6 only");
  return Uint8Array.of(OP.Arg0 + n);
}

/** `LocalN` (0-7). */
export function local(n: number): Aml {
  if (!Number.isInteger(n) || n < 0 || n > 7) throw new AmlError("Local0-Local7 only");
  return Uint8Array.of(OP.Local0 + n);
}

/** `Return(value)`. */
export function ret(value: Aml): Aml {
  return cat([OP.Return], value);
}

/** `If (predicate) {...}`. */
export function ifThen(predicate: Aml, ...body: Aml[]): Aml {
  return withPkg([OP.If], cat(predicate, ...body));
}

/** `Else {...}` (directly after an {@link ifThen}). */
export function orElse(...body: Aml[]): Aml {
  return withPkg([OP.Else], cat(...body));
}

/** `LEqual(a, b)`. */
export function lEqual(a: Aml, b: Aml): Aml {
  return cat([OP.LEqual], a, b);
}

/** `LNot(a)`. */
export function lNot(a: Aml): Aml {
  return cat([OP.LNot], a);
}

/** `Or(a, b, target)`; `target` is a name or a local/arg. */
export function or(a: Aml, b: Aml, target: Aml): Aml {
  return cat([OP.Or], a, b, target);
}

/** `Store(value, target)`. */
export function store(value: Aml, target: Aml): Aml {
  return cat([OP.Store], value, target);
}

/** `CreateDWordField(source, byteIndex, name)`. */
export function createDWordField(source: Aml, byteIndex: number, fieldName: string): Aml {
  return cat([OP.CreateDWordField], source, int(byteIndex), nameString(fieldName));
}

/** A name used as a value (a reference, e.g. a link device in a `_PRT` entry). */
export function ref(path: string): Aml {
  return nameString(path);
}

// ---------------------------------------------------------------------------------------------
// Resource descriptors (ACPI 6.x section 6.4), for ResourceTemplate() buffers.

const u16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** Resource descriptors for {@link resourceTemplate}. */
export const res = {
  /** `IO(Decode16, min, max, align, length)`: the small I/O port descriptor. */
  io(min: number, max: number, align: number, length: number): number[] {
    return [0x47, 0x01, ...u16(min), ...u16(max), align & 0xff, length & 0xff];
  },
  /** `Memory32Fixed(ReadWrite, base, length)`. */
  memory32Fixed(base: number, length: number, writable = true): number[] {
    return [0x86, ...u16(9), writable ? 1 : 0, ...u32(base), ...u32(length)];
  },
  /** `WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`. */
  wordBusNumber(min: number, max: number): number[] {
    return [0x88, ...u16(13), 2, 0x0c, 0, ...u16(0), ...u16(min), ...u16(max), ...u16(0), ...u16(max - min + 1)];
  },
  /** `WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len)`. */
  wordIo(min: number, max: number): number[] {
    return [0x88, ...u16(13), 1, 0x0c, 3, ...u16(0), ...u16(min), ...u16(max), ...u16(0), ...u16(max - min + 1)];
  },
  /** `DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable|NonCacheable, ReadWrite, 0, min, max, 0, len)`. */
  dwordMemory(min: number, max: number, cacheable: boolean): number[] {
    return [0x87, ...u16(23), 0, 0x0c, cacheable ? 0x03 : 0x01, ...u32(0), ...u32(min), ...u32(max), ...u32(0), ...u32(max - min + 1)];
  },
  /** `Interrupt(ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow, Shared|Exclusive) {irqs}`. */
  interrupt(irqs: readonly number[], o: { level: boolean; activeLow: boolean; shared: boolean }): number[] {
    const flags = 0x01 | (o.level ? 0 : 0x02) | (o.activeLow ? 0x04 : 0) | (o.shared ? 0x08 : 0);
    return [0x89, ...u16(2 + 4 * irqs.length), flags, irqs.length, ...irqs.flatMap(u32)];
  },
};

/** `ResourceTemplate() {...}`: the descriptors plus an end tag with a zero (valid) checksum. */
export function resourceTemplate(...descriptors: number[][]): Aml {
  return buffer([...descriptors.flat(), 0x79, 0x00]);
}
