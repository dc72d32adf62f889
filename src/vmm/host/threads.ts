/**
 * The guest's CPU runs on Node's main thread: v86 executes guest code there, in slices between
 * event-loop turns. Node also starts V8's helper threads (four by default, whatever the core
 * count), and during a boot they are busy: they compile the wasm modules v86 generates for hot
 * guest code, tier them up, and run the concurrent GC. On a host with few cores they take turns
 * with the main thread on its core. Measured on a 2-core host: a 4.2 s boot gave the main thread
 * only 2.6 s of CPU.
 *
 * {@link lowerHelperThreads} raises the nice value of every thread of this process except the
 * main one, so that the helpers use idle cores but yield the vCPU's core. This is the same policy
 * as starting Node with `--v8-pool-size=1` on a 2-core host, but it needs no restart and adapts to
 * the core count. Threads created later by the main thread (libuv's pool, koffi's async worker)
 * inherit the main thread's nice value and are not lowered.
 *
 * Linux only (per-thread `setpriority(2)` through koffi). Raising a nice value needs no privilege.
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";

/** The nice value {@link lowerHelperThreads} gives helper threads by default. */
export const DEFAULT_HELPER_NICE = 19;

/** What {@link lowerHelperThreads} did. */
export interface HelperThreadsResult {
  /** Threads whose nice value was raised now. */
  lowered: number;
  /** Threads already at `nice` or above. */
  already: number;
  /** Why nothing could be done (not Linux, koffi or /proc missing, setpriority failing). */
  skipped?: string;
}

type SetPriority = (which: number, who: number, prio: number) => number;
let setpriority: SetPriority | undefined;

async function loadSetPriority(): Promise<SetPriority> {
  if (setpriority === undefined) {
    const koffi = (await import("koffi")).default;
    const fn = koffi.load("libc.so.6").func("int setpriority(int which, int who, int prio)");
    setpriority = (which, who, prio) => fn(which, who, prio) as number;
  }
  return setpriority;
}

/** A thread's nice value from `/proc/self/task/<tid>/stat` (field 19), or undefined. */
export function threadNice(tid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const nice = Number(rest[16]);
    return Number.isInteger(nice) ? nice : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Raises the nice value of every thread of this process other than the main thread to `nice`
 * (1..19), leaving threads that are already that low alone. Never throws.
 */
export async function lowerHelperThreads(nice = DEFAULT_HELPER_NICE): Promise<HelperThreadsResult> {
  if (process.platform !== "linux") return { lowered: 0, already: 0, skipped: `not Linux (${process.platform})` };
  if (!Number.isInteger(nice) || nice < 1 || nice > 19) return { lowered: 0, already: 0, skipped: `nice ${nice} is not in 1..19` };
  let tids: number[];
  try {
    tids = readdirSync("/proc/self/task").map(Number).filter((t) => Number.isInteger(t) && t !== process.pid);
  } catch (e) {
    return { lowered: 0, already: 0, skipped: `cannot list /proc/self/task: ${(e as Error).message}` };
  }
  let set: SetPriority;
  try {
    set = await loadSetPriority();
  } catch (e) {
    return { lowered: 0, already: 0, skipped: `koffi unavailable: ${(e as Error).message}` };
  }
  const PRIO_PROCESS = 0; // with a thread id, Linux applies it to that thread only
  let lowered = 0;
  let already = 0;
  let failed = 0;
  for (const tid of tids) {
    const cur = threadNice(tid);
    if (cur === undefined) continue; // exited meanwhile
    if (cur >= nice) {
      already++;
      continue;
    }
    if (set(PRIO_PROCESS, tid, nice) === 0) lowered++;
    else failed++;
  }
  const r: HelperThreadsResult = { lowered, already };
  if (lowered === 0 && failed > 0) r.skipped = `setpriority failed for ${failed} thread(s)`;
  return r;
}
