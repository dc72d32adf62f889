/**
 * {@link CpuBackend} on v86 (npm `v86`, pinned). v86 is the engine, not the owner of the platform:
 * its NICs are off, its broken PIIX4 ACPI hotplug ports (0xAE00-0xAE0F) are served as empty, and nicvisor takes over the PCI configuration ports 0xCF8-0xCFF, which hides v86's own PCI
 * functions (PIIX3, IDE, VGA) from the guest. The legacy devices behind them keep working on their
 * fixed ports.
 *
 * Platform-neutral: the caller supplies the wasm location and the images.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import type { AccessSize, CpuBackend, CpuBootConfig, MmioHandler, PortHandler, StopReason } from "./backend.js";
import { CpuBackendError } from "./backend.js";
import { V86MsiAdapter, V86_PINNED_VERSION } from "./v86-msi.js";

/** v86's MMIO registration granule: 128 KiB. */
export const V86_MMIO_GRANULE = 0x20000;

/** Ranges v86 serves inside wasm before JS sees them; nicvisor MMIO must stay clear of them. */
export const V86_RESERVED_MMIO: ReadonlyArray<readonly [number, number]> = [
  [0xe0000000, 0xe8000000], // VGA linear framebuffer (up to 128 MiB)
  [0xfec00000, 0xfec01000], // IOAPIC
  [0xfee00000, 0xfee01000], // LAPIC
];

/** Options of {@link V86Backend.create}. */
export interface V86BackendOptions extends CpuBootConfig {
  /** Location of `v86.wasm` (a path in Node, a URL in browsers). */
  wasmPath: string;
  /** The installed v86 package version (checked against the pinned one). */
  v86Version: string;
  /** Milliseconds without a retired instruction before the guest counts as stalled (default 0: off). */
  stallMs?: number;
  /**
   * Called once with guest RAM (inside v86's wasm memory) before the kernel and initrd are
   * written, e.g. to ask the host for huge pages (`adviseHugePages` in `nicvisor/vmm/host`).
   */
  adviseRam?: (ram: Uint8Array) => unknown;
}

/**
 * The VGA's memory. v86 keeps it in its engine state, so every snapshot and every migration's
 * stop copies it: at v86's default 8 MiB that was 8 MiB of zeros and about 25 ms to save and 25 ms
 * to load at a migration's stop. Guests here use the serial console, and 256 KiB (v86's smallest)
 * still holds the VGA planes the text mode and the VGA BIOS use.
 */
export const V86_VGA_MEMORY_BYTES = 256 << 10;

/** Where the initrd is loaded (v86's own loader uses the same address). */
export const V86_INITRD_BASE = 64 << 20;
/** The bzImage setup header's `ramdisk_image` and `ramdisk_size` fields, in v86's copy of the setup code. */
const RAMDISK_FIELDS = 0x80000 + 0x218;

interface V86Io {
  register_read(port: number, dev: object, r8: (p: number) => number, r16: (p: number) => number, r32: (p: number) => number): void;
  register_write(port: number, dev: object, w8: (v: number) => void, w16: (v: number) => void, w32: (v: number) => void): void;
  mmap_register(addr: number, size: number, r8: (a: number) => number, w8: (a: number, v: number) => void, r32: (a: number) => number, w32: (a: number, v: number) => void): void;
}

interface V86Cpu {
  io: V86Io;
  wasm_memory: { buffer: ArrayBuffer };
  /** Guest RAM (a Proxy standing for a Uint8Array view, see {@link V86Backend.create}). */
  mem8: Uint8Array;
  memory_size: Uint32Array;
  read_blob(offset: number, len: number): Uint8Array;
  write_blob(data: Uint8Array, offset: number): void;
  /** Tells the JIT that guest bytes `[start, end)` changed (what `write_blob` does before storing). */
  jit_dirty_cache(start: number, end: number): void;
  device_raise_irq(n: number): void;
  device_lower_irq(n: number): void;
  get_apic_addr(): number;
  handle_irqs(): void;
  reboot_internal(): void;
  instruction_counter: Uint32Array;
  /** Linear address of the next instruction (CS base + EIP), kept current between run slices. */
  instruction_pointer: Int32Array;
  /** 1 while the CPU sits in HLT. */
  in_hlt: Uint8Array;
  /** EAX..EDI. */
  reg32: Int32Array;
}

interface V86Emulator {
  /** `idle` is false exactly while v86's main loop executes guest code (v86 src/main.js do_tick). */
  v86: { cpu: V86Cpu; idle: boolean };
  add_listener(ev: string, cb: (arg: unknown) => void): void;
  remove_listener(ev: string, cb: (arg: unknown) => void): void;
  run(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
  save_state(): Promise<ArrayBuffer>;
  restore_state(s: ArrayBuffer): Promise<void>;
  serial0_send(s: string): void;
  is_running(): boolean;
}

function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  const b = new ArrayBuffer(u.byteLength);
  new Uint8Array(b).set(u);
  return b;
}

/** The parts of the WebAssembly API used here (the project's TypeScript config has no DOM typings). */
interface WasmApi {
  compile(bytes: Uint8Array | ArrayBuffer): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ exports: object }>;
}

/** v86's engine, compiled once per process and path (see {@link V86Backend.create}). */
const compiledEngines = new Map<string, Promise<object>>();

async function readEngineBytes(path: string): Promise<Uint8Array | ArrayBuffer> {
  if (isNode()) {
    const { readFile } = await import("node:fs/promises");
    return readFile(path);
  }
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

function isNode(): boolean {
  return typeof process !== "undefined" && process.versions?.node !== undefined;
}

/** The compiled engine for `path`, shared by every machine of this process; undefined without WebAssembly. */
function compiledEngine(path: string): Promise<object> | undefined {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wa === undefined) return undefined;
  let p = compiledEngines.get(path);
  if (p === undefined) {
    p = readEngineBytes(path).then((b) => wa.compile(b));
    compiledEngines.set(path, p);
    // A failed load is retried by the next machine (and this one falls back to v86's own loader).
    p.catch(() => compiledEngines.delete(path));
  }
  return p;
}

/** Which V8 tier compiles the wasm v86 generates for guest code (see {@link setGuestCodeTier}). */
export type GuestCodeTier = "baseline" | "optimizing";
let guestCodeTier: GuestCodeTier = "baseline";
let liftoffOnly = false;

/**
 * Chooses the V8 tier for the wasm that v86 generates from hot guest code, for this process.
 *
 * v86 turns each hot page of guest code into one wasm function, often 50-130 KB of bytecode with
 * irreducible control flow. V8's optimizing compiler (TurboFan) took 250-700 ms for each of them on
 * this project's 2-core host, 45 of them per Debian boot (about 11.6 s of compile time), and those
 * compiles kept the other core busy while newer guest code waited for its baseline compile and ran
 * in v86's interpreter meanwhile. With `"baseline"` (the default) only Liftoff compiles them; v86's
 * own engine, compiled before the switch, still tiers up. Measured in a fresh process: boot to the
 * ready marker 2.9-3.0 s instead of 3.9-4.2 s.
 *
 * Node only: it sets V8's `--liftoff-only` flag once v86's engine is compiled, which applies to
 * every WebAssembly module this process compiles afterwards (nicvisor's own checksum, RSS and
 * page-hash kernels are compiled when their modules load, which it makes sure of before that).
 * `"optimizing"` clears the flag again.
 */
export async function setGuestCodeTier(tier: GuestCodeTier): Promise<void> {
  guestCodeTier = tier;
  if (tier === "optimizing" && liftoffOnly) await setLiftoffOnly(false);
}

async function setLiftoffOnly(on: boolean): Promise<void> {
  if (!isNode() || liftoffOnly === on) return;
  try {
    const v8 = await import("node:v8");
    // nicvisor's own kernels compile when their files load; load them now if nothing has yet, so
    // that they are compiled before the switch and keep V8's tier-up.
    if (on) await Promise.all([import("../migration/page-hash.js"), import("../../devices/net/wasm/wasm-kernels.js")]);
    v8.setFlagsFromString(on ? "--liftoff-only" : "--no-liftoff-only");
    liftoffOnly = on;
  } catch {
    // A V8 that refuses flag changes after start keeps its default tiers: slower, not wrong.
  }
}

/**
 * A loader for v86's `wasm_fn` option that instantiates the process-wide compiled engine at
 * `wasmPath`, and applies the guest-code tier ({@link setGuestCodeTier}) once it is compiled.
 * v86 alone compiles v86.wasm anew for every instance; shared, the engine is compiled before the
 * tier switch (so it keeps V8's tier-up) and its optimized code serves every later machine.
 * Undefined without WebAssembly or when the engine cannot be loaded (v86 then loads it itself).
 * For code that creates v86 instances directly, e.g. a benchmark's baseline.
 */
export async function sharedEngineLoader(wasmPath: string): Promise<((imports: object) => Promise<object>) | undefined> {
  const wa = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  const engine = compiledEngine(wasmPath);
  const module = engine === undefined ? undefined : await engine.catch(() => undefined);
  if (module === undefined || wa === undefined) return undefined;
  if (guestCodeTier === "baseline") await setLiftoffOnly(true);
  return async (imports: object) => (await wa.instantiate(module, imports)).exports;
}

/**
 * `u`'s own buffer when `u` spans all of it (a large file read by Node does, and so does a saved
 * state), else a copy. Only for what v86 reads and never writes (BIOS, VGA BIOS, initrd, a state
 * to restore): v86 patches the bzImage's header in place, so that one always goes through
 * {@link toArrayBuffer}. Saves a 16 MB copy per boot and a 50-70 MB copy per restore.
 */
function readOnlyArrayBuffer(u: Uint8Array): ArrayBuffer {
  const b = u.buffer;
  return b instanceof ArrayBuffer && u.byteOffset === 0 && u.byteLength === b.byteLength ? b : toArrayBuffer(u);
}

/**
 * The v86 engine.
 * @example
 * ```ts
 * const cpu = await V86Backend.create({ memBytes: 256 << 20, bios, kernel, initrd, cmdline, wasmPath, v86Version });
 * cpu.registerPorts(0xcf8, 8, conf1);
 * cpu.onSerial((b) => process.stdout.write(String.fromCharCode(b)));
 * await cpu.start();
 * ```
 */
export class V86Backend implements CpuBackend {
  readonly mmioGranule = V86_MMIO_GRANULE;
  readonly memory: DmaSpace;
  readonly memBytes: number;
  /** v86's WebAssembly memory: guest RAM (`memory`'s views) lives in it. */
  get wasmMemory(): { readonly buffer: ArrayBuffer } {
    return this.cpu.wasm_memory;
  }
  /** The MSI adapter (exposed for tests and counters). */
  readonly msi: V86MsiAdapter;
  private readonly emu: V86Emulator;
  private readonly cpu: V86Cpu;
  private readonly serialSubs = new Set<(b: number) => void>();
  private readonly stopSubs = new Set<(r: StopReason) => void>();
  private readonly irqLevels = new Uint8Array(24);
  private stopped = false;
  private stallTimer: ReturnType<typeof setInterval> | undefined;
  private lastCount = -1;
  private readonly stallMs: number;
  private isRunning = false;
  /** Set once the guest ran or anything wrote guest RAM (RAM above 1 MiB is no longer known zero). */
  private hasRun = false;
  private readonly write16Ranges: Array<{ lo: number; hi: number; w16: (a: number, v: number) => void }> = [];
  /** A `handle_irqs()` call is queued for when v86's current run slice has returned (see {@link deliverMsi}). */
  private dispatchQueued = false;
  /** MSIs raised while v86 was executing guest code, whose dispatch request waited for the slice to end. */
  heldInterrupts = 0;
  readonly engineId: string;
  /** A plain view of guest RAM inside the engine's memory (see {@link ram}). */
  private ramView: Uint8Array | undefined;

  /**
   * Guest RAM as a plain view, rebuilt when the engine's memory buffer is a new one (growth
   * detaches the old) and after a restore (see {@link V86Backend.memory}).
   */
  private ram(): Uint8Array {
    const buf = this.cpu.wasm_memory.buffer;
    let v = this.ramView;
    if (v === undefined || v.buffer !== buf) v = this.ramView = new Uint8Array(buf, this.cpu.mem8.byteOffset, this.memBytes);
    return v;
  }

  /**
   * Where the guest is: the linear address of its next instruction (CS base + EIP), whether it
   * is halted, and its stack pointer (ESP). Exact between v86's run slices, which is where a host timer runs, so a timer calling
   * this samples the guest's instruction pointer (the guest-IP profile of `bench/guest-ip.ts`).
   */
  guestIp(): { ip: number; halted: boolean; sp: number } {
    const c = this.cpu;
    return { ip: (c.instruction_pointer[0] ?? 0) >>> 0, halted: c.in_hlt[0] === 1, sp: (c.reg32[4] ?? 0) >>> 0 };
  }

  private constructor(emu: V86Emulator, opts: V86BackendOptions) {
    this.emu = emu;
    this.cpu = emu.v86.cpu;
    this.memBytes = opts.memBytes;
    this.stallMs = opts.stallMs ?? 0;
    this.msi = new V86MsiAdapter(this.cpu, opts.v86Version);
    // The VGA memory size is part of the engine state's layout, so it is part of the engine's name.
    this.engineId = `v86 ${opts.v86Version} vga ${V86_VGA_MEMORY_BYTES >> 10} KiB`;
    const cpu = this.cpu;
    const memBytes = opts.memBytes;
    // v86's `mem8`, like all its views of engine memory, is a Proxy that builds a new typed array
    // and binds the method on every property access: one per `read_blob` and `write_blob`, that is
    // per DMA call (25-50 per frame for virtio-net with 64 KiB frames). DMA goes through one plain
    // view of guest RAM instead ({@link ram}); writes still tell the JIT which bytes changed, as
    // `write_blob` does.
    this.memory = {
      read: (addr: number, len: number): Uint8Array | undefined => {
        if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0 || addr + len > memBytes) return undefined;
        return this.ram().subarray(addr, addr + len);
      },
      write: (addr: number, data: Uint8Array): boolean => {
        if (!Number.isSafeInteger(addr) || addr < 0 || addr + data.length > memBytes) return false;
        this.hasRun = true;
        if (data.length > 0) {
          cpu.jit_dirty_cache(addr, addr + data.length);
          this.ram().set(data, addr);
        }
        return true;
      },
    };
    emu.add_listener("serial0-output-byte", (b) => {
      for (const cb of this.serialSubs) cb(b as number);
    });
    emu.add_listener("cpu-event-halt", () => {
      this.finish({ kind: "halted", detail: "the CPU executed HLT with interrupts disabled" });
    });
    // v86 resets the CPU on a triple fault and on a reset request (0xCF9/0x64): both end the run.
    const reboot = cpu.reboot_internal.bind(cpu);
    cpu.reboot_internal = () => {
      reboot();
      this.finish({ kind: "triple-fault", detail: "the guest reset the CPU (triple fault or reset request)" });
    };
  }

  /**
   * Creates a paused v86 instance with `cfg`'s images loaded.
   * @throws CpuBackendError if v86 cannot be loaded or its version is not the pinned one.
   */
  static async create(opts: V86BackendOptions): Promise<V86Backend> {
    if (!Number.isInteger(opts.memBytes) || opts.memBytes < (16 << 20) || opts.memBytes % (1 << 20) !== 0 || opts.memBytes > 0xb0000000) {
      throw new CpuBackendError(`memory size ${opts.memBytes} must be a multiple of 1 MiB between 16 MiB and 2816 MiB`);
    }
    const options: Record<string, unknown> = {
      wasm_path: opts.wasmPath,
      memory_size: opts.memBytes,
      vga_memory_size: V86_VGA_MEMORY_BYTES,
      bios: { buffer: readOnlyArrayBuffer(opts.bios) },
      autostart: false,
      disable_keyboard: true,
      disable_mouse: true,
      disable_speaker: true,
      // v86's LAPIC/IOAPIC exist only with its ACPI switched on (MSI needs the LAPIC). Its ACPI
      // PCI function is hidden behind nicvisor's conf1; its hotplug ports are covered below.
      acpi: true,
      net_device: { type: "none" },
      log_level: 0,
    };
    if (opts.vgaBios !== undefined) options["vga_bios"] = { buffer: readOnlyArrayBuffer(opts.vgaBios) };
    if (opts.kernel !== undefined) options["bzimage"] = { buffer: toArrayBuffer(opts.kernel) };
    // The initrd is written below, after `adviseRam`, rather than by v86's loader.
    const initrd = opts.kernel !== undefined && opts.state === undefined ? opts.initrd : undefined;
    if (initrd !== undefined && V86_INITRD_BASE + initrd.length > opts.memBytes) {
      throw new CpuBackendError(`the initrd (${initrd.length} bytes at 64 MiB) does not fit in ${opts.memBytes >> 20} MiB of RAM`);
    }
    if (opts.cmdline !== undefined) options["cmdline"] = opts.cmdline;
    const loader = await sharedEngineLoader(opts.wasmPath);
    if (loader !== undefined) options["wasm_fn"] = loader;
    // v86 is an optional dependency: only the VMM needs it, and it is loaded on first use.
    let V86: unknown;
    try {
      ({ V86 } = (await import("v86")) as { V86: unknown });
    } catch (e) {
      throw new CpuBackendError(`the v86 package is not installed (npm install v86@${V86_PINNED_VERSION}): ${(e as Error).message}`);
    }
    let emu: V86Emulator;
    try {
      emu = new (V86 as new (o: unknown) => V86Emulator)(options);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new CpuBackendError("v86 did not finish loading within 60 s")), 60_000);
        emu.add_listener("emulator-loaded", () => {
          clearTimeout(t);
          resolve();
        });
      });
    } catch (e) {
      if (e instanceof CpuBackendError) throw e;
      throw new CpuBackendError(`cannot start v86: ${(e as Error).message}`);
    }
    const b = new V86Backend(emu, opts);
    if (opts.adviseRam !== undefined) {
      try {
        // v86's `mem8` is a Proxy that re-creates the view on each access (it survives memory
        // growth); the advice gets a plain view of the same bytes.
        await opts.adviseRam(new Uint8Array(b.cpu.wasm_memory.buffer, b.cpu.mem8.byteOffset, b.memBytes));
      } catch {
        // Advice only.
      }
    }
    if (initrd !== undefined) b.loadInitrd(initrd);
    // v86's PIIX4 ACPI hotplug ports (0xAE00-0xAE0F) read all ones ("eject every slot"): serve
    // them as an empty, quiet hotplug controller instead.
    b.registerPorts(0xae00, 0x10, { read: () => 0, write: () => undefined });
    b.servePm1Control();
    b.patchPciBarHoles();
    b.hookWrite16();
    if (opts.state !== undefined) await b.restoreState(opts.state);
    return b;
  }

  /**
   * Places the initrd at {@link V86_INITRD_BASE} and points the setup header v86 loaded at 0x80000
   * to it (boot protocol `ramdisk_image`/`ramdisk_size`), as v86's own loader would.
   */
  private loadInitrd(initrd: Uint8Array): void {
    // v86 copies the setup code only for a kernel it accepted; without it there is no header.
    const magic = this.memory.read(0x80000 + 0x202, 4);
    if (magic === undefined || String.fromCharCode(...magic) !== "HdrS") return;
    this.memory.write(V86_INITRD_BASE, initrd);
    const f = new Uint8Array(8);
    const dv = new DataView(f.buffer);
    dv.setUint32(0, initrd.length === 0 ? 0 : V86_INITRD_BASE, true);
    dv.setUint32(4, initrd.length, true);
    this.memory.write(RAMDISK_FIELDS, f);
  }

  /**
   * PM1a control (port 0xB004, as nicvisor's FADT declares it). v86 only stores what is written;
   * here SCI_EN always reads set (the platform is always in ACPI mode), and SLP_EN with the S5
   * sleep type the DSDT's `\_S5` names (0) powers the machine off: the run ends with a
   * `poweroff` stop reason, as a guest's ACPI shutdown does on QEMU.
   */
  private servePm1Control(): void {
    let cnt = 1;
    this.registerPorts(0xb004, 2, {
      read: (port, size) => {
        const v = cnt & ~0x2000;
        return port === 0xb004 ? (size === 1 ? v & 0xff : v) : (v >>> 8) & 0xff;
      },
      write: (port, size, value) => {
        const v = port === 0xb004 ? (size === 1 ? (cnt & 0xff00) | value : value & 0xffff) : (cnt & 0xff) | ((value & 0xff) << 8);
        cnt = (v | 1) & 0xffff;
        const slpTyp = (cnt >>> 10) & 7;
        if ((cnt & 0x2000) !== 0 && slpTyp === 0) this.finish({ kind: "poweroff", detail: "the guest entered ACPI S5 (soft off)" });
      },
    });
  }

  /**
   * v86's IDE function (hidden from the guest here) declares absent channels as holes in its
   * `pci_bars` while their config words keep the I/O bit set; v86's own PCI `set_state` then
   * dereferences the hole and every restore fails. Fill holes with empty zero-size I/O BARs.
   */
  private patchPciBarHoles(): void {
    const pci = (this.cpu as unknown as { devices?: { pci?: { devices?: Array<{ pci_bars?: unknown[] } | undefined> } } }).devices?.pci;
    for (const d of pci?.devices ?? []) {
      const bars = d?.pci_bars;
      if (!Array.isArray(bars)) continue;
      for (let i = 0; i < bars.length; i++) if (bars[i] === undefined) bars[i] = { size: 0, original_bar: 1, entries: [] };
    }
  }

  get running(): boolean {
    return this.isRunning;
  }

  registerPorts(base: number, count: number, handler: PortHandler): void {
    if (!Number.isInteger(base) || !Number.isInteger(count) || base < 0 || count < 1 || base + count > 0x10000) {
      throw new CpuBackendError(`bad port range ${base}+${count}`);
    }
    // One device object for every port and both directions (v86 keys some state on it).
    const dev = { name: `nicvisor ports 0x${base.toString(16)}` };
    const safeRead = (p: number, s: AccessSize): number => {
      try {
        return handler.read(p, s) >>> 0;
      } catch {
        return s === 4 ? 0xffffffff : (1 << (s * 8)) - 1;
      }
    };
    const safeWrite = (p: number, s: AccessSize, v: number): void => {
      try {
        handler.write(p, s, s === 4 ? v >>> 0 : v & ((1 << (s * 8)) - 1));
      } catch {
        /* dropped: handlers must not throw */
      }
    };
    for (let p = base; p < base + count; p++) {
      this.cpu.io.register_read(p, dev, () => safeRead(p, 1), () => safeRead(p, 2), () => safeRead(p, 4));
      this.cpu.io.register_write(p, dev, (v) => safeWrite(p, 1, v), (v) => safeWrite(p, 2, v), (v) => safeWrite(p, 4, v));
    }
  }

  registerMmio(base: number, size: number, handler: MmioHandler): void {
    const g = V86_MMIO_GRANULE;
    if (!Number.isInteger(base) || !Number.isInteger(size) || base % g !== 0 || size % g !== 0 || size <= 0 || base + size > 0x1_0000_0000) {
      throw new CpuBackendError(`MMIO range 0x${base.toString(16)}+0x${size.toString(16)} is not 128 KiB aligned`);
    }
    if (base < this.memBytes) throw new CpuBackendError(`MMIO range 0x${base.toString(16)} overlaps RAM`);
    for (const [lo, hi] of V86_RESERVED_MMIO) {
      if (base < hi && base + size > lo) throw new CpuBackendError(`MMIO range 0x${base.toString(16)} overlaps v86's range 0x${lo.toString(16)}`);
    }
    const r = (a: number, s: AccessSize): number => {
      try {
        return handler.read(a >>> 0, s) >>> 0;
      } catch {
        return s === 4 ? 0xffffffff : 0xff;
      }
    };
    const w = (a: number, s: AccessSize, v: number): void => {
      try {
        handler.write(a >>> 0, s, s === 4 ? v >>> 0 : v & ((1 << (s * 8)) - 1));
      } catch {
        /* dropped */
      }
    };
    this.cpu.io.mmap_register(base, size, (a) => r(a, 1), (a, v) => w(a, 1, v), (a) => r(a, 4) | 0, (a, v) => w(a, 4, v));
    this.write16Ranges.push({ lo: base, hi: base + size, w16: (a, v) => w(a, 2, v) });
  }

  /**
   * v86 0.5.462's wasm core calls `cpu.mmap_write16` for a 16-bit MMIO store, and the JS default
   * splits it into two byte writes. Config space and virtio registers need the real 16-bit write,
   * so the instance method is replaced: stores into nicvisor's ranges arrive as one size-2 write,
   * everything else keeps v86's behaviour. (16-bit loads still arrive as two byte reads: v86 has no
   * 16-bit MMIO read hook.)
   */
  private hookWrite16(): void {
    const cpu = this.cpu as unknown as { mmap_write16?: (a: number, v: number) => void };
    const orig = cpu.mmap_write16;
    if (typeof orig !== "function") throw new CpuBackendError("v86 CPU object lacks mmap_write16 (unexpected v86 version)");
    const ranges = this.write16Ranges;
    cpu.mmap_write16 = function (this: unknown, a: number, v: number): void {
      const addr = a >>> 0;
      for (const rg of ranges) {
        if (addr >= rg.lo && addr + 1 < rg.hi) {
          rg.w16(addr, v & 0xffff);
          return;
        }
      }
      orig.call(this, a, v);
    };
  }

  setIrqLine(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 23) return;
    const was = this.irqLevels[irq] === 1;
    if (was === level) return;
    this.irqLevels[irq] = level ? 1 : 0;
    // INTx goes through v86's own PIC/IOAPIC entry points, the ones its built-in devices call from
    // inside port and MMIO handlers; they are applied at once. Holding a lower back would let a
    // level-triggered line fire again and again until the slice ends (a handler that masks INTx).
    if (level) this.cpu.device_raise_irq(irq);
    else this.cpu.device_lower_irq(irq);
  }

  /**
   * Makes the vector pending in the LAPIC at once and asks v86 to dispatch it, but never in the
   * middle of an instruction. A device raises an MSI from inside a guest MMIO or port access; had
   * v86 dispatched it there, the JIT-compiled block would go on with the interrupted code's
   * remaining instructions on the handler's EIP (seen as a jump into the middle of
   * `irq_entries_start` and a kernel oops). So while v86 runs a slice (`idle` false) one
   * `handle_irqs()` is queued for when the slice has returned; v86 itself also takes pending
   * vectors at its own batch boundaries. INTx ({@link setIrqLine}) needs none of this.
   */
  deliverMsi(address: number, data: number): boolean {
    if (!this.msi.deliver(address, data, false)) return false;
    if (this.emu.v86.idle !== false) {
      if (!this.stopped) this.cpu.handle_irqs();
      return true;
    }
    this.heldInterrupts++;
    if (!this.dispatchQueued) {
      this.dispatchQueued = true;
      queueMicrotask(() => {
        this.dispatchQueued = false;
        if (!this.stopped) this.cpu.handle_irqs();
      });
    }
    return true;
  }

  serialSend(data: string): void {
    this.emu.serial0_send(data);
  }

  onSerial(cb: (byte: number) => void): () => void {
    this.serialSubs.add(cb);
    return () => this.serialSubs.delete(cb);
  }

  onStop(cb: (reason: StopReason) => void): () => void {
    this.stopSubs.add(cb);
    return () => this.stopSubs.delete(cb);
  }

  nowNs(): number {
    return Math.round(globalThis.performance.now() * 1e6);
  }

  schedule(delayNs: number, cb: () => void): () => void {
    const t = setTimeout(cb, Math.max(0, delayNs) / 1e6);
    return () => clearTimeout(t);
  }

  async start(): Promise<void> {
    if (this.stopped) throw new CpuBackendError("engine already stopped");
    if (this.isRunning) return;
    this.isRunning = true;
    this.hasRun = true;
    await this.emu.run();
    if (this.stallMs > 0 && this.stallTimer === undefined) {
      this.lastCount = -1;
      this.stallTimer = setInterval(() => {
        const c = this.cpu.instruction_counter[0] ?? 0;
        if (c === this.lastCount && this.isRunning) {
          this.finish({ kind: "stalled", detail: `no instruction retired for ${this.stallMs} ms` });
        }
        this.lastCount = c;
      }, this.stallMs);
    }
  }

  async pause(): Promise<void> {
    this.clearStall();
    if (!this.isRunning) return;
    this.isRunning = false;
    await this.emu.stop();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.finish({ kind: "stopped" });
  }

  async saveState(): Promise<Uint8Array> {
    return new Uint8Array(await this.emu.save_state());
  }

  async restoreState(state: Uint8Array): Promise<void> {
    // v86 clears all of guest RAM before unpacking the saved pages, through a byte loop in wasm:
    // about 290 ms of a restore for 256 MiB, most of it the host committing pages that were never
    // touched. On an engine that has not run yet, RAM above 1 MiB is still the zero-filled memory
    // wasm allocated (only the BIOS images below 1 MiB were written, and no kernel is loaded when
    // restoring), so only that first MiB needs clearing. The JIT cache is cleared by v86 right
    // after the pages are unpacked.
    const cpu = this.cpu as unknown as { zero_memory: (addr: number, len: number) => void };
    const slowZero = cpu.zero_memory;
    const fresh = !this.hasRun;
    cpu.zero_memory = (addr: number, len: number): void => {
      const end = fresh ? Math.min(addr + len, 1 << 20) : addr + len;
      if (end <= addr) return;
      const view = this.cpu.read_blob(addr, end - addr);
      if (view.length === end - addr) view.fill(0);
      else slowZero.call(this.cpu, addr, len);
    };
    try {
      // v86 slices what it keeps out of the state, and reads it from offset 0 of the buffer.
      await this.emu.restore_state(readOnlyArrayBuffer(state));
    } catch (e) {
      throw new CpuBackendError(`v86 rejected the state: ${(e as Error).message}`);
    } finally {
      cpu.zero_memory = slowZero;
    }
    this.irqLevels.fill(0);
    this.ramView = undefined;
  }

  /**
   * v86's state without guest RAM. v86's `save_state` packs RAM through `cpu.pack_memory()` into
   * state slots 77 (the non-zero pages) and 78 (a bitmap of them); for the duration of this call
   * that method answers "no pages", so both slots hold empty buffers. What is left is the CPU,
   * the chipset (PIC, APIC, IOAPIC, PIT, RTC, ACPI, UART) and the VGA's memory.
   */
  async saveStateWithoutRam(): Promise<Uint8Array> {
    const cpu = this.cpu as unknown as { pack_memory: () => unknown };
    const orig = cpu.pack_memory;
    cpu.pack_memory = () => ({ packed_memory: new Uint8Array(0), bitmap: { get_buffer: () => new ArrayBuffer(0) } });
    try {
      return new Uint8Array(await this.emu.save_state());
    } finally {
      cpu.pack_memory = orig;
    }
  }

  /**
   * Loads {@link V86Backend.saveStateWithoutRam}'s output and keeps guest RAM as it is: checks that
   * it is an uncompressed v86 state (magic, format 6, length) for this RAM size whose RAM slots are
   * empty, then restores it with v86's `unpack_memory` (which would clear all of RAM) skipped. v86
   * clears its JIT cache and TLB after the restore, so pages written before it run fresh.
   */
  async restoreStateWithoutRam(state: Uint8Array): Promise<void> {
    checkRamlessState(state, this.memBytes);
    const cpu = this.cpu as unknown as { unpack_memory: (...a: unknown[]) => void };
    const orig = cpu.unpack_memory;
    cpu.unpack_memory = () => undefined;
    try {
      await this.emu.restore_state(readOnlyArrayBuffer(state));
    } catch (e) {
      throw new CpuBackendError(`v86 rejected the state: ${(e as Error).message}`);
    } finally {
      cpu.unpack_memory = orig;
    }
    this.irqLevels.fill(0);
    this.ramView = undefined;
  }

  private clearStall(): void {
    if (this.stallTimer !== undefined) clearInterval(this.stallTimer);
    this.stallTimer = undefined;
  }

  private finish(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = true;
    this.isRunning = false;
    this.clearStall();
    const emu = this.emu;
    void emu.destroy().catch(() => undefined);
    for (const cb of this.stopSubs) {
      try {
        cb(reason);
      } catch {
        /* a listener's failure does not stop the others */
      }
    }
  }
}

/** v86's state file header: magic (int32 -2039052682), format 6, total length, info block length. */
const V86_STATE_MAGIC = -2039052682;
const V86_STATE_FORMAT = 6;

/**
 * Checks that `state` is an uncompressed v86 state for `memBytes` of RAM whose RAM slots (77: the
 * packed pages, 78: their bitmap) are empty buffers.
 * @throws CpuBackendError naming what does not fit
 */
export function checkRamlessState(state: Uint8Array, memBytes: number): void {
  const bad = (why: string): never => {
    throw new CpuBackendError(`not a RAM-less v86 state: ${why}`);
  };
  if (state.length < 16) bad("shorter than its header");
  const dv = new DataView(state.buffer, state.byteOffset, state.byteLength);
  if (dv.getInt32(0, true) !== V86_STATE_MAGIC) bad("bad magic (or compressed)");
  if (dv.getInt32(4, true) !== V86_STATE_FORMAT) bad(`format ${dv.getInt32(4, true)}, v86 here reads ${V86_STATE_FORMAT}`);
  if (dv.getInt32(8, true) !== state.length) bad("length does not match its header");
  const infoLen = dv.getInt32(12, true);
  if (infoLen < 2 || 16 + infoLen > state.length) bad("info block length out of range");
  let info: unknown;
  try {
    info = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(state.subarray(16, 16 + infoLen)));
  } catch {
    bad("info block is not JSON");
  }
  const o = info as { buffer_infos?: unknown; state?: unknown };
  if (typeof o !== "object" || o === null || !Array.isArray(o.buffer_infos) || !Array.isArray(o.state)) bad("info block lacks buffer_infos or state");
  const infos = o.buffer_infos as unknown[];
  const st = o.state as unknown[];
  if (st[0] !== memBytes) bad(`state is for ${String(st[0])} bytes of RAM, this engine has ${memBytes}`);
  const blockStart = (16 + infoLen + 3) & ~3;
  for (const [i, b] of infos.entries()) {
    const bi = b as { offset?: unknown; length?: unknown };
    if (typeof bi !== "object" || bi === null || !Number.isInteger(bi.offset) || !Number.isInteger(bi.length)) bad(`buffer ${i} has no offset or length`);
    if ((bi.offset as number) < 0 || (bi.length as number) < 0 || blockStart + (bi.offset as number) + (bi.length as number) > state.length) bad(`buffer ${i} lies outside the state`);
  }
  for (const slot of [77, 78]) {
    const ref = st[slot] as { buffer_id?: unknown } | undefined;
    const id = ref?.buffer_id;
    if (typeof id !== "number" || !Number.isInteger(id)) bad(`slot ${slot} is not a buffer`);
    const len = (infos[id as number] as { length?: number } | undefined)?.length;
    if (len !== 0) bad(`slot ${slot} (guest RAM) is not empty`);
  }
}
