/**
 * Receive Side Scaling: the Toeplitz hash of the Microsoft RSS specification ("Verifying the RSS
 * Hash Calculation") and the extraction of its input tuple from a frame.
 *
 * Input order (all in network byte order): IPv4 source address, destination address, then for the
 * 4-tuple source port and destination port (12 bytes, or 8 without ports); IPv6 the same with
 * 16-byte addresses (36 or 32 bytes). IPv6 "EX" variants (home address / routing header addresses)
 * are not implemented: the fixed-header addresses are always used.
 * @module
 */
import { defaultKernels } from "./kernels.js";
import { IpProto, parseFrame, type ParsedFrame } from "./parse.js";

/** The 40-byte key of the Microsoft RSS verification suite (also the usual driver default). */
export const MICROSOFT_RSS_KEY: Uint8Array = Uint8Array.of(
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
  0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
  0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
);

/**
 * Toeplitz hash of `input` under `key`, bit by bit (the WebAssembly kernel when loaded). Input bits
 * beyond `key.length * 8 - 32` meet zero key bits. For repeated hashing with one key prefer
 * {@link ToeplitzHasher}.
 */
export function toeplitzHash(key: Uint8Array, input: Uint8Array): number {
  return defaultKernels().toeplitz(key, input);
}

/**
 * A Toeplitz hasher for one key, with a per-byte lookup table: the hash of an input is the XOR of
 * one table entry per input byte. Identical results to {@link toeplitzHash}.
 * @example
 * const h = new ToeplitzHasher(MICROSOFT_RSS_KEY);
 * const t = rssTuple(frame, parseFrame(frame), ALL_RSS_TYPES);
 * const queue = t ? reta[h.hash(t.input) & 127] : 0;
 */
export class ToeplitzHasher {
  /** `table[i * 256 + b]`: contribution of byte value `b` at input position `i`. */
  readonly #table: Uint32Array;
  readonly #maxInput: number;

  /** Builds the table for inputs of up to `maxInput` bytes (default 36, an IPv6 4-tuple). */
  constructor(key: Uint8Array, maxInput = 36) {
    this.#maxInput = Math.max(0, Math.min(Math.floor(maxInput), 4096));
    this.#table = new Uint32Array(this.#maxInput * 256);
    for (let i = 0; i < this.#maxInput; i++) {
      // The 32-bit key windows for the 8 bits of input byte i.
      const w = new Uint32Array(8);
      for (let bit = 0; bit < 8; bit++) {
        const s = i * 8 + bit; // key bit index where this window starts
        let v = 0;
        for (let k = 0; k < 32; k++) {
          const kb = s + k;
          const byte = key[kb >> 3] ?? 0;
          v = (v << 1) | ((byte >> (7 - (kb & 7))) & 1);
        }
        w[bit] = v >>> 0;
      }
      const base = i * 256;
      for (let b = 0; b < 256; b++) {
        let h = 0;
        for (let bit = 0; bit < 8; bit++) if ((b >> (7 - bit)) & 1) h ^= w[bit]!;
        this.#table[base + b] = h >>> 0;
      }
    }
  }

  /** Hash of `input`; bytes past the table size are ignored (as if their key bits were zero). */
  hash(input: Uint8Array): number {
    const t = this.#table;
    const n = Math.min(input.length, this.#maxInput);
    let h = 0;
    for (let i = 0; i < n; i++) h ^= t[i * 256 + input[i]!]!;
    return h >>> 0;
  }
}

/** The RSS hash types, as in virtio-net's `VIRTIO_NET_RSS_HASH_TYPE_*` and the 82576's MRQC fields. */
export type RssHashType = "ipv4" | "tcp-ipv4" | "udp-ipv4" | "ipv6" | "tcp-ipv6" | "udp-ipv6";

/** Which hash types are enabled. A missing field is disabled. */
export type RssTypes = Partial<Record<RssHashType, boolean>>;

/** Every hash type enabled. */
export const ALL_RSS_TYPES: Readonly<RssTypes> = Object.freeze({
  ipv4: true,
  "tcp-ipv4": true,
  "udp-ipv4": true,
  ipv6: true,
  "tcp-ipv6": true,
  "udp-ipv6": true,
});

/** The input of an RSS hash and which hash type produced it. */
export interface RssTuple {
  /** The hash type chosen (the most specific enabled one that the frame has fields for). */
  type: RssHashType;
  /** The bytes to hash (8, 12, 32 or 36). */
  input: Uint8Array;
}

/**
 * Extracts the RSS input of a frame: the 4-tuple if the frame is an unfragmented TCP (UDP) packet
 * with a complete header and the TCP (UDP) type is enabled, else the 2-tuple if the IP type is
 * enabled, else `undefined` (the device then uses no hash / queue 0).
 */
export function rssTuple(frame: Uint8Array, p: ParsedFrame, types: RssTypes): RssTuple | undefined {
  if (p.ipVersion === 0) return undefined;
  const v4 = p.ipVersion === 4;
  const addrOff = p.l3Offset + (v4 ? 12 : 8);
  const addrLen = v4 ? 8 : 32;
  if (addrOff + addrLen > frame.length) return undefined;
  const hasPorts = !p.fragment && p.srcPort >= 0 && p.l4Offset >= 0;
  let l4Type: RssHashType | undefined;
  if (hasPorts && p.l4Proto === IpProto.TCP) l4Type = v4 ? "tcp-ipv4" : "tcp-ipv6";
  else if (hasPorts && p.l4Proto === IpProto.UDP) l4Type = v4 ? "udp-ipv4" : "udp-ipv6";
  if (l4Type !== undefined && types[l4Type] === true) {
    const input = new Uint8Array(addrLen + 4);
    input.set(frame.subarray(addrOff, addrOff + addrLen));
    input.set(frame.subarray(p.l4Offset, p.l4Offset + 4), addrLen);
    return { type: l4Type, input };
  }
  const ipType: RssHashType = v4 ? "ipv4" : "ipv6";
  if (types[ipType] !== true) return undefined;
  return { type: ipType, input: frame.slice(addrOff, addrOff + addrLen) };
}

/** Convenience: parses `frame` and returns `{ type, hash }`, or `undefined` if no type applies. */
export function rssHash(
  hasher: ToeplitzHasher,
  frame: Uint8Array,
  types: RssTypes,
  parsed: ParsedFrame = parseFrame(frame),
): { type: RssHashType; hash: number } | undefined {
  const t = rssTuple(frame, parsed, types);
  return t === undefined ? undefined : { type: t.type, hash: hasher.hash(t.input) };
}
