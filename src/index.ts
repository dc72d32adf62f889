/**
 * nicvisor: emulated PCI network hardware and a small VMM that runs real Linux guests on it.
 *
 * The package is split into subpaths; this root entry re-exports the platform-neutral layers:
 * - `nicvisor/pci`: config space, capabilities, SR-IOV, topology;
 * - `nicvisor/devices`: virtio-net, the 82576 (igb/igbvf), network backends;
 * - `nicvisor/guest`: simulated guest drivers;
 * - `nicvisor/vmm`: the VMM (v86 CPU backend, machine, harness); `nicvisor/vmm/host` for Node-only parts.
 * @module
 */
export * from "./pci/index.js";
