/**
 * 802.1Q tag insertion and removal for the VLAN-aware switch.
 * @module
 */
import type { FrameMeta } from "./backend.js";

/** Adds (`tag`) or removes an 802.1Q tag; shifts offload offsets accordingly. Returns new objects. */
export function retag(
  frame: Uint8Array,
  meta: FrameMeta | undefined,
  tag: boolean,
  vid: number,
): { frame: Uint8Array; meta: FrameMeta | undefined } {
  let out: Uint8Array;
  let delta: number;
  if (tag) {
    out = new Uint8Array(frame.length + 4);
    out.set(frame.subarray(0, 12));
    out[12] = 0x81;
    out[13] = 0x00;
    out[14] = (vid >> 8) & 0x0f;
    out[15] = vid & 0xff;
    out.set(frame.subarray(12), 16);
    delta = 4;
  } else {
    out = new Uint8Array(frame.length - 4);
    out.set(frame.subarray(0, 12));
    out.set(frame.subarray(16), 12);
    delta = -4;
  }
  if (meta === undefined) return { frame: out, meta };
  const m: FrameMeta = { ...meta };
  if (meta.needsCsum !== undefined) m.needsCsum = { start: meta.needsCsum.start + delta, offset: meta.needsCsum.offset };
  if (meta.gso !== undefined) m.gso = { ...meta.gso, hdrLen: meta.gso.hdrLen + delta };
  return { frame: out, meta: m };
}
