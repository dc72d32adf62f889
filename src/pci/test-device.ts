/**
 * A generic PCI test device, in the spirit of QEMU's edu and pci-testdev: it exercises the PCI core
 * before any NIC exists, and gives real-guest tests something simple to poke.
 *
 * It uses the ids QEMU registered for its PCI test device (1b36:0005), since it plays that role;
 * its VFs have VF Device ID 0x0105 (our choice).
 *
 * BAR0 (memory, 4 KiB) registers, the same on the PF and on every VF:
 * | offset | register |
 * | --- | --- |
 * | 0x00 | ID, read-only: 0x4e560001 ("NV", version 1) |
 * | 0x04 | function identity, read-only: 0xffff for the PF, else the VF number |
 * | 0x10-0x7f | scratch, read-write |
 * | 0x80 | INTx level (PF only): write 1 asserts, 0 deasserts; reads the level |
 * | 0x84 | write `v`: raise interrupt vector `v` (MSI-X, MSI or INTx, whichever is enabled) |
 * | 0x88 | interrupts raised so far (read-only) |
 * | 0x8c | size in bytes of the last write to BAR0 (read-only): shows how the CPU split an access |
 *
 * BAR2 (64-bit memory, 4 KiB) holds the MSI-X table (offset 0) and PBA (offset 0x800).
 * Capabilities: PM, MSI (PF), MSI-X, PCI Express endpoint with FLR, AER, ARI, SR-IOV (PF: TotalVFs
 * 8). First VF Offset and VF Stride depend on ARI Capable Hierarchy: 1/1 with ARI (VFs right after
 * the PF), 8/8 without (one device number per VF).
 * @module
 */
import { addAer } from "./caps/aer.js";
import { addAri } from "./caps/ari.js";
import { addMsi } from "./caps/msi.js";
import { addMsix } from "./caps/msix.js";
import { addPcie } from "./caps/pcie.js";
import { addPm } from "./caps/pm.js";
import { addSriov, type SriovCap } from "./caps/sriov.js";
import { PciStateError } from "./errors.js";
import type { AccessSize, BarHandler } from "./function.js";
import { PciFunction } from "./function.js";

/** Test device ids. */
export const TESTDEV = { VENDOR: 0x1b36, DEVICE: 0x0005, VF_DEVICE: 0x0105, ID: 0x4e560001 } as const;

const SCRATCH_START = 0x10;
const SCRATCH_END = 0x80;

/** Saved registers of one test function. */
export interface TestFunctionState {
  scratch: number[];
  intx: boolean;
  raised: number;
}

/** Registers of one function of the test device. */
class TestRegs implements BarHandler {
  readonly scratch = new Uint32Array((SCRATCH_END - SCRATCH_START) / 4);
  intx = false;
  raised = 0;
  lastWriteSize = 0;
  fn: PciFunction | undefined;

  constructor(private readonly identity: number) {}

  read(offset: number, size: AccessSize): number {
    const dw = this.readDword(offset & ~3);
    const shift = (offset & 3) * 8;
    return size === 4 ? dw : (dw >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  private readDword(off: number): number {
    if (off === 0x00) return TESTDEV.ID;
    if (off === 0x04) return this.identity;
    if (off >= SCRATCH_START && off < SCRATCH_END) return this.scratch[(off - SCRATCH_START) >>> 2]!;
    if (off === 0x80) return this.intx ? 1 : 0;
    if (off === 0x88) return this.raised >>> 0;
    if (off === 0x8c) return this.lastWriteSize;
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    const off = offset & ~3;
    this.lastWriteSize = size;
    if (off >= SCRATCH_START && off < SCRATCH_END) {
      const i = (off - SCRATCH_START) >>> 2;
      const shift = (offset & 3) * 8;
      const mask = size === 4 ? 0xffffffff : ((size === 1 ? 0xff : 0xffff) << shift) >>> 0;
      this.scratch[i] = ((this.scratch[i]! & ~mask) | ((value << shift) & mask)) >>> 0;
      return;
    }
    if (off === 0x80 && this.identity === 0xffff) {
      this.intx = (value & 1) !== 0;
      this.fn?.setIntx(this.intx);
      return;
    }
    if (off === 0x84) {
      this.raised = (this.raised + 1) >>> 0;
      this.fn?.notify(value & 0xffff);
    }
  }

  reset(): void {
    this.scratch.fill(0);
    this.intx = false;
    this.raised = 0;
    this.lastWriteSize = 0;
  }

  save(): TestFunctionState {
    return { scratch: [...this.scratch], intx: this.intx, raised: this.raised };
  }

  restore(s: TestFunctionState): void {
    if (typeof s !== "object" || s === null || !Array.isArray(s.scratch) || s.scratch.length !== this.scratch.length) {
      throw new PciStateError("bad test device state");
    }
    if (!s.scratch.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff) || typeof s.intx !== "boolean" || !Number.isInteger(s.raised)) {
      throw new PciStateError("bad test device state");
    }
    this.scratch.set(s.scratch);
    this.intx = s.intx;
    this.raised = s.raised >>> 0;
  }
}

/** Saved state of the test device (its registers; PCI state is saved by the topology). */
export interface PciTestDeviceState {
  version: 1;
  pf: TestFunctionState;
  vfs: TestFunctionState[];
}

/**
 * The PCI test device: a PF with SR-IOV and its VFs.
 * @example
 * ```ts
 * const dev = new PciTestDevice();
 * root.rootPorts[0]!.plug(dev.pf, { coldplug: true });
 * ```
 */
export class PciTestDevice {
  /** The physical function. */
  readonly pf: PciFunction;
  /** Its SR-IOV capability. */
  readonly sriov: SriovCap;
  private readonly pfRegs = new TestRegs(0xffff);
  private readonly vfRegs: TestRegs[] = [];

  constructor(opts: { totalVfs?: number } = {}) {
    const pfRegs = this.pfRegs;
    const pf = new PciFunction({
      vendorId: TESTDEV.VENDOR,
      deviceId: TESTDEV.DEVICE,
      revision: 1,
      classCode: 0x00ff00, // unclassified device
      subsystemVendorId: TESTDEV.VENDOR,
      subsystemId: 0x1100,
      interruptPin: 1,
      express: true,
      bars: [
        { index: 0, kind: "mem32", size: 4096, handler: pfRegs },
        { index: 2, kind: "mem64", size: 4096 },
      ],
    });
    pfRegs.fn = pf;
    addPm(pf);
    addMsi(pf, { vectors: 4 });
    addMsix(pf, { vectors: 4, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x800 });
    addPcie(pf, { type: "endpoint", flr: true });
    addAer(pf);
    addAri(pf);
    this.sriov = addSriov(pf, {
      totalVfs: opts.totalVfs ?? 8,
      vfDeviceId: TESTDEV.VF_DEVICE,
      firstVfOffset: 8,
      vfStride: 8,
      routing: (_num, ari) => (ari ? { offset: 1, stride: 1 } : { offset: 8, stride: 8 }),
      vfBars: [
        { index: 0, kind: "mem32", size: 4096 },
        { index: 2, kind: "mem64", size: 4096 },
      ],
      createVf: (n) => {
        const regs = new TestRegs(n);
        const vf = new PciFunction({
          vendorId: TESTDEV.VENDOR,
          deviceId: TESTDEV.VF_DEVICE,
          revision: 1,
          classCode: 0x00ff00,
          subsystemVendorId: TESTDEV.VENDOR,
          subsystemId: 0x1100,
          express: true,
          bars: [
            { index: 0, kind: "mem32", size: 4096, handler: regs },
            { index: 2, kind: "mem64", size: 4096 },
          ],
        });
        regs.fn = vf;
        addMsix(vf, { vectors: 2, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x800 });
        addPcie(vf, { type: "endpoint", flr: true });
        vf.onReset = () => regs.reset();
        this.vfRegs.push(regs);
        return vf;
      },
    });
    pf.onReset = () => pfRegs.reset();
    pf.realize();
    this.pf = pf;
  }

  /** Saves the device registers of the PF and every VF. */
  save(): PciTestDeviceState {
    return { version: 1, pf: this.pfRegs.save(), vfs: this.vfRegs.map((r) => r.save()) };
  }

  /** Restores {@link save}'s output (all or nothing). */
  restore(s: PciTestDeviceState): void {
    if (typeof s !== "object" || s === null || s.version !== 1 || !Array.isArray(s.vfs) || s.vfs.length !== this.vfRegs.length) {
      throw new PciStateError("bad test device state");
    }
    const before = this.save();
    try {
      this.pfRegs.restore(s.pf);
      s.vfs.forEach((v, i) => this.vfRegs[i]!.restore(v));
    } catch (e) {
      this.pfRegs.restore(before.pf);
      before.vfs.forEach((v, i) => this.vfRegs[i]!.restore(v));
      throw e;
    }
    // The INTx level itself travels with the PCI function's state (it may have been asserted by a
    // vector raised while neither MSI nor MSI-X was on, which the 0x80 register does not record).
  }
}
