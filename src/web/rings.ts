/**
 * The queues of a platform's NICs as the page draws them: for each ring its size, the indexes the
 * driver and the device have reached, and how many descriptors each side owns.
 *
 * - virtio split ring: the driver's `avail.idx` (read from guest RAM), the device's next available
 *   entry and its `used.idx`; the device owns `avail.idx - used.idx` descriptors' chains (waiting
 *   plus in flight), the driver the rest.
 * - virtio packed ring: the device's next available and used positions with their wrap counters
 *   (the driver's position is in the descriptors' flags, not in an index).
 * - 82576 (PF and VF queues alike, in the PF's register file): head and tail of each enabled RX and
 *   TX ring; the device owns the descriptors from head up to tail.
 *
 * Platform-neutral. Reads only (registers raw, without their read hooks; guest RAM through the
 * machine, not through the platform's recorded DMA).
 * @module
 */
import { VirtioPciTransport } from "../devices/virtio/pci-transport.js";
import { SplitQueue } from "../devices/virtio/split-queue.js";
import { PackedQueue } from "../devices/virtio/packed-queue.js";
import { IgbCore } from "../devices/igb/core.js";
import { IGB_SIZES } from "../devices/igb/regs.js";

/** One ring. */
export interface RingView {
  /** `virtio-net rx0`, `82576 queue 3 rx`. */
  name: string;
  layout: "split" | "packed" | "igb";
  size: number;
  /** The driver's index: virtio `avail.idx` (split), 82576 tail (RDT/TDT). */
  driverIndex?: number;
  /** The device's index: virtio next available entry, 82576 head (RDH/TDH). */
  deviceIndex: number;
  /** virtio `used.idx` (split) or next used position (packed). */
  usedIndex?: number;
  /** Descriptors (82576) or chains (virtio split) the device owns now. */
  deviceOwned?: number;
  /** Packed: the wrap counters (avail, used). */
  wraps?: [boolean, boolean];
  /** For 82576 rings, the pool (VF number) the queue serves, when VFs are on. */
  pool?: number;
}

/** A NIC's rings. */
export interface NicRings {
  nic: string;
  rings: RingView[];
}

type RamRead = (addr: number, len: number) => Uint8Array | undefined;

function virtioRings(name: string, t: VirtioPciTransport, ram: RamRead): RingView[] {
  const out: RingView[] = [];
  const n = t.queues.length;
  t.queues.forEach((q, i) => {
    if (!q.ready) return;
    const role = n % 2 === 1 && i === n - 1 ? "ctrl" : `${i % 2 === 0 ? "rx" : "tx"}${i >> 1}`;
    if (q instanceof SplitQueue) {
      const b = ram(q.driver + 2, 2);
      const avail = b === undefined ? undefined : b[0]! | (b[1]! << 8);
      const v: RingView = { name: `${name} ${role}`, layout: "split", size: q.size, deviceIndex: q.nextAvail & 0xffff, usedIndex: q.nextUsed & 0xffff };
      if (avail !== undefined) {
        v.driverIndex = avail;
        v.deviceOwned = (avail - q.nextUsed) & 0xffff;
      }
      out.push(v);
    } else if (q instanceof PackedQueue) {
      out.push({ name: `${name} ${role}`, layout: "packed", size: q.size, deviceIndex: q.nextAvail, usedIndex: q.nextUsed, wraps: [q.availWrap, q.usedWrap] });
    }
  });
  return out;
}

function igbRings(name: string, core: IgbCore, onlyPool?: number): RingView[] {
  const out: RingView[] = [];
  const vfs = core.numVfs;
  for (let q = 0; q < IGB_SIZES.queues; q++) {
    const pool = vfs > 0 ? q % 8 : undefined;
    if (onlyPool !== undefined && pool !== onlyPool) continue;
    for (const dir of ["rx", "tx"] as const) {
      const len = core.regs.get(dir === "rx" ? "RDLEN" : "TDLEN", q);
      const ctl = core.regs.get(dir === "rx" ? "RXDCTL" : "TXDCTL", q);
      if (len === 0 || (ctl & 0x0200_0000) === 0) continue;
      const size = Math.floor(len / 16);
      const head = core.regs.get(dir === "rx" ? "RDH" : "TDH", q);
      const tail = core.regs.get(dir === "rx" ? "RDT" : "TDT", q);
      const v: RingView = { name: `${name} queue ${q} ${dir}`, layout: "igb", size, driverIndex: tail, deviceIndex: head, deviceOwned: size > 0 ? (tail - head + size) % size : 0 };
      if (pool !== undefined) v.pool = pool;
      out.push(v);
    }
  }
  return out;
}

/**
 * The rings of every NIC a platform holds: its `VirtioPciTransport` fields and the igb cores of its
 * fields (`nic.core`, `host.core`). A platform that gives the guest one VF of a host NIC (`vf`)
 * shows that VF's pool only.
 */
export function platformRings(platform: object, ram: RamRead): NicRings[] {
  const out: NicRings[] = [];
  const p = platform as Record<string, unknown>;
  const vf = typeof p["vf"] === "number" ? (p["vf"] as number) : undefined;
  for (const [key, v] of Object.entries(p)) {
    if (v instanceof VirtioPciTransport) out.push({ nic: `virtio-net (${key})`, rings: virtioRings("virtio-net", v, ram) });
    else if (key === "model" && typeof v === "object" && v !== null && (v as { failover?: unknown }).failover !== undefined) {
      // The failover VF: both backings' 82576s; the guest's queues are on the one serving now.
      const m = v as { failover: { active: string }; host: { core: IgbCore }; emu: { core: IgbCore } };
      for (const [side, nic] of [["passthrough", m.host], ["emulated", m.emu]] as const) {
        const active = m.failover.active === side ? ", serving the guest" : "";
        out.push({ nic: `82576 ${side === "passthrough" ? "host NIC (pass-through)" : "emulated"}${active}`, rings: igbRings("82576", nic.core) });
      }
    } else if (typeof v === "object" && v !== null && (v as { core?: unknown }).core instanceof IgbCore) {
      const core = (v as { core: IgbCore }).core;
      const host = key === "host";
      out.push({ nic: host ? `82576 VF ${vf ?? "?"} (host NIC's pool)` : "82576", rings: igbRings("82576", core, host ? vf : undefined) });
    }
  }
  return out;
}
