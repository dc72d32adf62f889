/**
 * virtio-net behind its virtio-pci transport as a {@link DeviceModel}.
 * @module
 */
import type { VirtioPciTransport } from "../virtio/pci-transport.js";
import type { VirtioNet } from "../virtio-net/device.js";
import type { VirtioNetOptions } from "../virtio-net/options.js";
import { VirtioNetPci, type VirtioNetPciState } from "../virtio-net/pci.js";
import { defineModel, type DeviceModel, type LiveMigrationHooks } from "../lifecycle/model.js";
import { parseSavedFrames, type VirtioNetSavedFrame } from "../virtio-net/state.js";
import { field, obj, onlyKeys } from "../../state/parse.js";

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
  const nic = device.nic;
  // Live migration: frames that reach the stopped NIC after its save travel as late frames, and
  // go ahead of what reaches the destination's NIC after its restore.
  let heldAtSave = -1;
  let heldAtRestore = 0;
  const live: LiveMigrationHooks = {
    afterAbort: () => void (heldAtSave = -1),
    takeLate: () => {
      if (heldAtSave < 0) return undefined;
      const late = nic.heldFrom(heldAtSave);
      heldAtSave = nic.heldFrames;
      return late.length === 0 ? undefined : { frames: late };
    },
    parseLate: (u, path) => {
      const o = obj(u, path);
      onlyKeys(o, path, ["frames"]);
      return field(o, "frames", path, (v, p) => parseSavedFrames(v, p, nic.fifoFrames));
    },
    putLate: (parsed) => {
      const frames = parsed as VirtioNetSavedFrame[];
      const at = Math.min(heldAtRestore, nic.heldFrames);
      nic.insertHeld(at, frames);
      heldAtRestore = at + frames.length;
    },
    afterResume: () => void (heldAtRestore = 0),
  };
  const model = defineModel<VirtioNetModelState>({
    kind: "virtio-net",
    functions: [device.fn],
    stateType: device.stateType,
    save: () => {
      heldAtSave = nic.heldFrames;
      return device.save();
    },
    restore: (s) => {
      device.restore(s);
      heldAtRestore = nic.heldFrames;
    },
    setActivity: (a) => device.setActivity(a),
    attach: (io) => device.attach(io),
  });
  return Object.assign(model, { nic: device.nic, transport: device.transport, device, live });
}
