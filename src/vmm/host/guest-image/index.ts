/**
 * The guest image builder (Node only): Debian's i386 kernel, busybox and NIC tools in an initramfs.
 * @module
 */
export * from "./build.js";
export * from "./cpio.js";
export * from "./elf.js";
export * from "./errors.js";
export * from "./init.js";
export * from "./modules.js";
