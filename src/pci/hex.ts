/**
 * Hex encoding of byte arrays for saved states (platform-neutral, no Buffer).
 * @module
 */

const HEX = "0123456789abcdef";

/** Encodes bytes as lowercase hex. */
export function hexFromBytes(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]! >>> 4]! + HEX[b[i]! & 15]!;
  return s;
}

/** Decodes hex; `undefined` if the text is not well-formed hex or longer than `maxBytes`. */
export function bytesFromHex(s: unknown, maxBytes = 1 << 20): Uint8Array | undefined {
  if (typeof s !== "string" || s.length % 2 !== 0 || s.length / 2 > maxBytes) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = HEX.indexOf(s[2 * i]!.toLowerCase());
    const lo = HEX.indexOf(s[2 * i + 1]!.toLowerCase());
    if (hi < 0 || lo < 0) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Lowercase hex of `b` (the encoding saved states use). */
export const toHex = hexFromBytes;

/**
 * Decodes hex that a state parser already checked (apply steps use it: no failure point). Text
 * that is not hex decodes to no bytes.
 */
export function fromHex(s: string): Uint8Array {
  return bytesFromHex(s) ?? new Uint8Array(0);
}
