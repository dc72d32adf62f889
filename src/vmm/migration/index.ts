/**
 * Live migration: the stream, RAM rounds, source and destination (platform-neutral). The Node
 * transport for `tcp:` and `unix:` URIs is in `socket.ts`, exported from `nicvisor/vmm/host`'s
 * side of the tree, not from here.
 * @module
 */
export * from "./stream.js";
export * from "./info.js";
export * from "./channel.js";
export { DmaWriteLog, PAGE_SIZE, PAGE_SHIFT } from "./dma-log.js";
export { RamScanner, toRuns, type ScanResult } from "./ram.js";
export { createPageHasher, hashPageTs, type PageHasher, type WasmMemoryLike } from "./page-hash.js";
export { machineEndpoint, MigrationEndpointError, type LocalStateDescriptor, type MigrationEndpoint } from "./endpoint.js";
export { MigrationSource, type MigrationSourceOptions } from "./source.js";
export { MigrationDestination, helloMismatches, type MigrationDestinationOptions } from "./destination.js";
