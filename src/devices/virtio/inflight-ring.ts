/**
 * The packed queue's list of popped, not yet used buffers, oldest first, as a ring of typed
 * arrays sized once for the largest queue: popping and using a buffer in order (what a device
 * does on every frame) allocates nothing and moves nothing. Each entry holds the buffer ID, the
 * ring entries the buffer took, and the ring position and wrap counter it was popped at (for
 * {@link InflightRing.pop}, which gives the last pop back).
 * @module
 */

/** Popped, not yet used buffers of a packed queue, oldest first. */
export class InflightRing {
  private readonly ids: Uint16Array;
  private readonly counts: Uint16Array;
  private readonly positions: Uint16Array;
  private readonly wraps: Uint8Array;
  /** Slot of the oldest entry. */
  private first = 0;
  /** Entries held. */
  length = 0;

  /** `capacity`: the largest number of entries ever held (the queue's largest size, at most 2^15). */
  constructor(readonly capacity: number) {
    this.ids = new Uint16Array(capacity);
    this.counts = new Uint16Array(capacity);
    this.positions = new Uint16Array(capacity);
    this.wraps = new Uint8Array(capacity);
  }

  private slot(k: number): number {
    const s = this.first + k;
    return s >= this.capacity ? s - this.capacity : s;
  }

  /** Empties the list. */
  clear(): void {
    this.first = 0;
    this.length = 0;
  }

  /**
   * Appends a buffer; false (nothing changed) when the list is full. `count` is at most 2^16 - 1
   * and `pos` below 2^16 (a packed queue has at most 2^15 entries).
   */
  push(id: number, count: number, pos: number, wrap: boolean): boolean {
    if (this.length >= this.capacity) return false;
    const s = this.slot(this.length);
    this.ids[s] = id;
    this.counts[s] = count;
    this.positions[s] = pos;
    this.wraps[s] = wrap ? 1 : 0;
    this.length++;
    return true;
  }

  /** Removes the newest entry; false when empty. Its position and wrap are in `poppedPos` / `poppedWrap`. */
  pop(): boolean {
    if (this.length === 0) return false;
    const s = this.slot(--this.length);
    this.poppedPos = this.positions[s]!;
    this.poppedWrap = this.wraps[s] === 1;
    return true;
  }
  /** Ring position the entry removed by the last {@link InflightRing.pop} was popped at. */
  poppedPos = 0;
  /** Avail wrap counter the entry removed by the last {@link InflightRing.pop} was popped with. */
  poppedWrap = true;

  /** Index (0 = oldest) of the oldest entry with buffer ID `id`, or -1. */
  indexOf(id: number): number {
    if (this.length > 0 && this.ids[this.first] === id) return 0;
    for (let k = 1; k < this.length; k++) if (this.ids[this.slot(k)] === id) return k;
    return -1;
  }

  /** Buffer ID of entry `k`. */
  idAt(k: number): number {
    return this.ids[this.slot(k)]!;
  }

  /** Ring entries of entry `k`. */
  countAt(k: number): number {
    return this.counts[this.slot(k)]!;
  }

  /** Removes entry `k` (0 = oldest: O(1); otherwise the newer entries move down one, bounded by the capacity). */
  removeAt(k: number): void {
    if (k < 0 || k >= this.length) return;
    if (k === 0) {
      this.first = this.slot(1);
      this.length--;
      return;
    }
    for (let j = k; j < this.length - 1; j++) {
      const to = this.slot(j);
      const from = this.slot(j + 1);
      this.ids[to] = this.ids[from]!;
      this.counts[to] = this.counts[from]!;
      this.positions[to] = this.positions[from]!;
      this.wraps[to] = this.wraps[from]!;
    }
    this.length--;
  }
}
