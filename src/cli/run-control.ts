/**
 * `nicvisor run --control ADDRESS`: the control server of a running machine, on a Unix socket or
 * a loopback TCP port, with the machine commands (`query-status`, `stop`, `cont`, `quit`) and
 * whatever the platform adds.
 * @module
 */
import type { Machine } from "../vmm/machine.js";
import type { PlatformBus } from "../vmm/machine-platform.js";
import { ControlServer } from "../vmm/control/server.js";
import { machineTarget, registerCommands, registerMachineCommands, type CommandSpec } from "../vmm/control/commands.js";
import type { ControlAddress } from "../vmm/control/protocol.js";
import { listenControl, type ControlListener } from "../vmm/control/socket.js";
import { packageVersion } from "./version.js";
import { FailoverVfPlatform } from "../vmm/platforms.js";
import { ControlCommandError } from "../vmm/control/protocol.js";
import { oneOf, onlyKeys } from "../state/parse.js";

/** A running control server. */
export interface RunControl {
  /** The server: register more commands, push events (`server.emit`). */
  readonly server: ControlServer;
  /** Where it listens. */
  readonly listener: ControlListener;
  /** Stops listening and removes the socket file. */
  close(): Promise<void>;
}

/** What `query-failover` answers. */
export function failoverInfo(p: FailoverVfPlatform): Record<string, unknown> {
  const s = p.failover.stats();
  return {
    backing: s.backing,
    switches: s.switches,
    failures: s.failures,
    "last-blackout-ns": s.lastBlackoutWallNs,
    "worst-blackout-ns": s.worstBlackoutWallNs,
    "frames-queued": s.framesQueued,
    "frames-dropped": s.framesDropped,
    ...(s.lastError !== undefined ? { "last-error": s.lastError } : {}),
  };
}

/**
 * The commands a platform offers on the control socket, beyond the machine's: for the failover
 * VF, `query-failover` and `failover-switch {"to": "emulated"|"passthrough"}`.
 */
export function platformCommands(platform: PlatformBus): Record<string, CommandSpec> {
  if (!(platform instanceof FailoverVfPlatform)) return {};
  return {
    "query-failover": { handler: () => failoverInfo(platform), help: "the failover VF: backing, switches, last and worst blackout, frames queued and dropped" },
    "failover-switch": {
      help: 'switch the failover VF\'s backing: {"to": "emulated" | "passthrough"}',
      parse: (a) => {
        onlyKeys(a, "arguments", ["to"]);
        return { to: oneOf(a["to"], "to", ["emulated", "passthrough"] as const) };
      },
      handler: (a: { to: "emulated" | "passthrough" }) => {
        const r = platform.failover.switchTo(a.to);
        if (!r.ok) throw new ControlCommandError("GenericError", r.error.message);
        return { from: r.from, to: r.to, "blackout-ns": r.blackoutWallNs, "frames-queued": r.framesQueued, "frames-dropped": r.framesDropped };
      },
    },
  };
}

/**
 * Starts the control server for `machine` on `address`. `onQuit` ends the run (after the `quit`
 * reply is sent); `extra` may register more commands before the socket opens.
 * @example
 * ```ts
 * const ctl = await startRunControl(vm.machine, parseControlAddress("unix:/tmp/vm.sock"), () => finish(0),
 *   (server) => registerCommands(server, { "query-failover": () => sw.info() }));
 * ```
 */
export async function startRunControl(
  machine: Machine,
  address: ControlAddress,
  onQuit: () => void,
  extra?: (server: ControlServer) => void,
): Promise<RunControl> {
  const server = new ControlServer({ version: packageVersion() });
  registerMachineCommands(server, machineTarget(machine, onQuit));
  registerCommands(server, platformCommands(machine.platform));
  extra?.(server);
  const listener = await listenControl(server, address);
  return { server, listener, close: () => listener.close() };
}
