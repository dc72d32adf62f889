/**
 * Messages between the page (main.ts, which draws) and the guest's worker (worker.ts, which runs
 * v86 and nicvisor's platform off the page's thread, so drawing never takes the guest's time).
 * @module
 */
import type { Snapshot } from "../snapshot.js";
import type { WebNet } from "../platform.js";

/** What the server says about the guest (`/config.json`, written by `nicvisor web`). */
export interface PageConfig {
  net: WebNet;
  netName: string;
  memMiB: number;
  append: string;
  readyMarker: string;
  nicvisor: string;
  v86Version: string;
  files: { wasm: string; bios: string; vgaBios?: string; kernel: string; initrd: string; vmlinux?: string };
}

/** The result of a failover switch, as the page lists it. */
export interface SwitchResult {
  ok: boolean;
  from?: string;
  to?: string;
  blackoutUs?: number;
  error?: string;
  /** Page time (ms). */
  t: number;
}

/** Page to worker. */
export type ToWorker =
  | { type: "start"; config: PageConfig; base: string; watch: boolean }
  | { type: "serial"; data: string }
  | { type: "snapshot"; known: number }
  | { type: "switch"; t: number }
  | { type: "trace" }
  | { type: "pcap" };

/** Worker to page. */
export type FromWorker =
  | { type: "status"; state: "booting" | "ready" | "stopped" | "failed"; text: string; guestBootMs?: number; traceable?: boolean }
  | { type: "serial"; data: string }
  | { type: "snapshot"; snapshot: Snapshot | undefined }
  | { type: "switched"; result: SwitchResult }
  | { type: "file"; name: "trace" | "pcap"; bytes: Uint8Array };
