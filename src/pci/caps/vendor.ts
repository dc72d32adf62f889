/**
 * Vendor-specific capability (ID 0x09): the body is the device's (virtio-pci uses it for its
 * structure descriptors). Bytes are read-only unless `writable` marks them.
 * @module
 */
import { PciConfigError } from "../errors.js";
import type { PciFunction } from "../function.js";
import { CAP_ID } from "../regs.js";

/**
 * Adds a vendor capability. `body` starts at the capability's byte 2 (its first byte is the Cap Len
 * byte the device defines). `writable` optionally gives a per-byte write mask for the body.
 * Returns the capability offset.
 */
export function addVendorCap(fn: PciFunction, body: Uint8Array, writable?: Uint8Array): number {
  if (body.length < 1 || body.length > 0xfe - 0x40) throw new PciConfigError("vendor capability body size");
  const cs = fn.config;
  const off = cs.addCapability(CAP_ID.VENDOR, 2 + body.length);
  cs.config.set(body, off + 2);
  cs.checkBytes(off + 2, body.length);
  if (writable !== undefined) {
    for (let i = 0; i < body.length; i++) {
      const w = writable[i] ?? 0;
      cs.wmask[off + 2 + i] = w;
      cs.cmask[off + 2 + i] = cs.cmask[off + 2 + i]! & ~w;
    }
  }
  return off;
}
