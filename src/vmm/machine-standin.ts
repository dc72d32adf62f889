/**
 * A minimal stand-in PCI platform, used until the PCI core (src/pci) lands its host bridge, and
 * kept as the smallest platform that boots: bus 0 with
 *
 * - 00:00.0, a host bridge posing as the Intel 945G memory controller (8086:2770). Its PCIEXBAR
 *   register (0x48) announces ECAM to Linux even without ACPI (Linux's `pci_mmcfg_intel_945` probe);
 * - 00:03.0, a scratch device (1B36:0005, QEMU's "PCI test device" IDs) with one 4 KiB memory BAR
 *   that holds 1024 plain 32-bit registers, so a guest can `devmem` it. The last register
 *   ({@link StandinPlatform.INTX_REG}, offset 0xFFC) is a test-only INTx trigger: bit 0 is the
 *   level of INTA#, reported in Status bit 3 and masked by Command bit 10 as PCI 2.3 defines.
 *
 * - an SR-IOV extended capability at 0x100 on 00:03.0 (TotalVFs 4, First VF Offset 1, VF Stride 1,
 *   VF Device ID {@link StandinPlatform.VF_DEVICE_ID}, no VF BARs): while VF Enable is set, VF n
 *   answers at devfn 0x19 + n with Vendor ID 0xFFFF in its own header, as SR-IOV 1.1 defines.
 *
 * It is not the PCI core: only the capabilities Linux needs for these tests, no bridges.
 *
 * Platform-neutral.
 * @module
 */
import type { AccessSize } from "./cpu/backend.js";
import type { InterruptSink } from "../pci/interfaces.js";
import type { MachineLayout, PlatformBus } from "./machine-platform.js";

/** Raised by {@link StandinPlatform.restore} on a malformed state. */
export class StandinStateError extends Error {
  override readonly name = "StandinStateError";
}

interface Fn {
  cfg: Uint8Array;
  wmask: Uint8Array;
}

function le(cfg: Uint8Array, off: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) cfg[off + i] = (v >>> (8 * i)) & 0xff;
}
function rd(cfg: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = 0; i < size; i++) v |= (cfg[off + i] ?? 0xff) << (8 * i);
  return v >>> 0;
}

/** Saved state of {@link StandinPlatform}. */
export interface StandinState {
  version: 1;
  configs: number[][];
  regs: number[];
}

/** The stand-in platform (see the module comment). */
export class StandinPlatform implements PlatformBus {
  /** Devfn of the scratch device. */
  static readonly SCRATCH_DEVFN = 3 << 3;
  /** Device ID the SR-IOV capability gives the VFs. */
  static readonly VF_DEVICE_ID = 0x0006;
  /** TotalVFs of the scratch device. */
  static readonly TOTAL_VFS = 4;
  /** Register index of the INTx trigger (byte offset 0xFFC in BAR0). */
  static readonly INTX_REG = 1023;
  /** INTx assertions sent to the interrupt sink (rising edges of the effective level). */
  intxAsserts = 0;
  private intxOut = false;
  private readonly fns = new Map<number, Fn>();
  /** The scratch device's BAR0 registers. */
  readonly regs = new Uint32Array(1024);
  /** The last BAR0 write as it arrived (address, width, value): shows how the engine split it. */
  lastBarWrite: { addr: number; size: AccessSize; value: number } | undefined;
  /** Accesses to unclaimed addresses (counted, answered with all ones / dropped). */
  unclaimed = 0;

  constructor(
    private readonly layout: MachineLayout,
    private readonly irq?: InterruptSink,
  ) {
    const hb = this.makeFn(0x8086, 0x2770, 0x060000);
    // PCIEXBAR: base | length 64 MiB (bits 2:1 = 10b) | enable.
    le(hb.cfg, 0x48, 4, (layout.ecamBase | (2 << 1) | 1) >>> 0);
    // PAM0 as v86's i440fx has it (BIOS area readable from RAM).
    hb.cfg[0x59] = 0x10;
    this.addPcieCap(hb, 9); // Root Complex Integrated Endpoint
    this.fns.set(0, hb);
    const dev = this.makeFn(0x1b36, 0x0005, 0x00ff00);
    le(dev.wmask, 0x10, 4, ~(0x1000 - 1) >>> 0); // BAR0: mem32, 4 KiB
    // Interrupt Line holds the platform's routing and is read-only here: without ACPI, an MP
    // table entry or a PIRQ router, this is what Linux (acpi=off) takes as the device's IRQ, and
    // SeaBIOS would otherwise overwrite it with 0xFF on this unknown chipset.
    dev.cfg[0x3c] = layout.intxIrq(StandinPlatform.SCRATCH_DEVFN >>> 3, 1);
    dev.cfg[0x3d] = 1; // INTA#
    this.addPcieCap(dev, 9);
    this.addSriovCap(dev);
    this.fns.set(StandinPlatform.SCRATCH_DEVFN, dev);
  }

  /** SR-IOV extended capability at 0x100 (offsets from the PCIe SR-IOV spec, 9.3.3). */
  private addSriovCap(f: Fn): void {
    le(f.cfg, 0x100, 4, 0x0010 | (1 << 16)); // ID 0x10, version 1, next 0
    f.wmask[0x108] = 0x19; // VF Enable, VF MSE, ARI Capable Hierarchy
    le(f.cfg, 0x10c, 2, StandinPlatform.TOTAL_VFS); // InitialVFs
    le(f.cfg, 0x10e, 2, StandinPlatform.TOTAL_VFS); // TotalVFs
    le(f.cfg, 0x114, 2, 1); // First VF Offset
    le(f.cfg, 0x116, 2, 1); // VF Stride
    le(f.cfg, 0x11a, 2, StandinPlatform.VF_DEVICE_ID);
    le(f.cfg, 0x11c, 4, 0x553); // Supported Page Sizes (4K..)
    le(f.cfg, 0x120, 4, 1); // System Page Size: 4K
    le(f.wmask, 0x120, 4, 0x553);
  }

  /** The number of VFs enabled (0 while VF Enable is clear). */
  enabledVfs(): number {
    const f = this.fns.get(StandinPlatform.SCRATCH_DEVFN);
    if (f === undefined || ((f.cfg[0x108] ?? 0) & 1) === 0) return 0;
    return Math.min(rd(f.cfg, 0x110, 2), StandinPlatform.TOTAL_VFS);
  }

  /** A VF's config read: its own header says Vendor/Device 0xFFFF; the rest is plain and read-only. */
  private vfConfigRead(reg: number, size: AccessSize): number {
    const pf = this.fns.get(StandinPlatform.SCRATCH_DEVFN);
    let v = 0;
    for (let i = 0; i < size; i++) {
      const r = reg + i;
      let b = 0;
      if (r < 4) b = 0xff;
      else if (r >= 8 && r < 12) b = pf?.cfg[r] ?? 0; // revision + class like the PF
      v |= b << (8 * i);
    }
    return v >>> 0;
  }

  /** A minimal PCIe capability at 0xE0 (Linux gives 4 KiB config space only to PCIe functions). */
  private addPcieCap(f: Fn, type: number): void {
    f.cfg[6] = (f.cfg[6] ?? 0) | 0x10; // Status: capability list
    f.cfg[0x34] = 0xe0;
    f.cfg[0xe0] = 0x10;
    f.cfg[0xe1] = 0;
    le(f.cfg, 0xe2, 2, 2 | (type << 4));
  }

  private makeFn(vendor: number, device: number, cls: number): Fn {
    const cfg = new Uint8Array(4096);
    const wmask = new Uint8Array(4096);
    le(cfg, 0, 2, vendor);
    le(cfg, 2, 2, device);
    le(cfg, 9, 3, cls);
    le(wmask, 4, 2, 0x0547); // command: io, mem, master, parity, serr, intx-disable
    return { cfg, wmask };
  }

  configRead(bus: number, devfn: number, reg: number, size: AccessSize): number {
    const f = bus === 0 ? this.fns.get(devfn) : undefined;
    const vf = devfn - StandinPlatform.SCRATCH_DEVFN - 1;
    if (f === undefined && bus === 0 && vf >= 0 && vf < this.enabledVfs() && reg + size <= 0x1000) return this.vfConfigRead(reg, size);
    if (f === undefined || reg + size > 0x1000) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return rd(f.cfg, reg, size);
  }

  configWrite(bus: number, devfn: number, reg: number, size: AccessSize, value: number): void {
    const f = bus === 0 ? this.fns.get(devfn) : undefined;
    if (f === undefined || reg + size > 0x1000) return;
    const sriov = devfn === StandinPlatform.SCRATCH_DEVFN;
    const numVfsWrite = sriov && reg < 0x112 && reg + size > 0x110;
    const oldNum = sriov ? rd(f.cfg, 0x110, 2) : 0;
    for (let i = 0; i < size; i++) {
      const m = f.wmask[reg + i] ?? 0;
      const o = f.cfg[reg + i] ?? 0;
      f.cfg[reg + i] = (o & ~m) | ((value >>> (8 * i)) & m);
    }
    if (numVfsWrite) {
      // NumVFs is writable only while VF Enable is clear, and never above TotalVFs.
      const shifted = reg <= 0x110 ? value >>> ((0x110 - reg) * 8) : (value << ((reg - 0x110) * 8)) >>> 0;
      const want = reg === 0x111 ? (oldNum & 0xff) | ((value & 0xff) << 8) : shifted & 0xffff;
      const ok = ((f.cfg[0x108] ?? 0) & 1) === 0 && want <= StandinPlatform.TOTAL_VFS;
      le(f.cfg, 0x110, 2, ok ? want : oldNum);
    }
    if (devfn === StandinPlatform.SCRATCH_DEVFN && reg <= 5 && reg + size > 4) this.updateIntx();
  }

  /** Test-only: sets the scratch device's INTA# level (as a write of the trigger register would). */
  setScratchIntx(level: boolean): void {
    this.regs[StandinPlatform.INTX_REG] = level ? 1 : 0;
    this.updateIntx();
  }

  /** Recomputes Status.Interrupt and the INTA# level from the trigger register and Command.INTx-disable. */
  private updateIntx(): void {
    const f = this.fns.get(StandinPlatform.SCRATCH_DEVFN);
    if (f === undefined) return;
    const level = ((this.regs[StandinPlatform.INTX_REG] ?? 0) & 1) === 1;
    f.cfg[6] = ((f.cfg[6] ?? 0) & ~0x08) | (level ? 0x08 : 0);
    const out = level && ((f.cfg[5] ?? 0) & 0x04) === 0;
    if (out === this.intxOut) return;
    this.intxOut = out;
    if (out) this.intxAsserts++;
    this.irq?.intx(StandinPlatform.SCRATCH_DEVFN, 1, out);
  }

  /** The scratch device's BAR0 base, or undefined while memory decoding is off. */
  scratchBar(): number | undefined {
    const f = this.fns.get(StandinPlatform.SCRATCH_DEVFN);
    if (f === undefined || (rd(f.cfg, 4, 2) & 2) === 0) return undefined;
    const base = rd(f.cfg, 0x10, 4) & ~0xf;
    return base === 0 ? undefined : base >>> 0;
  }

  mmioRead(addr: number, size: AccessSize): number {
    const base = this.scratchBar();
    if (base !== undefined && addr >= base && addr + size <= base + 0x1000) {
      const off = addr - base;
      const w = this.regs[off >>> 2] ?? 0;
      const sh = (off & 3) * 8;
      return size === 4 ? w >>> 0 : (w >>> sh) & ((1 << (size * 8)) - 1);
    }
    this.unclaimed++;
    return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  }

  mmioWrite(addr: number, size: AccessSize, value: number): void {
    const base = this.scratchBar();
    if (base !== undefined && addr >= base && addr + size <= base + 0x1000) {
      const off = addr - base;
      this.lastBarWrite = { addr, size, value };
      const i = off >>> 2;
      if (size === 4) this.regs[i] = value >>> 0;
      else {
        const sh = (off & 3) * 8;
        const m = ((1 << (size * 8)) - 1) << sh;
        this.regs[i] = (((this.regs[i] ?? 0) & ~m) | ((value << sh) & m)) >>> 0;
      }
      if (i === StandinPlatform.INTX_REG) this.updateIntx();
      return;
    }
    this.unclaimed++;
  }

  ioRead(_port: number, size: AccessSize): number {
    this.unclaimed++;
    return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  }

  ioWrite(): void {
    this.unclaimed++;
  }

  save(): StandinState {
    return {
      version: 1,
      configs: [...this.fns.entries()].map(([devfn, f]) => [devfn, ...f.cfg]),
      regs: [...this.regs],
    };
  }

  restore(state: unknown): void {
    const s = state as StandinState;
    if (typeof s !== "object" || s === null || s.version !== 1 || !Array.isArray(s.configs) || !Array.isArray(s.regs) || s.regs.length !== 1024) {
      throw new StandinStateError("not a stand-in platform state (version 1)");
    }
    for (const c of s.configs) {
      if (!Array.isArray(c) || c.length !== 4097 || !c.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) throw new StandinStateError("bad config image");
      const f = this.fns.get(c[0] ?? -1);
      if (f === undefined) throw new StandinStateError(`unknown function ${c[0]}`);
    }
    if (!s.regs.every((r) => Number.isInteger(r) && r >= 0 && r <= 0xffffffff)) throw new StandinStateError("bad register");
    for (const c of s.configs) this.fns.get(c[0] ?? -1)?.cfg.set(c.slice(1));
    this.regs.set(s.regs);
    // The line level follows from the restored registers; the engine state carries the IRQ line.
    const f = this.fns.get(StandinPlatform.SCRATCH_DEVFN);
    this.intxOut = ((this.regs[StandinPlatform.INTX_REG] ?? 0) & 1) === 1 && ((f?.cfg[5] ?? 0) & 0x04) === 0;
  }

  /** The layout this platform was built for. */
  get machineLayout(): MachineLayout {
    return this.layout;
  }
}
