/**
 * PCI topology: the root complex (host bridge, root bus, config routing, memory/I/O dispatch) and
 * PCIe root ports with hotplug slots.
 * @module
 */
export * from "./root-complex.js";
export * from "./root-port.js";
