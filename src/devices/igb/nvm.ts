/**
 * The 82576 NVM (EEPROM) image as the igb driver reads it through EERD: the MAC address in words
 * 0..2, a few configuration words, and the checksum word 0x3F chosen so that words 0x00..0x3F sum
 * to 0xBABA.
 * @module
 */
import { IGB_SIZES } from "./regs.js";

/** Words 0x00..0x3F must sum (mod 2^16) to this value. */
export const NVM_SUM = 0xbaba;
/** The checksum word. */
export const NVM_CHECKSUM_WORD = 0x3f;
/** The alternate MAC address pointer word (0xFFFF: none). */
export const NVM_ALT_MAC_PTR = 0x37;

/** Raised for a malformed MAC address or NVM image. */
export class NvmError extends Error {
  override readonly name = "NvmError";
}

/** Sum of words 0..0x3F, mod 2^16. */
export function nvmSum(words: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i <= NVM_CHECKSUM_WORD; i++) s = (s + (words[i] ?? 0)) & 0xffff;
  return s;
}

/** Whether the image's checksum is valid. */
export function nvmValid(words: ArrayLike<number>): boolean {
  return nvmSum(words) === NVM_SUM;
}

/**
 * Builds an NVM image holding `mac`, with a valid checksum.
 * @example
 * const nvm = buildNvm(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
 */
export function buildNvm(mac: Uint8Array): Uint16Array {
  if (mac.length !== 6) throw new NvmError("MAC address must be 6 bytes");
  const w = new Uint16Array(IGB_SIZES.nvmWords);
  w[0] = (mac[0] ?? 0) | ((mac[1] ?? 0) << 8);
  w[1] = (mac[2] ?? 0) | ((mac[3] ?? 0) << 8);
  w[2] = (mac[4] ?? 0) | ((mac[5] ?? 0) << 8);
  w[0x0a] = 0x0202; // initialization control 1 (values as a shipped 82576 image)
  w[0x0f] = 0x3200; // initialization control 2
  w[NVM_ALT_MAC_PTR] = 0xffff;
  w[NVM_CHECKSUM_WORD] = 0;
  w[NVM_CHECKSUM_WORD] = (NVM_SUM - nvmSum(w)) & 0xffff;
  return w;
}

/** The MAC address stored in an image. */
export function nvmMac(words: ArrayLike<number>): Uint8Array {
  const m = new Uint8Array(6);
  for (let i = 0; i < 3; i++) {
    const v = words[i] ?? 0;
    m[2 * i] = v & 0xff;
    m[2 * i + 1] = (v >>> 8) & 0xff;
  }
  return m;
}
