/**
 * A PCI function: its configuration space (header, BARs, capabilities), its BAR regions as the
 * device model serves them, its interrupts (MSI-X, MSI or INTx, chosen from config space) and its
 * DMA (gated by Bus Master Enable).
 *
 * The shape follows libvfio-user: create the function, declare ids, BARs and capabilities,
 * `realize()`, then attach it to a bus. The library owns the standard header and the known
 * capabilities; the device model sees only its own BAR ranges through {@link BarHandler}.
 * @module
 */
import type { DmaSpace, InterruptSink } from "./interfaces.js";
import { ALL_ONES, ConfigSpace, type ConfigSize } from "./config-space.js";
import { PciConfigError } from "./errors.js";
import { CMD, PCI, STS } from "./regs.js";
import { fromHex, toHex } from "./hex.js";
import type { StateType } from "../state/versioned.js";
import { pciFunctionStateType } from "./function-state.js";
import type { SriovCap } from "./caps/sriov.js";

/** Size of one access. */
export type AccessSize = 1 | 2 | 4;

/** A device model's handler for one BAR; `offset` is relative to the BAR (or VF slice) start. */
export interface BarHandler {
  /** Returns the value, zero-extended. Must not throw. */
  read(offset: number, size: AccessSize): number;
  /** Must not throw. */
  write(offset: number, size: AccessSize, value: number): void;
}

/** The kinds of BAR. */
export type BarKind = "mem32" | "mem64" | "io";

/** A BAR declaration. `size` is a power of two (at least 16 for memory, 4 for I/O). */
export interface BarDecl {
  /** BAR number 0-5 (a 64-bit BAR also takes `index + 1`). */
  index: number;
  kind: BarKind;
  size: number;
  prefetchable?: boolean;
  handler?: BarHandler;
}

/** What a config write asks the bus to do. The bus applies effects; a function never reaches into it. */
export type PciEffect =
  /** A BAR's decoded address changed (`undefined` = not decoded). */
  | { kind: "barMoved"; bar: number; from: number | undefined; to: number | undefined }
  /** Something else that changes address decode: bridge windows, VF MSE, power state. */
  | { kind: "decodeChanged" }
  /** MSI-X was enabled/disabled or (function-)masked. */
  | { kind: "msixChanged"; enabled: boolean; masked: boolean }
  /** VF Enable changed in an SR-IOV capability. */
  | { kind: "vfEnable"; enabled: boolean; numVfs: number }
  /** Function Level Reset requested (already performed by the function). */
  | { kind: "flr" }
  /** A bridge's Secondary Bus Reset went from 0 to 1. */
  | { kind: "secondaryBusReset" };

/** Why a function is reset. */
export type ResetKind = "flr" | "bus" | "power";

/** A capability's hook on guest writes that overlap `[start, end)`. */
export interface WriteHook {
  start: number;
  end: number;
  /** Runs before the masked write (to snapshot old values). */
  before?(reg: number, size: AccessSize, value: number): void;
  /** Runs after the masked write; pushes effects. */
  after?(reg: number, size: AccessSize, value: number, effects: PciEffect[]): void;
  /** Runs on every reset of the function, after config space went back to its reset image. */
  reset?(): void;
}

/** An interrupt source that can route `notify()` (MSI-X and MSI capabilities implement it). */
export interface VectorSource {
  /** True while this mechanism is the one in use. */
  readonly enabled: boolean;
  /** Raises vector `v` (masked vectors go pending). */
  notify(v: number): void;
}

/** Options of a function. */
export interface PciFunctionOptions {
  vendorId: number;
  deviceId: number;
  revision?: number;
  /** 24-bit class code: class << 16 | subclass << 8 | prog-if. */
  classCode: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 0 = no INTx; 1-4 = INTA#-INTD#. */
  interruptPin?: 0 | 1 | 2 | 3 | 4;
  /** 0 = endpoint header, 1 = PCI-to-PCI bridge header. */
  headerType?: 0 | 1;
  /** Sets the multi-function bit of the header type. */
  multiFunction?: boolean;
  /** PCI Express function: 4 KiB config space. */
  express?: boolean;
  bars?: BarDecl[];
}

/**
 * Saved state of a function, version 2: config space as hex, the INTx level, and the state of the
 * capabilities that keep state outside config space, by capability name (`msix`: the table by
 * named fields and the pending vectors; `sriov`: every VF's own function state).
 */
export interface PciFunctionState {
  version: 2;
  /** Config space as hex (256 or 4096 bytes). */
  config: string;
  /** Level of the INTx pin as the device drives it (Status.Interrupt follows it). */
  intxLevel: boolean;
  /** Per-capability state by capability name. */
  caps: Record<string, unknown>;
}

/**
 * A capability whose state travels with the function's, beyond config space. `parse` checks
 * untrusted input against this instance and the function's parsed config bytes, and throws a
 * `StateError` naming the field; `apply` takes what `parse` returned and cannot fail.
 */
export interface StatefulCap<S = unknown> {
  readonly stateKey: string;
  save(): S;
  parse(u: unknown, path: string, config: Uint8Array): S;
  apply(s: S): void;
  /** The state right after a reset (a VF that does not exist must be in it). */
  resetState(): S;
}

/** A check of parsed config bytes a capability declares (e.g. MSI: Multiple Message Enable <= Capable). */
export type ConfigCheck = (config: Uint8Array, path: string) => void;

const NO_DMA: DmaSpace = { read: () => undefined, write: () => false };

/** A PCI function. See the module documentation. */
export class PciFunction {
  /** The configuration space and its masks. */
  readonly config: ConfigSpace;
  /** BAR declarations by index (the upper half of a 64-bit BAR is `undefined`). */
  readonly bars: ReadonlyArray<BarDecl | undefined>;
  /** Routing ID (bus << 8 | devfn) once attached. */
  rid = 0;
  /** Called on FLR, bus reset or a D3->D0 reset, after config space was reset. */
  onReset: ((kind: ResetKind) => void) | undefined;
  /** The MSI-X capability, if any (set by `addMsix`). */
  msix: (VectorSource & { barAccess(bar: number, off: number, size: AccessSize, value?: number): number | undefined }) | undefined;
  /** The MSI capability, if any (set by `addMsi`). */
  msi: VectorSource | undefined;
  /** The SR-IOV capability of a PF (set by `addSriov`). */
  sriov: SriovCap | undefined;
  /** The PF of a VF (set by the SR-IOV capability). */
  pf: PciFunction | undefined;
  /** The VF number of a VF. */
  vfIndex = -1;
  /** Resolves a VF's BAR address (set on VFs by the PF's SR-IOV capability). */
  vfBarAddress: ((bar: number) => number | undefined) | undefined;
  /** Extra decode gate (PM: D3hot stops memory and I/O decode). */
  decodeGate: (() => boolean) | undefined;

  private readonly hooks: WriteHook[] = [];
  private readonly stateful: StatefulCap[] = [];
  private readonly checks: ConfigCheck[] = [];
  private resetBytes: Uint8Array | undefined;
  private sink: InterruptSink | undefined;
  private dmaSpace: DmaSpace = NO_DMA;
  private intxLevel = false;
  private intxDelivered = false;
  /** DMA as the device sees it: fails while Bus Master Enable is 0. */
  readonly dma: DmaSpace;

  constructor(readonly options: PciFunctionOptions) {
    const size: ConfigSize = options.express === true ? 4096 : 256;
    const cs = new ConfigSpace(size);
    this.config = cs;
    const headerType = options.headerType ?? 0;
    cs.set16(PCI.VENDOR_ID, options.vendorId);
    cs.set16(PCI.DEVICE_ID, options.deviceId);
    cs.set8(PCI.REVISION, options.revision ?? 0);
    cs.set8(PCI.CLASS_PROG, options.classCode & 0xff);
    cs.set16(PCI.CLASS_PROG + 1, (options.classCode >>> 8) & 0xffff);
    cs.set8(PCI.HEADER_TYPE, headerType | (options.multiFunction === true ? 0x80 : 0));
    cs.checkBytes(0, 4);
    cs.checkBytes(PCI.REVISION, 4);
    cs.checkBytes(PCI.HEADER_TYPE, 1);
    cs.setMasks(PCI.COMMAND, 2, {
      w: CMD.IO | CMD.MEMORY | CMD.BUS_MASTER | CMD.PARITY | CMD.SERR | CMD.INTX_DISABLE,
    });
    cs.setMasks(PCI.STATUS, 2, { w1c: STS.RW1C });
    cs.markDynamic(PCI.STATUS, 2, STS.INTERRUPT);
    cs.setMasks(PCI.CACHE_LINE, 1, { w: 0xff });
    cs.setMasks(PCI.LATENCY, 1, { w: headerType === 0 ? 0xff : 0 });
    const pin = options.interruptPin ?? 0;
    cs.set8(PCI.INT_PIN, pin);
    cs.checkBytes(PCI.INT_PIN, 1);
    cs.setMasks(PCI.INT_LINE, 1, { w: 0xff });
    if (headerType === 0) {
      cs.set16(PCI.SUBSYS_VENDOR, options.subsystemVendorId ?? 0);
      cs.set16(PCI.SUBSYS_ID, options.subsystemId ?? 0);
      cs.checkBytes(PCI.SUBSYS_VENDOR, 4);
    } else {
      initBridgeHeader(cs);
    }
    const bars: Array<BarDecl | undefined> = [undefined, undefined, undefined, undefined, undefined, undefined];
    const maxBars = headerType === 0 ? 6 : 2;
    for (const b of options.bars ?? []) {
      validateBar(b, maxBars);
      if (bars[b.index] !== undefined || (b.kind === "mem64" && bars[b.index + 1] !== undefined)) {
        throw new PciConfigError(`BAR ${b.index} declared twice`);
      }
      bars[b.index] = b;
      initBarRegister(cs, PCI.BAR0 + 4 * b.index, b);
    }
    for (const b of options.bars ?? []) {
      if (b.kind === "mem64" && bars[b.index + 1] !== undefined) throw new PciConfigError(`BAR ${b.index} overlaps`);
    }
    this.bars = bars;
    this.hooks.push({
      start: PCI.COMMAND,
      end: PCI.COMMAND + 2,
      after: () => this.updateIntx(),
    });
    const self = this;
    this.dma = {
      read(addr, len) {
        return self.busMaster() ? self.dmaSpace.read(addr, len) : undefined;
      },
      write(addr, data) {
        return self.busMaster() ? self.dmaSpace.write(addr, data) : false;
      },
      linear() {
        return self.busMaster() ? self.dmaSpace.linear?.() : undefined;
      },
    };
  }

  /** Registers a capability's write hook. */
  addHook(hook: WriteHook): void {
    this.hooks.push(hook);
  }

  /** Registers a capability whose state travels with `save()`. */
  addStateful(cap: StatefulCap): void {
    if (this.stateful.some((c) => c.stateKey === cap.stateKey)) throw new PciConfigError(`duplicate state key ${cap.stateKey}`);
    this.stateful.push(cap);
  }

  /** Freezes the reset image. Called once all capabilities are declared (attach calls it too). */
  realize(): this {
    if (this.resetBytes === undefined) this.resetBytes = this.config.config.slice();
    return this;
  }

  /** True once {@link realize} ran. */
  get realized(): boolean {
    return this.resetBytes !== undefined;
  }

  /** Connects the function to a bus: its routing ID, interrupt sink and guest memory. */
  attach(rid: number, sink: InterruptSink, dma: DmaSpace): void {
    this.realize();
    this.rid = rid;
    this.sink = sink;
    this.dmaSpace = dma;
    this.intxDelivered = false;
    this.updateIntx();
  }

  /** Disconnects the function (hot-unplug): interrupts and DMA go nowhere. */
  detach(): void {
    if (this.intxDelivered) this.sink?.intx(this.rid, this.pin, false);
    this.intxDelivered = false;
    this.sink = undefined;
    this.dmaSpace = NO_DMA;
  }

  /** The interrupt sink (capabilities deliver MSI through it). */
  get interrupts(): InterruptSink | undefined {
    return this.sink;
  }

  /** The INTx pin (0 = none). */
  get pin(): number {
    return this.config.config[PCI.INT_PIN]!;
  }

  /** True for a VF. */
  get isVf(): boolean {
    return this.pf !== undefined;
  }

  /** Guest config read. Never throws; bad offsets/sizes read all ones. */
  configRead(reg: number, size: number): number {
    return this.config.read(reg, size);
  }

  /** Guest config write through the masks and capability hooks. Never throws. */
  configWrite(reg: number, size: number, value: number): PciEffect[] {
    const effects: PciEffect[] = [];
    if (!(reg >= 0 && reg + size <= this.config.size) || (size !== 1 && size !== 2 && size !== 4)) return effects;
    const s = size as AccessSize;
    value >>>= 0;
    const end = reg + size;
    const touchesBars = reg < 0x28 && end > PCI.COMMAND;
    const oldAddr = touchesBars ? this.barAddresses() : undefined;
    try {
      for (const h of this.hooks) if (h.before !== undefined && reg < h.end && end > h.start) h.before(reg, s, value);
      this.config.write(reg, size, value);
      for (const h of this.hooks) if (h.after !== undefined && reg < h.end && end > h.start) h.after(reg, s, value, effects);
    } catch {
      // A capability bug must not become a guest-triggered exception in the VMM (see barWrite).
    }
    if (oldAddr !== undefined) {
      const now = this.barAddresses();
      for (let i = 0; i < 6; i++) {
        if (oldAddr[i] !== now[i]) effects.push({ kind: "barMoved", bar: i, from: oldAddr[i], to: now[i] });
      }
    }
    return effects;
  }

  /** Command register. */
  get command(): number {
    return this.config.get16(PCI.COMMAND);
  }

  /** Bus Master Enable. */
  busMaster(): boolean {
    return (this.command & CMD.BUS_MASTER) !== 0;
  }

  /**
   * The guest-physical (or I/O port) address BAR `i` decodes at, or `undefined` while it does not
   * decode (unprogrammed, decode disabled in Command or VF MSE, power state not D0).
   */
  barAddress(i: number): number | undefined {
    const bar = this.bars[i];
    if (bar === undefined) return undefined;
    if (this.decodeGate !== undefined && !this.decodeGate()) return undefined;
    if (this.vfBarAddress !== undefined) return this.vfBarAddress(i);
    const cmd = this.command;
    const off = PCI.BAR0 + 4 * i;
    if (bar.kind === "io") {
      if ((cmd & CMD.IO) === 0) return undefined;
      const a = this.config.get32(off) & 0xfffffffc;
      return a === 0 ? undefined : a;
    }
    if ((cmd & CMD.MEMORY) === 0) return undefined;
    let a = (this.config.get32(off) & 0xfffffff0) >>> 0;
    if (bar.kind === "mem64") a += this.config.get32(off + 4) * 0x1_0000_0000;
    return a === 0 ? undefined : a;
  }

  /** All six BAR addresses. */
  barAddresses(): Array<number | undefined> {
    return [0, 1, 2, 3, 4, 5].map((i) => this.barAddress(i));
  }

  /** A memory/I/O read that the bus decoded to BAR `bar` at `offset`. MSI-X table/PBA are served here. */
  barRead(bar: number, offset: number, size: AccessSize): number {
    try {
      const m = this.msix?.barAccess(bar, offset, size);
      if (m !== undefined) return m;
      const h = this.bars[bar]?.handler;
      return h === undefined ? 0 : h.read(offset, size) >>> 0;
    } catch {
      return ALL_ONES[size]!;
    }
  }

  /** A memory/I/O write that the bus decoded to BAR `bar` at `offset`. */
  barWrite(bar: number, offset: number, size: AccessSize, value: number): void {
    try {
      if (this.msix?.barAccess(bar, offset, size, value >>> 0) !== undefined) return;
      this.bars[bar]?.handler?.write(offset, size, value >>> 0);
    } catch {
      // A device model bug must not become a guest-triggered exception in the VMM.
    }
  }

  /**
   * Raises interrupt `vector`: an MSI-X message if MSI-X is enabled (a masked vector goes pending
   * and is sent on unmask), else an MSI message if MSI is enabled, else INTx is asserted (the
   * device deasserts it with `setIntx(false)`, e.g. when the guest reads its interrupt cause).
   */
  notify(vector: number): void {
    if (this.msix?.enabled === true) this.msix.notify(vector);
    else if (this.msi?.enabled === true) this.msi.notify(vector);
    else this.setIntx(true);
  }

  /** Sets the level of the INTx pin. Status.Interrupt follows it; Command.INTx-disable gates delivery. */
  setIntx(level: boolean): void {
    this.intxLevel = level;
    const st = this.config.get16(PCI.STATUS);
    this.config.set16(PCI.STATUS, level ? st | STS.INTERRUPT : st & ~STS.INTERRUPT);
    this.updateIntx();
  }

  /** Delivers an MSI message (capabilities call this). */
  sendMsi(address: number, data: number): void {
    if (!this.busMaster()) return; // MSI is a memory write: it needs Bus Master Enable.
    this.sink?.msi(address, data >>> 0);
  }

  private updateIntx(): void {
    const want = this.intxLevel && (this.command & CMD.INTX_DISABLE) === 0 && this.pin !== 0;
    if (want === this.intxDelivered || this.sink === undefined) return;
    this.intxDelivered = want;
    this.sink.intx(this.rid, this.pin, want);
  }

  /** Resets config space to its reset image, then capabilities, then the device (`onReset`). */
  reset(kind: ResetKind): void {
    this.realize();
    this.config.config.set(this.resetBytes!);
    this.intxLevel = false;
    this.updateIntx();
    for (const h of this.hooks) h.reset?.();
    try {
      this.onReset?.(kind);
    } catch {
      // see barWrite
    }
  }

  /** Saves config space and capability state (version 2). */
  save(): PciFunctionState {
    const caps: Record<string, unknown> = {};
    for (const c of this.stateful) caps[c.stateKey] = c.save();
    return { version: 2, config: toHex(this.config.config), intxLevel: this.intxLevel, caps };
  }

  /**
   * The parser of this function's saved state (versions 1 and 2), checked against this instance:
   * see {@link parsePciFunctionState}.
   */
  get stateType(): StateType<PciFunctionState> {
    this.stateTypeCache ??= pciFunctionStateType(this);
    return this.stateTypeCache;
  }
  private stateTypeCache: StateType<PciFunctionState> | undefined;

  /** The capabilities whose state travels with the function's. */
  get statefulCaps(): readonly StatefulCap[] {
    return this.stateful;
  }

  /** The config checks capabilities declared (run by the state parser). */
  get configChecks(): readonly ConfigCheck[] {
    return this.checks;
  }

  /** Declares a check of parsed config bytes (run by the state parser). */
  addConfigCheck(check: ConfigCheck): void {
    this.checks.push(check);
  }

  /** Config space right after a reset (`undefined` before {@link realize}). */
  get resetImage(): Uint8Array | undefined {
    return this.resetBytes;
  }

  /**
   * Applies a state from {@link stateType}'s parser. Has no failure point: everything was
   * checked by the parser. The INTx line is re-driven to the restored level.
   */
  restore(state: PciFunctionState): void {
    this.realize();
    this.config.config.set(fromHex(state.config));
    for (const c of this.stateful) c.apply(state.caps[c.stateKey]);
    this.intxLevel = state.intxLevel;
    this.updateIntx();
  }
}

function validateBar(b: BarDecl, maxBars: number): void {
  const last = b.kind === "mem64" ? b.index + 1 : b.index;
  if (!Number.isInteger(b.index) || b.index < 0 || last >= maxBars) throw new PciConfigError(`bad BAR index ${b.index}`);
  const min = b.kind === "io" ? 4 : 16;
  const max = b.kind === "io" ? 256 : 2 ** 31;
  if (!Number.isInteger(b.size) || b.size < min || b.size > max || (b.size & (b.size - 1)) !== 0) {
    throw new PciConfigError(`BAR ${b.index}: size ${b.size} is not a power of two in [${min}, ${max}]`);
  }
}

/** Writes a BAR register's type bits and sizing masks. */
export function initBarRegister(cs: ConfigSpace, off: number, b: BarDecl): void {
  if (b.kind === "io") {
    cs.set32(off, 0x1);
    cs.setMasks(off, 4, { w: ~(b.size - 1) & 0xfffffffc, check: 0x3 });
    return;
  }
  const type = (b.kind === "mem64" ? 0x4 : 0) | (b.prefetchable === true ? 0x8 : 0);
  cs.set32(off, type);
  cs.setMasks(off, 4, { w: ~(b.size - 1) & 0xfffffff0, check: 0xf });
  if (b.kind === "mem64") cs.setMasks(off + 4, 4, { w: 0xffffffff });
}

function initBridgeHeader(cs: ConfigSpace): void {
  cs.setMasks(PCI.PRIMARY_BUS, 4, { w: 0xffffffff });
  // I/O base/limit: bits 7:4 are address 15:12; low nibble 1 = 32-bit I/O decode.
  cs.set8(PCI.IO_BASE, 0x01);
  cs.set8(PCI.IO_LIMIT, 0x01);
  cs.setMasks(PCI.IO_BASE, 1, { w: 0xf0, check: 0x0f });
  cs.setMasks(PCI.IO_LIMIT, 1, { w: 0xf0, check: 0x0f });
  cs.setMasks(PCI.SEC_STATUS, 2, { w1c: 0xf900 });
  cs.setMasks(PCI.MEM_BASE, 2, { w: 0xfff0 });
  cs.setMasks(PCI.MEM_LIMIT, 2, { w: 0xfff0 });
  // Prefetchable window: low nibble 1 = 64-bit capable.
  cs.set16(PCI.PREF_BASE, 0x0001);
  cs.set16(PCI.PREF_LIMIT, 0x0001);
  cs.setMasks(PCI.PREF_BASE, 2, { w: 0xfff0, check: 0x000f });
  cs.setMasks(PCI.PREF_LIMIT, 2, { w: 0xfff0, check: 0x000f });
  cs.setMasks(PCI.PREF_BASE_UPPER, 4, { w: 0xffffffff });
  cs.setMasks(PCI.PREF_LIMIT_UPPER, 4, { w: 0xffffffff });
  cs.setMasks(PCI.IO_BASE_UPPER, 2, { w: 0xffff });
  cs.setMasks(PCI.IO_LIMIT_UPPER, 2, { w: 0xffff });
  // Bridge control: parity, SERR, ISA, VGA, VGA16, master abort, secondary bus reset.
  cs.setMasks(PCI.BRIDGE_CONTROL, 2, { w: 0x007f });
}
