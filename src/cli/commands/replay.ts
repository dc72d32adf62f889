/**
 * `nicvisor replay FILE`: replays a driver trace (from `nicvisor run --trace`) against a fresh
 * device model, without a guest, and reports the first access whose answer differs.
 * Exit status: 0 clean, 1 differs, 2 a bad trace (or usage).
 * @module
 */
import { readFileSync } from "node:fs";
import type { CliCommand, CliIo } from "../command.js";
import { UsageError } from "../command.js";

const USAGE = `usage: nicvisor replay FILE

  Replays the guest's side of a driver trace (nicvisor run --trace FILE) against a fresh platform
  of the recorded kind, and compares every read's answer, DMA access, interrupt and frame with the
  trace. Prints "clean" with counts, or the first difference (event index, time, kind, register,
  expected and got). FILE may be gzipped. Exit status: 0 clean, 1 differs, 2 bad trace.`;

async function run(argv: string[], io: CliIo): Promise<number> {
  if (argv.length !== 1 || argv[0]!.startsWith("-")) throw new UsageError("replay takes one trace file");
  const file = argv[0]!;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
    // A gzipped trace (as test/traces ships them) is read as well.
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = (await import("node:zlib")).gunzipSync(bytes);
  } catch (e) {
    io.err(`nicvisor replay: cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const { TraceError } = await import("../../trace/format.js");
  const { replayTrace, formatReplayResult } = await import("../../trace/replay.js");
  try {
    const r = replayTrace(bytes);
    io.out(formatReplayResult(r));
    return r.status === "clean" ? 0 : 1;
  } catch (e) {
    if (e instanceof TraceError) {
      io.err(`nicvisor replay: bad trace ${file}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

/** The `replay` command. */
export const command: CliCommand = {
  name: "replay",
  summary: "replay a driver trace (run --trace) against a fresh device model; report the first difference",
  usage: USAGE,
  run,
};
