/**
 * Simulated igbvf guest driver.
 * @module
 */
export * from "./driver.js";
