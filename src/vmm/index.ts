/**
 * nicvisor's VMM: a CPU engine behind {@link CpuBackend} (v86 today), the {@link Machine} that puts
 * nicvisor's PCI platform on it, and the real-guest harness {@link GuestVm}.
 *
 * Node-only helpers (locating v86 and SeaBIOS files) are in `nicvisor/vmm/host`.
 * @module
 */
export type { AccessSize, CpuBackend, CpuBootConfig, MmioHandler, PortHandler, StopReason } from "./cpu/backend.js";
export { CpuBackendError } from "./cpu/backend.js";
export { V86Backend, V86_MMIO_GRANULE, V86_RESERVED_MMIO, V86_INITRD_BASE, setGuestCodeTier, sharedEngineLoader } from "./cpu/v86-backend.js";
export type { V86BackendOptions, GuestCodeTier } from "./cpu/v86-backend.js";
export { V86MsiAdapter, V86_PINNED_VERSION, decodeMsi } from "./cpu/v86-msi.js";
export type { DecodedMsi, V86CpuApicView } from "./cpu/v86-msi.js";
export { MACHINE_RECORD, Machine, MachineError, platformArgs } from "./machine.js";
export type { CpuFactory, CpuFactoryConfig, MachineOptions, MachineState } from "./machine.js";
export { v86CpuFactory } from "./machine.js";
export { Conf1Ports, PlatformIo, PlatformMmio, defaultLayout, exitCounters } from "./machine-platform.js";
export type { ExitCounters, MachineLayout, PlatformAccess, PlatformBus, PlatformEnv } from "./machine-platform.js";
export * from "./pci-platform.js";
export * from "./platforms.js";
export { createIgbHostVfModel, type IgbHostVfConfig, type IgbHostVfModel } from "./pf-agent/model.js";
export { DEFAULT_READY_MARKER, GuestStoppedError, GuestTimeoutError, GuestVm, SnapshotError } from "./harness/runner.js";
export type { EngineFiles, ExecResult, GuestBootOptions, GuestCommonOptions, GuestSnapshot } from "./harness/runner.js";
export { decodeSnapshot, encodeSnapshot, fnv1a } from "./harness/runner-snapshot.js";
export { AcpiError, acpiChecksumOk, buildAcpiTables, DEFAULT_ACPI_BASE, PCI_HOST_BRIDGE_OSC_UUID, V86_ACPI_HARDWARE } from "./acpi/tables.js";
export type { AcpiFixedHardware, AcpiOptions, AcpiTableInfo, AcpiTables } from "./acpi/tables.js";
export * as aml from "./acpi/aml.js";
export { DirectBootError, bzImageSetupPart, bzImageSetupSize, loadKernelElf, parseKernelElf, V86_REAL_MODE_BASE } from "./direct-boot.js";
export type { KernelElf, KernelSegment, LoaderMemory } from "./direct-boot.js";
export * from "./pf-agent/index.js";
export * from "./iommu/index.js";
export * from "./failover/index.js";
export * from "./control/index.js";
