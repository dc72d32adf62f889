/**
 * Hex text of byte arrays, as saved states carry config spaces, MSI-X tables and frames. A
 * migration's stop encodes and parses about 100 KB of it (every PCI function's config space), so
 * both directions go through tables rather than a string or a `parseInt` per byte: cold, that was
 * 5-10 ms of the downtime. Platform-neutral (no Buffer).
 * @module
 */

/** Two ASCII digits per byte value, packed for a little-endian Uint16Array store. */
const PAIRS = new Uint16Array(256);
/** The value of an ASCII hex digit (either case), or 255. */
const DIGIT = new Uint8Array(256).fill(255);
{
  const d = "0123456789abcdef";
  for (let b = 0; b < 256; b++) PAIRS[b] = d.charCodeAt(b >> 4) | (d.charCodeAt(b & 15) << 8);
  for (let i = 0; i < 16; i++) {
    DIGIT[d.charCodeAt(i)] = i;
    DIGIT[d.toUpperCase().charCodeAt(i)] = i;
  }
}
const LITTLE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
const ascii = new TextDecoder();

/** Lowercase hex of `b`. */
export function encodeHex(b: Uint8Array): string {
  if (b.length === 0) return "";
  const out = new Uint8Array(b.length * 2);
  if (LITTLE) {
    const w = new Uint16Array(out.buffer);
    for (let i = 0; i < b.length; i++) w[i] = PAIRS[b[i]!]!;
  } else {
    for (let i = 0; i < b.length; i++) {
      const p = PAIRS[b[i]!]!;
      out[2 * i] = p & 0xff;
      out[2 * i + 1] = p >> 8;
    }
  }
  return ascii.decode(out);
}

/**
 * The bytes of hex text `s` (digits of either case, an even count), or `undefined` if it is not
 * such text.
 */
export function decodeHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0, j = 0; i < out.length; i++, j += 2) {
    const c0 = s.charCodeAt(j);
    const c1 = s.charCodeAt(j + 1);
    // A code above 255 indexes past the table: undefined, which fails the check like 255.
    const hi = DIGIT[c0]!;
    const lo = DIGIT[c1]!;
    if (!(hi < 16 && lo < 16)) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}
