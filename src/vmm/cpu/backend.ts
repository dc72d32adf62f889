/**
 * The CPU engine behind nicvisor's VMM. nicvisor owns the platform (PCI, ACPI, BAR routing, MSI
 * decoding); an engine supplies the CPU, RAM, the interrupt controllers, timers and a serial port.
 * v86 is the only implementation today ({@link V86Backend}); the interface is kept small so that a
 * KVM backend can be added on hosts with hardware virtualization.
 *
 * Platform-neutral: no `node:*` imports.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";

/** Access width in bytes of a port or MMIO access. */
export type AccessSize = 1 | 2 | 4;

/** Handler for a range of I/O ports. `port` is absolute. Never throws; unknown ports read all ones. */
export interface PortHandler {
  /** Reads `size` bytes at `port`; returns the value zero-extended. */
  read(port: number, size: AccessSize): number;
  /** Writes `size` bytes of `value` at `port`. */
  write(port: number, size: AccessSize, value: number): void;
}

/**
 * Handler for a guest-physical MMIO range. `addr` is absolute. 16-bit accesses are delivered as
 * size 2 where the engine can tell them apart, otherwise as two size-1 accesses; 64-bit accesses
 * arrive as two size-4 accesses (low half first).
 */
export interface MmioHandler {
  /** Reads `size` bytes at `addr`; returns the value zero-extended. */
  read(addr: number, size: AccessSize): number;
  /** Writes `size` bytes of `value` at `addr`. */
  write(addr: number, size: AccessSize, value: number): void;
}

/** Why an engine stopped for good. */
export type StopReason =
  | { kind: "stopped" }
  | { kind: "halted"; detail: string }
  | { kind: "poweroff"; detail: string }
  | { kind: "triple-fault"; detail: string }
  | { kind: "stalled"; detail: string }
  | { kind: "error"; detail: string };

/** What an engine needs to start a guest. Buffers are owned by the engine afterwards. */
export interface CpuBootConfig {
  /** Guest RAM in bytes (a multiple of 1 MiB). */
  memBytes: number;
  /** BIOS image (SeaBIOS `bios.bin`). */
  bios: Uint8Array;
  /** VGA BIOS image (`vgabios-stdvga.bin`), optional. */
  vgaBios?: Uint8Array;
  /** Linux bzImage to load directly. */
  kernel?: Uint8Array;
  /** initramfs. */
  initrd?: Uint8Array;
  /** Kernel command line. */
  cmdline?: string;
  /** An engine snapshot to resume from instead of booting (from {@link CpuBackend.saveState}). */
  state?: Uint8Array;
}

/**
 * A CPU engine. Lifecycle: `create` (implementation-specific) → register ports/MMIO → `start()` →
 * (`pause()`/`start()`) → `stop()`. Port and MMIO registrations made before `start()` stay valid
 * across `restoreState()`.
 */
export interface CpuBackend {
  /** Guest RAM for device DMA. Writes are made visible to the engine's code caches. */
  readonly memory: DmaSpace;
  /** Guest RAM size in bytes. */
  readonly memBytes: number;
  /** Takes over `count` consecutive I/O ports starting at `base`. */
  registerPorts(base: number, count: number, handler: PortHandler): void;
  /**
   * Takes over the guest-physical range `[base, base + size)`. Both must be multiples of
   * {@link CpuBackend.mmioGranule}, and the range must lie above RAM.
   */
  registerMmio(base: number, size: number, handler: MmioHandler): void;
  /** The MMIO registration granule in bytes (128 KiB for v86). */
  readonly mmioGranule: number;
  /** Sets the level of legacy interrupt line `irq` (0-23; IOAPIC/PIC). */
  setIrqLine(irq: number, level: boolean): void;
  /**
   * Delivers an MSI: `address` is the message address (0xFEExxxxx), `data` the payload. Returns
   * `false` when the message was not deliverable (bad address, non-fixed delivery mode, vector < 16).
   */
  deliverMsi(address: number, data: number): boolean;
  /** Sends bytes to the guest's first serial port. */
  serialSend(data: string): void;
  /** Subscribes to bytes the guest writes to its first serial port. Returns an unsubscribe. */
  onSerial(cb: (byte: number) => void): () => void;
  /** Subscribes to the engine stopping for good. Returns an unsubscribe. */
  onStop(cb: (reason: StopReason) => void): () => void;
  /** Engine time in nanoseconds (monotonic, advances while the guest runs). */
  nowNs(): number;
  /** Runs `cb` at engine time `nowNs() + delayNs` or later. Returns a cancel function. */
  schedule(delayNs: number, cb: () => void): () => void;
  /** Starts or resumes the guest. */
  start(): Promise<void>;
  /** Pauses the guest (state is kept). */
  pause(): Promise<void>;
  /** Stops the guest for good and frees the engine. Idempotent. */
  stop(): Promise<void>;
  /** Serializes the engine state (CPU, RAM, chipset). The guest must be paused. */
  saveState(): Promise<Uint8Array>;
  /** Loads an engine state from {@link CpuBackend.saveState}. The guest must be paused. */
  restoreState(state: Uint8Array): Promise<void>;
  /** Whether the guest is running. */
  readonly running: boolean;
  /**
   * The engine and its version (e.g. `v86 0.5.462+g5f9a90f`): an engine state loads only into the
   * same. Optional; live migration needs it.
   */
  readonly engineId?: string;
  /**
   * The WebAssembly memory whose buffer guest RAM lives in (the views `memory` hands out are into
   * it), when the engine is WebAssembly: live migration hashes pages there in place. Optional.
   */
  readonly wasmMemory?: { readonly buffer: ArrayBuffer };
  /**
   * Serializes the engine state (CPU, chipset) WITHOUT guest RAM, which live migration sends page
   * by page itself. The guest must be paused. Optional; live migration needs it.
   */
  saveStateWithoutRam?(): Promise<Uint8Array>;
  /**
   * Loads {@link CpuBackend.saveStateWithoutRam}'s output and keeps guest RAM as it is now (the
   * migrated pages already written through {@link CpuBackend.memory}). The guest must be paused.
   * @throws CpuBackendError on a state that is not a RAM-less state of this engine and RAM size
   */
  restoreStateWithoutRam?(state: Uint8Array): Promise<void>;
}

/** Raised when an engine cannot be created or used (missing assets, unsupported version, bad state). */
export class CpuBackendError extends Error {
  override readonly name = "CpuBackendError";
}
