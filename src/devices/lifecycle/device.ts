/**
 * The contract every device model meets, so that an embedder drives the PCI test device, the 82576
 * and virtio-net the same way, and so that the failover switch and live migration can move any of
 * them: create from a config (no I/O yet) -> attach I/O -> run -> quiesce -> save -> restore into
 * a fresh instance -> attach.
 *
 * State and I/O are kept apart. A device's saved state holds only what the device is (registers,
 * rings, timers as times relative to the device clock); what it is connected to (the clock, the
 * network backend; DMA and interrupts arrive through its PCI functions once plugged) is given by
 * {@link StatefulDevice.attach}. So a restored device is built from state first and attached after.
 *
 * Restore is "parse, then apply": {@link StatefulDevice.stateType} parses untrusted input against
 * this instance's configuration (queue counts, VF counts...) and throws a `StateError` naming the
 * field; {@link StatefulDevice.restore} then applies a parsed state and has no failure point.
 *
 * Platform-neutral.
 * @module
 */
import type { Clock } from "../../pci/interfaces.js";
import type { NetBackend } from "../net/backend.js";
import type { StateType } from "../../state/versioned.js";
import type { Activity } from "../../state/migration.js";

/** The I/O a device is attached to (DMA and interrupts come through its PCI functions). */
export interface DeviceIo {
  /** Device time: virtual time in simulation, the CPU engine's time with a real guest. */
  clock: Clock;
  /** Frames in and out, for network devices. */
  backend?: NetBackend;
}

/** The state half of a device model: save, parse, apply, and the data path's activity. */
export interface StatefulDevice<S> {
  /** Parses untrusted saved state against this instance's configuration. */
  readonly stateType: StateType<S>;
  /** The device's own state (JSON-safe; times relative to the device clock). */
  save(): S;
  /** Applies a state from {@link StatefulDevice.stateType}'s parser. Never throws. */
  restore(s: S): void;
  /**
   * What the data path may do (see `activityOf` in `migration.ts`): `quiesced` answers register
   * accesses but starts no DMA and raises no interrupt (guest requests and incoming frames wait,
   * bounded); `stopped` is frozen. Back to `running`, the waiting work runs in its order.
   */
  setActivity(a: Activity): void;
  /** Binds the device's I/O; a restored device's timers are armed here. */
  attach(io: DeviceIo): void;
}
