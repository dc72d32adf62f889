/**
 * A device model as an embedder and a platform see it: the PCI functions it puts in a slot, its
 * state (parse, save, apply), its I/O (attached, not captured at construction) and its migration
 * state machine. The PCI test device, the 82576 (whole, or one VF kept by a host PF agent) and
 * virtio-net each come as one, from a `create...` function taking only a configuration.
 *
 * ```ts
 * const nic = createVirtioNetModel({ mac });          // config only: no I/O yet
 * platform.add(nic, { name: "net0", slot: 4, backend }); // plugs, then attaches
 * nic.migration.go("STOP_COPY");                         // quiesce, then freeze
 * const saved = nic.save();
 * const twin = createVirtioNetModel({ mac });
 * twin.restore(twin.stateType.parse(JSON.parse(JSON.stringify(saved)))); // parse, then apply (RESUMING)
 * platform.add(twin, { name: "net0", slot: 4, backend });                       // attach
 * twin.migration.go("RUNNING");                                                  // run
 * ```
 *
 * Platform-neutral.
 * @module
 */
import type { PciFunction } from "../../pci/function.js";
import type { StateType } from "../../state/versioned.js";
import type { DeviceIo, StatefulDevice } from "./device.js";
import { MigrationControl, type Activity, type MigrationFlags } from "../../state/migration.js";

/** A device model: state and I/O apart, PCI functions to plug, a migration state machine. */
export interface DeviceModel<S = unknown> extends StatefulDevice<S> {
  /** The state type's name (`pci-testdev`, `igb`, `igb-host-vf`, `virtio-net`, `l2-switch`...). */
  readonly kind: string;
  /** What goes into a slot, function 0 first (VFs appear through the PF's SR-IOV capability). Empty for a device with no PCI function (a switch). */
  readonly functions: readonly PciFunction[];
  /** The device's migration state (VFIO v2); its arcs drive {@link StatefulDevice.setActivity}. */
  readonly migration: MigrationControl;
  /** True once {@link StatefulDevice.attach} has run. */
  readonly attached: boolean;
  /** Its part in a live migration beyond its state, if it has one. */
  readonly live?: LiveMigrationHooks;
}

/** What a live migration asks of a device beyond its state. */
export interface LiveMigrationOptions {
  /** Transparent failover: a pass-through device is switched to emulation before the stop and back after the resume. */
  readonly transparent: boolean;
}

/**
 * Optional parts a device (or a platform) plays in a live migration beyond save and restore: the
 * failover VF switches its backing around the stop, NICs carry the frames that reach them while
 * the guest is stopped, the standby failover platform unplugs the VF before the migration and
 * plugs one at the destination. The machine's migration endpoint calls them in this order.
 * Source: `beforeMigration` (guest running, before pre-copy), `beforeStop` (guest running), then
 * the device is stopped and saved, then `takeLate` (possibly more than once, until `lateDone`); on a failed
 * migration `afterAbort` once the device runs again. Destination: restore, `afterRestore`,
 * `parseLate` then `putLate` (guest not running yet), then `afterResume`. Every part is optional.
 */
export interface LiveMigrationHooks {
  /** Source, guest running, before pre-copy (standby failover unplugs the VF and waits for the guest to let it go). @throws to refuse: the migration fails, the guest runs on */
  beforeMigration?(o: LiveMigrationOptions): Promise<void>;
  /** Source, guest running, just before the stop. @throws to refuse the stop: the migration then fails and the guest runs on */
  beforeStop?(o: LiveMigrationOptions): void;
  /** Source, after a failed migration, with the device running again: undoes `beforeMigration` and `beforeStop`. Cannot fail. */
  afterAbort?(): void;
  /** Source, device stopped and saved: what reached it since the save or the last call (JSON-safe), or undefined for nothing. Taken once. */
  takeLate?(): unknown;
  /**
   * Source, device stopped: true once no more late frames can reach this side (the segment has
   * carried the destination's announce of the guest's MAC back here, so its bridges send the
   * guest's frames there). A source that has no such signal waits for a quiet spell instead.
   */
  lateDone?(): boolean;
  /** Destination, state restored, guest not yet running: tell the network the guest is here now (its frames wait here until the resume). Cannot fail. */
  afterRestore?(): void;
  /** Destination: checks the source's `takeLate` output (untrusted). @throws StateError naming the field */
  parseLate?(u: unknown, path: string): unknown;
  /** Destination, state restored and guest not yet running: delivers parsed late data ahead of what reached this side since the restore. Cannot fail (overflow is counted). */
  putLate?(parsed: unknown): void;
  /** Destination, after the guest resumed: announces, switches back, plugs. Cannot fail (a refusal is logged, the device serves on). */
  afterResume?(o: LiveMigrationOptions): void;
}

/** What {@link defineModel} needs from a device's own code. */
export interface ModelParts<S> {
  kind: string;
  functions: readonly PciFunction[];
  stateType: StateType<S>;
  save(): S;
  restore(s: S): void;
  setActivity(a: Activity): void;
  attach(io: DeviceIo): void;
  /** Optional arcs the device supports (default: P2P yes, PRE_COPY no). */
  flags?: MigrationFlags;
}

/** Raised when a model is used out of order (attached twice). */
export class DeviceModelError extends Error {
  override readonly name = "DeviceModelError";
}

/** Builds a {@link DeviceModel} from a device's parts, with its migration state machine wired to its activity. */
export function defineModel<S>(p: ModelParts<S>): DeviceModel<S> {
  let attached = false;
  const migration = new MigrationControl({ setActivity: (a) => p.setActivity(a) }, p.flags ?? {});
  return {
    kind: p.kind,
    functions: p.functions,
    stateType: p.stateType,
    migration,
    get attached() {
      return attached;
    },
    save: () => p.save(),
    restore(s) {
      // Loading a state is the RESUMING state's work (VFIO v2): the device is frozen meanwhile,
      // and stays in RESUMING until the caller runs it (`migration.go("RUNNING")`), once attached.
      // A device left in ERROR by a refused arc is reset first (as VFIO requires) so that the
      // load really happens in RESUMING.
      if (migration.state === "ERROR") migration.reset();
      if (migration.state !== "RESUMING") migration.set("RESUMING");
      p.restore(s);
    },
    setActivity: (a) => p.setActivity(a),
    attach(io) {
      if (attached) throw new DeviceModelError(`${p.kind}: attached twice`);
      attached = true;
      p.attach(io);
    },
  };
}
