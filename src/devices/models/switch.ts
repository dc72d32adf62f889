/**
 * The L2 switch (a device with no PCI function, whose MAC table and queued frames travel with the
 * platform's state) as a {@link DeviceModel}.
 * @module
 */
import { L2Switch, type L2SwitchState } from "../net/switch.js";
import { LateClock } from "../lifecycle/late-io.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";

/** Configuration of {@link createSwitchModel}. */
export type SwitchModelConfig = Omit<NonNullable<ConstructorParameters<typeof L2Switch>[0]>, "clock">;

/** The switch plus its model; `net` is the switch itself. */
export type SwitchModel = DeviceModel<L2SwitchState> & { readonly net: L2Switch };

/** Creates an L2 switch as a model; its clock comes with `attach`. */
export function createSwitchModel(config: SwitchModelConfig = {}): SwitchModel {
  const clock = new LateClock();
  const net = new L2Switch({ ...config, clock });
  const model = defineModel<L2SwitchState>({
    kind: "l2-switch",
    functions: [],
    stateType: net.stateType,
    save: () => net.save(),
    restore: (s) => net.restore(s),
    setActivity: () => {},
    attach: (io) => clock.bind(io.clock),
  });
  return Object.assign(model, { net });
}
