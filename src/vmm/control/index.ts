/**
 * nicvisor's QMP-like control protocol, platform-neutral: the server core with its command
 * registry ({@link ControlServer}), the machine commands ({@link registerMachineCommands}), a
 * transport-independent client ({@link ControlClientCore}). The Node socket transport
 * (`listenControl`, `connectControl`) is in `./socket.ts`, exported from `nicvisor/vmm/host`.
 * @module
 */
export * from "./protocol.js";
export * from "./server.js";
export * from "./commands.js";
export * from "./client.js";
