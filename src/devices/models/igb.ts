/**
 * The whole 82576 (PF with its VFs) as a {@link DeviceModel}.
 * @module
 */
import { IgbPciDevice } from "../igb/pci.js";
import type { IgbCoreState } from "../igb/core.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";

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
  const nic = new IgbPciDevice({ mac: config.mac, ...(config.trace !== undefined ? { trace: config.trace } : {}) });
  const model = defineModel<IgbCoreState>({
    kind: "igb",
    functions: [nic.pf],
    stateType: nic.stateType,
    save: () => nic.save(),
    restore: (s) => nic.restore(s),
    setActivity: (a) => nic.setActivity(a),
    attach: (io) => nic.attach(io),
  });
  return Object.assign(model, { nic });
}
