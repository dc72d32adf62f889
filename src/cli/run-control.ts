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

/** A running control server. */
export interface RunControl {
  /** The server: register more commands, push events (`server.emit`). */
  readonly server: ControlServer;
  /** Where it listens. */
  readonly listener: ControlListener;
  /** Stops listening and removes the socket file. */
  close(): Promise<void>;
}

/**
 * The commands a platform offers on the control socket, beyond the machine's. None yet: the
 * failover switch's (`query-failover`, `failover-switch`) are to be returned here for a platform
 * that has one.
 */
export function platformCommands(platform: PlatformBus): Record<string, CommandSpec> {
  void platform;
  return {};
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
