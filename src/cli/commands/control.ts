/**
 * `nicvisor control ADDRESS COMMAND [JSON-ARGUMENTS]`: the control socket's client for scripts.
 * Connects to a `nicvisor run --control ADDRESS`, reads the greeting, negotiates capabilities,
 * runs COMMAND, prints its `return` as one line of JSON and exits 0; on an error reply prints the
 * description to stderr and exits 1.
 * @module
 */
import type { CliCommand, CliIo } from "../command.js";
import { UsageError } from "../command.js";
import { ControlAddressError, ControlCommandError, ControlProtocolError, parseControlAddress, type ControlAddress } from "../../vmm/control/protocol.js";

const USAGE = `usage: nicvisor control [--timeout S] unix:PATH|tcp:HOST:PORT COMMAND [JSON-ARGUMENTS]

  Runs one command on a running machine's control socket (nicvisor run --control ADDRESS),
  prints its result as JSON and exits 0; on an error prints it to stderr and exits 1.

  COMMAND           e.g. query-status, stop, cont, quit, query-commands
  JSON-ARGUMENTS    the command's arguments as one JSON object, e.g. '{"to":"emulated"}'
  --timeout S       seconds to wait for the connection and the answer (default 30)

  example: nicvisor control unix:/tmp/vm.sock query-status
           {"running":true,"status":"running"}`;

interface ControlArgs {
  address: ControlAddress;
  command: string;
  args?: Record<string, unknown>;
  timeoutS: number;
}

/** Parses `nicvisor control` arguments. @throws UsageError */
export function parseControlArgs(argv: string[]): ControlArgs {
  const pos: string[] = [];
  let timeoutS = 30;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--timeout" || a.startsWith("--timeout=")) {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n <= 0) throw new UsageError("--timeout must be a positive number of seconds");
      timeoutS = n;
    } else if (a.startsWith("--") && pos.length < 2) {
      throw new UsageError(`unknown argument '${a}'`);
    } else pos.push(a);
  }
  if (pos.length < 2) throw new UsageError("needs an ADDRESS and a COMMAND");
  if (pos.length > 3) throw new UsageError(`too many arguments (the arguments go in one JSON object): '${pos[3]}'`);
  let address: ControlAddress;
  try {
    address = parseControlAddress(pos[0]!);
  } catch (e) {
    if (e instanceof ControlAddressError) throw new UsageError(e.message);
    throw e;
  }
  const out: ControlArgs = { address, command: pos[1]!, timeoutS };
  if (pos[2] !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(pos[2]);
    } catch (e) {
      throw new UsageError(`JSON-ARGUMENTS is not JSON: ${(e as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError("JSON-ARGUMENTS must be a JSON object, e.g. '{\"to\":\"emulated\"}'");
    out.args = parsed as Record<string, unknown>;
  }
  return out;
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const a = parseControlArgs(argv);
  const { connectControl, ControlSocketError } = await import("../../vmm/control/socket.js");
  const timeoutMs = a.timeoutS * 1000;
  let client: Awaited<ReturnType<typeof connectControl>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    client = await connectControl(a.address, { timeoutMs });
    const c = client;
    const result = await Promise.race([
      c.execute(a.command, a.args),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ControlProtocolError(`no answer to ${a.command} within ${a.timeoutS} s`)), timeoutMs);
      }),
    ]);
    io.out(JSON.stringify(result) + "\n");
    return 0;
  } catch (e) {
    if (e instanceof ControlCommandError) {
      io.err(`nicvisor control: ${a.command}: ${e.desc} (${e.errorClass})\n`);
      return 1;
    }
    if (e instanceof ControlSocketError || e instanceof ControlProtocolError) {
      io.err(`nicvisor control: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    client?.close();
  }
}

/** The `control` command. */
export const command: CliCommand = {
  name: "control",
  summary: "run one command on a running machine's control socket (nicvisor run --control)",
  usage: USAGE,
  run,
};
