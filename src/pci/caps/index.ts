/**
 * PCI capabilities. Each `add*` declares the capability's registers and masks on a function before
 * `realize()`, and returns its offset or runtime object.
 * @module
 */
export * from "./pm.js";
export * from "./msi.js";
export * from "./msix.js";
export * from "./pcie.js";
export * from "./ari.js";
export * from "./aer.js";
export * from "./sriov.js";
export * from "./vendor.js";
