/**
 * Base64 (RFC 4648, standard alphabet, with padding) without `atob`/`btoa` or `Buffer`, so it runs
 * the same in Node and browsers. Used for the embedded wasm module and for frames in saved state.
 * @module
 */

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** A string that is not valid base64. */
export class Base64Error extends Error {
  override readonly name = "Base64Error";
}

/** Decodes standard base64 (no whitespace). Throws {@link Base64Error} on any other character. */
export function decodeBase64(s: string): Uint8Array {
  const lut = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) lut[B64.charCodeAt(i)] = i;
  const clean = s.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 6) / 8));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? lut[c]! : -1;
    if (v < 0) throw new Base64Error(`bad base64 character at ${i}`);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** Encodes bytes as standard base64 with padding. */
export function encodeBase64(b: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!;
  }
  if (i < b.length) {
    const v = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + (i + 1 < b.length ? B64[(v >> 6) & 63]! : "=") + "=";
  }
  return out;
}
