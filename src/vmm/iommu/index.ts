/**
 * IOMMU domains: map, unmap, faults, and the DMA write log.
 * @module
 */
export * from "./domain.js";
