/**
 * MSI-X capability with its table and PBA inside a BAR. The function serves table and PBA accesses
 * before the device's own BAR handler sees the rest of the BAR.
 *
 * - Function Mask and per-vector Mask: a vector raised while masked sets its pending bit; it is
 *   sent when it (and the function) is unmasked and MSI-X is enabled.
 * - Table entries reset to masked; the reserved bits of Vector Control read 0.
 * @module
 */
import type { AccessSize, PciFunction, StatefulCap, VectorSource } from "../function.js";
import { PciConfigError } from "../errors.js";
import { StateError, arr, bool, field, int, obj, onlyKeys, u32 } from "../../state/parse.js";
import { le16 } from "../function-state.js";
import { CAP_ID } from "../regs.js";

/** One MSI-X table entry, by name. */
export interface MsixEntryState {
  /** Message Address (low 32 bits). */
  addr: number;
  /** Message Upper Address. */
  upperAddr: number;
  /** Message Data. */
  data: number;
  /** Vector Control bit 0 (the only defined bit). */
  masked: boolean;
}

/** Saved MSI-X state: the table by entry and the pending vectors (increasing, below the vector count). */
export interface MsixState {
  table: MsixEntryState[];
  pending: number[];
}

/** Options of {@link addMsix}. */
export interface MsixOptions {
  /** 1-2048 vectors. */
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

const ENABLE = 0x8000;
const FUNC_MASK = 0x4000;

/** The MSI-X capability's runtime. */
export class MsixCap implements VectorSource, StatefulCap<MsixState> {
  readonly stateKey = "msix";
  /** The table: 16 bytes per vector. */
  private readonly table: Uint8Array;
  private readonly pending: Uint8Array;
  private readonly tableView: DataView;

  constructor(
    private readonly fn: PciFunction,
    readonly offset: number,
    readonly opts: MsixOptions,
  ) {
    this.table = new Uint8Array(opts.vectors * 16);
    this.tableView = new DataView(this.table.buffer);
    this.pending = new Uint8Array(Math.ceil(opts.vectors / 64) * 8);
    this.resetTable();
  }

  /** Message Control. */
  private get control(): number {
    return this.fn.config.get16(this.offset + 2);
  }

  /** MSI-X Enable. */
  get enabled(): boolean {
    return (this.control & ENABLE) !== 0;
  }

  /** Function Mask. */
  get functionMasked(): boolean {
    return (this.control & FUNC_MASK) !== 0;
  }

  /** Whether vector `v` is masked (per-vector or function mask). */
  isMasked(v: number): boolean {
    return this.functionMasked || (this.tableView.getUint32(v * 16 + 12, true) & 1) !== 0;
  }

  /** Whether vector `v` is pending. */
  isPending(v: number): boolean {
    return (this.pending[v >>> 3]! & (1 << (v & 7))) !== 0;
  }

  /** Raises vector `v`; out-of-range vectors are dropped. */
  notify(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.opts.vectors || !this.enabled) return;
    if (this.isMasked(v)) {
      this.pending[v >>> 3]! |= 1 << (v & 7);
      return;
    }
    this.send(v);
  }

  private send(v: number): void {
    const t = this.tableView;
    const addr = t.getUint32(v * 16 + 4, true) * 0x1_0000_0000 + t.getUint32(v * 16, true);
    this.fn.sendMsi(addr, t.getUint32(v * 16 + 8, true));
  }

  /** Sends every pending vector that is no longer masked. Only vectors below the count exist. */
  flushPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.opts.vectors; v++) {
      if (this.isPending(v) && !this.isMasked(v)) {
        this.pending[v >>> 3]! &= ~(1 << (v & 7));
        this.send(v);
      }
    }
  }

  /**
   * Serves an access to the table or PBA, or returns `undefined` if the access is elsewhere in the
   * BAR. For a write, `value` is given and the return value is 0.
   */
  barAccess(bar: number, off: number, size: AccessSize, value?: number): number | undefined {
    const o = this.opts;
    if (bar === o.tableBar && off >= o.tableOffset && off < o.tableOffset + this.table.length) {
      const rel = off - o.tableOffset;
      if (value === undefined) return readLe(this.table, rel, size);
      if (rel + size > this.table.length) return 0;
      const entry = rel >>> 4;
      const wasMasked = this.isMasked(entry);
      writeLe(this.table, rel, size, value);
      // Only bit 0 of Vector Control is defined.
      const vc = entry * 16 + 12;
      this.tableView.setUint32(vc, this.tableView.getUint32(vc, true) & 1, true);
      if (wasMasked && !this.isMasked(entry) && this.isPending(entry)) this.flushPending();
      return 0;
    }
    const pbaLen = this.pending.length;
    if (bar === o.pbaBar && off >= o.pbaOffset && off < o.pbaOffset + pbaLen) {
      return value === undefined ? readLe(this.pending, off - o.pbaOffset, size) : 0; // PBA is read-only
    }
    return undefined;
  }

  private resetTable(): void {
    this.table.fill(0);
    for (let v = 0; v < this.opts.vectors; v++) this.tableView.setUint32(v * 16 + 12, 1, true);
    this.pending.fill(0);
  }

  /** Resets table and PBA (function reset). */
  reset(): void {
    this.resetTable();
  }

  /** The table by entry and the pending vectors. */
  save(): MsixState {
    const t = this.tableView;
    const table: MsixEntryState[] = [];
    const pending: number[] = [];
    for (let v = 0; v < this.opts.vectors; v++) {
      table.push({ addr: t.getUint32(v * 16, true), upperAddr: t.getUint32(v * 16 + 4, true), data: t.getUint32(v * 16 + 8, true), masked: (t.getUint32(v * 16 + 12, true) & 1) !== 0 });
      if (this.isPending(v)) pending.push(v);
    }
    return { table, pending };
  }

  /**
   * Checks a saved MSI-X state: exactly one entry per vector, each well-formed; pending vectors
   * increasing and below the vector count; a pending vector must be one the function could not
   * send (MSI-X disabled, function masked, or its entry masked), as a raise only goes pending then.
   */
  parse(u: unknown, path: string, config: Uint8Array): MsixState {
    const o = obj(u, path);
    onlyKeys(o, path, ["table", "pending"]);
    const n = this.opts.vectors;
    const table = field(o, "table", path, (x, p) =>
      arr(x, p, n, (e, ep) => {
        const eo = obj(e, ep);
        onlyKeys(eo, ep, ["addr", "upperAddr", "data", "masked"]);
        return { addr: field(eo, "addr", ep, u32), upperAddr: field(eo, "upperAddr", ep, u32), data: field(eo, "data", ep, u32), masked: field(eo, "masked", ep, bool) };
      }, true),
    );
    const pending = field(o, "pending", path, (x, p) => arr(x, p, n, (v, vp) => int(v, vp, 0, n - 1)));
    const ctl = le16(config, this.offset + 2);
    const canSend = (ctl & ENABLE) !== 0 && (ctl & FUNC_MASK) === 0;
    pending.forEach((v, i) => {
      if (i > 0 && v <= pending[i - 1]!) throw new StateError(`${path}.pending[${i}]`, `vector ${v} is not above the previous one`);
      if (canSend && !table[v]!.masked) {
        throw new StateError(`${path}.pending[${i}]`, `vector ${v} is unmasked while MSI-X is enabled and the function unmasked: it would have been sent, not left pending`);
      }
    });
    return { table, pending };
  }

  /** Applies a parsed state. */
  apply(s: MsixState): void {
    this.resetTable();
    const t = this.tableView;
    s.table.forEach((e, v) => {
      if (v >= this.opts.vectors) return;
      t.setUint32(v * 16, e.addr, true);
      t.setUint32(v * 16 + 4, e.upperAddr, true);
      t.setUint32(v * 16 + 8, e.data, true);
      t.setUint32(v * 16 + 12, e.masked ? 1 : 0, true);
    });
    for (const v of s.pending) if (v < this.opts.vectors) this.pending[v >>> 3]! |= 1 << (v & 7);
  }

  /** The state after a function reset: every entry zero and masked, nothing pending. */
  resetState(): MsixState {
    const table: MsixEntryState[] = [];
    for (let v = 0; v < this.opts.vectors; v++) table.push({ addr: 0, upperAddr: 0, data: 0, masked: true });
    return { table, pending: [] };
  }
}

function readLe(b: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = (v * 256 + (b[off + i] ?? 0)) >>> 0;
  return v >>> 0;
}

function writeLe(b: Uint8Array, off: number, size: number, value: number): void {
  for (let i = 0; i < size && off + i < b.length; i++) b[off + i] = (value >>> (8 * i)) & 0xff;
}

/** Adds an MSI-X capability whose table and PBA live in the function's BARs. */
export function addMsix(fn: PciFunction, opts: MsixOptions): MsixCap {
  if (!Number.isInteger(opts.vectors) || opts.vectors < 1 || opts.vectors > 2048) throw new PciConfigError("MSI-X vectors must be 1-2048");
  for (const [bar, o, len] of [
    [opts.tableBar, opts.tableOffset, opts.vectors * 16],
    [opts.pbaBar, opts.pbaOffset, Math.ceil(opts.vectors / 64) * 8],
  ] as const) {
    const decl = fn.bars[bar];
    if (decl === undefined || decl.kind === "io") throw new PciConfigError(`MSI-X: BAR ${bar} is not a memory BAR`);
    if (o % 8 !== 0 || o + len > decl.size) throw new PciConfigError(`MSI-X: structure at 0x${o.toString(16)} does not fit BAR ${bar}`);
  }
  const cs = fn.config;
  const off = cs.addCapability(CAP_ID.MSIX, 12);
  cs.set16(off + 2, opts.vectors - 1);
  cs.setMasks(off + 2, 2, { w: ENABLE | FUNC_MASK, check: 0x07ff });
  cs.set32(off + 4, opts.tableOffset | opts.tableBar);
  cs.set32(off + 8, opts.pbaOffset | opts.pbaBar);
  cs.checkBytes(off + 4, 8);
  const cap = new MsixCap(fn, off, opts);
  fn.msix = cap;
  fn.addStateful(cap);
  let before = 0;
  fn.addHook({
    start: off + 2,
    end: off + 4,
    before: () => {
      before = cs.get16(off + 2);
    },
    after: (_r, _s, _v, effects) => {
      const now = cs.get16(off + 2);
      if ((now ^ before) & (ENABLE | FUNC_MASK)) {
        effects.push({ kind: "msixChanged", enabled: (now & ENABLE) !== 0, masked: (now & FUNC_MASK) !== 0 });
        cap.flushPending();
      }
    },
    reset: () => cap.reset(),
  });
  return cap;
}
