/**
 * Profiling helpers for the real-guest benches (`bench/iperf.ts` with `IPERF_PROFILE=<dir>`):
 *
 * - guest-IP sampling: a host timer reads the guest's instruction pointer every millisecond.
 *   Node runs timers between v86's run slices, where v86 keeps the pointer exact, so each sample
 *   is where the guest was when a slice ended (slices end on time, not on guest events). Samples
 *   are mapped to kernel and module functions with the guest's own `/proc/kallsyms` (the image's
 *   vmlinux is stripped). A halted CPU (HLT, the idle loop) is counted apart. v86 ends a slice
 *   to take an interrupt, so many samples sit on the first instruction of an interrupt entry
 *   (`asm_sysvec_apic_timer_interrupt` and the like); those are charged to the code the interrupt
 *   stopped, whose EIP and CS the CPU has just pushed at ESP (user space when CS is ring 3).
 * - a host CPU profile (V8's sampling profiler through `node:inspector`) of one stretch of work,
 *   written as a `.cpuprofile` for `scripts/cpuprofile-summary.mjs`.
 * @module
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { gunzipSync } from "node:zlib";

/** Stands for any user-space address in {@link GuestIpSampler.hits}. */
const USER_IP = 1;

/** A guest text symbol at `addr` (sorted by address in a table). */
export interface GuestSym {
  addr: number;
  name: string;
}

/** Samples a guest's instruction pointer on a host timer (see the module comment). */
export class GuestIpSampler {
  /** Samples per instruction pointer (running guest only). */
  readonly hits = new Map<number, number>();
  /** Samples taken with the CPU halted. */
  halted = 0;
  /** Samples on an interrupt entry, charged to the interrupted code. */
  atEntry = 0;
  /** All samples. */
  total = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param read - the guest's state now
   * @param entries - addresses of interrupt entry points (kernel `asm_*` symbols)
   * @param readPhys - reads guest-physical memory (for the interrupted EIP on the stack)
   * @param pageOffset - the kernel's direct-map base (i386 Linux: 0xC0000000)
   */
  constructor(
    private readonly read: () => { ip: number; halted: boolean; sp: number },
    private readonly entries: ReadonlySet<number> = new Set(),
    private readonly readPhys?: (addr: number, len: number) => Uint8Array | undefined,
    private readonly pageOffset = 0xc000_0000,
  ) {}

  /** Starts sampling every `everyMs`. */
  start(everyMs = 1): void {
    this.#timer ??= setInterval(() => {
      const s = this.read();
      this.total++;
      if (s.halted) return void this.halted++;
      let ip = s.ip;
      if (this.entries.has(ip) && this.readPhys !== undefined && s.sp >= this.pageOffset) {
        const w = this.readPhys(s.sp - this.pageOffset, 8);
        if (w !== undefined) {
          const dv = new DataView(w.buffer, w.byteOffset, 8);
          const eip = dv.getUint32(0, true);
          ip = (dv.getUint32(4, true) & 3) === 3 ? USER_IP : eip;
          this.atEntry++;
        }
      }
      this.hits.set(ip, (this.hits.get(ip) ?? 0) + 1);
    }, everyMs);
  }

  /** Stops sampling. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * The guest command whose output {@link guestSymbols} needs: the text symbols of `/proc/kallsyms`
 * (the image's vmlinux is stripped), gzipped and in base64 so that the serial console carries
 * about 0.4 MB rather than 2 MB.
 */
export const KALLSYMS_CMD = "grep ' [tT] ' /proc/kallsyms | gzip -1 | base64 -w0";

/** The guest's text symbols from {@link KALLSYMS_CMD}'s output, sorted by address. */
export function guestSymbols(kallsymsB64: string): GuestSym[] {
  const text = gunzipSync(Buffer.from(kallsymsB64.replace(/[^A-Za-z0-9+/=]/g, ""), "base64")).toString("latin1");
  const all: GuestSym[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+) [tT] (\S+)(?:\s+\[(\S+)\])?/.exec(line.trim());
    if (m === null) continue;
    const addr = parseInt(m[1]!, 16);
    if (addr !== 0) all.push({ addr, name: m[3] === undefined ? m[2]! : `${m[2]} [${m[3]}]` });
  }
  all.sort((a, b) => a.addr - b.addr);
  return all;
}

/** Addresses of the interrupt entry points among `syms` (the kernel's `asm_*` functions). */
export function interruptEntries(syms: GuestSym[]): Set<number> {
  return new Set(syms.filter((s) => s.name.startsWith("asm_")).map((s) => s.addr));
}

/** The `n` guest functions with most samples, as printable lines (share of all samples, halted included). */
export function topGuestFunctions(s: GuestIpSampler, syms: GuestSym[], n = 25): string[] {
  const byName = new Map<string, number>();
  for (const [ip, k] of s.hits) {
    let lo = 0;
    let hi = syms.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (syms[mid]!.addr <= ip) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const name = ip < 0xc000_0000 ? "(user space)" : at < 0 || ip - syms[at]!.addr > 1 << 20 ? `?${ip.toString(16)}` : syms[at]!.name;
    byName.set(name, (byName.get(name) ?? 0) + k);
  }
  const pct = (k: number): string => ((100 * k) / Math.max(1, s.total)).toFixed(1).padStart(5);
  const out = [`guest IP samples: ${s.total}, halted ${pct(s.halted)} %, on an interrupt entry (charged to the interrupted code) ${pct(s.atEntry)} %`];
  for (const [name, k] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, n)) out.push(`  ${pct(k)} %  ${name}`);
  return out;
}

/** Runs `f` under V8's CPU profiler (sampling every `intervalUs`) and writes the profile to `file`. */
export async function withHostProfile<T>(file: string, f: () => Promise<T>, intervalUs = 500): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("Profiler.start");
  try {
    return await f();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  }
}
