/**
 * The host PF agent for the 82576 and an in-process test bed.
 * @module
 */
export * from "./agent.js";
export * from "./agent-state.js";
export * from "./testbed.js";
export * from "./host-nic.js";
