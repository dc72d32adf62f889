/**
 * PCI Express capability, version 2 (PCIe Base 4.0 section 7.5.3), for endpoints and root ports:
 * Device Capabilities/Control/Status (Function Level Reset through Device Control bit 15), Link
 * Capabilities/Control/Status, and for root ports Slot Capabilities/Control/Status (the hotplug
 * register file; the slot state machine lives in `topology/slot.ts`), Root Control/Status, and
 * Device Capabilities 2 / Control 2 (ARI Forwarding).
 * @module
 */
import type { PciEffect, PciFunction } from "../function.js";
import { CAP_ID } from "../regs.js";

/** Device/port types (PCIe capabilities register bits 7:4). */
export const PCIE_TYPE = { endpoint: 0x0, legacyEndpoint: 0x1, rootPort: 0x4, rcEndpoint: 0x9 } as const;

/** Register offsets inside the PCIe capability. */
export const PCIE = {
  CAPS: 0x02,
  DEVCAP: 0x04,
  DEVCTL: 0x08,
  DEVSTA: 0x0a,
  LNKCAP: 0x0c,
  LNKCTL: 0x10,
  LNKSTA: 0x12,
  SLTCAP: 0x14,
  SLTCTL: 0x18,
  SLTSTA: 0x1a,
  RTCTL: 0x1c,
  RTCAP: 0x1e,
  RTSTA: 0x20,
  DEVCAP2: 0x24,
  DEVCTL2: 0x28,
  LNKCAP2: 0x2c,
  LNKCTL2: 0x30,
  LNKSTA2: 0x32,
  SIZE: 0x3c,
} as const;

/** Slot Capabilities bits. */
export const SLTCAP = {
  ATTN_BUTTON: 1 << 0,
  POWER_CTRL: 1 << 1,
  MRL_SENSOR: 1 << 2,
  ATTN_IND: 1 << 3,
  PWR_IND: 1 << 4,
  HP_SURPRISE: 1 << 5,
  HP_CAPABLE: 1 << 6,
  NO_CMD_COMPLETED: 1 << 18,
} as const;

/** Slot Control bits. */
export const SLTCTL = {
  ABP_EN: 1 << 0,
  PFD_EN: 1 << 1,
  MRLS_EN: 1 << 2,
  PDC_EN: 1 << 3,
  CC_EN: 1 << 4,
  HPI_EN: 1 << 5,
  ATTN_IND: 3 << 6,
  PWR_IND: 3 << 8,
  /** Power Controller Control: 1 = power off. */
  PCC: 1 << 10,
  EIC: 1 << 11,
  DLLSC_EN: 1 << 12,
} as const;

/** Slot Status bits. */
export const SLTSTA = {
  ABP: 1 << 0,
  PFD: 1 << 1,
  MRLSC: 1 << 2,
  PDC: 1 << 3,
  CC: 1 << 4,
  MRLSS: 1 << 5,
  PDS: 1 << 6,
  EIS: 1 << 7,
  DLLSC: 1 << 8,
} as const;

/** Link Status: Data Link Layer Link Active. */
export const LNKSTA_DLLLA = 1 << 13;

/** Options of {@link addPcie}. */
export interface PcieOptions {
  type: keyof typeof PCIE_TYPE;
  /** Endpoints: advertise Function Level Reset (default true). */
  flr?: boolean;
  /** Root ports: port number in Link Capabilities. */
  portNumber?: number;
  /** Root ports: a hotplug slot with this physical slot number. */
  slot?: { number: number };
}

/** The PCIe capability's runtime (slot register access for the hotplug state machine). */
export class PcieCap {
  /**
   * Called after every guest write that touches Slot Control or Slot Status, with Slot Control's
   * value before and after the write (the hotplug slot's state machine hooks in here).
   */
  onSlotWrite: ((oldCtl: number, newCtl: number, ctlWritten: boolean, effects: PciEffect[]) => void) | undefined;

  constructor(
    private readonly fn: PciFunction,
    readonly offset: number,
  ) {}

  /** Reads a 16- or 32-bit register of the capability. */
  get(reg: number, size: 2 | 4): number {
    return size === 2 ? this.fn.config.get16(this.offset + reg) : this.fn.config.get32(this.offset + reg);
  }

  /** Sets a register, ignoring the guest masks (device side). */
  set(reg: number, size: 2 | 4, v: number): void {
    if (size === 2) this.fn.config.set16(this.offset + reg, v);
    else this.fn.config.set32(this.offset + reg, v);
  }

  /** Sets or clears bits of a 16-bit register (device side). */
  update16(reg: number, set: number, clear: number): void {
    this.set(reg, 2, (this.get(reg, 2) & ~clear) | set);
  }

  /** ARI Forwarding Enable (Device Control 2 bit 5). */
  get ariForwarding(): boolean {
    return (this.get(PCIE.DEVCTL2, 2) & (1 << 5)) !== 0;
  }
}

/** Adds a PCIe v2 capability. The function must have a 4 KiB config space. */
export function addPcie(fn: PciFunction, opts: PcieOptions): PcieCap {
  const cs = fn.config;
  const off = cs.addCapability(CAP_ID.PCIE, PCIE.SIZE);
  const root = opts.type === "rootPort";
  const hasSlot = root && opts.slot !== undefined;
  cs.set16(off + PCIE.CAPS, 0x2 | (PCIE_TYPE[opts.type] << 4) | (hasSlot ? 0x100 : 0));
  cs.checkBytes(off + PCIE.CAPS, 2);
  const flr = !root && (opts.flr ?? true);
  // DevCap: 256-byte max payload, role-based error reporting, FLR.
  cs.set32(off + PCIE.DEVCAP, 0x1 | (1 << 15) | (flr ? 1 << 28 : 0));
  cs.checkBytes(off + PCIE.DEVCAP, 4);
  // DevCtl: everything but bit 15 (Initiate FLR / Bridge Config Retry) is plain read-write.
  cs.set16(off + PCIE.DEVCTL, 0x2810); // relaxed ordering, no snoop, max read request 512
  cs.setMasks(off + PCIE.DEVCTL, 2, { w: 0x7fff });
  cs.setMasks(off + PCIE.DEVSTA, 2, { w1c: 0x000f });
  // Link: 2.5 GT/s x1, DLL Link Active Reporting on root ports.
  cs.set32(off + PCIE.LNKCAP, 0x1 | (0x1 << 4) | (root ? 1 << 20 : 0) | ((opts.portNumber ?? 0) << 24));
  cs.checkBytes(off + PCIE.LNKCAP, 4);
  cs.setMasks(off + PCIE.LNKCTL, 2, { w: 0x0ffb & ~0x0020 }); // retrain link reads 0
  cs.set16(off + PCIE.LNKSTA, 0x1 | (0x1 << 4) | (1 << 12) | (root ? 0 : 0));
  cs.setMasks(off + PCIE.LNKSTA, 2, { w1c: 0xc000 });
  if (hasSlot) {
    const cap =
      SLTCAP.ATTN_BUTTON | SLTCAP.POWER_CTRL | SLTCAP.ATTN_IND | SLTCAP.PWR_IND | SLTCAP.HP_CAPABLE |
      (((opts.slot?.number ?? 0) & 0x1fff) << 19);
    cs.set32(off + PCIE.SLTCAP, cap >>> 0);
    cs.checkBytes(off + PCIE.SLTCAP, 4);
    // Slot off, indicators off until a device is plugged.
    cs.set16(off + PCIE.SLTCTL, SLTCTL.PCC | (3 << 6) | (3 << 8));
    cs.setMasks(off + PCIE.SLTCTL, 2, { w: 0x1fff });
    cs.setMasks(off + PCIE.SLTSTA, 2, { w1c: SLTSTA.ABP | SLTSTA.PFD | SLTSTA.MRLSC | SLTSTA.PDC | SLTSTA.CC | SLTSTA.DLLSC });
    // The slot's state machine drives presence and the link.
    cs.markDynamic(off + PCIE.SLTSTA, 2, SLTSTA.PDS);
    cs.markDynamic(off + PCIE.LNKSTA, 2, LNKSTA_DLLLA);
  }
  if (root) {
    cs.setMasks(off + PCIE.RTCTL, 2, { w: 0x001f });
    cs.setMasks(off + PCIE.RTSTA, 4, { w1c: 1 << 16 });
    cs.set32(off + PCIE.DEVCAP2, 1 << 5); // ARI Forwarding Supported
    cs.checkBytes(off + PCIE.DEVCAP2, 4);
    cs.setMasks(off + PCIE.DEVCTL2, 2, { w: 1 << 5 });
  } else {
    cs.set32(off + PCIE.DEVCAP2, 0x1f); // completion timeout ranges A-D, disable supported
    cs.checkBytes(off + PCIE.DEVCAP2, 4);
    cs.setMasks(off + PCIE.DEVCTL2, 2, { w: 0x001f });
  }
  cs.set32(off + PCIE.LNKCAP2, 1 << 1); // 2.5 GT/s supported
  cs.checkBytes(off + PCIE.LNKCAP2, 4);
  cs.set16(off + PCIE.LNKCTL2, 0x1);
  cs.setMasks(off + PCIE.LNKCTL2, 2, { w: 0x000f });
  const cap = new PcieCap(fn, off);
  const devctlHi = off + PCIE.DEVCTL + 1;
  let oldSlotCtl = 0;
  fn.addHook({
    start: off + PCIE.DEVCTL,
    end: off + PCIE.SIZE,
    before: () => {
      oldSlotCtl = cs.get16(off + PCIE.SLTCTL);
    },
    after: (reg, size, value, effects) => {
      if (flr && reg <= devctlHi && reg + size > devctlHi && ((value >>> (8 * (devctlHi - reg))) & 0x80) !== 0) {
        fn.reset("flr");
        effects.push({ kind: "flr" });
        return;
      }
      const sc = off + PCIE.SLTCTL;
      if (hasSlot && reg < sc + 4 && reg + size > sc) {
        cap.onSlotWrite?.(oldSlotCtl, cs.get16(sc), reg < sc + 2, effects);
      }
    },
  });
  return cap;
}
