/**
 * virtio-net behind its virtio-pci transport as a {@link DeviceModel}.
 * @module
 */
import type { VirtioPciTransport } from "../virtio/pci-transport.js";
import type { VirtioNet } from "../virtio-net/device.js";
import type { VirtioNetOptions } from "../virtio-net/options.js";
import { VirtioNetPci, type VirtioNetPciState } from "../virtio-net/pci.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";

/** Configuration of {@link createVirtioNetModel}: the NIC's options without its I/O. */
export type VirtioNetModelConfig = Omit<VirtioNetOptions, "backend" | "clock">;

/** Saved state of the transport and the NIC together. */
export type VirtioNetModelState = VirtioNetPciState;

/** virtio-net plus its model; `nic` and `transport` are the device's two halves. */
export type VirtioNetModel = DeviceModel<VirtioNetModelState> & { readonly nic: VirtioNet; readonly transport: VirtioPciTransport; readonly device: VirtioNetPci };

/**
 * Creates a virtio-net NIC behind a virtio-pci transport; its clock and backend come with `attach`.
 * @example
 * ```ts
 * const net = createVirtioNetModel({ mac, maxPairs: 2 });
 * platform.add(net, { name: "virtio-net", slot: 4, backend });
 * ```
 */
export function createVirtioNetModel(config: VirtioNetModelConfig): VirtioNetModel {
  const device = new VirtioNetPci({ ...config });
  const model = defineModel<VirtioNetModelState>({
    kind: "virtio-net",
    functions: [device.fn],
    stateType: device.stateType,
    save: () => device.save(),
    restore: (s) => device.restore(s),
    setActivity: (a) => device.setActivity(a),
    attach: (io) => device.attach(io),
  });
  return Object.assign(model, { nic: device.nic, transport: device.transport, device });
}
