/**
 * Simulated guest drivers.
 * @module
 */
export * from "./igbvf/index.js";
export * from "./igb-pf/index.js";
