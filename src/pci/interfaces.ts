/**
 * The interfaces a device model consumes. A device reaches the outside world only through these:
 * guest memory ({@link DmaSpace}), interrupts ({@link InterruptSink}) and time ({@link Clock}).
 * Network devices additionally get a `NetBackend` (see `src/devices/net/backend.ts`).
 *
 * Everything here is platform-neutral: no `node:*` imports.
 * @module
 */

/**
 * Guest memory as a device sees it for DMA (through an optional IOMMU).
 *
 * Addresses are guest-physical (or IOVA) byte addresses held in a JS number, so any address up to
 * 2^53 is representable. An access that touches any byte outside the mapped space fails as a whole:
 * `read` returns `undefined`, `write` returns `false` and writes nothing. Neither ever throws.
 */
export interface DmaSpace {
  /**
   * Returns the `len` bytes at `addr`, or `undefined` if any of them is not mapped (or `len` is
   * negative or absurd). The result may alias guest memory: treat it as read-only and use it
   * before the next call into the guest or the memory map.
   */
  read(addr: number, len: number): Uint8Array | undefined;
  /** Copies `data` into guest memory at `addr`. Returns `false` (and writes nothing) on a fault. */
  write(addr: number, data: Uint8Array): boolean;
  /**
   * Optional fast path: all of guest memory as one array (guest physical address = index) when
   * memory is flat and DMA is allowed right now, else `undefined`. Callers still bounds-check
   * every access against its length; valid until the next call into the guest or the memory map.
   * Devices write through it too, so a memory whose writes need more than a store (v86's, where
   * `write` also tells the JIT which pages changed) must not offer it.
   */
  linear?(): Uint8Array | undefined;
}

/**
 * Where a PCI function's interrupts go. The PCI core decides, from the function's config space,
 * whether an interrupt is an MSI-X message, an MSI message or a level on the INTx pin; the sink
 * only carries the result to the interrupt controller.
 */
export interface InterruptSink {
  /** An MSI or MSI-X memory write: `address` is the 64-bit message address, `data` the 32-bit payload. */
  msi(address: number, data: number): void;
  /** The level of INTx pin `pin` (1 = INTA# … 4 = INTD#) of function `requesterId` (bus << 8 | devfn). */
  intx(requesterId: number, pin: number, level: boolean): void;
}

/** A timer handle returned by {@link Clock.schedule}. */
export interface TimerHandle {
  /** Cancels the timer. Cancelling a timer that already fired does nothing. */
  cancel(): void;
}

/**
 * Time as a device sees it: virtual time in simulation, the CPU engine's time with a real guest.
 * All values are nanoseconds held in a JS number.
 */
export interface Clock {
  /** Current time in nanoseconds. Monotonic. */
  now(): number;
  /** Runs `cb` once, `delayNs` nanoseconds from now (clamped to be non-negative). */
  schedule(delayNs: number, cb: () => void): TimerHandle;
}
