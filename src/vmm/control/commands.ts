/**
 * Commands a control server offers for a running machine (`query-status`, `stop`, `cont`, `quit`,
 * with QMP's `STOP`, `RESUME` and `SHUTDOWN` events), and {@link registerCommands}, which adds a
 * table of commands at once (how a platform adds its own, e.g. the failover switch's).
 *
 * Platform-neutral: no `node:*` imports.
 * @module
 */
import type { StopReason } from "../cpu/backend.js";
import { ControlCommandError } from "./protocol.js";
import type { CommandHandler, CommandInfo, ControlServer } from "./server.js";

/** What the machine commands act on (a {@link Machine} through {@link machineTarget}, or a fake). */
export interface MachineControlTarget {
  /** Whether the guest CPU runs now. */
  running(): boolean;
  /** Why the machine stopped for good, if it has. */
  stopReason(): StopReason | undefined;
  /** Pauses the guest (state is kept). */
  pause(): Promise<void>;
  /** Resumes the guest. */
  resume(): Promise<void>;
  /** Ends the run; called after the `quit` reply is sent. */
  quit(): void;
}

/** What {@link machineTarget} needs of a machine (the shape of `Machine`). */
export interface ControllableMachine {
  readonly cpu: { readonly running: boolean };
  readonly stopReason: StopReason | undefined;
  pause(): Promise<void>;
  start(): Promise<void>;
}

/** The {@link MachineControlTarget} of a `Machine`; `quit` is what the embedder does on `quit`. */
export function machineTarget(machine: ControllableMachine, quit: () => void): MachineControlTarget {
  return {
    running: () => machine.cpu.running,
    stopReason: () => machine.stopReason,
    pause: () => machine.pause(),
    resume: () => machine.start(),
    quit,
  };
}

/** The answer of `query-status`, in QMP's shape (`status` is one of QEMU's RunState names). */
export interface StatusInfo {
  running: boolean;
  status: "running" | "paused" | "shutdown";
}

/**
 * Registers `query-status`, `stop`, `cont` and `quit` on `server` for `target`. `stop` and `cont`
 * are no-ops when already paused or running (as in QEMU) and push `STOP` / `RESUME` on a change;
 * `quit` pushes `SHUTDOWN`, answers `{}`, then calls `target.quit()` on a later turn so the reply
 * goes out first. A machine that stopped for good answers `status: "shutdown"` and refuses `cont`.
 * @example
 * ```ts
 * registerMachineCommands(server, machineTarget(vm.machine, () => finish(0)));
 * ```
 */
export function registerMachineCommands(server: ControlServer, target: MachineControlTarget): void {
  const status = (): StatusInfo => {
    if (target.stopReason() !== undefined) return { running: false, status: "shutdown" };
    const running = target.running();
    return { running, status: running ? "running" : "paused" };
  };
  const refuseIfGone = (): void => {
    const r = target.stopReason();
    if (r !== undefined) throw new ControlCommandError("GenericError", `the guest has stopped for good (${r.kind}${"detail" in r ? ": " + r.detail : ""})`);
  };
  server.register("query-status", status, { help: "whether the guest runs: {running, status: running|paused|shutdown}" });
  server.register(
    "stop",
    async () => {
      refuseIfGone();
      if (!target.running()) return;
      await target.pause();
      server.emit("STOP");
    },
    { help: "pause the guest" },
  );
  server.register(
    "cont",
    async () => {
      refuseIfGone();
      if (target.running()) return;
      await target.resume();
      server.emit("RESUME");
    },
    { help: "resume the guest" },
  );
  server.register(
    "quit",
    () => {
      server.emit("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
      setTimeout(() => target.quit(), 0);
    },
    { help: "end the run (exit status 0)" },
  );
}

/** One entry of a {@link registerCommands} table: a handler alone, or with its help and parser. */
export type CommandSpec =
  | CommandHandler<never>
  | { handler: CommandHandler<never>; help?: string; parse?: (args: Record<string, unknown>) => unknown };

/**
 * Registers a table of commands on `server`, e.g. a platform's own.
 * @throws ControlRegistryError when a name is malformed or taken (nothing after it is registered)
 * @example
 * ```ts
 * registerCommands(server, {
 *   "query-failover": { handler: () => sw.info(), help: "backing, switches, blackouts" },
 *   "failover-switch": { handler: (a: { to: "emulated" | "passthrough" }) => sw.switchTo(a.to),
 *                        parse: (a) => ({ to: oneOf(a.to, "to", ["emulated", "passthrough"]) }) },
 * });
 * ```
 */
export function registerCommands(server: ControlServer, table: Record<string, CommandSpec>): void {
  for (const [name, spec] of Object.entries(table)) {
    if (typeof spec === "function") server.register(name, spec as CommandHandler<unknown>, {});
    else {
      const info: CommandInfo<unknown> = {};
      if (spec.help !== undefined) info.help = spec.help;
      if (spec.parse !== undefined) info.parse = spec.parse;
      server.register(name, spec.handler as CommandHandler<unknown>, info);
    }
  }
}
