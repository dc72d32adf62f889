import { StateError, obj, u32 } from "../../state/parse.js";

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
  /**
   * Bits a stored value may hold (default all): a saved state with a bit outside this mask is
   * rejected. Every way the slot changes (guest write through the masks and hooks, reset, the
   * device's own updates) must stay inside it.
   */
  readonly valid?: number;
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

/** Saved registers by name: a number for a single register, an array for a register array. */
export type RegValues<N extends string = string> = { readonly [K in N]: number | readonly number[] };

/**
 * The dispatcher. `size` bytes of address space, dword granular.
 * @example
 * const rf = new RegFile(dev, rows, 0x20000);
 * rf.write(0x0, 4, 0x0400_0000);
 */
export class RegFile<C, N extends string = string> {
  /** Backing store, one slot per register element. */
  readonly slots: Uint32Array;
  /** Writes dropped because nothing decodes the address. */
  unknownWrites = 0;
  /** Reads of an address nothing decodes. */
  unknownReads = 0;
  /**
   * Bumped by every change made through this class (guest writes, {@link set}, reset, restore,
   * clear-on-read): a device may cache what it derives from registers (which receive-address
   * entries are valid, say) and rebuild it when this moved. Writes straight into {@link slots}
   * (the per-frame paths' statistics, ring heads, interrupt causes) do not bump it, so nothing
   * derived from a register written that way may be cached.
   */
  get generation(): number {
    return this.gen;
  }
  private gen = 0;
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

  /** Names of the rows that own slots, in table order. */
  get names(): readonly N[] {
    return this.owned.map((d) => d.name as N);
  }

  /** Slot of element `i` of row `name` (a programming error if the row does not exist). */
  slotOf(name: N, i = 0): number {
    const b = this.base.get(name);
    if (b === undefined || i < 0 || i >= b.count) throw new RegTableError(`no register ${name}[${i}]`);
    return b.first + i;
  }

  /** The bits row `name` may hold ({@link RegDef.valid}; all when the table does not say). */
  validOf(name: N): number {
    return (this.base.get(name)?.def.valid ?? 0xffffffff) >>> 0;
  }

  /** Raw value of a register element (no hooks). An unknown name or index reads 0. */
  get(name: N, i = 0): number {
    const b = this.base.get(name);
    if (b === undefined || i < 0 || i >= b.count) return 0;
    return this.slots[b.first + i] ?? 0;
  }

  /** Sets a raw value (no hooks, no masks): for the device's own state changes. */
  set(name: N, i: number, value: number): void {
    this.gen++;
    this.slots[this.slotOf(name, i)] = value >>> 0;
  }

  /** Puts every register back to its reset value, except rows listed in `keep`. */
  resetAll(keep?: ReadonlySet<string>): void {
    this.gen++;
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
    if (def.rc) {
      this.gen++;
      this.slots[slot] = (this.slots[slot] ?? 0) & ~def.rc;
    }
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
    this.gen++;
    const old = this.slots[slot] ?? 0;
    const w1c = def.w1c ?? 0;
    let next = ((old & ro) | (value & ~ro & ~w1c) | (old & w1c & ~value)) >>> 0;
    if (def.pre !== undefined) next = def.pre(this.dev, index, next, old, value >>> 0) >>> 0;
    this.slots[slot] = next;
    def.post?.(this.dev, index, next, old, value >>> 0);
  }

  /** Every register by name (arrays as arrays), raw stored values. */
  saveNamed(): Record<N, number | number[]> {
    const out = {} as Record<N, number | number[]>;
    for (const def of this.owned) {
      const b = this.base.get(def.name)!;
      out[def.name as N] = def.count === undefined ? (this.slots[b.first] ?? 0) : Array.from(this.slots.subarray(b.first, b.first + b.count));
    }
    return out;
  }

  /**
   * Checks saved registers (untrusted) against this table: every name known, arrays of the row's
   * length, every value a u32 inside the row's {@link RegDef.valid} bits. A row left out takes
   * its reset value. Returns a complete set (every row present). Throws {@link StateError}.
   */
  parseNamed(u: unknown, path: string): Record<N, number | number[]> {
    const o = obj(u, path);
    for (const k of Object.keys(o)) if (!this.base.has(k)) throw new StateError(`${path}.${k}`, "unknown register");
    const out = {} as Record<N, number | number[]>;
    for (const def of this.owned) {
      const name = def.name;
      const v = o[name];
      const count = def.count ?? 1;
      const reset = (i: number) => (typeof def.reset === "function" ? def.reset(i) : (def.reset ?? 0)) >>> 0;
      const check = (x: unknown, p: string): number => {
        const n = u32(x, p);
        const valid = def.valid ?? 0xffffffff;
        if ((n & ~valid) !== 0) throw new StateError(p, `0x${n.toString(16)} has bits outside the register's valid bits 0x${(valid >>> 0).toString(16)}`);
        return n;
      };
      if (def.count === undefined) {
        out[name as N] = v === undefined ? reset(0) : check(v, `${path}.${name}`);
      } else {
        if (v === undefined) {
          out[name as N] = Array.from({ length: count }, (_, i) => reset(i));
          continue;
        }
        if (!Array.isArray(v)) throw new StateError(`${path}.${name}`, `expected an array of ${count}`);
        if (v.length !== count) throw new StateError(`${path}.${name}`, `array of ${v.length}, expected exactly ${count}`);
        out[name as N] = v.map((x, i) => check(x, `${path}.${name}[${i}]`));
      }
    }
    return out;
  }

  /** Loads registers by name ({@link parseNamed}'s output). Cannot fail: a missing row or element takes 0. */
  applyNamed(values: RegValues<N>): void {
    this.gen++;
    for (const def of this.owned) {
      const b = this.base.get(def.name)!;
      const v = (values as Record<string, number | readonly number[] | undefined>)[def.name];
      for (let i = 0; i < b.count; i++) {
        const x = typeof v === "number" ? (i === 0 ? v : 0) : (v?.[i] ?? 0);
        this.slots[b.first + i] = x >>> 0;
      }
    }
  }
}
