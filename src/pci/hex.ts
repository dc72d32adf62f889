/**
 * Hex encoding of byte arrays for saved states (platform-neutral, no Buffer): the state layer's
 * table-driven codec under the names the PCI code uses.
 * @module
 */
import { decodeHex, encodeHex } from "../state/hex.js";

/** Encodes bytes as lowercase hex. */
export const hexFromBytes: (b: Uint8Array) => string = encodeHex;

/** Decodes hex; `undefined` if the text is not well-formed hex or longer than `maxBytes`. */
export function bytesFromHex(s: unknown, maxBytes = 1 << 20): Uint8Array | undefined {
  if (typeof s !== "string" || s.length % 2 !== 0 || s.length / 2 > maxBytes) return undefined;
  return decodeHex(s);
}

/**
 * Decodes hex that a state parser already checked (apply steps use it: no failure point). Text
 * that is not hex decodes to no bytes.
 */
export function fromHex(s: string): Uint8Array {
  return bytesFromHex(s) ?? new Uint8Array(0);
}

/** Lowercase hex of `b` (the encoding saved states use). */
export const toHex: (b: Uint8Array) => string = encodeHex;
