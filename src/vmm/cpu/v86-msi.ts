/**
 * MSI delivery into v86's local APIC. v86 has no MSI API and does not decode memory writes to
 * 0xFEExxxxx, so nicvisor decodes the message itself and sets the vector's bit in the LAPIC's
 * interrupt request register, then asks the wasm core to evaluate pending interrupts.
 *
 * This reaches into v86's internal `Apic` struct (src/rust/cpu/apic.rs): 46 little-endian u32s,
 * IRR at u32 index 16-23 and the trigger-mode register (TMR) at 32-39. That layout is only known to
 * hold for the pinned v86 version ({@link V86_PINNED_VERSION}); {@link V86MsiAdapter} refuses any other.
 *
 * Platform-neutral.
 * @module
 */
import { CpuBackendError } from "./backend.js";

/** The v86 version whose internals this adapter was checked against. */
export const V86_PINNED_VERSION = "0.5.462";

/** u32 index of the first IRR word in v86's Apic struct. */
const APIC_IRR = 16;
/** u32 index of the first TMR word in v86's Apic struct. */
const APIC_TMR = 32;
/** Size of v86's Apic struct in u32s. */
const APIC_WORDS = 46;

/** The parts of v86's CPU object the adapter uses. */
export interface V86CpuApicView {
  /** The wasm instance memory. */
  wasm_memory: { buffer: ArrayBuffer };
  /** Byte address of the Apic struct inside wasm memory. */
  get_apic_addr(): number;
  /** Makes the core re-evaluate pending interrupts. */
  handle_irqs(): void;
}

/** The decoded fields of an x86 MSI message (Intel SDM vol. 3, 11.11). */
export interface DecodedMsi {
  /** Interrupt vector (data bits 7:0). */
  vector: number;
  /** Delivery mode (data bits 10:8): 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT. */
  deliveryMode: number;
  /** Trigger mode (data bit 15): true = level. */
  level: boolean;
  /** Destination APIC ID (address bits 19:12). */
  destId: number;
}

/**
 * Decodes an MSI address/data pair. Returns `undefined` when the address is not in the
 * 0xFEExxxxx interrupt window.
 */
export function decodeMsi(address: number, data: number): DecodedMsi | undefined {
  if (!Number.isFinite(address) || address < 0) return undefined;
  const lo = address % 0x1_0000_0000;
  if (address >= 0x1_0000_0000 || (lo >>> 20) !== 0xfee) return undefined;
  return {
    vector: data & 0xff,
    deliveryMode: (data >>> 8) & 7,
    level: ((data >>> 15) & 1) === 1,
    destId: (lo >>> 12) & 0xff,
  };
}

/**
 * Injects MSI vectors into v86's (single) local APIC.
 * @example
 * ```ts
 * const msi = new V86MsiAdapter(emulator.v86.cpu, v86Version);
 * msi.deliver(0xfee00000, 0x0041); // vector 0x41, fixed, edge
 * ```
 */
export class V86MsiAdapter {
  private readonly cpu: V86CpuApicView;
  /** Messages delivered. */
  delivered = 0;
  /** Messages dropped (bad address, unsupported delivery mode, reserved vector). */
  dropped = 0;

  /**
   * @param cpu v86's CPU object (`emulator.v86.cpu`).
   * @param version the v86 package version; must start with {@link V86_PINNED_VERSION}.
   * @throws CpuBackendError if the version differs or the CPU object lacks the needed entry points.
   */
  constructor(cpu: V86CpuApicView, version: string) {
    if (version !== V86_PINNED_VERSION && !version.startsWith(V86_PINNED_VERSION + "+")) {
      throw new CpuBackendError(
        `MSI adapter relies on v86 ${V86_PINNED_VERSION} internals (Apic struct layout); found v86 ${version}`,
      );
    }
    if (typeof cpu.get_apic_addr !== "function" || typeof cpu.handle_irqs !== "function" || cpu.wasm_memory === undefined) {
      throw new CpuBackendError("v86 CPU object lacks get_apic_addr/handle_irqs/wasm_memory");
    }
    this.cpu = cpu;
  }

  /** A fresh view of the Apic struct (wasm memory may have grown since the last call). */
  apicWords(): Uint32Array {
    return new Uint32Array(this.cpu.wasm_memory.buffer, this.cpu.get_apic_addr(), APIC_WORDS);
  }

  /** Whether `vector` is pending in the IRR. */
  isPending(vector: number): boolean {
    const w = this.apicWords()[APIC_IRR + (vector >>> 5)] ?? 0;
    return ((w >>> (vector & 31)) & 1) === 1;
  }

  /**
   * Delivers one MSI message. Only fixed and lowest-priority delivery are supported (both land on
   * the single CPU); vectors 0-15 are reserved and dropped. A vector already pending coalesces.
   * With `dispatch` false the vector is only made pending: the caller asks the core to dispatch it
   * (`handle_irqs`) at an instruction boundary. Never throws.
   */
  deliver(address: number, data: number, dispatch = true): boolean {
    const m = decodeMsi(address, data);
    if (m === undefined || (m.deliveryMode !== 0 && m.deliveryMode !== 1) || m.vector < 16) {
      this.dropped++;
      return false;
    }
    return this.raiseVector(m.vector, m.level, dispatch);
  }

  /** Sets `vector` pending in the IRR (TMR per `level`) and, with `dispatch`, lets the core dispatch it. */
  raiseVector(vector: number, level = false, dispatch = true): boolean {
    if (!Number.isInteger(vector) || vector < 16 || vector > 255) {
      this.dropped++;
      return false;
    }
    const words = this.apicWords();
    const idx = vector >>> 5;
    const bit = (1 << (vector & 31)) >>> 0;
    words[APIC_IRR + idx] = ((words[APIC_IRR + idx] ?? 0) | bit) >>> 0;
    const tmr = words[APIC_TMR + idx] ?? 0;
    words[APIC_TMR + idx] = level ? (tmr | bit) >>> 0 : (tmr & ~bit) >>> 0;
    this.delivered++;
    if (dispatch) this.cpu.handle_irqs();
    return true;
  }
}
