/**
 * The simulated virtio-net guest driver.
 * @module
 */
export * from "./driver.js";
export * from "./rings.js";
