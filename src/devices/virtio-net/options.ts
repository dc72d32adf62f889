/**
 * Options of a virtio-net device and its work accounting (see `device.ts`).
 * @module
 */
import type { Clock } from "../../pci/interfaces.js";
import type { NetBackend } from "../net/backend.js";

/** Options of a virtio-net device (its configuration; `backend` and `clock` are I/O, attached). */
export interface VirtioNetOptions {
  mac: Uint8Array;
  /** Frames in and out; when given (or `clock`), the device is attached at once (see `VirtioNet.attach`). */
  backend?: NetBackend;
  /** Device time, for work continued after a budget (without one: a microtask after the current access). */
  clock?: Clock;
  /** Descriptors one run of a TX or control queue may read before it stops (default 4 x queue size). */
  notifyBudget?: number;
  /** Frames the receive FIFO holds while quiesced (default 256). */
  rxFifoFrames?: number;
  /** Queue size (default 256). */
  queueSize?: number;
  /** MTU to offer (VIRTIO_NET_F_MTU); not offered when absent. */
  mtu?: number;
  /** Offer VIRTIO_NET_F_STANDBY (a failover standby device). */
  standby?: boolean;
  /** Feature bits to withhold (see `VIRTIO_NET_FEATURE_NAMES`). */
  withhold?: number[];
  /** Offer VIRTIO_F_RING_PACKED (the driver may then choose the packed ring layout). */
  packed?: boolean;
  /** Queue pairs (default 1; MQ lets the driver use up to this many). */
  maxPairs?: number;
  /** Link speed in Mb/s for SPEED_DUPLEX (default 10000, full duplex). */
  speedMbps?: number;
}

/** Work accounting of the notification runs, for fuzzers and tests. */
export interface VirtioNetWork {
  /** Descriptors one run may read before it stops popping (a chain in progress finishes). */
  readonly budget: number;
  /** Runs (a notification, or a continuation on the clock). */
  runs: number;
  /** Descriptors read by the last run. */
  lastUnits: number;
  /** The most descriptors any run read. */
  maxUnits: number;
  /** Runs cut short by the budget (their rest continued later). */
  deferrals: number;
}
