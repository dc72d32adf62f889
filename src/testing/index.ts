/**
 * In-memory stand-ins for a device's injected interfaces, and in-process test beds, for tests,
 * benchmarks and first experiments with the device models (`nicvisor/testing`):
 * - {@link FlatMemory}: guest RAM as one byte array (a `DmaSpace`), counting refused accesses;
 * - {@link ManualClock}: a `Clock` that moves only when told to;
 * - {@link IrqRecorder}, {@link CountingBackend}, {@link FrameRecorder}: recorders of what devices do;
 * - {@link createVirtioNetTestbed}: virtio-net on flat RAM with the simulated virtio_net driver;
 * - {@link createIgbTestbed}: the 82576 with N VFs, the host PF agent and one simulated igbvf per VF.
 *
 * Platform-neutral.
 * @module
 */
export { FlatMemory, ManualClock, ClockStormError, MANUAL_CLOCK_STORM } from "../devices/testing.js";
export { IrqRecorder } from "../devices/igb/testing.js";
export { CountingBackend, FrameRecorder, RecordingBackend, guestFrames } from "../devices/net/testing.js";
export { createVirtioNetTestbed, FlatRam, type VirtioNetTestbedOptions } from "../guest/virtio-net/testbed.js";
export { createIgbTestbed, TestbedError, type IgbTestbed, type IgbTestbedOptions } from "../vmm/pf-agent/testbed.js";
