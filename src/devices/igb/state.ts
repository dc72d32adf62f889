/**
 * The 82576's saved state (version 2) and its parser. Registers are saved by name, moderation
 * times relative to the device clock, and every part is checked before anything is applied:
 * register values inside each row's valid bits, ring heads and tails inside their rings, the NVM's
 * checksum, the PHY's fixed registers, partial packets and held frames within their bounds.
 *
 * Version 1 (what the code before this change saved: registers as slots by position, moderation
 * as absolute times) still loads, through {@link upgradeIgbV1}.
 *
 * Platform-neutral.
 * @module
 */
import { StateError, arr, bool, field, hexBytes, int, obj, onlyKeys, optField, toHex, u16, u32 } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import { IGB_HOLD_FRAMES, IGB_HOLD_FRAME_MAX } from "./activity.js";
import { parseIrqState, type IrqState } from "./irq.js";
import { nvmValid } from "./nvm.js";
import { parsePhyState, type PhyState } from "./phy.js";
import type { RegFile, RegValues } from "./regfile.js";
import type { IgbRegName } from "./regnames.js";
import { IGB_SIZES } from "./regs.js";
import { IGB_V1_SLOTS, IGB_V1_SLOT_LAYOUT } from "./state-v1-layout.js";
import { parseTxQueue, upgradeTxQueueV1, type TxQueueSaved } from "./tx.js";

/** A frame held for a pool's queue while the pool did not run. */
export interface IgbHeldRxState {
  /** The receiving queue (a queue of the pool: `q % 8` is the pool). */
  readonly q: number;
  /** The frame, as hex. */
  readonly frame: string;
  readonly rssHash: number;
  readonly rssType: number;
  readonly loopback: boolean;
}

/** Frames held while the NIC or a pool did not run, in arrival order. */
export interface IgbHeldState {
  /** Frames from the uplink held for the whole NIC (hex). */
  readonly nic: readonly string[];
  /** Per pool (8), frames held for its queues. */
  readonly pools: readonly (readonly IgbHeldRxState[])[];
}

/** Saved state of an {@link IgbCore} (version 2). */
export interface IgbCoreState {
  /** Format version. */
  readonly version: 2;
  /** Every register by name (arrays as arrays). */
  readonly regs: RegValues<IgbRegName>;
  /** PHY registers. */
  readonly phy: PhyState;
  /** The 256 NVM words. */
  readonly nvm: readonly number[];
  /** Interrupt moderation, relative to the device clock. */
  readonly irq: IrqState;
  /** Each transmit queue's contexts and partly assembled packet (16). */
  readonly tx: readonly TxQueueSaved[];
  /** VFs enabled. */
  readonly numVfs: number;
  /** The I/O BAR's IOADDR latch. */
  readonly ioAddr: number;
  /** Frames held by quiesced or stopped data paths. */
  readonly held: IgbHeldState;
}

/** What a parser checks a state against: the instance's register table and its VF count. */
export interface IgbStateConfig {
  /** The instance's register file (its table decides names, lengths and valid bits). */
  readonly regs: RegFile<unknown, IgbRegName>;
  /** Most VFs the instance can enable (its SR-IOV TotalVFs). */
  readonly maxVfs: number;
}

const EMPTY_HELD: IgbHeldState = { nic: [], pools: Array.from({ length: IGB_SIZES.pools }, () => []) };

/**
 * Lifts a version 1 state: register slots are named through the frozen v1 layout, the PHY and
 * interrupt sub-states lose their own version fields, and partial packets become hex. Version 1
 * saved moderation as absolute times on a clock it did not record, so they cannot be made
 * relative: the upgrade lets every moderation window end at once (an owed message goes out on
 * resume; at worst one interrupt comes earlier than EITR asked).
 */
export function upgradeIgbV1(o: Record<string, unknown>, path: string): Record<string, unknown> {
  const regs = obj(o.regs, `${path}.regs`);
  const slots = arr(regs.slots, `${path}.regs.slots`, IGB_V1_SLOTS, u32, true);
  const named: Record<string, number | number[]> = {};
  let i = 0;
  for (const [name, count] of IGB_V1_SLOT_LAYOUT) {
    named[name] = count === 1 ? slots[i]! : slots.slice(i, i + count);
    i += count;
  }
  const phy = obj(o.phy, `${path}.phy`);
  const irq = obj(o.irq, `${path}.irq`);
  const tx = arr(o.tx, `${path}.tx`, IGB_SIZES.queues, upgradeTxQueueV1, true);
  return {
    version: 2,
    regs: named,
    phy: { regs: phy.regs },
    nvm: o.nvm,
    irq: { dueInNs: new Array<number>(IGB_SIZES.eicrBits).fill(0), held: irq.held },
    tx,
    numVfs: o.numVfs,
    ioAddr: o.ioAddr ?? 0,
  };
}

function parseHeld(u: unknown, path: string): IgbHeldState {
  const o = obj(u, path);
  onlyKeys(o, path, ["nic", "pools"]);
  const frame = (v: unknown, p: string) => {
    const b = hexBytes(v, p, IGB_HOLD_FRAME_MAX, false);
    if (b.length < 14) throw new StateError(p, `a frame of ${b.length} bytes is shorter than an Ethernet header`);
    return toHex(b);
  };
  return {
    nic: field(o, "nic", path, (v, p) => arr(v, p, IGB_HOLD_FRAMES, frame)),
    pools: field(o, "pools", path, (v, p) =>
      arr(
        v,
        p,
        IGB_SIZES.pools,
        (list, lp) =>
          arr(list, lp, IGB_HOLD_FRAMES, (e, ep) => {
            const h = obj(e, ep);
            onlyKeys(h, ep, ["q", "frame", "rssHash", "rssType", "loopback"]);
            const pool = Number(/\[(\d+)\]$/.exec(lp)?.[1] ?? -1);
            const q = field(h, "q", ep, (x, xp) => int(x, xp, 0, IGB_SIZES.queues - 1));
            if (q % IGB_SIZES.pools !== pool) throw new StateError(`${ep}.q`, `queue ${q} is not a queue of pool ${pool}`);
            return {
              q,
              frame: field(h, "frame", ep, frame),
              rssHash: field(h, "rssHash", ep, u32),
              rssType: field(h, "rssType", ep, (x, xp) => int(x, xp, 0, 15)),
              loopback: field(h, "loopback", ep, bool),
            };
          }),
        true,
      ),
    ),
  };
}


/**
 * The state type of an 82576 with configuration `cfg`: version 2, with the upgrade from version 1.
 * @example
 * ```ts
 * const s = core.stateType.parse(JSON.parse(text)); // throws StateError naming the field
 * fresh.restore(s);                                 // cannot fail
 * ```
 */
export function igbStateType(cfg: IgbStateConfig): StateType<IgbCoreState> {
  return defineState<IgbCoreState>("igb", 2, { 1: upgradeIgbV1 }, (o, path) => {
    onlyKeys(o, path, ["version", "regs", "phy", "nvm", "irq", "tx", "numVfs", "ioAddr", "held"]);
    const regs = cfg.regs.parseNamed(o.regs, `${path}.regs`);
    const nvm = field(o, "nvm", path, (v, p) => arr(v, p, IGB_SIZES.nvmWords, u16, true));
    if (!nvmValid(nvm)) throw new StateError(`${path}.nvm`, "the NVM checksum does not add up");
    const ioAddr = optField(o, "ioAddr", path, (v, p) => int(v, p, 0, IGB_SIZES.pfBar0 - 4), 0);
    if (ioAddr % 4 !== 0) throw new StateError(`${path}.ioAddr`, `${ioAddr} is not a multiple of 4`);
    return {
      version: 2,
      regs,
      phy: field(o, "phy", path, parsePhyState),
      nvm,
      irq: field(o, "irq", path, parseIrqState),
      tx: field(o, "tx", path, (v, p) => arr(v, p, IGB_SIZES.queues, parseTxQueue, true)),
      numVfs: field(o, "numVfs", path, (v, p) => int(v, p, 0, cfg.maxVfs)),
      ioAddr,
      held: optField(o, "held", path, parseHeld, EMPTY_HELD),
    };
  });
}
