/**
 * Typed errors of the PCI layer. Guest accesses never throw: these come only from the API
 * (building a function wrongly) and from restoring a bad saved state.
 * @module
 */

/** A function or capability was declared wrongly (API misuse, not guest input). */
export class PciConfigError extends Error {
  override readonly name = "PciConfigError";
}

/**
 * Kept for code written against the version 1 API. The state parsers (`fn.stateType.parse`,
 * `root.stateType.parse`...) throw the `StateError` of `state/parse.ts`, which names the
 * field.
 * @deprecated
 */
export class PciStateError extends Error {
  override readonly name = "PciStateError";
}

/** A function cannot go where it was put (a VF plugged into a slot as an ordinary function, a full slot). */
export class PciPlugError extends Error {
  override readonly name = "PciPlugError";
}

/** Firmware-style resource assignment ran out of bus numbers, memory or I/O space. */
export class PciResourceError extends Error {
  override readonly name = "PciResourceError";
}
