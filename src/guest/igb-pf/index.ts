/**
 * Simulated igb PF guest driver (probe, queue 0).
 * @module
 */
export * from "./driver.js";
