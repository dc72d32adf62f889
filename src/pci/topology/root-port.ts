/**
 * A PCI Express root port: a type 1 header with bus numbers and I/O, memory and prefetchable
 * windows, a PCIe capability (Root Port) with a native hotplug slot, MSI for its events, PM and AER.
 *
 * The hotplug slot follows what Linux pciehp expects:
 * - `plug()` sets Presence Detect State and Changed; once the slot is powered, the link comes up
 *   (Data Link Layer Link Active with its State Changed event);
 * - every Slot Control write is a command: Command Completed is set;
 * - powering the slot off takes the link down; powering it on with a device present brings it up;
 * - `pressAttentionButton()` is the orderly removal request; `unplug()` removes the device
 *   (a surprise removal if the guest did not power the slot off first);
 * - the slot has an attention button, so Linux enables the button event rather than presence
 *   detect: a hot-add is `hotAdd()`, the card plus a button press (QEMU raises both on
 *   device_add), and pciehp powers the slot and enumerates the card (`test/guest/hotplug.test.ts`);
 * - the hotplug interrupt is raised when Hot-Plug Interrupt Enable and an enabled event's status
 *   bit become set together (an MSI on that rising edge, or INTx held while it lasts).
 * @module
 */
import { addAer } from "../caps/aer.js";
import { addMsi } from "../caps/msi.js";
import { addPcie, LNKSTA_DLLLA, PCIE, type PcieCap, SLTCTL, SLTSTA } from "../caps/pcie.js";
import { addPm } from "../caps/pm.js";
import type { StateType } from "../../state/versioned.js";
import { PciPlugError } from "../errors.js";
import type { PciEffect } from "../function.js";
import { PciFunction } from "../function.js";
import { BCTL, CMD, PCI } from "../regs.js";
import { rootPortStateType, type RootPortState, type TopologyParseOptions } from "./topology-state.js";

/** Options of a root port. */
export interface RootPortOptions {
  /** Physical slot number (Slot Capabilities); default: the port number. */
  slotNumber?: number;
  /** Port number (Link Capabilities). */
  portNumber?: number;
  /** Vendor/device ids (default 1b36:000c, the ids QEMU uses for its generic root port). */
  vendorId?: number;
  deviceId?: number;
}

/** A decoded bridge window, `[base, limit]` inclusive, or `undefined` when closed. */
export type Window = readonly [number, number] | undefined;

/** A root port and its slot. */
export class RootPort {
  /** The port's own function (on the root bus). */
  readonly fn: PciFunction;
  /** Its PCIe capability. */
  readonly pcie: PcieCap;
  /** Functions in the slot by function number (ARI: 0-255), empty when the slot is empty. */
  private slotFns: PciFunction[] = [];
  private irqAsserted = false;
  /** Called when the slot's occupancy or power changes (the topology re-routes). */
  onChange: (() => void) | undefined;

  constructor(opts: RootPortOptions = {}) {
    const fn = new PciFunction({
      vendorId: opts.vendorId ?? 0x1b36,
      deviceId: opts.deviceId ?? 0x000c,
      classCode: 0x060400,
      headerType: 1,
      express: true,
      interruptPin: 1,
    });
    addPm(fn);
    addMsi(fn, { vectors: 1, addr64: true, perVectorMask: false });
    const portNumber = opts.portNumber ?? 0;
    this.pcie = addPcie(fn, { type: "rootPort", portNumber, slot: { number: opts.slotNumber ?? portNumber } });
    addAer(fn, { rootPort: true });
    this.fn = fn;
    this.pcie.onSlotWrite = (oldCtl, newCtl, ctlWritten, effects) => this.slotWrite(oldCtl, newCtl, ctlWritten, effects);
    fn.addHook({
      start: PCI.BRIDGE_CONTROL,
      end: PCI.BRIDGE_CONTROL + 2,
      before: () => {
        this.sbrBefore = (fn.config.get16(PCI.BRIDGE_CONTROL) & BCTL.SECONDARY_BUS_RESET) !== 0;
      },
      after: (_r, _s, _v, effects) => {
        const now = (fn.config.get16(PCI.BRIDGE_CONTROL) & BCTL.SECONDARY_BUS_RESET) !== 0;
        if (now && !this.sbrBefore) {
          for (const f of this.slotFns) f?.reset("bus");
          effects.push({ kind: "secondaryBusReset" });
        }
      },
    });
    fn.addHook({
      // Bus numbers, windows and Command change what the port forwards.
      start: PCI.COMMAND,
      end: PCI.IO_LIMIT_UPPER + 2,
      after: (_r, _s, _v, effects) => effects.push({ kind: "decodeChanged" }),
    });
    const devctl2 = this.pcie.offset + PCIE.DEVCTL2;
    fn.addHook({
      // ARI Forwarding Enable changes which function numbers the port passes.
      start: devctl2,
      end: devctl2 + 2,
      after: (_r, _s, _v, effects) => effects.push({ kind: "decodeChanged" }),
    });
    fn.realize();
  }

  private sbrBefore = false;

  /** Secondary bus number. */
  get secondaryBus(): number {
    return this.fn.config.get8(PCI.SECONDARY_BUS);
  }
  /** Subordinate bus number. */
  get subordinateBus(): number {
    return this.fn.config.get8(PCI.SUBORDINATE_BUS);
  }

  /** Memory window (non-prefetchable), or undefined when closed or memory forwarding is off. */
  memWindow(): Window {
    if ((this.fn.command & CMD.MEMORY) === 0) return undefined;
    const cs = this.fn.config;
    const base = ((cs.get16(PCI.MEM_BASE) & 0xfff0) << 16) >>> 0;
    const limit = ((((cs.get16(PCI.MEM_LIMIT) & 0xfff0) << 16) | 0xfffff) >>> 0);
    return base <= limit ? [base, limit] : undefined;
  }

  /** Prefetchable memory window. */
  prefWindow(): Window {
    if ((this.fn.command & CMD.MEMORY) === 0) return undefined;
    const cs = this.fn.config;
    const base = (((cs.get16(PCI.PREF_BASE) & 0xfff0) << 16) >>> 0) + cs.get32(PCI.PREF_BASE_UPPER) * 0x1_0000_0000;
    const limit = ((((cs.get16(PCI.PREF_LIMIT) & 0xfff0) << 16) | 0xfffff) >>> 0) + cs.get32(PCI.PREF_LIMIT_UPPER) * 0x1_0000_0000;
    return base <= limit ? [base, limit] : undefined;
  }

  /** I/O window. */
  ioWindow(): Window {
    if ((this.fn.command & CMD.IO) === 0) return undefined;
    const cs = this.fn.config;
    const base = ((cs.get8(PCI.IO_BASE) & 0xf0) << 8) | (cs.get16(PCI.IO_BASE_UPPER) << 16);
    const limit = ((cs.get8(PCI.IO_LIMIT) & 0xf0) << 8) | 0xfff | (cs.get16(PCI.IO_LIMIT_UPPER) << 16);
    return base <= limit ? [base >>> 0, limit >>> 0] : undefined;
  }

  /** Whether the port forwards config type 0 requests to any function number (ARI Forwarding Enable). */
  get ariForwarding(): boolean {
    return this.pcie.ariForwarding;
  }

  private get slotCtl(): number {
    return this.pcie.get(PCIE.SLTCTL, 2);
  }

  /** Slot power is on (Power Controller Control = 0). */
  get powered(): boolean {
    return (this.slotCtl & SLTCTL.PCC) === 0;
  }

  /** The functions in the slot (empty if none). */
  get functions(): readonly PciFunction[] {
    return this.slotFns;
  }

  /** True when a device is present in the slot. */
  get occupied(): boolean {
    return this.slotFns.length > 0;
  }

  /** Functions the guest can reach: present and powered. */
  reachable(): readonly PciFunction[] {
    return this.occupied && this.powered ? this.slotFns : [];
  }

  /**
   * Puts a device in the slot. `coldplug` (as at boot: firmware powers the slot and the link is up
   * with no events); otherwise a hot-add that raises Presence Detect Changed and, if the slot is
   * powered, a link-up event.
   */
  plug(fns: PciFunction | readonly PciFunction[], opts: { coldplug?: boolean } = {}): void {
    const list = Array.isArray(fns) ? [...(fns as readonly PciFunction[])] : [fns as PciFunction];
    if (this.occupied) throw new PciPlugError("slot is occupied");
    if (list.length === 0 || list.length > 256) throw new PciPlugError(`a slot holds 1-256 functions, not ${list.length}`);
    list.forEach((f, i) => {
      // A VF exists only at the routing ID its PF's SR-IOV capability gives it; in a slot of its
      // own it would answer with a VF header (Vendor ID 0xFFFF, BARs 0) that no OS can use.
      if (f.isVf) throw new PciPlugError(`function ${i} is VF ${f.vfIndex} of an SR-IOV PF; pass a VF through with a function of its own`);
      if (list.indexOf(f) !== i) throw new PciPlugError(`function ${i} is given twice`);
    });
    this.slotFns = list;
    if (opts.coldplug === true) {
      // Powered, power indicator on, attention indicator off.
      this.pcie.set(PCIE.SLTCTL, 2, (this.slotCtl & ~(SLTCTL.PCC | SLTCTL.PWR_IND | SLTCTL.ATTN_IND)) | (1 << 8) | (3 << 6));
      this.pcie.update16(PCIE.SLTSTA, SLTSTA.PDS, 0);
      this.pcie.update16(PCIE.LNKSTA, LNKSTA_DLLLA, 0);
      this.onChange?.();
      return;
    }
    this.pcie.update16(PCIE.SLTSTA, SLTSTA.PDS | SLTSTA.PDC, 0);
    if (this.powered) this.linkUp();
    this.onChange?.();
    this.updateIrq();
  }

  /**
   * Removes the device from the slot and returns its functions. Presence Detect Changed is raised;
   * if the link was up, the link-down event too (a surprise removal, as pciehp handles it).
   */
  unplug(): PciFunction[] {
    const fns = this.slotFns;
    if (fns.length === 0) return [];
    this.slotFns = [];
    this.pcie.update16(PCIE.SLTSTA, SLTSTA.PDC, SLTSTA.PDS);
    this.linkDown();
    for (const f of fns) f.detach();
    this.onChange?.();
    this.updateIrq();
    return fns;
  }

  /**
   * A hot-add as QEMU's device_add makes it: the card goes in ({@link plug}) and the attention
   * button is pressed, the event Linux's pciehp enables on a slot that has a button.
   */
  hotAdd(fns: PciFunction | readonly PciFunction[]): void {
    this.plug(fns);
    this.pressAttentionButton();
  }

  /** Presses the attention button (the orderly removal request pciehp acts on after 5 s). */
  pressAttentionButton(): void {
    this.pcie.update16(PCIE.SLTSTA, SLTSTA.ABP, 0);
    this.updateIrq();
  }

  private linkUp(): void {
    if ((this.pcie.get(PCIE.LNKSTA, 2) & LNKSTA_DLLLA) !== 0) return;
    this.pcie.update16(PCIE.LNKSTA, LNKSTA_DLLLA, 0);
    this.pcie.update16(PCIE.SLTSTA, SLTSTA.DLLSC, 0);
  }

  private linkDown(): void {
    if ((this.pcie.get(PCIE.LNKSTA, 2) & LNKSTA_DLLLA) === 0) return;
    this.pcie.update16(PCIE.LNKSTA, 0, LNKSTA_DLLLA);
    this.pcie.update16(PCIE.SLTSTA, SLTSTA.DLLSC, 0);
  }

  private slotWrite(oldCtl: number, newCtl: number, ctlWritten: boolean, effects: PciEffect[]): void {
    if (ctlWritten) {
      const wasOn = (oldCtl & SLTCTL.PCC) === 0;
      const on = (newCtl & SLTCTL.PCC) === 0;
      if (wasOn !== on) {
        if (on && this.occupied) this.linkUp();
        if (!on) {
          this.linkDown();
          for (const f of this.slotFns) f.reset("power");
        }
        effects.push({ kind: "decodeChanged" });
        this.onChange?.();
      }
      // Every Slot Control write is a command, completed at once.
      this.pcie.update16(PCIE.SLTSTA, SLTSTA.CC, 0);
    }
    this.updateIrq();
  }

  /** Recomputes the hotplug interrupt from Slot Status and Slot Control. */
  private updateIrq(): void {
    const assert = this.hotplugPending();
    if (assert && !this.irqAsserted) this.fn.notify(0);
    else if (!assert && this.irqAsserted) this.fn.setIntx(false);
    this.irqAsserted = assert;
  }

  /**
   * Saves the port's function, the slot's occupancy and (unless `slotFunctions` is false, when
   * they travel with their devices) the slot functions' states.
   */
  save(opts: { slotFunctions?: boolean } = {}): RootPortState {
    const s: RootPortState = { version: 2, fn: this.fn.save(), occupied: this.slotFns.length };
    if (opts.slotFunctions !== false) s.slot = this.slotFns.map((f) => f.save());
    return s;
  }

  /** The parser of this port's saved state (versions 1 and 2); see `topology-state.ts`. */
  get stateType(): StateType<RootPortState> {
    this.stateTypeCache ??= rootPortStateType(this);
    return this.stateTypeCache;
  }
  private stateTypeCache: StateType<RootPortState> | undefined;

  /** A parser with options (slot function states required or refused). */
  stateTypeWith(opts: TopologyParseOptions): StateType<RootPortState> {
    return rootPortStateType(this, opts);
  }

  /**
   * Applies a state from {@link stateType}'s parser (no failure point): the port's function, the
   * slot functions if the state has them, and the hotplug interrupt's level as the restored Slot
   * Control and Slot Status give it (no new interrupt is sent).
   */
  restore(s: RootPortState): void {
    this.fn.restore(s.fn);
    if (s.slot !== undefined) s.slot.forEach((st, i) => this.slotFns[i]?.restore(st));
    this.irqAsserted = this.hotplugPending();
  }

  private hotplugPending(): boolean {
    const ctl = this.slotCtl;
    const sta = this.pcie.get(PCIE.SLTSTA, 2);
    let pending = 0;
    if (ctl & SLTCTL.ABP_EN) pending |= sta & SLTSTA.ABP;
    if (ctl & SLTCTL.PFD_EN) pending |= sta & SLTSTA.PFD;
    if (ctl & SLTCTL.MRLS_EN) pending |= sta & SLTSTA.MRLSC;
    if (ctl & SLTCTL.PDC_EN) pending |= sta & SLTSTA.PDC;
    if (ctl & SLTCTL.CC_EN) pending |= sta & SLTSTA.CC;
    if (ctl & SLTCTL.DLLSC_EN) pending |= sta & SLTSTA.DLLSC;
    return (ctl & SLTCTL.HPI_EN) !== 0 && pending !== 0;
  }
}
