/**
 * Reading saved state as untrusted input: small checked readers that take `unknown` and either
 * return a typed value or throw a {@link StateError} naming the field (a dotted path such as
 * `igb.regs.TDLEN[3]`) and the bound it broke. Every device's state parser is built from these,
 * so that a restore is "parse everything, then apply" and the apply step has nothing left to check.
 *
 * Platform-neutral.
 * @module
 */
import { decodeHex, encodeHex } from "./hex.js";

/** A saved state was rejected. `path` names the field; the message says which bound it broke. */
export class StateError extends Error {
  override readonly name = "StateError";
  /**
   * @param path - the field, as a dotted path from the state's root (e.g. `virtio-net.queues[0].size`)
   * @param detail - what is wrong with it
   */
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** Describes a value for an error message without dumping large or nested data. */
function show(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  return String(v);
}

/** A plain object (not null, not an array). */
export function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new StateError(path, `expected an object, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** An integer in [min, max]. */
export function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new StateError(path, `expected an integer, got ${show(v)}`);
  if (v < min || v > max) throw new StateError(path, `${v} is outside [${min}, ${max}]`);
  return v;
}

/** An unsigned 32-bit integer. */
export function u32(v: unknown, path: string): number {
  return int(v, path, 0, 0xffffffff);
}

/** An unsigned 16-bit integer. */
export function u16(v: unknown, path: string): number {
  return int(v, path, 0, 0xffff);
}

/** An unsigned 8-bit integer. */
export function u8(v: unknown, path: string): number {
  return int(v, path, 0, 0xff);
}

/** A finite number in [min, max]. */
export function num(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new StateError(path, `expected a finite number, got ${show(v)}`);
  if (v < min || v > max) throw new StateError(path, `${v} is outside [${min}, ${max}]`);
  return v;
}

/** A boolean. */
export function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") throw new StateError(path, `expected a boolean, got ${show(v)}`);
  return v;
}

/** A string of at most `maxLen` characters. */
export function str(v: unknown, path: string, maxLen = 4096): string {
  if (typeof v !== "string") throw new StateError(path, `expected a string, got ${show(v)}`);
  if (v.length > maxLen) throw new StateError(path, `string of ${v.length} characters, at most ${maxLen}`);
  return v;
}

/** One of a fixed set of string literals. */
export function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new StateError(path, `expected one of ${allowed.join(", ")}, got ${show(v)}`);
  }
  return v as T;
}

/** An array of at most `maxLen` items (exactly `maxLen` when `exact`), each read by `item`. */
export function arr<T>(v: unknown, path: string, maxLen: number, item: (x: unknown, path: string) => T, exact = false): T[] {
  if (!Array.isArray(v)) throw new StateError(path, `expected an array, got ${show(v)}`);
  if (exact ? v.length !== maxLen : v.length > maxLen) {
    throw new StateError(path, exact ? `array of ${v.length}, expected exactly ${maxLen}` : `array of ${v.length}, at most ${maxLen}`);
  }
  const out: T[] = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${path}[${i}]`);
  return out;
}

/** The field `key` of `o`, read by `read` at the path `path.key`. */
export function field<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T): T {
  return read(o[key], `${path}.${key}`);
}

/** The field `key` of `o` when present (not undefined), else `fallback`: new fields are optional with defaults. */
export function optField<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T, fallback: T): T {
  return o[key] === undefined ? fallback : read(o[key], `${path}.${key}`);
}

/** Hex digits (lower or upper case) of exactly `bytes` bytes, or at most `bytes` when `exact` is false. */
export function hexBytes(v: unknown, path: string, bytes: number, exact = true): Uint8Array {
  const s = str(v, path, bytes * 2);
  const out = decodeHex(s);
  if (out === undefined) throw new StateError(path, "expected an even number of hex digits");
  if (exact && out.length !== bytes) throw new StateError(path, `expected ${bytes} bytes of hex, got ${out.length}`);
  return out;
}

/** Lower-case hex of `b`. */
export const toHex: (b: Uint8Array) => string = encodeHex;

/** A record (plain object) whose keys are checked by `key` and values read by `value`; at most `maxKeys` keys. */
export function record<T>(v: unknown, path: string, maxKeys: number, value: (x: unknown, path: string, key: string) => T): Map<string, T> {
  const o = obj(v, path);
  const keys = Object.keys(o);
  if (keys.length > maxKeys) throw new StateError(path, `${keys.length} entries, at most ${maxKeys}`);
  const out = new Map<string, T>();
  for (const k of keys) out.set(k, value(o[k], `${path}.${k}`, k));
  return out;
}

/** Rejects any key of `o` not in `known` (a misspelled or foreign field is an error, not ignored). */
export function onlyKeys(o: Record<string, unknown>, path: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new StateError(`${path}.${k}`, "unknown field");
}
