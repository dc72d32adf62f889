/**
 * The whole 82576 (PF with its VFs) as a {@link DeviceModel}.
 * @module
 */
import { IgbPciDevice } from "../igb/pci.js";
import type { IgbCoreState } from "../igb/core.js";
import { LateBackend, LateClock } from "../lifecycle/late-io.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";
import { scratchStateType } from "./scratch.js";

/** Configuration of {@link createIgbModel}. */
export interface IgbModelConfig {
  /** The MAC in the NIC's NVM. */
  mac: Uint8Array;
  /** One line per dropped device access or frame. */
  trace?: (msg: string) => void;
}

/** The 82576 plus its model; `nic` is the device itself. */
export type IgbModel = DeviceModel<IgbCoreState> & { readonly nic: IgbPciDevice };

/**
 * Creates the 82576 as a model; its clock and uplink come with `attach` (or `platform.add`).
 * @example
 * ```ts
 * const igb = createIgbModel({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]) });
 * platform.add(igb, { name: "igb", slot: 5, backend: uplink });
 * ```
 */
export function createIgbModel(config: IgbModelConfig): IgbModel {
  const clock = new LateClock();
  const backend = new LateBackend();
  const build = (c: LateClock, b?: LateBackend): IgbPciDevice =>
    new IgbPciDevice({ mac: config.mac, clock: c, ...(b !== undefined ? { backend: b } : {}), ...(config.trace !== undefined ? { trace: config.trace } : {}) });
  const nic = build(clock, backend);
  const model = defineModel<IgbCoreState>({
    kind: "igb",
    functions: [nic.pf],
    stateType: scratchStateType("igb", 1, () => build(new LateClock())),
    save: () => nic.save(),
    restore: (s) => nic.restore(s),
    setActivity: () => {},
    attach: (io) => {
      clock.bind(io.clock);
      if (io.backend !== undefined) backend.bind(io.backend);
    },
  });
  return Object.assign(model, { nic });
}
