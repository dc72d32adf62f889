/**
 * The receiving side of a live migration. It checks the HELLO against its own machine before
 * anything is applied (same engine, RAM size and device set; every state version one it loads),
 * then applies each record in order and acknowledges it: RAM pages into the paused machine, the
 * engine state over that RAM, the device state (parsed in full before any of it is applied), and
 * on COMMIT it resumes the guest. On any failure it tells the source, throws its machine away
 * (stopped for good, nothing left running) and reports "failed".
 *
 * Platform-neutral.
 * @module
 */
import type { ByteChannel } from "./channel.js";
import { PAGE_SIZE } from "./dma-log.js";
import type { LocalStateDescriptor, MigrationEndpoint } from "./endpoint.js";
import { MigrationFailedError, MigrationRefusedError, newInfo, type MigrationInfo } from "./info.js";
import {
  MAX_ENGINE_BYTES,
  RecordDecoder,
  RecordType,
  decodeError,
  decodeHello,
  decodePages,
  decodeZeroRuns,
  encodeError,
  encodeRecord,
  recordName,
  unpackSparse,
  type Hello,
  type MigrationRecord,
} from "./stream.js";

/**
 * Why `hello` cannot load into a machine with this engine, RAM and state types: one line per
 * difference, empty when it can.
 */
export function helloMismatches(hello: Hello, local: { engine: string; memBytes: number; devices: readonly LocalStateDescriptor[] }): string[] {
  const out: string[] = [];
  if (hello.engine !== local.engine) out.push(`engine: the source runs ${hello.engine}, this side ${local.engine}`);
  if (hello.memBytes !== local.memBytes) out.push(`RAM: the source has ${hello.memBytes} bytes, this side ${local.memBytes}`);
  const mine = new Map(local.devices.map((d) => [d.name, d]));
  const theirs = new Set(hello.devices.map((d) => d.name));
  for (const d of hello.devices) {
    const m = mine.get(d.name);
    if (m === undefined) out.push(`device ${d.name} (${d.kind}): not on this side`);
    else if (m.kind !== d.kind) out.push(`device ${d.name}: the source's is a ${d.kind}, this side's a ${m.kind}`);
    else if (d.version > m.version || d.version < m.oldest) out.push(`device ${d.name} (${d.kind}): state version ${d.version}, this side loads ${m.oldest}..${m.version}`);
  }
  for (const m of local.devices) if (!theirs.has(m.name)) out.push(`device ${m.name} (${m.kind}): missing on the source`);
  return out;
}

/** Options of {@link MigrationDestination}. */
export interface MigrationDestinationOptions {
  /** Called after each applied record batch and at every phase change. */
  onProgress?: (info: MigrationInfo) => void;
  /** Wall clock in ms (default `performance.now`). */
  now?: () => number;
}

/**
 * Receives a machine from a {@link MigrationSource}. The endpoint's machine must be created
 * paused, with the same platform, and not run before the migration.
 * @example
 * ```ts
 * const channel = await acceptMigration("unix:/tmp/mig.sock"); // socket.ts, Node
 * const info = await new MigrationDestination(machineEndpoint(machine), channel).run();
 * if (info.status !== "completed") process.exit(1); // the machine was stopped for good
 * ```
 */
export class MigrationDestination {
  private readonly info: MigrationInfo = newInfo("destination");
  private readonly decoder = new RecordDecoder({ streamHeader: true, allowed: [RecordType.HELLO, RecordType.RAM_PAGES, RecordType.RAM_ZERO, RecordType.ENGINE, RecordType.DEVICES, RecordType.LATE, RecordType.COMMIT, RecordType.ERROR] });
  private readonly now: () => number;
  private next = 0;
  private hello: Hello | undefined;
  private engineDone = false;
  private devicesDone = false;
  /** RAM may follow the engine and device state (the stop's last pass), but not the late frames. */
  private lateSeen = false;
  private chain: Promise<void> = Promise.resolve();
  private t0 = 0;
  private zeros = new Uint8Array(0);
  private settle: ((i: MigrationInfo) => void) | undefined;
  private ended = false;
  /** ms from COMMIT's arrival to the guest running. */
  resumeMs = 0;
  /** ms the engine state took to load (unpacking included). */
  engineRestoreMs = 0;
  /** ms the device state took to parse and apply. */
  deviceRestoreMs = 0;

  constructor(
    private readonly ep: MigrationEndpoint,
    private readonly channel: ByteChannel,
    private readonly opts: MigrationDestinationOptions = {},
  ) {
    this.now = opts.now ?? (() => globalThis.performance.now());
  }

  /** The figures so far (a copy). */
  query(): MigrationInfo {
    const i = this.info;
    if (!this.ended && this.t0 !== 0) i.totalMs = this.now() - this.t0;
    return { ...i, rounds: [] };
  }

  private progress(): void {
    try {
      this.opts.onProgress?.(this.query());
    } catch {
      /* ignored */
    }
  }

  /**
   * Receives until COMMIT (the guest then runs here) or a failure (the machine is then stopped
   * for good). Resolves with the final figures; never rejects.
   */
  run(): Promise<MigrationInfo> {
    this.t0 = this.now();
    return new Promise((resolve) => {
      this.settle = resolve;
      this.channel.start(
        (chunk) => {
          if (this.ended) return;
          this.info.bytes += chunk.length;
          let records: MigrationRecord[];
          try {
            records = this.decoder.push(chunk);
          } catch (e) {
            void this.fail(e as Error, undefined);
            return;
          }
          for (const r of records) this.chain = this.chain.then(() => (this.ended ? undefined : this.handle(r))).catch((e: Error) => this.fail(e, r));
        },
        (err) => {
          if (this.ended) return;
          this.chain = this.chain.then(() => {
            if (this.ended) return;
            try {
              this.decoder.end();
            } catch (e) {
              return this.fail(e as Error, undefined);
            }
            return this.fail(new MigrationFailedError(`the source went away before COMMIT${err !== undefined ? `: ${err.message}` : ""}`), undefined);
          });
        },
      );
    });
  }

  private async ack(seq: number): Promise<void> {
    await this.channel.write(encodeRecord(RecordType.ACK, seq));
  }

  private writeZero(first: number, count: number): void {
    const chunkPages = 256;
    if (this.zeros.length === 0) this.zeros = new Uint8Array(chunkPages * PAGE_SIZE);
    for (let p = first; p < first + count; p += chunkPages) {
      const n = Math.min(chunkPages, first + count - p);
      if (!this.ep.ram.write(p * PAGE_SIZE, this.zeros.subarray(0, n * PAGE_SIZE))) throw new MigrationFailedError(`cannot write page ${p}`);
    }
  }

  private async handle(r: MigrationRecord): Promise<void> {
    const name = recordName(r.type, r.seq);
    if (r.type === RecordType.ERROR) throw new MigrationRefusedError(`the source aborted: ${decodeError(r.payload)}`);
    if (r.seq !== this.next) throw new MigrationFailedError(`${name}: out of order, expected #${this.next}`);
    this.next++;
    if (this.hello === undefined && r.type !== RecordType.HELLO) throw new MigrationFailedError(`${name}: the stream must begin with a HELLO`);
    const pageCount = Math.ceil(this.ep.memBytes / PAGE_SIZE);
    switch (r.type) {
      case RecordType.HELLO: {
        if (this.hello !== undefined) throw new MigrationFailedError(`${name}: a second HELLO`);
        const hello = decodeHello(r.payload, r.seq);
        const bad = helloMismatches(hello, { engine: this.ep.engine, memBytes: this.ep.memBytes, devices: this.ep.describe() });
        if (bad.length > 0) throw new MigrationRefusedError(`this machine cannot take the source's: ${bad.join("; ")}`);
        if (this.ep.running) throw new MigrationRefusedError("this machine already runs a guest");
        this.hello = hello;
        this.info.status = "active";
        this.info.phase = "pre-copy";
        break;
      }
      case RecordType.RAM_PAGES: {
        if (this.lateSeen) throw new MigrationFailedError(`${name}: RAM after the late frames`);
        const b = decodePages(r.payload, pageCount, r.seq);
        for (let i = 0; i < b.pages.length; i++) {
          if (!this.ep.ram.write(b.pages[i]! * PAGE_SIZE, b.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))) throw new MigrationFailedError(`${name}: cannot write page ${b.pages[i]}`);
        }
        this.info.pages += b.pages.length;
        break;
      }
      case RecordType.RAM_ZERO: {
        if (this.lateSeen) throw new MigrationFailedError(`${name}: RAM after the late frames`);
        for (const [f, n] of decodeZeroRuns(r.payload, pageCount, r.seq)) {
          this.writeZero(f, n);
          this.info.zeroPages += n;
        }
        break;
      }
      case RecordType.ENGINE: {
        if (this.engineDone) throw new MigrationFailedError(`${name}: a second engine state`);
        this.info.phase = "stop-and-copy";
        const t = this.now();
        const state = unpackSparse(r.payload, MAX_ENGINE_BYTES, name);
        this.info.engineBytes = r.payload.length;
        await this.ep.restoreEngine(state);
        this.engineRestoreMs = this.now() - t;
        this.engineDone = true;
        break;
      }
      case RecordType.DEVICES: {
        if (!this.engineDone || this.devicesDone) throw new MigrationFailedError(`${name}: device state ${this.devicesDone ? "twice" : "before the engine state"}`);
        this.info.deviceBytes = r.payload.length;
        const t = this.now();
        this.ep.restoreDevices(r.payload);
        this.deviceRestoreMs = this.now() - t;
        this.devicesDone = true;
        break;
      }
      case RecordType.LATE: {
        if (!this.devicesDone) throw new MigrationFailedError(`${name}: late frames before the device state`);
        this.lateSeen = true;
        if (this.ep.putLate === undefined) throw new MigrationRefusedError(`${name}: this machine takes no late frames`);
        this.ep.putLate(r.payload);
        this.info.lateBytes += r.payload.length;
        break;
      }
      case RecordType.COMMIT: {
        if (!this.devicesDone) throw new MigrationFailedError(`${name}: COMMIT before the device state`);
        this.info.phase = "commit";
        const t = this.now();
        await this.ep.resume();
        this.resumeMs = this.now() - t;
        // The guest runs here now, which is what the source waits for (its downtime ends); the
        // announce and the switch back to pass-through follow with the guest running.
        const acked = this.ack(r.seq).catch(() => undefined);
        try {
          this.ep.afterResume?.({ transparent: this.hello?.transparent ?? false });
        } catch {
          /* it cannot fail; the guest runs here either way */
        }
        this.info.status = "completed";
        this.info.phase = "done";
        this.ended = true;
        this.info.totalMs = this.now() - this.t0;
        await acked;
        this.progress();
        this.settle?.(this.query());
        return;
      }
      default:
        throw new MigrationFailedError(`${name}: not expected here`);
    }
    await this.ack(r.seq);
    if (r.type === RecordType.HELLO) await this.ep.warmUp?.();
    this.progress();
  }

  private async fail(e: Error, r: MigrationRecord | undefined): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.info.status = "failed";
    this.info.error = e.message;
    const fromSource = e instanceof MigrationRefusedError && e.message.startsWith("the source aborted");
    if (!fromSource) await this.channel.write(encodeRecord(RecordType.ERROR, r?.seq ?? this.next, encodeError(e.message))).catch(() => undefined);
    // The source must read the ERROR: the channel closes once the source has closed too (bounded).
    const closed = this.channel.close();
    try {
      await this.ep.discard();
    } catch {
      /* already stopped */
    }
    await closed;
    this.info.totalMs = this.now() - this.t0;
    this.progress();
    this.settle?.(this.query());
  }
}
