/**
 * Driver traces (`nicvisor/trace`): record what crosses a PCI platform's boundary while a guest
 * drives it, and replay the guest's side against a fresh device model without any guest,
 * reporting the first difference. Format: docs/trace.md.
 *
 * Platform-neutral.
 * @example
 * ```ts
 * import { replayTrace, formatReplayResult } from "nicvisor/trace";
 * const r = replayTrace(bytes);
 * console.log(formatReplayResult(r));
 * ```
 * @module
 */
export { TRACE_VERSION, TRACE_MAGIC, EVENT_CODES, TraceError, TraceWriter, decodeTrace, encodeTrace, parseTraceHeader, isInput } from "./format.js";
export type { Trace, TraceEvent, TraceHeader, TracePlatform, AccessEvent, WorldEvent, DeviceEvent } from "./format.js";
export { TraceRecorder, recordPlatform } from "./record.js";
export { buildTracePlatform, macString } from "./platform.js";
export type { TracePlatformWiring } from "./platform.js";
export { replayTrace, formatReplayResult, describeEvent } from "./replay.js";
export type { ReplayDifference, ReplayOptions, ReplayResult } from "./replay.js";
export { createTraceBench } from "./bench.js";
export type { TraceBench } from "./bench.js";
