/**
 * Live migration from `nicvisor run`: the destination side (`--incoming tcp:HOST:PORT|unix:PATH`),
 * the source side (the control socket's `migrate` / `query-migrate`, or `--migrate-to URI --after
 * S`), and one-line progress on stderr, as QEMU's `info migrate` figures.
 * @module
 */
import type { GuestVm } from "../vmm/harness/runner.js";
import { machineEndpoint } from "../vmm/migration/endpoint.js";
import { MigrationSource } from "../vmm/migration/source.js";
import { MigrationDestination } from "../vmm/migration/destination.js";
import type { MigrationInfo } from "../vmm/migration/info.js";
import { connectMigration, listenMigration } from "../vmm/migration/socket.js";

const mib = (n: number): string => (n / (1 << 20)).toFixed(1);

/** One progress line. */
export function progressLine(i: MigrationInfo): string {
  const last = i.rounds[i.rounds.length - 1];
  return `migration ${i.role}: ${i.status}/${i.phase}, ${mib(i.bytes)} MiB, round ${i.iterations}${last !== undefined ? ` (${last.dirtyPages} dirty pages)` : ""}, expected downtime ${Math.round(i.expectedDowntimeMs)} ms${i.downtimeMs !== undefined ? `, downtime ${Math.round(i.downtimeMs)} ms` : ""}, ${Math.round(i.totalMs)} ms`;
}

/** What `query-migrate` answers, in QMP's spelling where QMP has one. */
export function queryMigrate(i: MigrationInfo | undefined): Record<string, unknown> {
  if (i === undefined) return { status: "none" };
  return {
    status: i.status,
    phase: i.phase,
    ...(i.error !== undefined ? { "error-desc": i.error } : {}),
    ram: { transferred: i.bytes, pages: i.pages, "zero-pages": i.zeroPages, "dirty-pages-rate": i.dirtyRate, mbps: (i.throughput * 8) / 1e6 },
    iterations: i.iterations,
    "expected-downtime": Math.round(i.expectedDowntimeMs),
    ...(i.downtimeMs !== undefined ? { downtime: Math.round(i.downtimeMs) } : {}),
    "total-time": Math.round(i.totalMs),
    ...(i.lateBytes > 0 ? { "late-frames-bytes": i.lateBytes } : {}),
    ...(i.lateEnd !== undefined ? { "x-late-frames-end": i.lateEnd } : {}),
  };
}

/**
 * A progress callback that logs at most one line every 500 ms while a migration runs, and nothing
 * for its final figures (the caller prints those once, when `run()` settles).
 */
function throttled(log: (line: string) => void): (i: MigrationInfo) => void {
  let last = 0;
  return (i) => {
    if (i.status === "completed" || i.status === "failed") return;
    const now = performance.now();
    if (now - last > 500) {
      last = now;
      log(progressLine(i));
    }
  };
}

/** Migration capabilities, as `migrate-set-capabilities` names them (QEMU marks its own non-standard ones `x-`). */
export const MIGRATION_CAPABILITIES = ["x-transparent-failover"] as const;
/** One migration capability. */
export type MigrationCapability = (typeof MIGRATION_CAPABILITIES)[number];

/** A source-side migration started by `migrate`. */
export class RunMigration {
  private src: MigrationSource | undefined;
  private running = false;
  /**
   * Capabilities for the next `migrate`. `x-transparent-failover`: the failover VF is switched to
   * emulation before the stop, and the destination switches it back to pass-through after the
   * resume (the destination learns it from the stream).
   */
  readonly capabilities = new Map<MigrationCapability, boolean>(MIGRATION_CAPABILITIES.map((c) => [c, false]));
  /** Settles with the final figures once a started migration ends. */
  done: Promise<MigrationInfo> | undefined;

  constructor(
    private readonly vm: GuestVm,
    private readonly log: (line: string) => void,
  ) {}

  /** Sets capabilities; refused while a migration runs, as QEMU does. */
  setCapabilities(caps: ReadonlyArray<{ capability: MigrationCapability; state: boolean }>): void {
    if (this.running) throw new Error("capabilities cannot change while a migration runs");
    for (const c of caps) this.capabilities.set(c.capability, c.state);
  }

  /** Starts migrating to `uri`; refuses a second one while one is connecting or running. */
  async start(uri: string): Promise<void> {
    if (this.running) throw new Error("a migration is already running");
    // The endpoint first: a machine that cannot migrate is refused before anything connects.
    const endpoint = machineEndpoint(this.vm.machine);
    this.running = true;
    let channel;
    try {
      channel = await connectMigration(uri);
    } catch (e) {
      this.running = false;
      throw e;
    }
    this.src = new MigrationSource(endpoint, channel, { onProgress: throttled(this.log), transparent: this.capabilities.get("x-transparent-failover") === true });
    this.done = this.src.run().then((i) => {
      this.running = false;
      this.log(progressLine(i));
      return i;
    });
  }

  /** The figures so far, or undefined before any `migrate`. */
  query(): MigrationInfo | undefined {
    return this.src?.query();
  }
}

/**
 * The destination: waits on `uri` for one incoming migration into `vm` (made by
 * `GuestVm.incoming`), logs progress, and returns the final figures (status "completed" or "failed").
 */
export async function receiveMigration(vm: GuestVm, uri: string, log: (line: string) => void): Promise<MigrationInfo> {
  const listener = await listenMigration(uri);
  log(`waiting for an incoming migration on ${uri}`);
  try {
    const endpoint = machineEndpoint(vm.machine);
    const channel = await listener.accept();
    const d = new MigrationDestination(endpoint, channel, { onProgress: throttled(log) });
    const info = await d.run();
    log(progressLine(info));
    return info;
  } finally {
    await listener.close();
  }
}
