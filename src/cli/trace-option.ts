/**
 * `--trace FILE` for `nicvisor run`: which `--net` NICs a trace can be recorded on, and the
 * recorded platform factory (see `src/trace`).
 * @module
 */
import { UsageError } from "./command.js";
import type { NetSpec } from "./net-option.js";
import type { NetBackend } from "../devices/net/backend.js";
import type { PlatformBus, PlatformEnv } from "../vmm/machine-platform.js";
import type { TracePlatform } from "../trace/format.js";
import type { TraceRecorder } from "../trace/record.js";

const hexMac = (m: Uint8Array): string => [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");

/**
 * The trace platform of a `--net` spec: virtio, igb and vf (without failover) on the host stub or a
 * `--netdev`. @throws UsageError for the others
 */
export function tracePlatformOf(spec: NetSpec | undefined): TracePlatform {
  const mac = (m: Uint8Array | undefined): { mac?: string } => (m !== undefined ? { mac: hexMac(m) } : {});
  switch (spec?.kind) {
    case "virtio":
      return { kind: "virtio", ...mac(spec.mac), maxPairs: spec.maxPairs, ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}), standby: spec.standby, packed: spec.packed, withhold: [...spec.withhold] };
    case "igb":
      return { kind: "igb", ...mac(spec.mac) };
    case "vf":
      if (spec.failover) break;
      return { kind: "vf", ...mac(spec.mac), trust: spec.trust, spoofchk: spec.spoofchk };
    default:
      break;
  }
  throw new UsageError("--trace records --net virtio, igb or vf (not failover, vf,failover or none yet)");
}

/**
 * The platform factory of a traced run: the trace's platform, recorded by `rec`, its NIC on
 * `backend` (a `--netdev`) or the host stub, wrapped by `wrap` (a `--pcap` tap) outside the
 * recorder.
 */
export async function tracedPlatform(
  rec: TraceRecorder,
  wrap?: (backend: NetBackend, env: PlatformEnv) => NetBackend,
  backend?: NetBackend,
): Promise<(env: PlatformEnv) => PlatformBus> {
  const { buildTracePlatform } = await import("../trace/platform.js");
  const { recordPlatform } = await import("../trace/record.js");
  return (outer) =>
    recordPlatform(rec, (env) =>
      buildTracePlatform(rec.header.platform, env, {
        ...(backend !== undefined ? { backend } : {}),
        // The tap gets the machine's own env: a timer it set must not take a trace timer id.
        wrapBackend: (b) => rec.wrapBackend(wrap !== undefined ? wrap(b, outer) : b),
        log: (m) => process.stderr.write(`nicvisor: ${m}\n`),
      }),
    )(outer);
}
