/**
 * One VF of the host's 82576 handed to the guest, the PF kept by the host PF agent, as a
 * {@link DeviceModel}: the slot receives the VF's pass-through function; the state is the host
 * NIC's (core and agent) and travels with the platform's.
 * @module
 */
import { LateBackend, LateClock } from "../../devices/lifecycle/late-io.js";
import { defineModel, type DeviceModel } from "../../devices/lifecycle/model.js";
import type { PciFunction } from "../../pci/function.js";
import { IgbHostNic, type IgbHostNicOptions, type IgbHostNicState } from "./host-nic.js";

/** Configuration of {@link createIgbHostVfModel}. */
export interface IgbHostVfConfig extends Omit<IgbHostNicOptions, "clock" | "backend"> {
  /** The VF the guest gets (default 0). */
  vf?: number;
  /** The administrator's MAC for that VF (`ip link set PF vf N mac`). */
  adminMac?: Uint8Array;
  /** Administrator policy for that VF. */
  trust?: boolean;
  spoofchk?: boolean;
}

/** The model plus the host NIC behind it and the guest's function. */
export type IgbHostVfModel = DeviceModel<IgbHostNicState> & { readonly host: IgbHostNic; readonly vf: number; readonly shim: PciFunction };

/**
 * Creates the host NIC with its agent and returns the guest VF's model.
 * @example
 * ```ts
 * const vf = createIgbHostVfModel({ pfMac, numVfs: 2, adminMac });
 * platform.add(vf, { name: "igb-host", slot: 6, backend: uplink });
 * ```
 */
export function createIgbHostVfModel(config: IgbHostVfConfig): IgbHostVfModel {
  const vf = config.vf ?? 0;
  const build = (clock: LateClock, backend?: LateBackend): IgbHostNic => {
    const h = new IgbHostNic({ ...config, clock, ...(backend !== undefined ? { backend } : {}) });
    if (config.adminMac !== undefined) h.agent.setVfMac(vf, config.adminMac);
    if (config.trust !== undefined) h.agent.setVfTrust(vf, config.trust);
    if (config.spoofchk !== undefined) h.agent.setVfSpoofchk(vf, config.spoofchk);
    return h;
  };
  const clock = new LateClock();
  const backend = new LateBackend();
  const host = build(clock, backend);
  const shim = host.passthrough(vf);
  const model = defineModel<IgbHostNicState>({
    kind: "igb-host-vf",
    functions: [shim],
    stateType: host.stateType,
    save: () => host.save(),
    restore: (s) => host.restore(s),
    // Quiescing the guest's VF holds that VF's pool; the host NIC's other pools run on.
    setActivity: (a) => host.core.setVfActivity(vf, a),
    attach: (io) => {
      clock.bind(io.clock);
      if (io.backend !== undefined) backend.bind(io.backend);
    },
  });
  return Object.assign(model, { host, vf, shim });
}
