/**
 * Real-guest test harness: boot a Linux guest on a {@link Machine} (or resume a snapshot), wait for
 * its ready marker, run shell commands over the serial console and collect their output and exit
 * status, take snapshots (v86's state and nicvisor's device state together, versioned).
 *
 * Always dispose a VM, also when a test fails:
 * ```ts
 * const vm = await GuestVm.boot({ kernel, initrd, append: "console=ttyS0" });
 * try {
 *   await vm.waitReady();
 *   const { output, status } = await vm.exec("lspci -vvv");
 * } finally {
 *   await vm.dispose();
 * }
 * // or, where `await using` is available:
 * await using vm2 = await GuestVm.boot({ kernel, initrd });
 * ```
 * The guest's init must print {@link DEFAULT_READY_MARKER} (or `readyMarker`) on ttyS0 and then run
 * a POSIX shell on ttyS0, preferably with echo off (`stty -echo`).
 *
 * Uses Node's filesystem only when `bios`/`engine` are not given (to locate SeaBIOS and v86).
 * @module
 */
import type { StopReason } from "../cpu/backend.js";
import { Machine } from "../machine.js";
import { MAX_ENGINE_EXTRA, SnapshotError, fnv1a, type GuestSnapshot } from "./runner-snapshot.js";

export { MAX_ENGINE_EXTRA, SnapshotError, type GuestSnapshot };
import type { PlatformBus, PlatformEnv } from "../machine-platform.js";

/** The default ready marker. */
export const DEFAULT_READY_MARKER = "@@NICVISOR-READY@@";

/** Most console text kept in memory (older text is dropped). */
const CONSOLE_CAP = 1 << 20;

/** A harness wait ran out of time. Carries the console tail. */
export class GuestTimeoutError extends Error {
  override readonly name = "GuestTimeoutError";
  constructor(
    what: string,
    /** The last 2000 characters of console output. */
    readonly consoleTail: string,
  ) {
    super(`${what}; console tail:\n${consoleTail}`);
  }
}

/** The guest stopped (halted, reset, stalled) while the harness was waiting. */
export class GuestStoppedError extends Error {
  override readonly name = "GuestStoppedError";
  constructor(
    /** Why. */
    readonly reason: StopReason,
    /** The console tail. */
    readonly consoleTail: string,
  ) {
    super(`guest stopped (${reason.kind}${"detail" in reason ? ": " + reason.detail : ""}); console tail:\n${consoleTail}`);
  }
}

/** Engine files; found automatically in Node when omitted. */
export interface EngineFiles {
  /** SeaBIOS image. */
  bios: Uint8Array;
  /** VGA BIOS (optional). */
  vgaBios?: Uint8Array;
  /** v86 wasm path and package version. */
  engine: { wasmPath: string; v86Version: string };
}

/** Options shared by {@link GuestVm.boot} and {@link GuestVm.restore}. */
export interface GuestCommonOptions {
  /** Engine files (default: located on this host). */
  files?: EngineFiles;
  /** Builds the PCI platform (default: the machine's stand-in). */
  platform?: (env: PlatformEnv) => PlatformBus;
  /** Echo console bytes here as they arrive. */
  onConsole?: (text: string) => void;
  /**
   * The nice value for this process's helper threads (V8's compiler and GC workers), so that they
   * do not take the guest CPU's core: see `lowerHelperThreads` in `nicvisor/vmm/host`. Default 19,
   * on Linux; `false` leaves thread priorities alone.
   */
  helperNice?: number | false;
  /**
   * Ask the host for transparent huge pages for guest RAM (`adviseHugePages` in
   * `nicvisor/vmm/host`), as QEMU does. Default true, on Linux.
   */
  hugePages?: boolean;
}

/** Options of {@link GuestVm.boot}. */
export interface GuestBootOptions extends GuestCommonOptions {
  /** bzImage. */
  kernel: Uint8Array;
  /** The kernel's decompressed vmlinux, to skip the guest's decompressor (see `MachineOptions.kernelElf`). */
  kernelElf?: Uint8Array;
  /** initramfs. */
  initrd: Uint8Array;
  /** Kernel arguments (the machine adds its platform's own). */
  append?: string;
  /** RAM in MiB (default 256). */
  memMiB?: number;
  /** What init prints when ready (default {@link DEFAULT_READY_MARKER}). */
  readyMarker?: string;
  /** ACPI tables to place in RAM and their kernel arguments (see `MachineOptions.acpi`). */
  acpi?: { blob: Uint8Array; base: number; kernelArgs: string } | false;
}

/** Result of {@link GuestVm.exec}. */
export interface ExecResult {
  /** Combined stdout and stderr, with `\r\n` turned into `\n`. */
  output: string;
  /** Exit status of the command. */
  status: number;
}

/** Lowers the helper threads' priority once per process and nice value (Node on Linux only). */
const lowered = new Set<number>();
async function lowerHelpers(nice: number | false | undefined): Promise<void> {
  if (nice === false || typeof process === "undefined" || process.platform !== "linux") return;
  const { lowerHelperThreads, DEFAULT_HELPER_NICE } = await import("../host/threads.js");
  const n = nice ?? DEFAULT_HELPER_NICE;
  if (lowered.has(n)) return;
  lowered.add(n);
  await lowerHelperThreads(n);
}

/** The RAM advice for `opts` (Node on Linux only). */
async function ramAdvice(opts: GuestCommonOptions): Promise<((ram: Uint8Array) => unknown) | undefined> {
  if (opts.hugePages === false || typeof process === "undefined" || process.platform !== "linux") return undefined;
  const { adviseHugePages } = await import("../host/memory.js");
  return adviseHugePages;
}

async function locateFiles(): Promise<EngineFiles> {
  const { requireV86Assets } = await import("../host/v86-assets.js");
  const { readFileSync } = await import("node:fs");
  const a = requireV86Assets();
  const files: EngineFiles = { bios: readFileSync(a.biosPath), engine: { wasmPath: a.wasmPath, v86Version: a.v86Version } };
  if (a.vgaBiosPath !== undefined) files.vgaBios = readFileSync(a.vgaBiosPath);
  return files;
}

/** A running guest under test. */
export class GuestVm {
  /** The machine. */
  readonly machine: Machine;
  private text = "";
  private dropped = 0;
  private readonly waiters = new Set<() => void>();
  private seq = 0;
  private ready = false;
  private disposed = false;
  private readonly memMiB: number;
  private readonly readyMarker: string;

  private constructor(machine: Machine, memMiB: number, readyMarker: string, onConsole: ((t: string) => void) | undefined) {
    this.machine = machine;
    this.memMiB = memMiB;
    this.readyMarker = readyMarker;
    const dec = new TextDecoder("latin1");
    machine.onSerial((b) => {
      const ch = dec.decode(new Uint8Array([b]));
      this.text += ch;
      if (this.text.length > CONSOLE_CAP * 2) {
        this.dropped += this.text.length - CONSOLE_CAP;
        this.text = this.text.slice(this.text.length - CONSOLE_CAP);
      }
      onConsole?.(ch);
      // Every marker the harness waits for ends a line.
      if (b === 0x0a) for (const w of [...this.waiters]) w();
    });
    machine.onStop(() => {
      for (const w of [...this.waiters]) w();
    });
  }

  /** Boots a guest (returns once the engine runs; see {@link GuestVm.waitReady}). */
  static async boot(opts: GuestBootOptions): Promise<GuestVm> {
    await lowerHelpers(opts.helperNice);
    const files = opts.files ?? (await locateFiles());
    const memMiB = opts.memMiB ?? 256;
    const mopts: Parameters<typeof Machine.create>[0] = { bios: files.bios, engine: files.engine, kernel: opts.kernel, initrd: opts.initrd, memMiB };
    if (files.vgaBios !== undefined) mopts.vgaBios = files.vgaBios;
    if (opts.append !== undefined) mopts.append = opts.append;
    if (opts.platform !== undefined) mopts.platform = opts.platform;
    if (opts.acpi !== undefined) mopts.acpi = opts.acpi;
    if (opts.kernelElf !== undefined) mopts.kernelElf = opts.kernelElf;
    const advise = await ramAdvice(opts);
    if (advise !== undefined) mopts.adviseRam = advise;
    const m = await Machine.create(mopts);
    const vm = new GuestVm(m, memMiB, opts.readyMarker ?? DEFAULT_READY_MARKER, opts.onConsole);
    await m.start();
    return vm;
  }

  /**
   * Resumes a snapshot from {@link GuestVm.snapshot}. The VM is ready at once.
   * @throws SnapshotError on a malformed snapshot.
   */
  static async restore(snap: GuestSnapshot, opts: GuestCommonOptions = {}): Promise<GuestVm> {
    if (typeof snap !== "object" || snap === null || snap.magic !== "nicvisor-guest-snapshot") throw new SnapshotError("not a nicvisor guest snapshot");
    if (snap.version !== 2) throw new SnapshotError(`unsupported snapshot version ${String(snap.version)}`);
    if (!Number.isInteger(snap.memMiB) || snap.memMiB < 32 || snap.memMiB > 2048) throw new SnapshotError("bad memMiB");
    if (!(snap.engine instanceof Uint8Array) || snap.engine.length > snap.memMiB * (1 << 20) + MAX_ENGINE_EXTRA) throw new SnapshotError("bad engine state size");
    if (fnv1a(snap.engine) !== snap.engineChecksum) throw new SnapshotError("engine state checksum mismatch");
    if (typeof snap.readyMarker !== "string") throw new SnapshotError("bad ready marker");
    if (!(snap.devices instanceof Uint8Array)) throw new SnapshotError("bad device state");
    await lowerHelpers(opts.helperNice);
    const files = opts.files ?? (await locateFiles());
    const mopts: Parameters<typeof Machine.create>[0] = { bios: files.bios, engine: files.engine, memMiB: snap.memMiB, engineState: snap.engine };
    if (files.vgaBios !== undefined) mopts.vgaBios = files.vgaBios;
    if (opts.platform !== undefined) mopts.platform = opts.platform;
    const advise = await ramAdvice(opts);
    if (advise !== undefined) mopts.adviseRam = advise;
    const m = await Machine.create(mopts);
    try {
      m.restoreBytes(snap.devices);
    } catch (e) {
      await m.stop();
      throw new SnapshotError(`machine state rejected: ${(e as Error).message}`);
    }
    const vm = new GuestVm(m, snap.memMiB, snap.readyMarker, opts.onConsole);
    vm.ready = true;
    await m.start();
    return vm;
  }

  /**
   * A paused machine with nothing loaded, waiting for an incoming live migration (see
   * `migration/destination.ts`): run a `MigrationDestination` on `vm.machine`; its COMMIT starts
   * the guest, which is then ready at once (the shell that ran on the source answers here).
   * Dispose it if the migration fails (the destination has already stopped the machine).
   */
  static async incoming(opts: GuestCommonOptions & { memMiB?: number; readyMarker?: string } = {}): Promise<GuestVm> {
    await lowerHelpers(opts.helperNice);
    const files = opts.files ?? (await locateFiles());
    const memMiB = opts.memMiB ?? 256;
    const mopts: Parameters<typeof Machine.create>[0] = { bios: files.bios, engine: files.engine, memMiB };
    if (files.vgaBios !== undefined) mopts.vgaBios = files.vgaBios;
    if (opts.platform !== undefined) mopts.platform = opts.platform;
    const advise = await ramAdvice(opts);
    if (advise !== undefined) mopts.adviseRam = advise;
    const m = await Machine.create(mopts);
    const vm = new GuestVm(m, memMiB, opts.readyMarker ?? DEFAULT_READY_MARKER, opts.onConsole);
    vm.ready = true;
    return vm;
  }

  /** All console output so far (capped at about 1 MiB; older text is dropped). */
  get console(): string {
    return this.text;
  }

  private tail(): string {
    return this.text.slice(-2000);
  }

  /** Waits until `pred(console)` returns a value other than undefined. */
  private waitFor<T>(what: string, timeoutMs: number, pred: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = (): void => {
        const stop = this.machine.stopReason;
        let v: T | undefined;
        try {
          v = pred();
        } catch (e) {
          done();
          reject(e as Error);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (stop !== undefined) {
          done();
          reject(new GuestStoppedError(stop, this.tail()));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new GuestTimeoutError(`${what}: no answer within ${timeoutMs} ms`, this.tail()));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the ready marker (default timeout 120 s). */
  async waitReady(timeoutMs = 120_000): Promise<void> {
    if (this.ready) return;
    await this.waitFor("waiting for the ready marker", timeoutMs, () => (this.text.includes(this.readyMarker) ? true : undefined));
    this.ready = true;
  }

  /**
   * Runs `cmd` in the guest shell; resolves to its output and exit status.
   * @throws GuestTimeoutError after `timeoutMs` (default 30 s); GuestStoppedError if the guest stops.
   */
  async exec(cmd: string, opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (this.disposed) throw new GuestStoppedError({ kind: "stopped" }, this.tail());
    const id = `${Date.now().toString(36)}x${this.seq++}`;
    const begin = `@@B${id}@@`;
    // Markers are split with '' in the command so an echoed command line never matches them.
    const line = `echo '@@B${id}'@@; ( ${cmd}\n) </dev/null 2>&1; echo '@@E${id}'@@ $?\n`;
    // Positions are absolute (counting console text already dropped), so trimming cannot shift them.
    const startAbs = this.dropped + this.text.length;
    let beginAbs = -1;
    let scanAbs = startAbs;
    const endTag = `@@E${id}@@ `;
    this.machine.cpu.serialSend(line);
    return this.waitFor(`exec ${JSON.stringify(cmd.slice(0, 80))}`, opts.timeoutMs ?? 30_000, () => {
      if (beginAbs < 0) {
        const b = this.text.indexOf(begin, Math.max(0, startAbs - this.dropped));
        if (b < 0) return undefined;
        beginAbs = this.dropped + b + begin.length;
        scanAbs = beginAbs;
      }
      // Only the text that arrived since the last look is searched (minus a tag's length).
      const e = this.text.indexOf(endTag, Math.max(0, scanAbs - this.dropped - endTag.length));
      scanAbs = this.dropped + this.text.length;
      if (e < 0) return undefined;
      const m = /^(\d+)\r?\n/.exec(this.text.slice(e + endTag.length, e + endTag.length + 16));
      if (m === null) {
        scanAbs = this.dropped + e; // the status line is not complete yet
        return undefined;
      }
      const from = Math.max(0, beginAbs - this.dropped);
      const output = this.text.slice(from, e).replace(/\r\n/g, "\n").replace(/^\n/, "");
      return { output, status: Number(m[1]) };
    });
  }

  /** The guest kernel log (`dmesg`). */
  async dmesg(): Promise<string> {
    return (await this.exec("dmesg")).output;
  }

  /** Pauses the guest, saves engine + machine state, and resumes. */
  async snapshot(): Promise<GuestSnapshot> {
    await this.machine.pause();
    try {
      const engine = await this.machine.cpu.saveState();
      return {
        magic: "nicvisor-guest-snapshot",
        version: 2,
        memMiB: this.memMiB,
        readyMarker: this.readyMarker,
        engine,
        engineChecksum: fnv1a(engine),
        devices: this.machine.saveBytes(),
      };
    } finally {
      await this.machine.start();
    }
  }

  /** Stops the guest and frees the engine. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.machine.stop();
  }
}

// `await using vm = ...` support, installed at run time where the runtime has the symbol, so that
// the published types do not need a lib with `Symbol.asyncDispose` (ESNext) to type-check.
const asyncDispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
if (asyncDispose !== undefined) {
  Object.defineProperty(GuestVm.prototype, asyncDispose, {
    value: function (this: GuestVm): Promise<void> {
      return this.dispose();
    },
  });
}
