/**
 * nicvisor's PCI core as the machine's platform: a {@link PciRoot} (host bridge, root ports, the
 * devices in their slots) behind the {@link PlatformBus} the machine drives, composed with one
 * {@link PciPlatform.add} call per device model, and the whole platform's state in snapshots.
 *
 * With nicvisor's ACPI tables (the default), Linux finds ECAM in the MCFG table and routes INTx
 * through the DSDT's `_PRT`. With `acpi=off`, it finds ECAM through the host bridge's Intel
 * 945-style PCIEXBAR, and takes a device's IRQ from its Interrupt Line. SeaBIOS does not know this
 * chipset and would write 0xFF there, so the platform hardwires each function's Interrupt Line to
 * the IRQ its INTx pin is routed to (the PCI swizzle up to the root-bus slot), as a board with
 * fixed routing would.
 *
 * Saved state is untrusted: {@link PciPlatform.restore} parses the PCI topology's state and every
 * device's state before it applies any, so a rejected restore leaves the running platform as it
 * was.
 *
 * Platform-neutral.
 * @module
 */
import type { PciFunction } from "../pci/function.js";
import type { AccessSize } from "../pci/function.js";
import type { InterruptSink } from "../pci/interfaces.js";
import { PCI } from "../pci/regs.js";
import { PciRoot, type PciRootState } from "../pci/topology/root-complex.js";
import type { RootPort } from "../pci/topology/root-port.js";
import type { NetBackend } from "../devices/net/backend.js";
import { AnnounceWatch } from "../devices/net/announce-watch.js";
import { SwitchPort } from "../devices/net/switch.js";
import type { DeviceModel, LiveMigrationHooks } from "../devices/lifecycle/model.js";
import type { MigrationState, MigrationStateError } from "../state/migration.js";
import { StateError, field, int, obj, record, str } from "../state/parse.js";
import { decodeStates, encodeStates, type StateRecord } from "../state/container.js";
import type { MachineLayout, PlatformBus, PlatformEnv, RecordDescriptor } from "./machine-platform.js";

/** A platform was built wrongly, or a saved platform state was rejected. */
export class PlatformError extends Error {
  override readonly name = "PlatformError";
}

/** Where and how {@link PciPlatform.add} places a device. */
export interface AddOptions {
  /** The device's name in the platform's state (unique). */
  name: string;
  /**
   * Root-bus device number of a new root port whose slot receives the device (the usual place for
   * a PCIe device). Ignored when `port` is given; not needed for a device without PCI functions.
   */
  slot?: number;
  /** An existing root port whose (empty) slot receives the device. */
  port?: RootPort;
  /** The device's network backend (for NICs). */
  backend?: NetBackend;
  /**
   * Leave the slot empty at power-on: the device exists (attached, saved) but the guest sees it
   * only once the VMM hot-adds its functions (`port.hotAdd(model.functions)`), as QEMU hides a
   * failover primary until the guest's virtio-net driver takes STANDBY.
   */
  hidden?: boolean;
}

/** Saved state of the platform (format 2). */
export interface PciPlatformState {
  version: 2;
  /** The PCI topology: host bridge, root ports, every function's config space. */
  pci: PciRootState;
  /** Each device's own state, by name, with its state type. */
  devices: Record<string, { kind: string; state: unknown }>;
}

/** A platform state that passed every check, ready to apply. */
export interface ParsedPlatformState {
  readonly pci: PciRootState;
  readonly devices: ReadonlyMap<string, unknown>;
}

interface Entry {
  name: string;
  model: DeviceModel;
  port: RootPort | undefined;
}

/** The record name of the PCI topology's state in a container. */
export const PCI_RECORD = "pci";
/** Names no device may take: the topology's record, and the machine's (`MACHINE_RECORD`). */
/** The name the platform's own segment watch goes by among the live-migration parts. */
const SEGMENT_HOOKS = "segment";
const RESERVED_NAMES: readonly string[] = [PCI_RECORD, "machine", SEGMENT_HOOKS];

/** Most devices a platform state may name. */
const MAX_DEVICES = 64;

/** The PCI platform. Compose it with {@link PciPlatform.add}, or take a preset from `platforms.ts`. */
export class PciPlatform implements PlatformBus {
  /** The root complex. */
  readonly root: PciRoot;
  private readonly entries: Entry[] = [];
  /** Root-bus device number of each root port (for the INTx swizzle). */
  private readonly portSlots = new Map<RootPort, number>();

  constructor(private readonly env: PlatformEnv) {
    const sink: InterruptSink = {
      msi: (a, d) => env.interrupts.msi(a, d),
      intx: (rid, pin, level) => {
        const routed = this.routeIntx(rid, pin);
        env.interrupts.intx(routed.rid, routed.pin, level);
      },
    };
    this.root = new PciRoot({
      interrupts: sink,
      dma: env.dma,
      ...(env.layout.ecamDiscovery === "pciexbar"
        ? { hostBridge: { vendorId: 0x8086, deviceId: 0x2770 }, pciexbar: { base: env.layout.ecamBase, buses: 64 as const } }
        : { hostBridge: { vendorId: 0x1b36, deviceId: 0x0008 } }),
    });
  }

  /** The machine's layout. */
  get layout(): MachineLayout {
    return this.env.layout;
  }

  /** The devices added, by name. */
  get devices(): ReadonlyMap<string, DeviceModel> {
    return new Map(this.entries.map((e) => [e.name, e.model]));
  }

  /**
   * Adds a device: puts its functions in the slot of a new root port at `00:slot.0` (or of
   * `port`), present at power-on, attaches its I/O (the platform's clock, `backend`), and saves its
   * state under `name` from now on. Returns the root port, or undefined for a device with no PCI
   * function.
   * @throws PlatformError on a name used twice or a missing slot
   * @example
   * ```ts
   * const platform = new PciPlatform(env);
   * platform.add(createTestDeviceModel(), { name: "testdev", slot: 3 });
   * platform.add(createVirtioNetModel({ mac }), { name: "net0", slot: 4, backend });
   * ```
   */
  add(model: DeviceModel, at: AddOptions): RootPort | undefined {
    if (this.entries.some((e) => e.name === at.name)) throw new PlatformError(`device name ${at.name} used twice`);
    if (RESERVED_NAMES.includes(at.name)) throw new PlatformError(`device name ${at.name} is reserved for the ${at.name === PCI_RECORD ? "PCI topology's own state" : at.name === SEGMENT_HOOKS ? "platform's segment watch" : "machine's own state"}`);
    let port: RootPort | undefined;
    if (model.functions.length > 0) {
      if (at.port === undefined && at.slot === undefined) throw new PlatformError(`${at.name}: a PCI device needs a slot or a port`);
      port = at.port ?? this.addRootPort(at.slot!);
      if (at.hidden === true) {
        const dev = this.portSlots.get(port) ?? 0;
        for (const f of model.functions) this.hardwireLine(f, dev, f.pin);
      } else this.coldplug(port, [...model.functions]);
    }
    // A port of the platform's own switch is inside the VMM: the segment is where that switch
    // connects (its preset watches there), and an inside port never hears the destination.
    const backend = at.backend === undefined || at.backend instanceof SwitchPort ? at.backend : this.watchSegment(at.backend);
    if (!model.attached) model.attach({ clock: this.env.clock, ...(backend !== undefined ? { backend } : {}) });
    this.entries.push({ name: at.name, model, port });
    return port;
  }

  /** Adds a root port at `00:dev.0` and returns it. */
  addRootPort(dev: number): RootPort {
    const port = this.root.addRootPort(dev << 3, { slotNumber: dev });
    this.portSlots.set(port, dev);
    this.hardwireLine(port.fn, dev, 1);
    return port;
  }

  /** Puts `fn` (a device's function 0) in `port`'s slot as present at power-on. */
  coldplug(port: RootPort, fns: PciFunction | PciFunction[]): void {
    const list = Array.isArray(fns) ? fns : [fns];
    const dev = this.portSlots.get(port) ?? 0;
    list.forEach((f) => this.hardwireLine(f, dev, f.pin));
    port.plug(list, { coldplug: true });
  }

  /**
   * Moves every device to `target` migration state (see `lifecycle/migration.ts`), in the order
   * they were added. Returns the errors of the devices that refused (each then in ERROR).
   */
  setMigrationState(target: MigrationState): Map<string, MigrationStateError> {
    const errors = new Map<string, MigrationStateError>();
    for (const e of this.entries) {
      const err = e.model.migration.set(target);
      if (err !== undefined) errors.set(e.name, err);
    }
    return errors;
  }

  /** INTx of a function behind a root port arrives on the port's slot with the swizzled pin. */
  private routeIntx(rid: number, pin: number): { rid: number; pin: number } {
    const bus = rid >>> 8;
    if (bus === 0) return { rid, pin };
    for (const [port, dev] of this.portSlots) {
      if (port.secondaryBus === bus) return { rid: dev << 3, pin: (((pin - 1 + ((rid >>> 3) & 0x1f)) % 4) + 4) % 4 + 1 };
    }
    return { rid, pin };
  }

  private hardwireLine(fn: PciFunction, slot: number, pin: number): void {
    if (pin < 1 || pin > 4) return;
    fn.config.set8(PCI.INT_LINE, this.env.layout.intxIrq(slot, pin));
    fn.config.setMasks(PCI.INT_LINE, 1, { w: 0 });
  }

  configRead(bus: number, devfn: number, reg: number, size: AccessSize): number {
    return this.root.configRead(bus, devfn, reg, size);
  }
  configWrite(bus: number, devfn: number, reg: number, size: AccessSize, value: number): void {
    this.root.configWrite(bus, devfn, reg, size, value);
  }
  mmioRead(addr: number, size: AccessSize): number {
    return this.root.mmioRead(addr, size);
  }
  mmioWrite(addr: number, size: AccessSize, value: number): void {
    this.root.mmioWrite(addr, size, value);
  }
  ioRead(port: number, size: AccessSize): number {
    return this.root.ioRead(port, size);
  }
  ioWrite(port: number, size: AccessSize, value: number): void {
    this.root.ioWrite(port, size, value);
  }

  /** Saves the topology and every device (JSON-safe). */
  save(): PciPlatformState {
    const devices: Record<string, { kind: string; state: unknown }> = {};
    for (const e of this.entries) devices[e.name] = { kind: e.model.kind, state: e.model.save() };
    return { version: 2, pci: this.root.save(), devices };
  }

  /**
   * Checks a saved platform state (format 1 or 2) against this platform's devices without
   * changing anything: the same device names and kinds, the topology's state, and each device's
   * state through its own parser.
   * @throws StateError naming the field
   */
  parseState(u: unknown): ParsedPlatformState {
    const o = obj(u, "platform");
    const version = int(o.version, "platform.version", 1, 2);
    const raw = record(o.devices, "platform.devices", MAX_DEVICES, (v, path, name) => {
      // Format 1 stored each device's state bare (each device's parser knows its format-1 shape).
      if (version === 1) return { kind: this.entries.find((e) => e.name === name)?.model.kind ?? "", state: v };
      const d = obj(v, path);
      return { kind: field(d, "kind", path, (x, p) => str(x, p, 64)), state: d.state };
    });
    for (const name of raw.keys()) if (!this.entries.some((e) => e.name === name)) throw new StateError(`platform.devices.${name}`, "no such device in this platform");
    const devices = new Map<string, unknown>();
    for (const e of this.entries) {
      const d = raw.get(e.name);
      if (d === undefined) throw new StateError(`platform.devices.${e.name}`, "missing");
      if (d.kind !== e.model.kind) throw new StateError(`platform.devices.${e.name}.kind`, `${d.kind}, this platform has ${e.model.kind}`);
      devices.set(e.name, e.model.stateType.parse(d.state, `platform.devices.${e.name}${version === 1 ? "" : ".state"}`));
    }
    const pci = this.root.stateType.parse(o.pci, "platform.pci");
    return { pci, devices };
  }

  /**
   * Applies a state from {@link PciPlatform.parseState}: the topology, then every device. Each
   * device is left in RESUMING (frozen): its held work and owed interrupts go out when the
   * platform runs again, `setMigrationState("RUNNING")`, which `Machine.start()` does. So a
   * migration destination sends nothing before the guest resumes there.
   */
  applyState(s: ParsedPlatformState): void {
    this.root.restore(s.pci);
    for (const e of this.entries) e.model.restore(s.devices.get(e.name));
  }

  /**
   * Restores {@link PciPlatform.save}'s output (or a format-1 state from an older nicvisor):
   * parse everything, then apply. A rejected state changes nothing.
   * @throws StateError naming the field
   */
  restore(state: unknown): void {
    this.applyState(this.parseState(state));
  }

  /** The platform's state as records for a state container (one for the topology, one per device). */
  saveRecords(): StateRecord[] {
    const out: StateRecord[] = [{ name: PCI_RECORD, kind: "pci-root", version: this.root.stateType.version, state: this.root.save() }];
    for (const e of this.entries) out.push({ name: e.name, kind: e.model.kind, version: e.model.stateType.version, state: e.model.save() });
    return out;
  }

  /** The platform's state as bytes (see `state/container.ts`), for files and other processes. */
  saveBytes(): Uint8Array {
    return encodeStates(this.saveRecords());
  }

  /** Restores {@link PciPlatform.saveBytes}'s output: decode, parse everything, then apply. */
  restoreBytes(bytes: Uint8Array): void {
    this.restoreRecords(decodeStates(bytes));
  }

  /** Restores {@link PciPlatform.saveRecords}'s output: parse everything, then apply. */
  restoreRecords(records: readonly StateRecord[]): void {
    this.applyState(this.parseRecords(records));
  }

  /**
   * Parses container records (from {@link PciPlatform.saveRecords}) without changing anything:
   * the topology's record must be of kind `pci-root`, and each record's version one its state
   * type loads; then every state goes through {@link PciPlatform.parseState}.
   */
  parseRecords(records: readonly StateRecord[]): ParsedPlatformState {
    // No prototype: a record named `__proto__` is an unknown device, not a prototype change.
    const devices = Object.create(null) as Record<string, { kind: string; state: unknown }>;
    let pci: unknown;
    for (const r of records) {
      const type = r.name === PCI_RECORD ? this.root.stateType : this.entries.find((e) => e.name === r.name)?.model.stateType;
      if (type !== undefined && (r.version < type.oldest || r.version > type.version)) {
        throw new StateError(`platform.${r.name}.version`, `record version ${r.version}, this build loads ${type.oldest} to ${type.version}`);
      }
      if (r.name === PCI_RECORD) {
        if (r.kind !== "pci-root") throw new StateError(`platform.${PCI_RECORD}.kind`, `${r.kind}, expected pci-root`);
        pci = r.state;
      } else devices[r.name] = { kind: r.kind, state: r.state };
    }
    if (pci === undefined) throw new StateError("platform.pci", "missing");
    return this.parseState({ version: 2, pci, devices });
  }

  /** The devices (and the platform's own parts) with a part in a live migration beyond their state, by name; devices first, in the order added. */
  liveHooks(): Array<readonly [string, LiveMigrationHooks]> {
    const out: Array<readonly [string, LiveMigrationHooks]> = [];
    for (const e of this.entries) if (e.model.live !== undefined) out.push([e.name, e.model.live]);
    return [...out, ...this.ownLive, ...(this.watches.length > 0 ? [[SEGMENT_HOOKS, this.segmentHooks] as const] : [])];
  }

  /**
   * Puts an {@link AnnounceWatch} in front of a backend the platform's devices reach the segment
   * through (`add` does it for a device's `backend` unless that is a port of an in-process switch;
   * a preset that connects a backend to a switch of its own calls it). A migration source then knows when the destination's announce of the
   * guest came back through it: no late frame can follow (see `LiveMigrationHooks.lateDone`).
   */
  protected watchSegment(b: NetBackend): NetBackend {
    const w = new AnnounceWatch(b);
    this.watches.push(w);
    return w;
  }
  private readonly watches: AnnounceWatch[] = [];
  private readonly segmentHooks: LiveMigrationHooks = {
    beforeStop: () => this.watches.forEach((w) => w.arm()),
    afterAbort: () => this.watches.forEach((w) => w.disarm()),
    // Every backend the guest has sent through must have heard its announce.
    lateDone: () => {
      const used = this.watches.filter((w) => w.hasMacs);
      return used.length > 0 && used.every((w) => w.heard);
    },
  };

  /** A part of the platform's own in live migrations (a preset's, such as the standby failover's VF unplug); `name` names it in late-frame records. */
  protected addLiveHooks(name: string, hooks: LiveMigrationHooks): void {
    if (name === SEGMENT_HOOKS || this.entries.some((e) => e.name === name) || this.ownLive.some(([n]) => n === name)) throw new PlatformError(`live-migration part ${name}: the name is taken`);
    this.ownLive.push([name, hooks]);
  }
  private readonly ownLive: Array<readonly [string, LiveMigrationHooks]> = [];

  /** The name, state type, version and oldest loadable version of every record, without saving anything. */
  describeRecords(): RecordDescriptor[] {
    const out: RecordDescriptor[] = [{ name: PCI_RECORD, kind: "pci-root", version: this.root.stateType.version, oldest: this.root.stateType.oldest }];
    for (const e of this.entries) out.push({ name: e.name, kind: e.model.kind, version: e.model.stateType.version, oldest: e.model.stateType.oldest });
    return out;
  }
}
