/**
 * A virtio-net behind its virtio-pci transport as one stateful device: one composed state
 * (`{ version: 2, transport, net }`), one parser that checks both parts against this instance's
 * configuration (queue count and sizes, MSI-X table, pairs, MAC), one activity, one attach.
 *
 * Version 1 is the platform record the code before the portable state wrote under the device's
 * name: `{ transport: { version: 1, ... }, nic: { version: 2, ... } }` (no version of its own).
 * It loads through the upgrade chain. There are no absolute times in either version: work left
 * pending is a list of queues, continued on the device clock once attached and running.
 * @module
 */
import type { DeviceIo, StatefulDevice } from "../lifecycle/device.js";
import type { Activity } from "../../state/migration.js";
import { StateError, field, obj, onlyKeys } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import { VirtioPciTransport, STATUS } from "../virtio/pci-transport.js";
import { featureHex, type VirtioTransportState } from "../virtio/transport-state.js";
import { upgradeTransportV1 } from "../virtio/transport-state.js";
import { VirtioNet, type VirtioNetOptions } from "./device.js";
import { offeredFeatures } from "./features.js";
import { parseNetState, parseOffer, upgradeNetV1, type VirtioNetState } from "./state.js";

/** The composed state of a virtio-net behind its transport. */
export interface VirtioNetPciState {
  version: 2;
  transport: VirtioTransportState;
  net: VirtioNetState;
}

/** The state type's name. */
export const VIRTIO_NET_STATE_KIND = "virtio-net";

/**
 * Lifts a version-1 record: `{ version: 1, transport: { version: 1, ... }, nic: { version: 2, ... } }`
 * (the `version: 1` is added by the parser to a record without one).
 */
function upgradeV1(o: Record<string, unknown>, path: string): Record<string, unknown> {
  onlyKeys(o, path, ["version", "transport", "nic"]);
  return {
    version: 2,
    transport: upgradeTransportV1(o.transport, `${path}.transport`),
    net: upgradeNetV1(o.nic, `${path}.nic`),
  };
}

/**
 * A virtio-net with its transport, meeting the `StatefulDevice` contract.
 * @example
 * ```ts
 * // Create without I/O, restore, then attach.
 * const dev = new VirtioNetPci({ mac, queueSize: 256, maxPairs: 2 });
 * dev.setActivity("stopped");
 * dev.restore(dev.stateType.parse(saved));   // throws StateError naming the field, before any change
 * dev.attach({ clock, backend });
 * dev.setActivity("running");
 * ```
 */
export class VirtioNetPci implements StatefulDevice<VirtioNetPciState> {
  readonly nic: VirtioNet;
  readonly transport: VirtioPciTransport;
  /** Parses a saved state (version 1 or 2) against this instance's configuration. */
  readonly stateType: StateType<VirtioNetPciState>;

  /** Builds the device from options (no I/O unless they carry a backend or clock), or wraps an existing `VirtioNet`. */
  constructor(nic: VirtioNet | VirtioNetOptions) {
    this.nic = nic instanceof VirtioNet ? nic : new VirtioNet(nic);
    this.transport = new VirtioPciTransport(this.nic);
    const inner = defineState<VirtioNetPciState>(VIRTIO_NET_STATE_KIND, 2, { 1: upgradeV1 }, (o, path) => this.parseCurrent(o, path));
    this.stateType = {
      kind: inner.kind,
      version: inner.version,
      oldest: inner.oldest,
      parse: (u: unknown, path = VIRTIO_NET_STATE_KIND): VirtioNetPciState => {
        // A version-1 platform record carries no version of its own.
        const o = obj(u, path);
        return inner.parse(o.version === undefined && "nic" in o ? { ...o, version: 1 } : o, path);
      },
    };
  }

  private parseCurrent(o: Record<string, unknown>, path: string): VirtioNetPciState {
    onlyKeys(o, path, ["version", "transport", "net"]);
    const netRaw = obj(o.net, `${path}.net`);
    const offered = offeredFeatures(field(netRaw, "offer", `${path}.net`, parseOffer));
    const transport = this.transport.parseState(o.transport, `${path}.transport`, offered);
    const featuresOk = (transport.status & STATUS.FEATURES_OK) !== 0;
    const nic = this.nic;
    const net = parseNetState(netRaw, `${path}.net`, {
      maxPairs: nic.maxPairs,
      queues: nic.queueSizes.length,
      configuredMac: nic.configuredMac,
      fifoFrames: nic.fifoFrames,
      negotiated: featuresOk ? featureHex(transport.driverFeatures, `${path}.transport.driverFeatures`) : 0n,
      live: (transport.status & STATUS.DRIVER_OK) !== 0,
    });
    if (net.pendingQueues.some((q) => !transport.queues[q]!.ready)) {
      throw new StateError(`${path}.net.pendingQueues`, "work pending on a queue that is not ready");
    }
    return { version: 2, transport, net };
  }

  /** The PCI function to plug into a slot. */
  get fn(): VirtioPciTransport["fn"] {
    return this.transport.fn;
  }

  /** Both parts' state (JSON-safe; no absolute times). */
  save(): VirtioNetPciState {
    return { version: 2, transport: this.transport.save(), net: this.nic.save() };
  }

  /** Applies a parsed state: the transport (queues, registers, activation), then the device. Never throws. */
  restore(s: VirtioNetPciState): void {
    this.transport.restore(s.transport);
    this.nic.restore(s.net);
  }

  /**
   * Sets the activity of both parts. Back to "running": the device's FIFO and latched
   * notifications run first, with interrupts still held, then the held interrupts are sent.
   */
  setActivity(a: Activity): void {
    if (a === "running") {
      this.nic.setActivity(a);
      this.transport.setActivity(a);
    } else {
      this.transport.setActivity(a);
      this.nic.setActivity(a);
    }
  }

  /** What the data path may do now. */
  get activity(): Activity {
    return this.nic.activity;
  }

  /** Binds the clock and backend (DMA and interrupts come through the PCI function once plugged). */
  attach(io: DeviceIo): void {
    this.nic.attach(io);
  }
}
