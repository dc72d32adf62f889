/**
 * A machine: RAM and a CPU engine (v86), nicvisor's PCI platform on conf1 + ECAM, the PCI MMIO
 * windows, INTx routed to IOAPIC/PIC lines, MSI to the engine's LAPIC, the serial console and an
 * engine-backed {@link Clock}. Whatever the guest does, the machine does not crash: unclaimed ports
 * and MMIO read all ones and drop writes, and an engine that halts for good, resets or stalls is
 * stopped with the reason.
 *
 * Platform-neutral: the caller passes the engine's assets (see `src/vmm/host/v86-assets.ts`).
 * @module
 */
import { bzImageSetupPart, loadKernelElf, parseKernelElf } from "./direct-boot.js";
import { buildAcpiTables, DEFAULT_ACPI_BASE } from "./acpi/tables.js";
import type { Clock, DmaSpace, InterruptSink, TimerHandle } from "../pci/interfaces.js";
import type { CpuBackend, CpuBootConfig, StopReason } from "./cpu/backend.js";
import { V86Backend, V86_INITRD_BASE } from "./cpu/v86-backend.js";
import type { MachineLayout, PlatformBus, PlatformEnv, RecordDescriptor } from "./machine-platform.js";
import { Conf1Ports, PlatformIo, PlatformMmio, defaultLayout, exitCounters, type ExitCounters } from "./machine-platform.js";
import { TestDevicePlatform } from "./platforms.js";
import { StateError, int, obj, u32 } from "../state/parse.js";
import { encodeStates, decodeStates, type StateRecord } from "../state/container.js";
import { DmaWriteLog } from "./migration/dma-log.js";

/** Raised on a bad machine configuration or snapshot. */
export class MachineError extends Error {
  override readonly name = "MachineError";
}

/** Options of {@link Machine.create}. */
export interface MachineOptions {
  /** Guest RAM in MiB (default 256). */
  memMiB?: number;
  /** SeaBIOS image. */
  bios: Uint8Array;
  /** VGA BIOS image. */
  vgaBios?: Uint8Array;
  /** bzImage. */
  kernel?: Uint8Array;
  /** initramfs. */
  initrd?: Uint8Array;
  /**
   * The bzImage's decompressed `vmlinux` (ELF). When given, the machine loads it directly and the
   * guest skips its own decompressor ({@link loadKernelElf}); `kernel` must still be the bzImage.
   */
  kernelElf?: Uint8Array;
  /** Extra kernel arguments (the machine adds its own, see {@link platformArgs}). */
  append?: string;
  /** v86 wasm location and version (from `findV86Assets()`); needed by the default CPU backend. */
  engine?: { wasmPath: string; v86Version: string };
  /**
   * The CPU backend: a factory that builds a paused engine from the boot configuration. Default:
   * v86 ({@link v86CpuFactory} with `engine`). Another engine (a KVM backend on hosts with
   * hardware virtualization, a scripted CPU in tests) implements {@link CpuBackend}.
   */
  cpu?: CpuFactory;
  /**
   * Builds the PCI platform (default: {@link TestDevicePlatform}, the PCI test device behind a root port). Receives DMA, interrupts, clock
   * and the layout.
   */
  platform?: (env: PlatformEnv) => PlatformBus;
  /** An engine state to resume (from {@link Machine.save}); the kernel is then not loaded. */
  engineState?: Uint8Array;
  /**
   * ACPI tables to place in guest RAM: the blob is copied to `base` before the guest starts, and
   * `kernelArgs` (e.g. `acpi_rsdp=0x... memmap=...`) go on the kernel command line. By default the
   * machine builds its own ({@link buildAcpiTables}: MCFG, MADT, FADT and a DSDT with the PCIe host
   * bridge). `false` boots with `acpi=off`: Linux then finds ECAM through the host bridge's
   * PCIEXBAR and takes IRQs from the Interrupt Line registers. Ignored when resuming an engine
   * state (RAM already holds the tables).
   */
  acpi?: { blob: Uint8Array; base: number; kernelArgs: string } | false;
  /** Stall watchdog in ms (0 = off, default). */
  stallMs?: number;
  /** Called with guest RAM before anything is loaded into it (see `V86BackendOptions.adviseRam`). */
  adviseRam?: (ram: Uint8Array) => unknown;
}


/** What a CPU factory receives: the boot configuration plus the machine's engine tuning. */
export interface CpuFactoryConfig extends CpuBootConfig {
  /** Stall watchdog in ms (0 = off). */
  stallMs?: number;
  /** Called with guest RAM before anything is loaded into it. */
  adviseRam?: (ram: Uint8Array) => unknown;
}

/** Builds a paused CPU engine. */
export type CpuFactory = (cfg: CpuFactoryConfig) => Promise<CpuBackend>;

/** The default CPU factory: v86 with the given wasm file. */
export function v86CpuFactory(engine: { wasmPath: string; v86Version: string }): CpuFactory {
  return (cfg) => V86Backend.create({ ...cfg, wasmPath: engine.wasmPath, v86Version: engine.v86Version });
}

/** A machine's saved state (the engine state travels separately as bytes). */
export interface MachineState {
  version: 2;
  memMiB: number;
  conf1Latch: number;
  platform: unknown;
}

/** The machine's own record in a state container (its platform's devices have records of their own). */
export const MACHINE_RECORD = "machine";

/**
 * Kernel arguments the default layout needs with ACPI off: reserve the ECAM window in the e820 map
 * and keep the kernel away from the crypto self-tests and ISA PnP that only cost boot time.
 */
export function platformArgs(layout: MachineLayout, acpiArgs?: string): string {
  const mib = layout.ecamSize >>> 20;
  const quiet = "cryptomgr.notests noisapnp";
  if (acpiArgs !== undefined) return `${acpiArgs} ${quiet}`.trim();
  return `acpi=off memmap=${mib}M$0x${layout.ecamBase.toString(16)} ${quiet}`;
}

/**
 * The machine.
 * @example
 * ```ts
 * const { assets } = findV86Assets() as { assets: V86Assets };
 * const m = await Machine.create({ bios, kernel, initrd, append: "console=ttyS0", engine: assets });
 * m.onSerial((b) => process.stdout.write(String.fromCharCode(b)));
 * await m.start();
 * ```
 */
export class Machine {
  /** The CPU engine. */
  readonly cpu: CpuBackend;
  /** The PCI platform. */
  readonly platform: PlatformBus;
  /** The layout. */
  readonly layout: MachineLayout;
  /** Engine-backed time for devices. */
  readonly clock: Clock;
  /** Where device interrupts go. */
  readonly interrupts: InterruptSink;
  /** Guest memory for DMA (what the platform's devices get): {@link Machine.dmaLog}'s logged view of the engine's RAM. */
  readonly dma: DmaSpace;
  /** Marks every page device DMA writes (live migration re-sends them; see `migration/dma-log.ts`). */
  readonly dmaLog: DmaWriteLog;
  /** Why the machine stopped, once it has. */
  stopReason: StopReason | undefined;
  private readonly conf1: Conf1Ports;
  /**
   * Guest accesses that left the CPU engine for nicvisor (what a hardware VMM would see as exits:
   * MMIO to ECAM and BARs, the config and I/O BAR ports; v86 splits a 16-bit MMIO read into two
   * byte reads, counted as two), and MSI messages delivered by devices.
   */
  readonly exits: ExitCounters & { msi: number } = { ...exitCounters(), msi: 0 };
  private readonly memMiB: number;
  /** MSIs the engine refused (bad address or delivery mode). */
  msiDropped = 0;

  /** The kernel command line the machine booted with (platform args + the caller's). */
  readonly cmdline: string;

  private constructor(cpu: CpuBackend, memMiB: number, layout: MachineLayout, makePlatform: (env: PlatformEnv) => PlatformBus, cmdline: string) {
    this.cpu = cpu;
    this.cmdline = cmdline;
    this.memMiB = memMiB;
    this.layout = layout;
    this.dmaLog = new DmaWriteLog(cpu.memory, cpu.memBytes);
    this.dma = this.dmaLog.space;
    this.clock = {
      now: () => cpu.nowNs(),
      schedule: (delayNs: number, cb: () => void): TimerHandle => {
        const cancel = cpu.schedule(delayNs, cb);
        return { cancel };
      },
    };
    const levels = new Map<number, Set<number>>();
    this.interrupts = {
      msi: (address: number, data: number) => {
        this.exits.msi++;
        if (!cpu.deliverMsi(address, data)) this.msiDropped++;
      },
      intx: (requesterId: number, pin: number, level: boolean) => {
        // Slot on bus 0 (or the slot of the root port above) with the PCI swizzle.
        const slot = (requesterId >>> 3) & 0x1f;
        const irq = layout.intxIrq(slot, pin);
        // A line is the OR of every source on it.
        let set = levels.get(irq);
        if (set === undefined) levels.set(irq, (set = new Set()));
        const key = requesterId * 8 + pin;
        if (level) set.add(key);
        else set.delete(key);
        cpu.setIrqLine(irq, set.size > 0);
      },
    };
    this.platform = makePlatform({ dma: this.dma, interrupts: this.interrupts, clock: this.clock, layout });
    this.conf1 = new Conf1Ports(this.platform, this.exits);
    cpu.registerPorts(0xcf8, 8, this.conf1);
    const mmio = new PlatformMmio(this.platform, layout, this.exits);
    cpu.registerMmio(layout.ecamBase, layout.ecamSize, mmio);
    for (const [lo, hi] of layout.mmioWindows) cpu.registerMmio(lo, hi - lo, mmio);
    cpu.registerPorts(layout.ioWindow[0], layout.ioWindow[1] - layout.ioWindow[0], new PlatformIo(this.platform, this.exits));
    cpu.onStop((r) => {
      this.stopReason ??= r;
    });
  }

  /**
   * Creates a paused machine on the chosen CPU backend (v86 by default).
   * @throws MachineError on a bad memory size; CpuBackendError if v86 cannot start.
   */
  static async create(opts: MachineOptions): Promise<Machine> {
    const memMiB = opts.memMiB ?? 256;
    if (!Number.isInteger(memMiB) || memMiB < 32 || memMiB > 2048) throw new MachineError(`memMiB ${memMiB} must be an integer in 32..2048`);
    const layout = defaultLayout(memMiB << 20, opts.acpi === false ? "pciexbar" : "acpi");
    const acpi = opts.acpi === false ? undefined : opts.acpi ?? buildAcpiTables({ layout, base: DEFAULT_ACPI_BASE });
    if (acpi !== undefined) {
      const { blob, base } = acpi;
      if (!Number.isInteger(base) || base < 0x100000 || base + blob.length > memMiB << 20) {
        throw new MachineError(`ACPI tables at 0x${base.toString(16)} (+${blob.length}) must lie in RAM above 1 MiB`);
      }
    }
    const cmdline = [platformArgs(layout, acpi?.kernelArgs), opts.append ?? ""].join(" ").trim();
    const cfg: CpuFactoryConfig = { memBytes: memMiB << 20, bios: opts.bios, cmdline };
    if (opts.vgaBios !== undefined) cfg.vgaBios = opts.vgaBios;
    if (opts.engineState !== undefined) cfg.state = opts.engineState;
    else {
      // Direct boot runs only the bzImage's setup code; vmlinux replaces the rest (loaded below).
      if (opts.kernel !== undefined) cfg.kernel = opts.kernelElf !== undefined ? bzImageSetupPart(opts.kernel) : opts.kernel;
      if (opts.initrd !== undefined) cfg.initrd = opts.initrd;
    }
    if (opts.stallMs !== undefined) cfg.stallMs = opts.stallMs;
    if (opts.adviseRam !== undefined) cfg.adviseRam = opts.adviseRam;
    let factory = opts.cpu;
    if (factory === undefined) {
      if (opts.engine === undefined) throw new MachineError("no CPU backend: pass `cpu`, or `engine` for the default v86 backend");
      factory = v86CpuFactory(opts.engine);
    }
    const cpu = await factory(cfg);
    const m = new Machine(cpu, memMiB, layout, opts.platform ?? ((env) => new TestDevicePlatform(env)), cmdline);
    if (acpi !== undefined && opts.engineState === undefined) {
      if (!cpu.memory.write(acpi.base, acpi.blob)) {
        await cpu.stop();
        throw new MachineError("cannot place the ACPI tables in guest RAM");
      }
    }
    if (opts.kernelElf !== undefined && opts.engineState === undefined && opts.kernel !== undefined) {
      try {
        const avoid: Array<[number, number]> = [];
        if (opts.initrd !== undefined) avoid.push([V86_INITRD_BASE, V86_INITRD_BASE + opts.initrd.length]);
        if (acpi !== undefined) avoid.push([acpi.base, acpi.base + acpi.blob.length]);
        loadKernelElf(cpu.memory, memMiB << 20, parseKernelElf(opts.kernelElf), avoid);
      } catch (e) {
        await cpu.stop();
        throw e;
      }
    }
    return m;
  }

  /** Subscribes to serial output bytes. */
  onSerial(cb: (byte: number) => void): () => void {
    return this.cpu.onSerial(cb);
  }

  /** Subscribes to the machine stopping for good. */
  onStop(cb: (reason: StopReason) => void): () => void {
    return this.cpu.onStop(cb);
  }

  /** Starts or resumes: the platform's devices run (a restore left them in RESUMING), then the CPU. */
  start(): Promise<void> {
    this.platform.setMigrationState("RUNNING");
    return this.cpu.start();
  }

  /** Pauses. */
  pause(): Promise<void> {
    return this.cpu.pause();
  }

  /** Stops for good (idempotent). */
  stop(): Promise<void> {
    return this.cpu.stop();
  }

  /** Saves the machine's own state (call while paused; the engine state is saved by the caller). */
  save(): MachineState {
    return { version: 2, memMiB: this.memMiB, conf1Latch: this.conf1.latch, platform: this.platform.save() };
  }

  /** Checks the machine's own fields of a saved state (format 1 or 2). */
  private parseOwn(u: unknown, path: string): { version: number; conf1Latch: number; o: Record<string, unknown> } {
    const o = obj(u, path);
    const version = int(o.version, `${path}.version`, 1, 2);
    const memMiB = int(o.memMiB, `${path}.memMiB`, 32, 2048);
    if (memMiB !== this.memMiB) throw new StateError(`${path}.memMiB`, `state is for ${memMiB} MiB, machine has ${this.memMiB} MiB`);
    return { version, conf1Latch: u32(o.conf1Latch, `${path}.conf1Latch`), o };
  }

  /**
   * Restores {@link Machine.save}'s output (format 2, or format 1 from an older nicvisor): checks
   * everything, the platform's devices included, before it changes anything.
   * @throws StateError naming the field
   */
  restore(s: unknown): void {
    const own = this.parseOwn(s, "machine");
    this.platform.restore(own.o.platform);
    this.conf1.latch = own.conf1Latch;
  }

  /** The machine's state as container records: its own, then its platform's. */
  saveRecords(): StateRecord[] {
    return [{ name: MACHINE_RECORD, kind: "machine", version: 2, state: { version: 2, memMiB: this.memMiB, conf1Latch: this.conf1.latch } }, ...this.platform.saveRecords()];
  }

  /**
   * The name, state type and version of every record {@link Machine.saveRecords} gives, without
   * saving anything (a running device is not asked for its state), and the oldest version each
   * type still loads. For a migration's HELLO.
   */
  stateDescriptors(): RecordDescriptor[] {
    return [{ name: MACHINE_RECORD, kind: "machine", version: 2, oldest: 1 }, ...this.platform.describeRecords()];
  }


  /** The machine's device state as bytes (see `state/container.ts`), for files and other processes. */
  saveBytes(): Uint8Array {
    return encodeStates(this.saveRecords());
  }

  /**
   * Restores {@link Machine.saveBytes}'s output: decode, check everything, then apply. A machine
   * record of format 1 holds the whole format-1 machine state (an older snapshot's).
   * @throws StateError naming what is wrong
   */
  restoreBytes(bytes: Uint8Array): void {
    const records = decodeStates(bytes);
    const mine = records.find((r) => r.name === MACHINE_RECORD);
    if (mine === undefined) throw new StateError(`container.${MACHINE_RECORD}`, "missing");
    if (mine.version === 1) {
      if (records.length !== 1) throw new StateError("container", "a format-1 machine record stands alone");
      this.restore(mine.state);
      return;
    }
    const own = this.parseOwn(mine.state, MACHINE_RECORD);
    if (own.version !== 2) throw new StateError(`${MACHINE_RECORD}.version`, "a format-2 record holds a format-2 state");
    this.platform.restoreRecords(records.filter((r) => r !== mine));
    this.conf1.latch = own.conf1Latch;
  }
}
