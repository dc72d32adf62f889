/**
 * Device models and their network plumbing (platform-neutral):
 * - network backends and packet helpers (`NetBackend`, `L2Switch`, `HostStub`, pcap, checksums,
 *   segmentation, Toeplitz);
 * - the virtio transport (`VirtioPciTransport`, `SplitQueue`, `PackedQueue`), virtio-net
 *   (`VirtioNet`), and both as one stateful device with a versioned state (`VirtioNetPci`);
 * - the Intel 82576 model, under the `igb` namespace (its register names would otherwise crowd
 *   this entry).
 * @module
 */
export * from "./net/index.js";
export * from "./virtio/split-queue.js";
export * from "./virtio/packed-queue.js";
export { MAX_CHAIN_BYTES, type QueueDirection, type RingLayout, type Virtqueue, type VirtqueueState } from "./virtio/virtqueue.js";
export * from "./virtio/pci-transport.js";
export * from "./virtio-net/device.js";
export { VIRTIO_NET_FEATURE_NAMES, offeredFeatures } from "./virtio-net/features.js";
export type { OfferOptions } from "./virtio-net/features.js";
export * from "./virtio-net/rx-filter.js";
export * from "./virtio-net/pci.js";
export { parseNetState, parseOffer, GUEST_OFFLOAD_BITS, MAX_FIFO_FRAME, type NetStateConfig } from "./virtio-net/state.js";
export { parseQueueState, legalSize, type QueueConfig } from "./virtio/queue-state.js";
export { parseTransportState, featureProblem, type TransportConfig } from "./virtio/transport-state.js";
export * as igb from "./igb/index.js";
export * from "./models/index.js";
export type { TestDeviceModel } from "./models/testdev.js";
export type { IgbModel } from "./models/igb.js";
export type { VirtioNetModel, VirtioNetModelState } from "./models/virtio-net.js";
export type { SwitchModel } from "./models/switch.js";
export * from "../state/migration.js";
export * from "./lifecycle/model.js";
export type { DeviceIo, StatefulDevice } from "./lifecycle/device.js";
export { LateBackend, LateClock } from "./lifecycle/late-io.js";
export * from "../state/parse.js";
export * from "../state/versioned.js";
export * from "../state/container.js";
