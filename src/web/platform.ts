/**
 * The platform `nicvisor web` boots its guest on, watched by a {@link TraceRecorder} whose events
 * feed the page's {@link NicMonitor}: `virtio`, `igb` and `vf` as `nicvisor run --trace` records
 * them (so the page can hand out a trace that `nicvisor replay` takes), and `vf,failover`, the
 * failover VF with its switch, watched the same way but not recorded (a trace of it cannot be
 * replayed yet).
 *
 * Platform-neutral.
 * @module
 */
import type { PlatformBus, PlatformEnv } from "../vmm/machine-platform.js";
import type { PciPlatform } from "../vmm/pci-platform.js";
import { FailoverVfPlatform } from "../vmm/platforms.js";
import { createLink } from "../devices/net/link.js";
import { HostStub } from "../devices/net/host-stub.js";
import type { TraceEvent, TracePlatform } from "../trace/format.js";
import { TraceRecorder, recordPlatform } from "../trace/record.js";
import { buildTracePlatform } from "../trace/platform.js";

/** The NIC of the page's guest, as `nicvisor web --net` names it. */
export type WebNet = { kind: "virtio" | "igb" | "vf" } | { kind: "vf-failover" };

/** The `--net` spellings `nicvisor web` takes. */
export const WEB_NETS: Readonly<Record<string, WebNet>> = {
  virtio: { kind: "virtio" },
  igb: { kind: "igb" },
  vf: { kind: "vf" },
  "vf,failover": { kind: "vf-failover" },
};

/** The trace platform of a recorded web NIC (the defaults `nicvisor run --net KIND` uses). */
function tracePlatform(kind: "virtio" | "igb" | "vf"): TracePlatform {
  if (kind === "virtio") return { kind, maxPairs: 2, standby: false, packed: false, withhold: [] };
  if (kind === "igb") return { kind };
  return { kind, trust: false, spoofchk: true };
}

/** A watched platform. */
export interface WatchedPlatform {
  /** The machine's platform factory. */
  factory: (env: PlatformEnv) => PlatformBus;
  /** The platform itself once built (not the recorded proxy: reading it records nothing). */
  platform(): PciPlatform | undefined;
  /** The recorder (its `finish()` gives the trace when `traceable`). */
  recorder: TraceRecorder;
  /** A trace of this platform can be replayed (`virtio`, `igb`, `vf`). */
  traceable: boolean;
}

/**
 * The platform for `net`, every event going to `onEvent`.
 * @example
 * ```ts
 * const monitor = new NicMonitor({ root: () => w.platform()?.root });
 * const w = watchedPlatform({ kind: "igb" }, { nicvisor: "0.1.0", ramBytes: 256 << 20, onEvent: monitor.onEvent });
 * const machine = await Machine.create({ ..., platform: w.factory });
 * ```
 */
export function watchedPlatform(net: WebNet, o: { nicvisor: string; ramBytes: number; onEvent: (e: TraceEvent) => void; log?: (m: string) => void; maxTraceBytes?: number }): WatchedPlatform {
  let built: PciPlatform | undefined;
  if (net.kind === "vf-failover") {
    const recorder = new TraceRecorder({ platform: tracePlatform("vf"), ramBytes: o.ramBytes, ecamDiscovery: "acpi", nicvisor: o.nicvisor }, { onEvent: o.onEvent, write: false });
    const factory = recordPlatform(recorder, (env) => {
      // The host stub on a link of its own, so the recorder sees the fabric's frames at its uplink.
      const [dev, host] = createLink();
      new HostStub({ backend: host });
      built = new FailoverVfPlatform(env, { backend: recorder.wrapBackend(dev), ...(o.log !== undefined ? { log: o.log } : {}) });
      return built;
    });
    return { factory, platform: () => built, recorder, traceable: false };
  }
  const recorder = new TraceRecorder(
    { platform: tracePlatform(net.kind), ramBytes: o.ramBytes, ecamDiscovery: "acpi", nicvisor: o.nicvisor },
    { onEvent: o.onEvent, maxBytes: o.maxTraceBytes ?? 256 << 20 },
  );
  const factory = recordPlatform(recorder, (env) => {
    built = buildTracePlatform(recorder.header.platform, env, { wrapBackend: (b) => recorder.wrapBackend(b), ...(o.log !== undefined ? { log: o.log } : {}) });
    return built;
  });
  return { factory, platform: () => built, recorder, traceable: true };
}
