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
