/**
 * Node-only parts of the VMM (`nicvisor/vmm/host`): the guest image builder, locating v86 and
 * SeaBIOS, host network backends (TAP, QEMU-compatible sockets, pcap files), and the control
 * socket's Node transport (`listenControl`, `connectControl`).
 * @module
 */
export * from "./guest-image/index.js";
export * from "./v86-assets.js";
export * from "./net/index.js";
export * from "./threads.js";
export * from "./memory.js";
export * from "../control/socket.js";
