/**
 * A table-driven MMIO register file: each register (or register array) is declared once as a
 * {@link RegDef} row; one generic dispatcher serves every read and write through the table.
 * An alias is another row pointing at the same slots. Unknown and read-only writes are traced
 * and dropped; nothing here throws on a guest access.
 * @module
 */

/**
 * One register or register array.
 * @typeParam C - the device the hooks act on.
 */
export interface RegDef<C> {
  /** Name, as in the datasheet (arrays: the base name). */
  readonly name: string;
  /** Byte offset of element `i`. */
  readonly offset: (i: number) => number;
  /** Array length (default 1). */
  readonly count?: number;
  /** Reset value of element `i` (default 0). */
  readonly reset?: number | ((i: number) => number);
  /** Bits the guest cannot change by a write (default 0: all writable). `0xffffffff` = read-only. */
  readonly ro?: number;
  /** Bits a written 1 clears (write-1-to-clear). */
  readonly w1c?: number;
  /** Bits cleared by a read. */
  readonly rc?: number;
  /** Write-only: reads return 0. */
  readonly wo?: boolean;
  /** Computes the value a read returns (after which `rc` bits are cleared from the slot). */
  readonly read?: (c: C, i: number, stored: number) => number;
  /** Adjusts the value about to be stored (after the ro/w1c masks). Returns the value to store. */
  readonly pre?: (c: C, i: number, next: number, old: number, written: number) => number;
  /** Side effects after the store. */
  readonly post?: (c: C, i: number, stored: number, old: number, written: number) => void;
  /** This row is an alias of row `alias`: element i uses that row's element `aliasIndex(i)`. */
  readonly alias?: string;
  /** Index map for an alias (default identity). */
  readonly aliasIndex?: (i: number) => number;
}

/** A resolved location: a row and an element index. */
export interface RegLoc<C> {
  /** The row (for an alias, the row it points at). */
  readonly def: RegDef<C>;
  /** Element index in that row. */
  readonly index: number;
  /** Slot in the backing store. */
  readonly slot: number;
}

/** Raised when a register table is malformed (a programming error, at construction). */
export class RegTableError extends Error {
  override readonly name = "RegTableError";
}

/** Raised when saved register state is rejected. */
export class RegStateError extends Error {
  override readonly name = "RegStateError";
}

/** Saved register slots. */
export interface RegFileState {
  /** Format version. */
  readonly version: 1;
  /** One unsigned 32-bit value per slot, in table order. */
  readonly slots: number[];
}

/**
 * The dispatcher. `size` bytes of address space, dword granular.
 * @example
 * const rf = new RegFile(dev, rows, 0x20000);
 * rf.write(0x0, 4, 0x0400_0000);
 */
export class RegFile<C> {
  /** Backing store, one slot per register element. */
  readonly slots: Uint32Array;
  /** Writes dropped because nothing decodes the address. */
  unknownWrites = 0;
  /** Reads of an address nothing decodes. */
  unknownReads = 0;
  private readonly locs: (RegLoc<C> | undefined)[];
  private readonly base = new Map<string, { def: RegDef<C>; first: number; count: number }>();
  private readonly owned: RegDef<C>[] = [];

  /**
   * @param dev - passed to every hook
   * @param rows - the register table
   * @param size - bytes of address space decoded
   * @param trace - receives one line per dropped access (optional)
   */
  constructor(
    private readonly dev: C,
    rows: readonly RegDef<C>[],
    readonly size: number,
    private readonly trace?: (msg: string) => void,
  ) {
    this.locs = new Array<RegLoc<C> | undefined>(size >>> 2).fill(undefined);
    let n = 0;
    for (const def of rows) {
      if (def.alias !== undefined) continue;
      if (this.base.has(def.name)) throw new RegTableError(`duplicate register ${def.name}`);
      this.base.set(def.name, { def, first: n, count: def.count ?? 1 });
      this.owned.push(def);
      n += def.count ?? 1;
    }
    this.slots = new Uint32Array(n);
    for (const def of rows) {
      const target = this.base.get(def.alias ?? def.name);
      if (target === undefined) throw new RegTableError(`alias ${def.name} -> unknown ${def.alias}`);
      const count = def.count ?? 1;
      for (let i = 0; i < count; i++) {
        const index = def.alias !== undefined ? (def.aliasIndex?.(i) ?? i) : i;
        const off = def.offset(i);
        if (off % 4 !== 0 || off < 0 || off >= size) throw new RegTableError(`${def.name}[${i}] at bad offset ${off}`);
        if (this.locs[off >>> 2] !== undefined) throw new RegTableError(`${def.name}[${i}] overlaps at 0x${off.toString(16)}`);
        if (index >= (target.def.count ?? 1)) throw new RegTableError(`${def.name}[${i}] aliases past ${def.alias}`);
        this.locs[off >>> 2] = { def: target.def, index, slot: target.first + index };
      }
    }
    this.resetAll();
  }

  /** Resolves a byte offset to its register, or `undefined`. */
  locate(offset: number): RegLoc<C> | undefined {
    if (!(offset >= 0 && offset < this.size)) return undefined;
    return this.locs[offset >>> 2];
  }

  /** Slot of element `i` of row `name` (a programming error if the row does not exist). */
  slotOf(name: string, i = 0): number {
    const b = this.base.get(name);
    if (b === undefined || i < 0 || i >= b.count) throw new RegTableError(`no register ${name}[${i}]`);
    return b.first + i;
  }

  /** Raw value of a register element (no hooks). An unknown name or index reads 0. */
  get(name: string, i = 0): number {
    const b = this.base.get(name);
    if (b === undefined || i < 0 || i >= b.count) return 0;
    return this.slots[b.first + i] ?? 0;
  }

  /** Sets a raw value (no hooks, no masks): for the device's own state changes. */
  set(name: string, i: number, value: number): void {
    this.slots[this.slotOf(name, i)] = value >>> 0;
  }

  /** Puts every register back to its reset value, except rows listed in `keep`. */
  resetAll(keep?: ReadonlySet<string>): void {
    for (const def of this.owned) {
      if (keep?.has(def.name)) continue;
      const first = this.base.get(def.name)?.first ?? 0;
      const count = def.count ?? 1;
      for (let i = 0; i < count; i++) {
        const r = def.reset;
        this.slots[first + i] = (typeof r === "function" ? r(i) : (r ?? 0)) >>> 0;
      }
    }
  }

  /** A guest read of `size` bytes at `offset`. Never throws; unknown addresses read 0. */
  read(offset: number, size: 1 | 2 | 4): number {
    if (!Number.isInteger(offset)) return 0;
    const aligned = offset & ~3;
    const loc = this.locate(aligned);
    if (loc === undefined) {
      this.unknownReads++;
      return 0;
    }
    const v = this.readLoc(loc);
    if (size === 4) return v >>> 0;
    const shift = (offset & 3) * 8;
    return (v >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  /** Reads one located register through its hooks. */
  readLoc(loc: RegLoc<C>): number {
    const { def, index, slot } = loc;
    const stored = this.slots[slot] ?? 0;
    if (def.wo) return 0;
    const v = def.read !== undefined ? def.read(this.dev, index, stored) : stored;
    if (def.rc) this.slots[slot] = (this.slots[slot] ?? 0) & ~def.rc;
    return v >>> 0;
  }

  /** A guest write of `size` bytes at `offset`. Never throws; unknown or read-only writes are dropped. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (!Number.isInteger(offset)) {
      this.unknownWrites++;
      return;
    }
    const aligned = offset & ~3;
    const loc = this.locate(aligned);
    if (loc === undefined) {
      this.unknownWrites++;
      this.trace?.(`igb: write to unknown register 0x${aligned.toString(16)} dropped`);
      return;
    }
    let v = value >>> 0;
    if (size !== 4) {
      const shift = (offset & 3) * 8;
      const mask = (size === 1 ? 0xff : 0xffff) << shift;
      v = (((this.slots[loc.slot] ?? 0) & ~mask) | ((v << shift) & mask)) >>> 0;
    }
    this.writeLoc(loc, v);
  }

  /** Writes one located register through its masks and hooks. */
  writeLoc(loc: RegLoc<C>, value: number): void {
    const { def, index, slot } = loc;
    const ro = def.ro ?? 0;
    if (ro === 0xffffffff && def.pre === undefined && def.post === undefined) {
      this.trace?.(`igb: write to read-only ${def.name}[${index}] dropped`);
      return;
    }
    const old = this.slots[slot] ?? 0;
    const w1c = def.w1c ?? 0;
    let next = ((old & ro) | (value & ~ro & ~w1c) | (old & w1c & ~value)) >>> 0;
    if (def.pre !== undefined) next = def.pre(this.dev, index, next, old, value >>> 0) >>> 0;
    this.slots[slot] = next;
    def.post?.(this.dev, index, next, old, value >>> 0);
  }

  /** Saves every slot. */
  save(): RegFileState {
    return { version: 1, slots: Array.from(this.slots) };
  }

  /** Restores saved slots; rejects a state of the wrong shape. */
  restore(state: RegFileState): void {
    if (state === null || typeof state !== "object" || state.version !== 1 || !Array.isArray(state.slots)) {
      throw new RegStateError("register state: bad header");
    }
    if (state.slots.length !== this.slots.length) {
      throw new RegStateError(`register state: ${state.slots.length} slots, expected ${this.slots.length}`);
    }
    for (const v of state.slots) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RegStateError("register state: slot is not a u32");
    }
    this.slots.set(state.slots);
  }
}
