/**
 * PCI topology: the root complex (host bridge, root bus, config routing, memory/I/O dispatch),
 * PCIe root ports with hotplug slots, their saved state, and firmware-style resource assignment.
 * @module
 */
export * from "./root-complex.js";
export * from "./root-port.js";
export * from "./topology-state.js";
export * from "./firmware.js";
