/**
 * The failover switch: one guest-visible VF, backed by pass-through (a VF of the host's 82576
 * behind a VFIO-shaped boundary and an IOMMU domain) or by the VMM's own emulation, switched both
 * ways without the guest noticing.
 * @module
 */
export * from "./vfio.js";
export * from "./guest-vf.js";
export * from "./pool-gate.js";
export * from "./switch.js";
export * from "./model.js";
