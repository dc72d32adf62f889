/**
 * The platforms a trace can be recorded on, built from a trace header's description, so that the
 * recording and the replay build the same thing.
 *
 * Platform-neutral.
 * @module
 */
import type { NetBackend } from "../devices/net/backend.js";
import { parseMac } from "../devices/net/frames.js";
import type { PlatformEnv } from "../vmm/machine-platform.js";
import type { PciPlatform } from "../vmm/pci-platform.js";
import { IgbPlatform, IgbVfPlatform, VirtioNetPlatform } from "../vmm/platforms.js";
import type { TracePlatform } from "./format.js";

/** Where the platform's NIC is attached. */
export interface TracePlatformWiring {
  /** The NIC's backend instead of the host stub's segment. */
  backend?: NetBackend;
  /** Wraps the NIC's backend (the recorder's {@link TraceRecorder.wrapBackend}, a pcap tap). */
  wrapBackend?: (b: NetBackend) => NetBackend;
  /** One line per refused mailbox request or dropped access (the `vf` platform). */
  log?: (msg: string) => void;
}

/**
 * Builds the platform `p` describes: {@link VirtioNetPlatform}, {@link IgbPlatform} or
 * {@link IgbVfPlatform} with the described options.
 */
export function buildTracePlatform(p: TracePlatform, env: PlatformEnv, wiring: TracePlatformWiring = {}): PciPlatform {
  const w = {
    ...(wiring.backend !== undefined ? { backend: wiring.backend } : {}),
    ...(wiring.wrapBackend !== undefined ? { wrapBackend: wiring.wrapBackend } : {}),
  };
  switch (p.kind) {
    case "virtio":
      return new VirtioNetPlatform(env, {
        maxPairs: p.maxPairs,
        withhold: p.withhold,
        standby: p.standby,
        packed: p.packed,
        ...(p.mac !== undefined ? { mac: parseMac(p.mac) } : {}),
        ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
        ...w,
      });
    case "igb":
      return new IgbPlatform(env, { ...(p.mac !== undefined ? { mac: parseMac(p.mac) } : {}), ...w });
    case "vf":
      return new IgbVfPlatform(env, {
        trust: p.trust,
        spoofchk: p.spoofchk,
        ...(p.mac !== undefined ? { adminMac: parseMac(p.mac) } : {}),
        ...(wiring.log !== undefined ? { log: wiring.log } : {}),
        ...w,
      });
  }
}

/** A MAC as a trace header spells it (lower-case, colons). */
export function macString(m: Uint8Array): string {
  return [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");
}
