/**
 * Simulated guest drivers.
 * @module
 */
export * from "./igbvf/index.js";
export * from "./igb-pf/index.js";
export * from "./virtio-net/index.js";
