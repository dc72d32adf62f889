/**
 * Typed errors of the PCI layer. Guest accesses never throw: these come only from the API
 * (building a function wrongly) and from restoring a bad saved state.
 * @module
 */

/** A function or capability was declared wrongly (API misuse, not guest input). */
export class PciConfigError extends Error {
  override readonly name = "PciConfigError";
}

/** A saved state was rejected by `restore` (wrong version, wrong size, read-only bytes differ...). */
export class PciStateError extends Error {
  override readonly name = "PciStateError";
}
