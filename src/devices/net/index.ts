/**
 * Networking for device models: the backend interface, packet parsing, checksums, software
 * segmentation, RSS hashing, frame builders and the platform-neutral backends (switch, link,
 * host stub).
 * @module
 */
export * from "./backend.js";
export * from "./parse.js";
export * from "./checksum.js";
export * from "./segment.js";
export * from "./toeplitz.js";
export * from "./frames.js";
export * from "./link.js";
export * from "./switch.js";
export * from "./host-stub.js";
export * from "./dhcp.js";
export * from "./pcap.js";
export * from "./announce-watch.js";
export * from "./base64.js";
export { ManualClock, FrameRecorder, guestFrames } from "./testing.js";
export { createKernels, tsKernels, CSUM_WASM_MIN_BYTES, type NetKernels, type KernelChoice } from "./kernels.js";
