/**
 * The sending side of a live migration: HELLO, pre-copy rounds over guest RAM while the guest
 * runs, then stop-and-copy (guest paused, devices stopped, the last changed pages, the engine
 * state without RAM, the device state), then COMMIT. Every record is acknowledged by the
 * destination once applied. Until COMMIT is sent, any failure (the destination refuses or dies,
 * a record is rejected) resumes the guest here with nothing lost.
 *
 * Platform-neutral.
 * @module
 */
import type { ByteChannel } from "./channel.js";
import { PAGE_SIZE } from "./dma-log.js";
import type { MigrationEndpoint } from "./endpoint.js";
import { MigrationFailedError, MigrationRefusedError, newInfo, type MigrationInfo, type RoundInfo } from "./info.js";
import { RamScanner, toRuns } from "./ram.js";
import { createPageHasher } from "./page-hash.js";
import {
  MAX_PAGES_PER_RECORD,
  MAX_ZERO_RUNS,
  RecordDecoder,
  RecordType,
  decodeError,
  encodeError,
  encodeHello,
  encodePages,
  encodeRecord,
  encodeStreamHeader,
  encodeZeroRuns,
  packSparse,
  recordName,
  type MigrationRecord,
} from "./stream.js";

/** How long a failed write waits for the destination's last bytes (its ERROR) before it is the failure. */
export const WRITE_BREAK_GRACE_MS = 500;

/** Options of {@link MigrationSource}. */
export interface MigrationSourceOptions {
  /** Stop pre-copy once a round finds fewer changed pages than this (default 256). */
  smallSetPages?: number;
  /** Stop pre-copy after this many rounds without a new smallest dirty set (default 3). */
  noProgressRounds?: number;
  /** Most pre-copy rounds (default 30). */
  maxRounds?: number;
  /** Pages hashed per step; the guest runs between steps during pre-copy (default 2048, 8 MiB). */
  chunkPages?: number;
  /** Most stream bytes sent and not yet acknowledged (default 32 MiB). */
  windowBytes?: number;
  /**
   * Transparent failover: pass-through devices (the failover VF) are switched to emulation just
   * before the stop, their state travels as the emulation's, and the destination switches them
   * back to pass-through after it resumes (default false: each device's state travels as it is).
   */
  transparent?: boolean;
  /**
   * After the destination has applied the device state (and so announced the guest's MACs), what
   * reaches this side's stopped devices is carried in LATE records until the destination's
   * announce of the guest comes back through this side's backends (the endpoint's `lateDone`),
   * or, where it cannot, until none has come for this long (default 25 ms: a busy host may read
   * its TAP late; part of the downtime)...
   */
  lateQuietMs?: number;
  /** ... or for this long at most (default 250 ms). */
  lateMaxMs?: number;
  /** Called after each record batch and at every phase change. */
  onProgress?: (info: MigrationInfo) => void;
  /** Wall clock in ms (default `performance.now`). */
  now?: () => number;
}

/**
 * Migrates one machine to a destination over a byte channel.
 * @example
 * ```ts
 * const channel = await connectMigration("unix:/tmp/mig.sock"); // socket.ts, Node
 * const src = new MigrationSource(machineEndpoint(vm.machine), channel, { onProgress: (i) => log(i) });
 * const info = await src.run();
 * if (info.status === "completed") await vm.dispose(); // the guest runs on the destination now
 * ```
 */
export class MigrationSource {
  private readonly info: MigrationInfo = newInfo("source");
  private readonly opts: Required<Omit<MigrationSourceOptions, "onProgress">> & { onProgress: MigrationSourceOptions["onProgress"] | undefined };
  private readonly decoder = new RecordDecoder({ streamHeader: false, allowed: [RecordType.ACK, RecordType.ERROR] });
  private seq = 0;
  private acked = -1;
  private unacked: Array<{ seq: number; bytes: number }> = [];
  private unackedBytes = 0;
  private failure: Error | undefined;
  /** Settles at the first failure (see `send`). */
  private onFailed: () => void = () => undefined;
  private readonly failed = new Promise<void>((r) => (this.onFailed = r));
  private waiters: Array<() => void> = [];
  /** The read side has ended (every byte the destination sent has been seen). */
  private readEnded = false;
  /** A write failed; the failure waits for the read side (see `writeBroke`). */
  private brokenWrite: Error | undefined;
  private t0 = 0;
  private tActive = 0;
  /**
   * The guest is stopped: records are queued on the channel without waiting for each write to
   * finish, within the unacknowledged window still. The destination loads the engine and device
   * state meanwhile and does not read; waiting for each write then held up the last pass over RAM
   * (one wait took 21 ms of an 84 ms downtime). A failed write still fails the migration
   * (`writeBroke`), and the acknowledgements that follow can only come after every write.
   */
  private stopped = false;
  private started = false;

  constructor(
    private readonly ep: MigrationEndpoint,
    private readonly channel: ByteChannel,
    opts: MigrationSourceOptions = {},
  ) {
    this.opts = {
      smallSetPages: opts.smallSetPages ?? 256,
      noProgressRounds: opts.noProgressRounds ?? 3,
      maxRounds: opts.maxRounds ?? 30,
      chunkPages: opts.chunkPages ?? 2048,
      windowBytes: opts.windowBytes ?? 32 << 20,
      transparent: opts.transparent ?? false,
      lateQuietMs: opts.lateQuietMs ?? 25,
      lateMaxMs: opts.lateMaxMs ?? 250,
      now: opts.now ?? (() => globalThis.performance.now()),
      onProgress: opts.onProgress,
    };
  }

  /** The figures so far (a copy). */
  query(): MigrationInfo {
    const i = this.info;
    if (i.status === "setup" || i.status === "wait-unplug" || i.status === "active") i.totalMs = this.t0 === 0 ? 0 : this.opts.now() - this.t0;
    return { ...i, rounds: i.rounds.map((r) => ({ ...r })) };
  }

  private progress(): void {
    try {
      this.opts.onProgress?.(this.query());
    } catch {
      /* a listener's failure does not stop the migration */
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.onFailed();
    this.wake();
  }

  /**
   * A write failed (EPIPE, a reset). A destination that refuses a record sends ERROR and closes;
   * the ERROR can still wait in the receive buffer when the next write fails, so the read side
   * gets its turn first (up to {@link WRITE_BREAK_GRACE_MS}) and the destination's reason wins over
   * the bare broken pipe. Returns a promise that settles at the failure, for the writer to wait on.
   */
  private writeBroke(e: Error): Promise<void> {
    if (this.failure === undefined && this.brokenWrite === undefined) {
      const err = new MigrationFailedError(`the channel broke: ${e.message}`);
      if (this.readEnded) this.fail(err);
      else {
        this.brokenWrite = err;
        const t = setTimeout(() => this.fail(err), WRITE_BREAK_GRACE_MS);
        (t as { unref?: () => void }).unref?.();
      }
    }
    return this.failed;
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private onRecord(r: MigrationRecord): void {
    if (r.type === RecordType.ERROR) {
      const what = r.seq >= 0 && r.seq < this.seq ? recordName(this.typeOf(r.seq), r.seq) : `record #${r.seq}`;
      this.fail(new MigrationRefusedError(`the destination refused ${what}: ${decodeError(r.payload)}`));
      return;
    }
    const next = this.unacked[0];
    if (next === undefined || next.seq !== r.seq) {
      this.fail(new MigrationFailedError(`the destination acknowledged record #${r.seq}, expected ${next === undefined ? "none" : `#${next.seq}`}`));
      return;
    }
    this.unacked.shift();
    this.unackedBytes -= next.bytes;
    this.acked = r.seq;
    this.wake();
  }

  private readonly types: number[] = [];
  private typeOf(seq: number): number {
    return this.types[seq] ?? 0;
  }

  private async waitUntil(cond: () => boolean): Promise<void> {
    for (;;) {
      this.check();
      if (cond()) return;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Sends a record; waits while too much is unacknowledged. Returns its sequence number. */
  private async send(type: RecordType, payload?: Uint8Array): Promise<number> {
    this.check();
    const seq = this.seq++;
    const frame = encodeRecord(type, seq, payload);
    this.types[seq] = type;
    this.unacked.push({ seq, bytes: frame.length });
    this.unackedBytes += frame.length;
    this.info.bytes += frame.length;
    const written = this.channel.write(frame).catch((e: Error) => this.writeBroke(e));
    // A destination that refused something stops reading but may keep the connection open: a
    // write waiting for it would wait for ever, so its ERROR (or any failure) ends the wait too.
    // While the guest is stopped, writes are not waited for one by one (see `stopped`).
    if (!this.stopped) await Promise.race([written, this.failed]);
    await this.waitUntil(() => this.unackedBytes <= this.opts.windowBytes);
    return seq;
  }

  /** Sends a scan's pages and zero runs; returns the bytes sent. */
  private async sendScan(pages: number[], data: Uint8Array, zero: number[]): Promise<number> {
    const before = this.info.bytes;
    for (let i = 0; i < pages.length; i += MAX_PAGES_PER_RECORD) {
      const n = Math.min(MAX_PAGES_PER_RECORD, pages.length - i);
      await this.send(RecordType.RAM_PAGES, encodePages(pages.slice(i, i + n), data.subarray(i * PAGE_SIZE, (i + n) * PAGE_SIZE)));
    }
    const runs = toRuns(zero);
    for (let i = 0; i < runs.length; i += MAX_ZERO_RUNS) await this.send(RecordType.RAM_ZERO, encodeZeroRuns(runs.slice(i, i + MAX_ZERO_RUNS)));
    this.info.pages += pages.length;
    this.info.zeroPages += zero.length;
    return this.info.bytes - before;
  }

  /** One pass over RAM. During pre-copy the guest runs between chunks; once `stopped`, it is the last pass. */
  private async pass(scanner: RamScanner): Promise<RoundInfo> {
    const stopped = this.stopped;
    const t = this.opts.now();
    const dma = this.ep.dmaLog?.take();
    const round: RoundInfo = { round: this.info.rounds.length + 1, dirtyPages: 0, zeroPages: 0, dmaOnlyPages: 0, bytes: 0, ms: 0, scanMs: 0, stopped };
    for (let from = 0; from < scanner.pageCount; from += this.opts.chunkPages) {
      if (!stopped) await new Promise((r) => setTimeout(r, 0));
      this.check();
      const t0 = this.opts.now();
      const res = scanner.scan(from, Math.min(scanner.pageCount, from + this.opts.chunkPages), dma);
      round.scanMs += this.opts.now() - t0;
      round.dirtyPages += res.pages.length + res.zero.length;
      round.zeroPages += res.zero.length;
      round.dmaOnlyPages += res.dmaOnly;
      round.bytes += await this.sendScan(res.pages, res.data, res.zero);
    }
    round.ms = this.opts.now() - t;
    this.info.rounds.push(round);
    this.info.iterations = this.info.rounds.length;
    const active = (this.opts.now() - this.tActive) / 1000;
    this.info.throughput = active > 0 ? this.info.bytes / active : 0;
    if (!stopped) {
      this.info.dirtyRate = round.ms > 0 ? (round.dirtyPages * PAGE_SIZE) / (round.ms / 1000) : 0;
      const tp = this.info.throughput > 0 ? this.info.throughput : Infinity;
      this.info.expectedDowntimeMs = this.lastScanMs(round) + (round.dirtyPages * PAGE_SIZE * 1000) / tp;
    }
    this.progress();
    return round;
  }

  /** Hashing time of a pass without sending: the pass time minus its bytes at the throughput. */
  private lastScanMs(r: RoundInfo): number {
    const tp = this.info.throughput;
    return tp > 0 ? Math.max(0, r.ms - (r.bytes * 1000) / tp) : r.ms;
  }

  /**
   * Runs the migration to its end. Resolves with the final figures, `status` "completed" (the
   * guest now runs on the destination and stays paused here) or "failed" (with `error`; the guest
   * runs here again, unless the failure came after COMMIT, see below). Never rejects.
   *
   * After COMMIT is sent the destination may resume the guest at any moment; if the channel breaks
   * before it acknowledges, this side cannot know whether it did, so it stays paused and reports
   * the failure rather than risk running the guest twice.
   */
  async run(): Promise<MigrationInfo> {
    if (this.started) throw new MigrationFailedError("a MigrationSource runs once");
    this.started = true;
    this.t0 = this.opts.now();
    this.channel.start(
      (chunk) => {
        try {
          for (const r of this.decoder.push(chunk)) this.onRecord(r);
        } catch (e) {
          this.fail(e as Error);
        }
      },
      (err) => {
        this.readEnded = true;
        if (this.info.status !== "completed") this.fail(this.brokenWrite ?? new MigrationFailedError(`the destination went away${err !== undefined ? `: ${err.message}` : ""}`));
      },
    );
    let paused = false;
    let devicesStopped = false;
    let committed = false;
    let prepared = false;
    try {
      await this.channel.write(encodeStreamHeader()).catch((e: Error) => this.writeBroke(e));
      this.check();
      this.info.bytes += 12;
      const transparent = this.opts.transparent;
      if (transparent && this.ep.beforeStop === undefined) throw new MigrationFailedError("this machine cannot migrate with transparent failover (its endpoint has no beforeStop)");
      const hello = {
        engine: this.ep.engine, memBytes: this.ep.memBytes, pageSize: PAGE_SIZE, devices: this.ep.describe().map(({ name, kind, version }) => ({ name, kind, version })),
        ...(transparent ? { transparent } : {}),
      };
      const helloSeq = await this.send(RecordType.HELLO, encodeHello(hello));
      await this.waitUntil(() => this.acked >= helloSeq);
      if (this.ep.beforeMigration !== undefined) {
        // QEMU's wait-unplug: standby failover unplugs the VF and waits for the guest to let it go.
        this.info.status = "wait-unplug";
        this.progress();
        prepared = true;
        await this.ep.beforeMigration({ transparent });
        this.check();
      }
      this.info.status = "active";
      this.info.phase = "pre-copy";
      this.tActive = this.opts.now();
      this.progress();
      const scanner = new RamScanner(this.ep.ram, this.ep.memBytes, createPageHasher(this.ep.wasmMemory));
      this.info.pageHash = scanner.hasher.kind;
      let best = Infinity;
      let stale = 0;
      for (;;) {
        const r = await this.pass(scanner);
        if (r.dirtyPages < this.opts.smallSetPages) break;
        if (r.dirtyPages < best) {
          best = r.dirtyPages;
          stale = 0;
        } else stale++;
        if (stale >= this.opts.noProgressRounds || this.info.rounds.length >= this.opts.maxRounds) break;
      }
      // Stop and copy.
      this.info.phase = "stop-and-copy";
      const parts = { prepare: 0, pause: 0, scan: 0, engineSave: 0, deviceSave: 0, apply: 0, late: 0, commit: 0 };
      let t = this.opts.now();
      const lap = (k: keyof typeof parts): void => {
        const n = this.opts.now();
        parts[k] = n - t;
        t = n;
      };
      if (this.ep.beforeStop !== undefined) {
        prepared = true;
        this.ep.beforeStop({ transparent });
      }
      lap("prepare");
      const tPause = t;
      await this.ep.pause();
      paused = true;
      this.stopped = true;
      this.ep.stopDevices();
      devicesStopped = true;
      lap("pause");
      const engine = packSparse(await this.ep.saveEngine());
      this.info.engineBytes = engine.length;
      lap("engineSave");
      const devices = this.ep.saveDevices();
      this.info.deviceBytes = devices.length;
      lap("deviceSave");
      // The engine and device state go first, so the destination loads them (and announces the
      // guest) while this side makes its last pass over RAM; RAM needs neither.
      await this.send(RecordType.ENGINE, engine);
      await this.send(RecordType.DEVICES, devices);
      await this.pass(scanner);
      lap("scan");
      const last = this.seq - 1;
      await this.waitUntil(() => this.acked >= last);
      lap("apply");
      if (this.ep.takeLate !== undefined) {
        // The destination has applied the device state and announced the guest's MACs: frames
        // that reached this side's stopped devices since their save travel now, in order, and
        // so do those still on their way here, until none has come for a while.
        // The end: once the destination's announce came back through this side's backends, every
        // frame sent here before it has reached the devices; one more poll covers a frame a bridge
        // forwarded on another CPU while it learnt. Without that signal, a quiet spell ends it.
        const start = this.opts.now();
        let quietSince = start;
        let heardAt: number | undefined;
        for (;;) {
          await new Promise((r) => setTimeout(r, 2));
          const heard = this.ep.lateDone?.() ?? false; // before takeLate: what preceded it is in this take
          const late = this.ep.takeLate();
          const n = this.opts.now();
          if (late !== undefined) {
            this.info.lateBytes += late.length;
            await this.send(RecordType.LATE, late);
            quietSince = n;
          }
          if (heard && heardAt === undefined) heardAt = n;
          else if (heardAt !== undefined) {
            this.info.lateEnd = "announce";
            break;
          }
          if (n - quietSince >= this.opts.lateQuietMs) {
            this.info.lateEnd = "quiet";
            break;
          }
          if (n - start >= this.opts.lateMaxMs) {
            this.info.lateEnd = "limit";
            break;
          }
        }
      }
      lap("late");
      this.info.phase = "commit";
      committed = true;
      const commit = await this.send(RecordType.COMMIT);
      await this.waitUntil(() => this.acked >= commit);
      lap("commit");
      this.info.downtimeMs = this.opts.now() - tPause;
      this.info.downtimeParts = parts;
      this.info.status = "completed";
      this.info.phase = "done";
    } catch (e) {
      const err = e as Error;
      this.info.status = "failed";
      this.info.error = committed ? `${err.message} (after COMMIT: the destination may have resumed the guest, so it stays paused here)` : err.message;
      if (!(err instanceof MigrationRefusedError)) {
        // Tell the destination, if it still listens, so it throws its half away.
        await this.channel.write(encodeRecord(RecordType.ERROR, this.seq, encodeError(err.message))).catch(() => undefined);
      }
      if (!committed) {
        try {
          if (devicesStopped) this.ep.runDevices();
          if (paused) await this.ep.resume();
          if (prepared) this.ep.afterAbort?.();
        } catch (e2) {
          this.info.error += `; resuming the guest here failed too: ${(e2 as Error).message}`;
        }
      }
    } finally {
      this.channel.close();
      this.info.totalMs = this.opts.now() - this.t0;
      this.progress();
    }
    return this.query();
  }
}
