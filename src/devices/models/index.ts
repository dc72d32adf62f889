/**
 * Device models behind one lifecycle (see `lifecycle/model.ts`): create from a configuration,
 * attach, run, quiesce, save, restore into a fresh instance.
 * @module
 */
export { createTestDeviceModel, type TestDeviceModelConfig } from "./testdev.js";
export { createIgbModel, type IgbModelConfig } from "./igb.js";
export { createVirtioNetModel, type VirtioNetModelConfig } from "./virtio-net.js";
export { createSwitchModel, type SwitchModelConfig } from "./switch.js";
