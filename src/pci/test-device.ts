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
import type { Activity } from "../state/migration.js";
import { StateError, arr, bool, field, int, obj, oneOf, onlyKeys, u32 } from "../state/parse.js";
import { defineState, type StateType } from "../state/versioned.js";
import type { AccessSize, BarHandler } from "./function.js";
import { PciFunction } from "./function.js";

/** Test device ids. */
export const TESTDEV = { VENDOR: 0x1b36, DEVICE: 0x0005, VF_DEVICE: 0x0105, ID: 0x4e560001 } as const;

const SCRATCH_START = 0x10;
const SCRATCH_END = 0x80;

/** Saved registers of one test function (version 2 adds `lastWriteSize`, register 0x8c). */
export interface TestFunctionState {
  /** Scratch dwords 0x10-0x7f. */
  scratch: number[];
  /** Register 0x80 (PF only; false on VFs). */
  intx: boolean;
  /** Register 0x88: interrupts raised so far. */
  raised: number;
  /** Register 0x8c: size of the last write to BAR0 (0 before any). */
  lastWriteSize: 0 | 1 | 2 | 4;
}

/** A guest request that raises or changes an interrupt, held while the device is not running. */
export interface TestRequestState {
  /** -1 for the PF, else the VF number. */
  fn: number;
  /** `intx`: a write of register 0x80; `raise`: a write of register 0x84. */
  reg: "intx" | "raise";
  value: number;
}

/** How many interrupt requests wait while the device is quiesced or stopped; later ones are dropped (and counted). */
export const TESTDEV_MAX_WAITING = 64;

/** Registers of one function of the test device. */
class TestRegs implements BarHandler {
  readonly scratch = new Uint32Array((SCRATCH_END - SCRATCH_START) / 4);
  intx = false;
  raised = 0;
  lastWriteSize: 0 | 1 | 2 | 4 = 0;
  fn: PciFunction | undefined;

  /**
   * @param identity - 0xffff for the PF, else the VF number
   * @param gate - takes an interrupt request while the device is not running (returns true)
   */
  constructor(
    private readonly identity: number,
    private readonly gate: (reg: "intx" | "raise", value: number) => boolean,
  ) {}

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
      if (!this.gate("intx", value)) this.run("intx", value);
      return;
    }
    if (off === 0x84 && !this.gate("raise", value)) this.run("raise", value);
  }

  /** Runs an interrupt request (at once while running, or when the device runs again). */
  run(reg: "intx" | "raise", value: number): void {
    if (reg === "intx") {
      this.intx = (value & 1) !== 0;
      this.fn?.setIntx(this.intx);
      return;
    }
    this.raised = (this.raised + 1) >>> 0;
    this.fn?.notify(value & 0xffff);
  }

  reset(): void {
    this.scratch.fill(0);
    this.intx = false;
    this.raised = 0;
    this.lastWriteSize = 0;
  }

  save(): TestFunctionState {
    return { scratch: [...this.scratch], intx: this.intx, raised: this.raised, lastWriteSize: this.lastWriteSize };
  }

  apply(s: TestFunctionState): void {
    this.scratch.set(s.scratch);
    this.intx = s.intx;
    this.raised = s.raised;
    this.lastWriteSize = s.lastWriteSize;
  }
}

function parseRegs(u: unknown, path: string, pf: boolean): TestFunctionState {
  const o = obj(u, path);
  onlyKeys(o, path, ["scratch", "intx", "raised", "lastWriteSize"]);
  const intx = field(o, "intx", path, bool);
  if (intx && !pf) throw new StateError(`${path}.intx`, "a VF has no INTx register (0x80 is the PF's)");
  const size = field(o, "lastWriteSize", path, (v, p) => int(v, p, 0, 4));
  if (size === 3) throw new StateError(`${path}.lastWriteSize`, "3 is not an access size (0, 1, 2 or 4)");
  return {
    scratch: field(o, "scratch", path, (v, p) => arr(v, p, (SCRATCH_END - SCRATCH_START) / 4, u32, true)),
    intx,
    raised: field(o, "raised", path, u32),
    lastWriteSize: size as 0 | 1 | 2 | 4,
  };
}

/** Saved state of the test device, version 2 (its registers; PCI state is saved by the topology). */
export interface PciTestDeviceState {
  version: 2;
  pf: TestFunctionState;
  vfs: TestFunctionState[];
  /** Interrupt requests that arrived while the device was not running, in order. */
  waiting: TestRequestState[];
}

/**
 * The PCI test device: a PF with SR-IOV and its VFs.
 * @example
 * ```ts
 * const dev = new PciTestDevice();
 * root.rootPorts[0]!.plug(dev.pf, { coldplug: true });
 * ```
 * Its model side follows the `StatefulDevice` contract of `devices/lifecycle/device.ts`
 * structurally (the PCI layer does not import the device layer).
 */
export class PciTestDevice {
  /** The physical function. */
  readonly pf: PciFunction;
  /** Its SR-IOV capability. */
  readonly sriov: SriovCap;
  private readonly pfRegs: TestRegs;
  private readonly vfRegs: TestRegs[] = [];
  private activity: Activity = "running";
  private waiting: TestRequestState[] = [];
  /** Interrupt requests dropped because {@link TESTDEV_MAX_WAITING} were already waiting. */
  droppedRequests = 0;
  /** Parses saved state (versions 1 and 2) against this device's VF count. */
  readonly stateType: StateType<PciTestDeviceState>;

  constructor(opts: { totalVfs?: number } = {}) {
    const gate = (fn: number) => (reg: "intx" | "raise", value: number): boolean => this.hold(fn, reg, value);
    const pfRegs = new TestRegs(0xffff, gate(-1));
    this.pfRegs = pfRegs;
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
        const regs = new TestRegs(n, gate(n));
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
    const totalVfs = this.vfRegs.length;
    this.stateType = defineState<PciTestDeviceState>(
      "pci-testdev",
      2,
      {
        1: (o, path) => {
          // Version 1 had no register 0x8c and no waiting requests.
          const withSize = (r: unknown, p: string): unknown => ({ ...obj(r, p), lastWriteSize: 0 });
          return { ...o, version: 2, pf: withSize(o.pf, `${path}.pf`), vfs: arr(o.vfs, `${path}.vfs`, totalVfs, withSize, true), waiting: [] };
        },
      },
      (o, path) => {
        onlyKeys(o, path, ["version", "pf", "vfs", "waiting"]);
        return {
          version: 2,
          pf: field(o, "pf", path, (v, p) => parseRegs(v, p, true)),
          vfs: field(o, "vfs", path, (v, p) => arr(v, p, totalVfs, (x, xp) => parseRegs(x, xp, false), true)),
          waiting: field(o, "waiting", path, (v, p) =>
            arr(v, p, TESTDEV_MAX_WAITING, (x, xp) => {
              const w = obj(x, xp);
              onlyKeys(w, xp, ["fn", "reg", "value"]);
              const reg = field(w, "reg", xp, (r, rp) => oneOf(r, rp, ["intx", "raise"] as const));
              const fn = field(w, "fn", xp, (f, fp) => int(f, fp, -1, reg === "intx" ? -1 : totalVfs - 1));
              return { fn, reg, value: field(w, "value", xp, u32) };
            }),
          ),
        };
      },
    );
  }

  /** Holds an interrupt request while the device is not running; false = run it now. */
  private hold(fn: number, reg: "intx" | "raise", value: number): boolean {
    if (this.activity === "running") return false;
    if (this.waiting.length >= TESTDEV_MAX_WAITING) this.droppedRequests++;
    else this.waiting.push({ fn, reg, value: value >>> 0 });
    return true;
  }

  /** Saves the device registers of the PF and every VF, and the waiting interrupt requests. */
  save(): PciTestDeviceState {
    return { version: 2, pf: this.pfRegs.save(), vfs: this.vfRegs.map((r) => r.save()), waiting: this.waiting.map((w) => ({ ...w })) };
  }

  /**
   * Applies a state from {@link stateType}'s parser (no failure point). The INTx level itself
   * travels with the PCI function's state (a vector raised while neither MSI nor MSI-X was on
   * asserts it without register 0x80 recording it).
   */
  restore(s: PciTestDeviceState): void {
    this.pfRegs.apply(s.pf);
    s.vfs.forEach((v, i) => this.vfRegs[i]?.apply(v));
    this.waiting = s.waiting.map((w) => ({ ...w }));
    if (this.activity === "running") this.runWaiting();
  }

  /**
   * Running: interrupt requests run at once (those that waited run first, in order). Quiesced or
   * stopped: registers answer, but writes of 0x80 and 0x84 wait (up to {@link TESTDEV_MAX_WAITING}).
   * The device does no DMA.
   */
  setActivity(a: Activity): void {
    this.activity = a;
    if (a === "running") this.runWaiting();
  }

  /** The test device uses no clock and no backend. */
  attach(_io: { clock: unknown }): void {}

  private runWaiting(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) (r.fn < 0 ? this.pfRegs : this.vfRegs[r.fn])?.run(r.reg, r.value);
  }
}
