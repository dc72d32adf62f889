/**
 * virtio-net behind its virtio-pci transport as a {@link DeviceModel}.
 * @module
 */
import { VirtioPciTransport, type VirtioTransportState } from "../virtio/pci-transport.js";
import { VirtioNet, type VirtioNetOptions, type VirtioNetState } from "../virtio-net/device.js";
import { LateBackend } from "../lifecycle/late-io.js";
import { defineModel, type DeviceModel } from "../lifecycle/model.js";
import { scratchStateType } from "./scratch.js";

/** Configuration of {@link createVirtioNetModel}: the NIC's options without its backend. */
export type VirtioNetModelConfig = Omit<VirtioNetOptions, "backend">;

/** Saved state of the transport and the NIC together. */
export interface VirtioNetModelState {
  version: 1;
  transport: VirtioTransportState;
  nic: VirtioNetState;
}

/** virtio-net plus its model; `nic` and `transport` are the device's two halves. */
export type VirtioNetModel = DeviceModel<VirtioNetModelState> & { readonly nic: VirtioNet; readonly transport: VirtioPciTransport };

/**
 * Creates a virtio-net NIC behind a virtio-pci transport; its backend comes with `attach`.
 * @example
 * ```ts
 * const net = createVirtioNetModel({ mac, maxPairs: 2 });
 * platform.add(net, { name: "virtio-net", slot: 4, backend });
 * ```
 */
export function createVirtioNetModel(config: VirtioNetModelConfig): VirtioNetModel {
  const backend = new LateBackend();
  const build = (b: LateBackend): { nic: VirtioNet; transport: VirtioPciTransport } => {
    const nic = new VirtioNet({ ...config, backend: b });
    return { nic, transport: new VirtioPciTransport(nic) };
  };
  const { nic, transport } = build(backend);
  const apply = (pair: { nic: VirtioNet; transport: VirtioPciTransport }, s: VirtioNetModelState): void => {
    pair.nic.restore(s.nic);
    pair.transport.restore(s.transport);
  };
  const model = defineModel<VirtioNetModelState>({
    kind: "virtio-net",
    functions: [transport.fn],
    stateType: scratchStateType("virtio-net", 1, () => {
      const twin = build(new LateBackend());
      return { restore: (s: VirtioNetModelState) => apply(twin, s) };
    }),
    save: () => ({ version: 1, transport: transport.save(), nic: nic.save() }),
    restore: (s) => apply({ nic, transport }, s),
    setActivity: () => {},
    attach: (io) => {
      if (io.backend !== undefined) backend.bind(io.backend);
    },
  });
  return Object.assign(model, { nic, transport });
}
