/**
 * The PCI test device (a PF with VFs, scratch registers, INTx) as a {@link DeviceModel}.
 * @module
 */
import { PciTestDevice, type PciTestDeviceState } from "../../pci/test-device.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";

/** Configuration of {@link createTestDeviceModel}. */
export interface TestDeviceModelConfig {
  /** VFs its SR-IOV capability offers (default 8). */
  totalVfs?: number;
}

/** The PCI test device plus its model; `device` is the test device itself. */
export type TestDeviceModel = DeviceModel<PciTestDeviceState> & { readonly device: PciTestDevice };

/**
 * Creates the PCI test device as a model.
 * @example
 * ```ts
 * const dev = createTestDeviceModel();
 * platform.add(dev, { name: "testdev", slot: 3 });
 * ```
 */
export function createTestDeviceModel(config: TestDeviceModelConfig = {}): TestDeviceModel {
  const opts = config.totalVfs !== undefined ? { totalVfs: config.totalVfs } : {};
  const device = new PciTestDevice(opts);
  const model = defineModel<PciTestDeviceState>({
    kind: "pci-testdev",
    functions: [device.pf],
    stateType: device.stateType,
    save: () => device.save(),
    restore: (s) => device.restore(s),
    setActivity: (a) => device.setActivity(a),
    attach: (io) => device.attach(io),
  });
  return Object.assign(model, { device });
}
