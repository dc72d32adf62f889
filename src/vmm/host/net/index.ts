/**
 * Node-only network backends and sinks: pcap files, TAP devices, QEMU-compatible sockets.
 * @module
 */
export * from "./pcap-file.js";
export * from "./socket.js";
export * from "./tap.js";
