/**
 * What the machine needs from a PCI platform, and the address-decoding glue between the CPU
 * engine and it: the conf1 mechanism (ports 0xCF8/0xCFC), ECAM over an MMIO window, and the PCI
 * MMIO windows registered once at start (BARs move inside them without re-registration).
 *
 * Platform-neutral.
 * @module
 */
import type { Clock, DmaSpace, InterruptSink } from "../pci/interfaces.js";
import type { AccessSize, MmioHandler, PortHandler } from "./cpu/backend.js";
import type { StateRecord } from "../state/container.js";
import type { MigrationState, MigrationStateError } from "../state/migration.js";
import type { LiveMigrationHooks } from "../devices/lifecycle/model.js";

/**
 * A PCI platform as the machine drives it (the PCI core's host bridge + bus satisfies this through
 * a small adapter). Every method is total: nothing throws, unclaimed reads return all ones.
 */
export interface PlatformBus {
  /** Reads `size` bytes of the config space of `bus:devfn` at `reg` (0-0xFFF). */
  configRead(bus: number, devfn: number, reg: number, size: AccessSize): number;
  /** Writes config space. */
  configWrite(bus: number, devfn: number, reg: number, size: AccessSize, value: number): void;
  /** A memory access that some BAR may decode (absolute guest-physical address). */
  mmioRead(addr: number, size: AccessSize): number;
  /** A memory write that some BAR may decode. */
  mmioWrite(addr: number, size: AccessSize, value: number): void;
  /** An I/O port access that some I/O BAR may decode. */
  ioRead(port: number, size: AccessSize): number;
  /** An I/O port write that some I/O BAR may decode. */
  ioWrite(port: number, size: AccessSize, value: number): void;
  /** Saves the platform's state (JSON-safe). */
  save(): unknown;
  /**
   * Restores {@link PlatformBus.save}'s output (untrusted): checks all of it, then applies it.
   * Throws a typed error on bad input, and then has changed nothing.
   */
  restore(state: unknown): void;
  /** The platform's state as records of a state container (one per device; see `state/container.ts`). */
  saveRecords(): StateRecord[];
  /** Restores {@link PlatformBus.saveRecords}'s output, as {@link PlatformBus.restore} does. */
  restoreRecords(records: readonly StateRecord[]): void;
  /** Checks records as {@link PlatformBus.restoreRecords} would, applying nothing. @throws StateError */
  parseRecords(records: readonly StateRecord[]): unknown;
  /** What {@link PlatformBus.saveRecords} would give, by name, type and version, without saving anything. */
  describeRecords(): RecordDescriptor[];
  /**
   * Moves every device to a migration state; returns the errors of those that refused. A restore
   * leaves devices in RESUMING; `Machine.start()` runs them.
   */
  setMigrationState(target: MigrationState): Map<string, MigrationStateError>;
  /** The devices that play a part in a live migration beyond their state, by record name (optional; none when absent). */
  liveHooks?(): ReadonlyArray<readonly [string, LiveMigrationHooks]>;
}

/** A state record's name, type, version and the oldest version its type loads. */
export interface RecordDescriptor {
  name: string;
  kind: string;
  version: number;
  oldest: number;
}

/** The access half of a {@link PlatformBus}: what the conf1, ECAM and I/O glue below forward to. */
export type PlatformAccess = Pick<PlatformBus, "configRead" | "configWrite" | "mmioRead" | "mmioWrite" | "ioRead" | "ioWrite">;

/** What a platform factory receives from the machine. */
export interface PlatformEnv {
  /** Guest memory for DMA. */
  dma: DmaSpace;
  /** Interrupt delivery (MSI to the LAPIC, INTx to IOAPIC/PIC lines). */
  interrupts: InterruptSink;
  /** Engine time. */
  clock: Clock;
  /** The guest-physical layout the machine chose. */
  layout: MachineLayout;
}

/** Guest-physical layout of the machine. */
export interface MachineLayout {
  /** RAM size in bytes (RAM is [0, ramBytes)). */
  ramBytes: number;
  /** ECAM base (256 MiB aligned) and size (1 MiB per bus). */
  ecamBase: number;
  /** ECAM size in bytes. */
  ecamSize: number;
  /** PCI MMIO windows for BARs, each [base, limit) with 128 KiB aligned bounds. */
  mmioWindows: ReadonlyArray<readonly [number, number]>;
  /** The I/O port window for I/O BARs, [base, limit). */
  ioWindow: readonly [number, number];
  /**
   * How the guest finds ECAM: `acpi` (nicvisor's MCFG table; the host bridge is the generic PCIe
   * host bridge 1B36:0008, which neither SeaBIOS nor Linux treats specially) or `pciexbar` (booted with `acpi=off`: the host bridge poses as an Intel 945G whose
   * PCIEXBAR announces the window, which Linux probes by itself).
   */
  ecamDiscovery: "acpi" | "pciexbar";
  /** The legacy IRQ line for INTx of `slot` (device number on bus 0 or the root port's) and pin 1-4. */
  intxIrq(slot: number, pin: number): number;
}

/** IRQs used for PCI INTx (as the i440fx/PIIX3 PIRQ routing SeaBIOS programs: 10, 10, 11, 11). */
const PIRQ_IRQS = [10, 10, 11, 11] as const;

/**
 * The default layout: RAM, ECAM at 0xB0000000 (64 buses), PCI memory in 0xC0000000-0xDFFFFFFF and
 * 0xE8000000-0xFEBFFFFF (clear of v86's framebuffer at 0xE0000000, the IOAPIC and the LAPIC).
 */
export function defaultLayout(ramBytes: number, ecamDiscovery: "acpi" | "pciexbar" = "acpi"): MachineLayout {
  return {
    ramBytes,
    ecamDiscovery,
    ecamBase: 0xb0000000,
    ecamSize: 64 << 20,
    mmioWindows: [
      [0xc0000000, 0xe0000000],
      [0xe8000000, 0xfec00000],
    ],
    // Where SeaBIOS and Linux place I/O BARs; clear of v86's legacy ports and its ACPI/IDE ports.
    ioWindow: [0xc000, 0x10000],
    intxIrq(slot: number, pin: number): number {
      return PIRQ_IRQS[(((slot + pin - 1) % 4) + 4) % 4] ?? 11;
    },
  };
}

const ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/**
 * Guest accesses that left the CPU engine for the platform (what a hardware VMM would see as
 * exits): MMIO to ECAM and BARs, the conf1 and I/O BAR ports. Shared by the handlers below.
 */
export interface ExitCounters {
  mmioReads: number;
  mmioWrites: number;
  portReads: number;
  portWrites: number;
}

/** Fresh, zeroed exit counters. */
export function exitCounters(): ExitCounters {
  return { mmioReads: 0, mmioWrites: 0, portReads: 0, portWrites: 0 };
}

/** The conf1 mechanism on ports 0xCF8-0xCFF, forwarding to a {@link PlatformBus}. */
export class Conf1Ports implements PortHandler {
  private addr = 0;
  constructor(
    private readonly bus: PlatformAccess,
    private readonly exits: ExitCounters = exitCounters(),
  ) {}
  read(port: number, size: AccessSize): number {
    this.exits.portReads++;
    if (port === 0xcf8 && size === 4) return this.addr >>> 0;
    if (port >= 0xcfc && port <= 0xcff) {
      if ((this.addr & 0x80000000) === 0) return ONES[size];
      const reg = (this.addr & 0xfc) | (port & 3);
      if ((port & 3) + size > 4) return ONES[size];
      return this.bus.configRead((this.addr >>> 16) & 0xff, (this.addr >>> 8) & 0xff, reg, size);
    }
    return ONES[size];
  }
  write(port: number, size: AccessSize, value: number): void {
    this.exits.portWrites++;
    if (port === 0xcf8 && size === 4) {
      // Intel's mechanism: bits 30:24 and 1:0 are reserved, so conf1 reaches only the first 256
      // bytes of a function (extended config space needs ECAM).
      this.addr = (value & 0x80fffffc) >>> 0;
      return;
    }
    if (port >= 0xcfc && port <= 0xcff && (this.addr & 0x80000000) !== 0) {
      if ((port & 3) + size > 4) return;
      const reg = (this.addr & 0xfc) | (port & 3);
      this.bus.configWrite((this.addr >>> 16) & 0xff, (this.addr >>> 8) & 0xff, reg, size, value);
    }
  }
  /** The latched address (for save/restore). */
  get latch(): number {
    return this.addr;
  }
  set latch(v: number) {
    this.addr = (v & 0x80fffffc) >>> 0;
  }
}

/** Forwards the I/O BAR window to the platform's I/O dispatch. */
export class PlatformIo implements PortHandler {
  constructor(
    private readonly bus: PlatformAccess,
    private readonly exits: ExitCounters = exitCounters(),
  ) {}
  read(port: number, size: AccessSize): number {
    this.exits.portReads++;
    return this.bus.ioRead(port, size);
  }
  write(port: number, size: AccessSize, value: number): void {
    this.exits.portWrites++;
    this.bus.ioWrite(port, size, value);
  }
}

/**
 * The MMIO handler for everything the machine registers above RAM: ECAM decodes to config
 * accesses, the rest goes to the platform's BAR dispatch.
 */
export class PlatformMmio implements MmioHandler {
  constructor(
    private readonly bus: PlatformAccess,
    private readonly layout: MachineLayout,
    private readonly exits: ExitCounters = exitCounters(),
  ) {}
  read(addr: number, size: AccessSize): number {
    this.exits.mmioReads++;
    const off = addr - this.layout.ecamBase;
    if (off >= 0 && off < this.layout.ecamSize) {
      if ((off & (size - 1)) !== 0) return ONES[size];
      return this.bus.configRead(off >>> 20, (off >>> 12) & 0xff, off & 0xfff, size);
    }
    return this.bus.mmioRead(addr, size);
  }
  write(addr: number, size: AccessSize, value: number): void {
    this.exits.mmioWrites++;
    const off = addr - this.layout.ecamBase;
    if (off >= 0 && off < this.layout.ecamSize) {
      if ((off & (size - 1)) !== 0) return;
      this.bus.configWrite(off >>> 20, (off >>> 12) & 0xff, off & 0xfff, size, value);
      return;
    }
    this.bus.mmioWrite(addr, size, value);
  }
}
