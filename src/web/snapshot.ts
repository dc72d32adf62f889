/**
 * Everything the page's views draw, as one plain object: what the guest's worker posts to the page
 * (structured-cloneable), and what a trace stepped through gives. The page draws snapshots only, so
 * a live guest and a trace look the same.
 *
 * Platform-neutral.
 * @module
 */
import type { PciPlatform } from "../vmm/pci-platform.js";
import type { AccessEntry, FrameEntry, NicMonitor, VectorStats } from "./monitor.js";
import { pciTree, type PciNode } from "./pci-tree.js";
import { platformRings, type NicRings } from "./rings.js";

/** The failover switch's state, for `vf,failover`. */
export interface FailoverView {
  active: string;
  switches: number;
  failures: number;
  worstBlackoutWallNs: number;
  framesQueued: number;
  framesDropped: number;
}

/** One drawing's worth. */
export interface Snapshot {
  /** Events the monitor has seen (a view changes only when this does). */
  events: number;
  /** Guest time of the newest event (ns). */
  time: number;
  tree: PciNode[];
  rings: NicRings[];
  interrupts: VectorStats[];
  /** The newest accesses, oldest first. */
  accesses: AccessEntry[];
  /** The newest frames, oldest first. */
  frames: FrameEntry[];
  failover?: FailoverView;
}

/** Takes a snapshot (at most `maxAccesses` accesses and `maxFrames` frames). */
export function takeSnapshot(monitor: NicMonitor, platform: PciPlatform | undefined, ram: (addr: number, len: number) => Uint8Array | undefined, o: { maxAccesses?: number; maxFrames?: number } = {}): Snapshot {
  const s: Snapshot = {
    events: monitor.events,
    time: monitor.time,
    tree: platform !== undefined ? pciTree(platform.root) : [],
    rings: platform !== undefined ? platformRings(platform, ram) : [],
    interrupts: monitor.interrupts(),
    accesses: monitor.accesses.newest(o.maxAccesses ?? 2000),
    frames: monitor.frames.newest(o.maxFrames ?? 100),
  };
  const f = (platform as { failover?: { active: string; stats(): Omit<FailoverView, "active"> } } | undefined)?.failover;
  if (f !== undefined) {
    const st = f.stats();
    s.failover = { active: f.active, switches: st.switches, failures: st.failures, worstBlackoutWallNs: st.worstBlackoutWallNs, framesQueued: st.framesQueued, framesDropped: st.framesDropped };
  }
  return s;
}
