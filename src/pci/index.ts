/**
 * The PCI layer: configuration space with masks, functions and BARs, capabilities (PM, MSI,
 * MSI-X, PCI Express, ARI, AER, SR-IOV, vendor), the topology (host bridge, root ports with
 * hotplug slots, ECAM/conf1-facing config routing, memory and I/O dispatch, firmware-style
 * resource assignment), saved state parsed against live instances, and a test device.
 * Platform-neutral.
 * @module
 */
export * from "./interfaces.js";
export * from "./errors.js";
export * from "./regs.js";
export * from "./config-space.js";
export * from "./function.js";
export { differsFromReset, parsePciFunctionState, resetStateOf } from "./function-state.js";
export * from "./caps/index.js";
export * from "./topology/index.js";
export * from "./test-device.js";
export * from "./demo-topology.js";
export * from "./lspci.js";
