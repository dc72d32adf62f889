/**
 * Source and destination in one process, on real {@link Machine}s with a real virtio-net platform
 * and a scripted CPU whose "guest" keeps writing pages (and whose device DMA rewrites a page with
 * the same bytes) while it runs. The channel is in memory, so corruption and a dying peer can be
 * injected at any byte.
 */
import { describe, expect, it } from "vitest";
import { FlatMemory } from "../../devices/igb/testing.js";
import { CpuBackendError, type CpuBackend } from "../cpu/backend.js";
import { Machine } from "../machine.js";
import type { PlatformBus, PlatformEnv } from "../machine-platform.js";
import { PciPlatform } from "../pci-platform.js";
import { announceFrame } from "../failover/switch.js";
import type { NetBackend } from "../../devices/net/backend.js";
import { FailoverPlatform, FailoverVfPlatform, TestDevicePlatform, VirtioNetPlatform } from "../platforms.js";
import { TestWire } from "../failover/testbed.js";
import { decodeStates, encodeStates } from "../../state/container.js";
import { ChannelClosedError, memoryChannelPair, type ByteChannel, type MemoryChannelOptions } from "./channel.js";
import { PAGE_SIZE } from "./dma-log.js";
import { machineEndpoint, type MigrationEndpoint } from "./endpoint.js";
import { MigrationDestination, helloMismatches } from "./destination.js";
import { MigrationSource, type MigrationSourceOptions } from "./source.js";
import { RecordDecoder, RecordType, decodeError, encodeHello, encodeRecord, encodeStreamHeader, encodeZeroRuns, packSparse } from "./stream.js";

const MEM = 32 << 20;

/** A CPU whose guest, while running, rewrites `workingSet` pages every millisecond. */
class ScriptedCpu implements CpuBackend {
  readonly memory = new FlatMemory(MEM);
  readonly memBytes = MEM;
  readonly mmioGranule = 128 << 10;
  readonly engineId = "scripted 1";
  ticks = 0;
  stopped = false;
  /** Device DMA to rewrite with the same bytes on each tick (set once the machine exists). */
  dma: ((addr: number, data: Uint8Array) => boolean) | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  constructor(private readonly workingSet: number) {
    // Some content: every 3rd page holds its own number.
    for (let p = 0; p < MEM / PAGE_SIZE; p += 3) new DataView(this.memory.bytes.buffer).setUint32(p * PAGE_SIZE + 8, p, true);
  }
  get running(): boolean {
    return this.timer !== undefined;
  }
  registerPorts(): void {}
  registerMmio(): void {}
  setIrqLine(): void {}
  deliverMsi(): boolean {
    return true;
  }
  serialSend(): void {}
  onSerial(): () => void {
    return () => undefined;
  }
  onStop(): () => void {
    return () => undefined;
  }
  nowNs(): number {
    return performance.now() * 1e6;
  }
  schedule(delayNs: number, cb: () => void): () => void {
    const t = setTimeout(cb, delayNs / 1e6);
    return () => clearTimeout(t);
  }
  async start(): Promise<void> {
    if (this.stopped) throw new CpuBackendError("stopped");
    this.timer ??= setInterval(() => this.tick(), 1);
  }
  private tick(): void {
    this.ticks++;
    const dv = new DataView(this.memory.bytes.buffer);
    for (let i = 0; i < this.workingSet; i++) dv.setUint32((1000 + i) * PAGE_SIZE + (this.ticks % 1024) * 4, this.ticks, true);
    // Device DMA rewrites page 5000 with the bytes it holds: only the DMA log can tell.
    this.dma?.(5000 * PAGE_SIZE, this.memory.bytes.slice(5000 * PAGE_SIZE, 5001 * PAGE_SIZE));
  }
  async pause(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
  }
  async stop(): Promise<void> {
    await this.pause();
    this.stopped = true;
  }
  async saveState(): Promise<Uint8Array> {
    throw new CpuBackendError("not used");
  }
  async restoreState(): Promise<void> {}
  async saveStateWithoutRam(): Promise<Uint8Array> {
    return new TextEncoder().encode(JSON.stringify({ ticks: this.ticks }));
  }
  async restoreStateWithoutRam(s: Uint8Array): Promise<void> {
    const o = JSON.parse(new TextDecoder().decode(s)) as { ticks?: unknown };
    if (typeof o.ticks !== "number") throw new CpuBackendError("bad scripted state");
    this.ticks = o.ticks;
  }
}

async function machine(cpu: ScriptedCpu, platform: (env: PlatformEnv) => PlatformBus = (env) => new VirtioNetPlatform(env)): Promise<Machine> {
  const m = await Machine.create({ bios: new Uint8Array(0), memMiB: MEM >> 20, cpu: async () => cpu, platform });
  return m;
}

interface Run {
  src: Machine;
  dst: Machine;
  srcCpu: ScriptedCpu;
  dstCpu: ScriptedCpu;
  s: Awaited<ReturnType<MigrationSource["run"]>>;
  d: Awaited<ReturnType<MigrationDestination["run"]>>;
  ramAtPause: Uint8Array | undefined;
  /** The destination's RAM and engine ticks just before it resumed the guest. */
  atResume: { ram: Uint8Array; ticks: number } | undefined;
}

async function migrate(o: { workingSet?: number; platform?: (env: PlatformEnv) => PlatformBus; dstPlatform?: (env: PlatformEnv) => PlatformBus; channel?: MemoryChannelOptions; wrapSource?: (ep: MigrationEndpoint) => MigrationEndpoint; wrapSourceChannel?: (c: ByteChannel) => ByteChannel; wrapDestChannel?: (c: ByteChannel) => ByteChannel; source?: MigrationSourceOptions } = {}): Promise<Run> {
  const srcCpu = new ScriptedCpu(o.workingSet ?? 40);
  const dstCpu = new ScriptedCpu(0);
  dstCpu.memory.bytes.fill(0xee); // the destination's RAM starts as garbage: every page must arrive
  const src = await machine(srcCpu, o.platform);
  srcCpu.dma = (a, d) => src.dma.write(a, d);
  const dst = await machine(dstCpu, o.dstPlatform ?? o.platform);
  await src.start();
  await new Promise((r) => setTimeout(r, 20));
  const [a, b] = memoryChannelPair(o.channel ?? {});
  let ep = machineEndpoint(src);
  let ramAtPause: Uint8Array | undefined;
  const inner = ep;
  ep = { ...inner, dmaLog: inner.dmaLog, get running() { return inner.running; }, saveEngine: async () => ((ramAtPause = srcCpu.memory.bytes.slice()), inner.saveEngine()) };
  if (o.wrapSource !== undefined) ep = o.wrapSource(ep);
  const source = new MigrationSource(ep, o.wrapSourceChannel?.(a) ?? a, { chunkPages: 1024, ...o.source });
  const dep = machineEndpoint(dst);
  let atResume: Run["atResume"];
  const dest = new MigrationDestination({ ...dep, dmaLog: undefined, get running() { return dep.running; }, resume: () => ((atResume = { ram: dstCpu.memory.bytes.slice(), ticks: dstCpu.ticks }), dep.resume()) }, o.wrapDestChannel?.(b) ?? b);
  const [d, s] = await Promise.all([dest.run(), source.run()]);
  return { src, dst, srcCpu, dstCpu, s, d, ramAtPause, atResume };
}

/**
 * The source's side of a channel whose peer sent ERROR and closed, as a socket sees it: the
 * ERROR waits unread in the receive buffer while the next write already fails with EPIPE. Data
 * from the ERROR on is held until a write has been refused (then 50 ms more), or 300 ms at most.
 */
function epipeBeforeError(ch: ByteChannel): ByteChannel & { rejectedWrites: number } {
  let errorSeen = false;
  let release: () => void = () => undefined;
  const dec = new RecordDecoder({ streamHeader: false, allowed: [RecordType.ACK, RecordType.ERROR] });
  const w = {
    rejectedWrites: 0,
    write(b: Uint8Array): Promise<void> {
      if (!errorSeen) return ch.write(b);
      w.rejectedWrites++;
      setTimeout(release, 50);
      return Promise.reject(new ChannelClosedError("write EPIPE"));
    },
    start(onData: (c: Uint8Array) => void, onEnd: (e?: Error) => void): void {
      let holding = true;
      const queue: Array<() => void> = [];
      release = () => {
        holding = false;
        for (const f of queue.splice(0)) f();
      };
      ch.start(
        (c) => {
          if (!errorSeen) {
            for (const r of dec.push(c)) if (r.type === RecordType.ERROR) errorSeen = true;
            if (errorSeen) setTimeout(release, 300);
          }
          if (errorSeen && holding) queue.push(() => onData(c));
          else onData(c);
        },
        (e) => (errorSeen && holding ? queue.push(() => onEnd(e)) : onEnd(e)),
      );
    },
    close: () => ch.close(),
  };
  return w;
}

/** A copy of `chunk` with one bit of byte `at` flipped. */
function flipByte(chunk: Uint8Array, at: number): Uint8Array {
  const c = chunk.slice();
  c[at] = (c[at] ?? 0) ^ 0x10;
  return c;
}

/** A source whose virtio-net state the destination's parser refuses (a status that is not a number). */
function badVirtioState(ep: MigrationEndpoint): MigrationEndpoint {
  return {
    ...ep,
    dmaLog: ep.dmaLog,
    get running() {
      return ep.running;
    },
    saveDevices: () => {
      const recs = decodeStates(ep.saveDevices());
      const v = recs.find((x) => x.name === "virtio-net")!;
      v.state = { ...(v.state as object), status: "not a number" };
      return encodeStates(recs);
    },
  };
}

describe("live migration between two machines in one process", () => {
  it("moves RAM, engine state and device state; the guest runs on the destination; figures are reported", async () => {
    const seen: Array<{ status: string; phase: string; bytes: number; iterations: number }> = [];
    const r = await migrate({ workingSet: 40, source: { onProgress: (i) => seen.push({ status: i.status, phase: i.phase, bytes: i.bytes, iterations: i.iterations }) } });
    // Progress went setup → active (pre-copy, then stop-and-copy) → completed, bytes and passes only growing.
    expect(seen.map((x) => x.status).filter((x, i, a) => a[i - 1] !== x)).toEqual(["active", "completed"]);
    expect(seen.some((x) => x.phase === "pre-copy") && seen.some((x) => x.phase === "stop-and-copy")).toBe(true);
    expect(seen.every((x, i) => i === 0 || (x.bytes >= seen[i - 1]!.bytes && x.iterations >= seen[i - 1]!.iterations))).toBe(true);
    expect(r.s.error).toBeUndefined();
    expect(r.s.status).toBe("completed");
    expect(r.d.status).toBe("completed");
    expect(r.dstCpu.running).toBe(true);
    expect(r.srcCpu.running).toBe(false);
    // Destination RAM is the source's at the pause, byte for byte (the destination started as 0xEE).
    expect(r.ramAtPause).toBeDefined();
    expect(r.atResume).toBeDefined();
    expect(r.atResume!.ram.findIndex((x, i) => r.ramAtPause![i] !== x)).toBe(-1);
    expect(r.atResume!.ticks).toBe(r.srcCpu.ticks);
    await r.dst.pause();
    // Device state arrived: the destination saves what the source saved.
    expect(decodeStates(r.dst.saveBytes())).toEqual(decodeStates(r.src.saveBytes()));
    // Figures: a full first pass, later passes of the working set only, the stop-and-copy last.
    const rounds = r.s.rounds;
    expect(rounds.length).toBe(r.s.iterations);
    expect(rounds.length).toBeGreaterThanOrEqual(2);
    expect(rounds[0]!.dirtyPages).toBe(MEM / PAGE_SIZE);
    expect(rounds[rounds.length - 1]!.stopped).toBe(true);
    expect(rounds.slice(1).every((x) => x.dirtyPages < 1000)).toBe(true);
    // Page 5000 was only ever rewritten by DMA with its own bytes: sent for the log alone.
    expect(rounds.slice(1).reduce((n, x) => n + x.dmaOnlyPages, 0)).toBeGreaterThan(0);
    expect(r.s.pages + r.s.zeroPages).toBe(rounds.reduce((n, x) => n + x.dirtyPages, 0));
    expect(r.s.bytes).toBe(r.d.bytes);
    expect(r.s.downtimeMs).toBeGreaterThan(0);
    expect(r.s.engineBytes).toBeGreaterThan(0);
    expect(r.s.deviceBytes).toBeGreaterThan(0);
    expect(r.s.totalMs).toBeGreaterThanOrEqual(r.s.downtimeMs!);
    await r.dst.stop();
  });

  it("stops pre-copy when rounds stop shrinking (3 rounds without a new smallest set) and copies the rest stopped", async () => {
    const r = await migrate({ workingSet: 600, source: { smallSetPages: 256 } });
    expect(r.s.status).toBe("completed");
    const pre = r.s.rounds.filter((x) => !x.stopped);
    // Round 1 is everything; later rounds find the working set (or more) every time, never < 256.
    expect(pre.length).toBeGreaterThanOrEqual(4);
    expect(pre.length).toBeLessThanOrEqual(30);
    expect(pre.slice(1).every((x) => x.dirtyPages >= 256)).toBe(true);
    expect(r.s.dirtyRate).toBeGreaterThan(0);
    expect(r.s.expectedDowntimeMs).toBeGreaterThan(0);
    await r.dst.stop();
  });

  it("stopped, the source queues the last pass's records without waiting for each write (the destination is busy loading state then)", async () => {
    // A channel whose writes settle 20 ms after they are made, as a socket whose peer is not reading.
    let paused = false;
    let inFlight = 0;
    let most = 0;
    const r = await migrate({
      workingSet: 600,
      source: { smallSetPages: 256, maxRounds: 3 },
      wrapSource: (ep) => ({ ...ep, dmaLog: ep.dmaLog, get running() { return ep.running; }, pause: async () => ((paused = true), ep.pause()) }),
      wrapSourceChannel: (c) => ({
        start: (d, e) => c.start(d, e),
        close: () => c.close(),
        write: async (b) => {
          await c.write(b);
          if (!paused) return;
          most = Math.max(most, ++inFlight);
          await new Promise((res) => setTimeout(res, 20));
          inFlight--;
        },
      }),
    });
    expect(r.s.status).toBe("completed");
    const last = r.s.rounds[r.s.rounds.length - 1]!;
    expect(last.stopped).toBe(true);
    expect(last.dirtyPages).toBeGreaterThanOrEqual(600);
    // The engine state, the device state and the pages went out together: waiting for each write, at most one was ever in flight.
    expect(most).toBeGreaterThanOrEqual(4);
    expect(r.atResume!.ram.findIndex((x, i) => r.ramAtPause![i] !== x)).toBe(-1);
    expect(last.scanMs).toBeGreaterThan(0);
    expect(last.scanMs).toBeLessThanOrEqual(last.ms);
    await r.dst.stop();
  });

  it("refuses a HELLO with another device set before anything runs: the source keeps running, the destination is thrown away", async () => {
    const r = await migrate({ dstPlatform: (env) => new TestDevicePlatform(env) });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #0 \(hello\).*device virtio-net \(virtio-net\): not on this side/);
    expect(r.s.rounds.length).toBe(0); // no RAM was sent
    expect(r.srcCpu.running).toBe(true);
    expect(r.d.status).toBe("failed");
    expect(r.dstCpu.stopped).toBe(true);
    expect(r.dstCpu.memory.bytes[PAGE_SIZE * 3 + 8]).toBe(0xee); // nothing applied
    await r.src.stop();
  });

  it("refuses a HELLO with a state version it cannot load, another engine or another RAM size, naming each", async () => {
    const r = await migrate({
      wrapSource: (ep) => ({ ...ep, dmaLog: ep.dmaLog, get running() { return ep.running; }, describe: () => ep.describe().map((d) => (d.name === "virtio-net" ? { ...d, version: 99 } : d)) }),
    });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #0 \(hello\).*device virtio-net \(virtio-net\): state version 99, this side loads \d+\.\.\d+/);
    expect(r.s.rounds.length).toBe(0);
    expect(r.srcCpu.running).toBe(true);
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
    const local = { engine: "v86 1", memBytes: 1 << 20, devices: [{ name: "a", kind: "k", version: 3, oldest: 2 }] };
    const hello = { engine: "v86 2", memBytes: 2 << 20, pageSize: PAGE_SIZE, devices: [{ name: "a", kind: "k", version: 1 }, { name: "b", kind: "k", version: 1 }] };
    expect(helloMismatches(hello, local)).toEqual([
      "engine: the source runs v86 2, this side v86 1",
      "RAM: the source has 2097152 bytes, this side 1048576",
      "device a (k): state version 1, this side loads 2..3",
      "device b (k): not on this side",
    ]);
    expect(helloMismatches({ ...hello, engine: "v86 1", memBytes: 1 << 20, devices: [{ name: "a", kind: "k", version: 2 }] }, local)).toEqual([]);
    expect(helloMismatches({ ...hello, engine: "v86 1", memBytes: 1 << 20, devices: [] }, local)).toEqual(["device a (k): missing on the source"]);
  });

  it("a destination that dies mid-stream: the source resumes with its guest and devices running and reports it", async () => {
    const r = await migrate({ channel: { tamper: (from, chunk, at) => (from === 0 && at > 8 << 20 ? "break" : chunk) } });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/went away|broke/);
    expect(r.srcCpu.running).toBe(true);
    const ticks = r.srcCpu.ticks;
    await new Promise((res) => setTimeout(res, 20));
    expect(r.srcCpu.ticks).toBeGreaterThan(ticks); // still running
    expect(r.d.status).toBe("failed");
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("a record corrupted on the way is refused, named, and the source resumes", async () => {
    let flipped = false;
    const r = await migrate({
      channel: { tamper: (from, chunk, at) => (from === 0 && !flipped && at > 1 << 20 && chunk.length > 100 ? ((flipped = true), flipByte(chunk, 50)) : chunk) },
    });
    expect(flipped).toBe(true);
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #\d+ \(ram-(pages|zero)\): .*(CRC-32 mismatch|record #\d+)/);
    expect(r.srcCpu.running).toBe(true);
    expect(r.d.status).toBe("failed");
    expect(r.d.error).toMatch(/record #\d+ \(/);
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("a device state the destination's parser rejects: refused after stop-and-copy, the source's guest and devices run again", async () => {
    const r = await migrate({
      wrapSource: badVirtioState,
    });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #\d+ \(devices\): .*virtio-net/);
    expect(r.s.phase).toBe("stop-and-copy"); // it failed after the stop
    expect(r.srcCpu.running).toBe(true);
    const p = r.src.platform as PciPlatform;
    for (const [, m] of p.devices) expect(m.migration.state).toBe("RUNNING");
    expect(r.d.status).toBe("failed");
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("a refusal still unread when the next write fails (EPIPE) is what the source reports, not the broken pipe", async () => {
    // Refused during pre-copy, where the source still writes while the ERROR waits (in
    // stop-and-copy every record of the last pass is already queued before any reply can come).
    let ch: ReturnType<typeof epipeBeforeError> | undefined;
    let flipped = false;
    const r = await migrate({
      channel: { tamper: (from, chunk, at) => (from === 0 && !flipped && at > 1 << 20 && chunk.length > 100 ? ((flipped = true), flipByte(chunk, 50)) : chunk) },
      wrapSourceChannel: (c) => (ch = epipeBeforeError(c)),
    });
    expect(ch!.rejectedWrites).toBeGreaterThan(0); // the race happened: a write failed before the ERROR was read
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #\d+ \(ram-(pages|zero)\): .*CRC-32 mismatch/);
    expect(r.srcCpu.running).toBe(true);
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("a refusing destination ends its run only once its channel has closed (a socket lingers for the source to read the ERROR)", async () => {
    let released = false;
    const r = await migrate({
      wrapSource: badVirtioState,
      wrapDestChannel: (c) => ({
        write: (bytes) => c.write(bytes),
        start: (d, e) => c.start(d, e),
        close: () => new Promise<void>((res) => setTimeout(() => ((released = true), void c.close(), res()), 200)),
      }),
    });
    expect(r.d.status).toBe("failed");
    expect(released).toBe(true);
    expect(r.s.error).toMatch(/refused record #\d+ \(devices\): .*virtio-net/);
    await r.src.stop();
  });

  it("an engine state the destination rejects: refused, the source resumes", async () => {
    const r = await migrate({
      wrapSource: (ep) => ({ ...ep, dmaLog: ep.dmaLog, get running() { return ep.running; }, saveEngine: async () => new TextEncoder().encode("{}") }),
    });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/refused record #\d+ \(engine\): bad scripted state/);
    expect(r.srcCpu.running).toBe(true);
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("a source that fails after the stop tells the destination, which throws its half away; the source resumes", async () => {
    const r = await migrate({
      wrapSource: (ep) => ({ ...ep, dmaLog: ep.dmaLog, get running() { return ep.running; }, saveEngine: async () => { throw new Error("source engine exploded"); } }),
    });
    expect(r.s.status).toBe("failed");
    expect(r.s.error).toMatch(/source engine exploded/);
    expect(r.srcCpu.running).toBe(true);
    expect(r.d.status).toBe("failed");
    expect(r.d.error).toMatch(/source aborted: source engine exploded/);
    expect(r.dstCpu.stopped).toBe(true);
    await r.src.stop();
  });

  it("transparent failover: the source switches the failover VF to emulation before the stop, the HELLO says so, the destination announces the guest's MAC and switches back to pass-through", async () => {
    const wires: TestWire[] = [];
    const platform = (env: PlatformEnv): PlatformBus => {
      const w = new TestWire();
      wires.push(w);
      return new FailoverVfPlatform(env, { backend: w });
    };
    const r = await migrate({ platform, source: { transparent: true } });
    expect(r.s.error).toBeUndefined();
    expect(r.s.status).toBe("completed");
    const sf = (r.src.platform as FailoverVfPlatform).failover;
    const df = (r.dst.platform as FailoverVfPlatform).failover;
    expect(sf.active).toBe("emulated");
    expect(sf.stats().switches).toBe(1);
    expect(df.active).toBe("passthrough");
    expect(df.stats().switches).toBe(1);
    const mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x58];
    const rarps = wires[1]!.sent.filter((f) => f[12] === 0x80 && f[13] === 0x35 && mac.every((b, i) => f[22 + i] === b));
    expect(rarps.length).toBeGreaterThanOrEqual(2); // at the restore and after the resume
    expect(r.s.downtimeParts?.prepare).toBeGreaterThan(0);
    await r.dst.stop();
  });

  it("late frames end when the destination's announce of the guest comes back through the source's backend, else after a quiet spell", async () => {
    // One segment: what the destination (the second machine made) sends reaches the source's
    // uplink, as on a bridge.
    const segment = (): (() => TestWire) => {
      const wires: TestWire[] = [];
      return () => {
        const w = new TestWire();
        if (wires.push(w) === 2) {
          const send = w.transmit.bind(w);
          w.transmit = (f) => (send(f), void wires[0]!.inject(f.slice()));
        }
        return w;
      };
    };
    const vfWire = segment();
    const platform = (env: PlatformEnv): PlatformBus => new FailoverVfPlatform(env, { backend: vfWire() });
    const r = await migrate({ platform, source: { transparent: true } });
    expect(r.s.status).toBe("completed");
    expect(r.s.lateEnd).toBe("announce");
    await r.dst.stop();
    // The standby failover preset: its devices sit on its own switch; the watch is where that
    // switch meets the segment.
    const sbWire = segment();
    const standby = (env: PlatformEnv): PlatformBus => {
      const p = new FailoverPlatform(env, { backend: sbWire(), hidePrimary: true });
      // The guest has spoken on the segment before, through virtio-net (as its driver would send).
      (p.standby as unknown as { backend: NetBackend }).backend.transmit(announceFrame(Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x58)));
      return p;
    };
    const sb = await migrate({ platform: standby, source: { transparent: false } });
    expect(sb.s.status).toBe("completed");
    expect(sb.s.lateEnd).toBe("announce");
    await sb.dst.stop();
    // Without the segment, the source hears nothing and ends on quiet.
    const alone = await migrate({ platform: (env) => new FailoverVfPlatform(env, { backend: new TestWire() }), source: { transparent: true } });
    expect(alone.s.status).toBe("completed");
    expect(alone.s.lateEnd).toBe("quiet");
    await alone.dst.stop();
  });

  it("transparent failover that fails after the stop: the source's VF is back on pass-through and its devices run", async () => {
    const platform = (env: PlatformEnv): PlatformBus => new FailoverVfPlatform(env, { backend: new TestWire() });
    const r = await migrate({
      platform,
      source: { transparent: true },
      wrapSource: (ep) => ({ ...ep, dmaLog: ep.dmaLog, get running() { return ep.running; }, saveEngine: async () => new TextEncoder().encode("{}") }),
    });
    expect(r.s.status).toBe("failed");
    expect(r.s.phase).toBe("stop-and-copy"); // it failed after the stop
    const sf = (r.src.platform as FailoverVfPlatform).failover;
    expect(sf.active).toBe("passthrough");
    expect(sf.stats().switches).toBe(2);
    for (const [, m] of (r.src.platform as PciPlatform).devices) expect(m.migration.state).toBe("RUNNING");
    expect(r.srcCpu.running).toBe(true);
    await r.src.stop();
  });

  it("the destination refuses a hostile source's records out of order or before HELLO, and answers with an ERROR naming them", async () => {
    for (const [records, want] of [
      [[[RecordType.RAM_ZERO, 0, encodeZeroRuns([[0, 1]])]], /record #0 \(ram-zero\): the stream must begin with a HELLO/],
      [[[RecordType.HELLO, 0, null], [RecordType.COMMIT, 1, undefined]], /record #1 \(commit\): COMMIT before the device state/],
      [[[RecordType.HELLO, 0, null], [RecordType.RAM_ZERO, 5, encodeZeroRuns([[0, 1]])]], /record #5 \(ram-zero\): out of order, expected #1/],
      [[[RecordType.HELLO, 0, null], [RecordType.LATE, 1, encodeStates([])]], /record #1 \(late\): late frames before the device state/],
      // RAM may follow the engine and device state (the stop's last pass), but not the late frames.
      [
        [[RecordType.HELLO, 0, null], [RecordType.ENGINE, 1, "engine"], [RecordType.DEVICES, 2, "devices"], [RecordType.RAM_ZERO, 3, encodeZeroRuns([[0, 1]])], [RecordType.LATE, 4, encodeStates([])], [RecordType.RAM_ZERO, 5, encodeZeroRuns([[0, 1]])]],
        /record #5 \(ram-zero\): RAM after the late frames/,
      ],
    ] as const) {
      const dstCpu = new ScriptedCpu(0);
      const dst = await machine(dstCpu);
      const engine = packSparse(new TextEncoder().encode(JSON.stringify({ ticks: 1 })));
      const devices = dst.saveBytes();
      const [a, b] = memoryChannelPair();
      const dest = new MigrationDestination(machineEndpoint(dst), b);
      const replies: Uint8Array[] = [];
      a.start((c) => replies.push(c), () => undefined);
      const done = dest.run();
      const hello = encodeHello({ engine: dstCpu.engineId, memBytes: MEM, pageSize: PAGE_SIZE, devices: dst.stateDescriptors().map(({ name, kind, version }) => ({ name, kind, version })) });
      await a.write(encodeStreamHeader());
      for (const [t, seq, p] of records) await a.write(encodeRecord(t, seq, p === null ? hello : p === "engine" ? engine : p === "devices" ? devices : p));
      const d = await done;
      expect(d.status).toBe("failed");
      expect(d.error).toMatch(want);
      expect(dstCpu.stopped).toBe(true);
      await new Promise((res) => setTimeout(res, 10));
      const dec = new RecordDecoder({ streamHeader: false, allowed: [RecordType.ACK, RecordType.ERROR] });
      const got = replies.flatMap((c) => dec.push(c));
      const err = got.find((x) => x.type === RecordType.ERROR);
      expect(err).toBeDefined();
      expect(decodeError(err!.payload)).toMatch(want);
    }
  });
});
