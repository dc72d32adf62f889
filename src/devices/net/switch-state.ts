/**
 * Validation helpers for `L2Switch` saved state: offload metadata and backlog frames. A saved
 * state is untrusted input; everything here rejects with {@link SwitchStateError}.
 * @module
 */
import type { FrameMeta } from "./backend.js";
import { Base64Error, decodeBase64 } from "./base64.js";

/** A saved switch state that cannot be restored. */
export class SwitchStateError extends Error {
  override readonly name = "SwitchStateError";
}

/** Largest frame accepted in a saved backlog. */
const MAX_SAVED_FRAME = 65536 + 4096;

/** A JSON-safe copy of offload metadata. */
export function structuredMeta(m: FrameMeta): FrameMeta {
  const out: FrameMeta = {};
  if (m.needsCsum !== undefined) out.needsCsum = { start: m.needsCsum.start, offset: m.needsCsum.offset };
  if (m.csumValid !== undefined) out.csumValid = m.csumValid;
  if (m.gso !== undefined) {
    out.gso = { type: m.gso.type, size: m.gso.size, hdrLen: m.gso.hdrLen };
    if (m.gso.ecn !== undefined) out.gso.ecn = m.gso.ecn;
  }
  return out;
}

function validMeta(v: unknown): FrameMeta {
  if (v === null || typeof v !== "object") throw new SwitchStateError("bad frame metadata");
  const m = v as Record<string, unknown>;
  const u16 = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffff;
  const out: FrameMeta = {};
  if (m["needsCsum"] !== undefined) {
    const n = m["needsCsum"] as Record<string, unknown> | null;
    if (n === null || typeof n !== "object" || !u16(n["start"]) || !u16(n["offset"])) throw new SwitchStateError("bad needsCsum");
    out.needsCsum = { start: n["start"], offset: n["offset"] };
  }
  if (m["csumValid"] !== undefined) {
    if (typeof m["csumValid"] !== "boolean") throw new SwitchStateError("bad csumValid");
    out.csumValid = m["csumValid"];
  }
  if (m["gso"] !== undefined) {
    const g = m["gso"] as Record<string, unknown> | null;
    const type = g?.["type"];
    if (g === null || typeof g !== "object" || (type !== "tcpv4" && type !== "tcpv6" && type !== "udp") || !u16(g["size"]) || !u16(g["hdrLen"])) {
      throw new SwitchStateError("bad gso");
    }
    out.gso = { type, size: g["size"], hdrLen: g["hdrLen"] };
    if (g["ecn"] !== undefined) {
      if (typeof g["ecn"] !== "boolean") throw new SwitchStateError("bad gso.ecn");
      out.gso.ecn = g["ecn"];
    }
  }
  return out;
}

/** Validates and decodes a saved backlog (absent means empty), at most `max` frames. */
export function restoreBacklog(v: unknown, max: number): { frame: Uint8Array; meta: FrameMeta | undefined }[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > max) throw new SwitchStateError("bad backlog");
  return v.map((e: unknown) => {
    const x = e as { frame?: unknown; meta?: unknown } | null;
    if (x === null || typeof x !== "object" || typeof x.frame !== "string" || x.frame.length > (MAX_SAVED_FRAME * 4) / 3 + 4) {
      throw new SwitchStateError("bad backlog frame");
    }
    let frame: Uint8Array;
    try {
      frame = decodeBase64(x.frame);
    } catch (err) {
      if (err instanceof Base64Error) throw new SwitchStateError(`bad backlog frame: ${err.message}`);
      throw err;
    }
    return { frame, meta: x.meta === undefined ? undefined : validMeta(x.meta) };
  });
}

