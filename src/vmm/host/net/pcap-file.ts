/**
 * Writing a pcap capture to a file (Node only). Synchronous appends: a capture is a debugging aid,
 * and ordered, complete files matter more than throughput.
 * @module
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { PcapTap, type PcapTapOptions } from "../../../devices/net/pcap.js";

/** A pcap file being written. */
export interface PcapFile {
  /** The tap: attach it to a switch or wrap a backend with it. */
  readonly tap: PcapTap;
  /** Path of the file. */
  readonly path: string;
  /** Closes the file (idempotent). Later captures are ignored. */
  close(): void;
}

/**
 * Creates (truncating) `path` and returns a tap writing to it. `epochNs` defaults to the wall-clock
 * time at opening minus the clock's time, so timestamps read as real dates in Wireshark.
 * @example
 * const f = openPcapFile("/tmp/vm0.pcap", { clock });
 * f.tap.attachTo(sw);
 * // ...
 * f.close();
 */
export function openPcapFile(path: string, options: Omit<PcapTapOptions, "write">): PcapFile {
  let fd: number | undefined = openSync(path, "w");
  const epochNs = options.epochNs ?? Date.now() * 1e6 - options.clock.now();
  const tap = new PcapTap({
    ...options,
    epochNs,
    write: (chunk) => {
      if (fd !== undefined) writeSync(fd, chunk);
    },
  });
  return {
    tap,
    path,
    close(): void {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
