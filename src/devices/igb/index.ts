/**
 * The Intel 82576-compatible SR-IOV NIC: PF core (igb), VF register translation (igbvf), the
 * internal switch, and the PCI wiring.
 * @module
 */
export * from "./regs.js";
export * from "./regfile.js";
export * from "./nvm.js";
export * from "./phy.js";
export * from "./irq.js";
export * from "./core.js";
export * from "./vf.js";
export * from "./tx.js";
export * from "./rx.js";
export * from "./switch.js";
export * from "./offload.js";
export { igbRegisterTable } from "./table.js";
export * from "./testing.js";
export * from "./layout.js";
export * from "./activity.js";
export * from "./state.js";
export * from "./regnames.js";
export * from "./state-v1-layout.js";
export * from "./pci.js";
