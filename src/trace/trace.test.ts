import { describe, expect, it } from "vitest";
import { buildArp, buildEcho, buildEthernet, buildIpv4, BROADCAST_MAC, finishFrame, parseIpv4 } from "../devices/net/frames.js";
import { SimVirtioNet } from "../guest/virtio-net/driver.js";
import { SimIgbPf } from "../guest/igb-pf/driver.js";
import { SimIgbvf } from "../guest/igbvf/driver.js";
import { R } from "../devices/igb/regs.js";
import { createTraceBench, type TraceBench } from "./bench.js";
import { decodeTrace, encodeTrace, type TraceEvent, type TracePlatform } from "./format.js";
import { replayTrace, formatReplayResult } from "./replay.js";

const IP = parseIpv4("10.0.2.15");
const STUB_IP = parseIpv4("10.0.2.2");

/** An ARP request for the stub, then `pings` echo requests once its MAC is known. */
function arpAndPing(mac: Uint8Array, send: (f: Uint8Array) => unknown, receive: () => Uint8Array[], pings: number): number {
  send(buildEthernet({ dst: BROADCAST_MAC, src: mac, etherType: 0x0806, payload: buildArp(1, mac, IP, new Uint8Array(6), STUB_IP), pad: true }));
  const [arp] = receive();
  expect(arp).toBeDefined();
  const stubMac = arp!.subarray(6, 12).slice();
  let replies = 0;
  for (let seq = 0; seq < pings; seq++) {
    const data = new Uint8Array(56).map((_, i) => (i + seq) & 0xff);
    send(finishFrame(buildEthernet({ dst: stubMac, src: mac, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 7, seq, data) }) })));
    for (const r of receive()) if (r[12] === 8 && r[13] === 0 && r[14 + 20] === 0) replies++;
  }
  return replies;
}

/** virtio-net: probe, feature negotiation, link up, ARP and pings, through the simulated driver. */
function recordVirtio(packed: boolean): { bench: TraceBench; bytes: Uint8Array } {
  const platform: TracePlatform = { kind: "virtio", maxPairs: 2, standby: false, packed, withhold: [] };
  const bench = createTraceBench(platform);
  const nic = bench.find(0x1af4, 0x1041)!;
  expect(nic).toBeDefined();
  const d = new SimVirtioNet({ fn: bench.fnPort(nic.bus, nic.devfn, nic.bars), ram: bench.mem.bytes, alloc: bench.alloc }, { packed });
  const p = d.probe();
  expect(p.linkUp).toBe(true);
  d.open();
  expect(arpAndPing(p.mac, (f) => d.send(f), () => d.receive(), 3)).toBe(3);
  return { bench, bytes: bench.recorder.finish() };
}

/** The whole 82576: igb's probe, link up (STATUS.LU), ARP and pings on queue 0. */
function recordIgb(): { bench: TraceBench; bytes: Uint8Array } {
  const bench = createTraceBench({ kind: "igb" });
  const nic = bench.find(0x8086, 0x10c9)!;
  expect(nic).toBeDefined();
  const bar0 = nic.bars.get(0)!;
  const env = {
    bar: { read: (off: number) => bench.access.mmioRead(bar0 + off, 4), write: (off: number, _s: 4, v: number) => bench.access.mmioWrite(bar0 + off, 4, v) },
    mem: bench.mem,
    ram: bench.mem.bytes,
    alloc: bench.alloc,
    delay: (us: number) => bench.clock.advance(us * 1000),
  };
  const pf = new SimIgbPf(env);
  const p = pf.probe();
  expect(p.nvmValid).toBe(true);
  pf.open();
  for (let i = 0; i < 100 && (bench.access.mmioRead(bar0 + R.STATUS, 4) & 2) === 0; i++) bench.clock.advance(1e6);
  const receive = (): Uint8Array[] => {
    for (let i = 0; i < 50; i++) {
      const got = pf.rings.receive().map((r) => r.frame);
      if (got.length > 0) return got;
      bench.clock.advance(10_000);
    }
    return [];
  };
  expect(arpAndPing(p.mac, (f) => pf.rings.send(f), receive, 3)).toBe(3);
  return { bench, bytes: bench.recorder.finish() };
}

/** One 82576 VF, the PF kept by the host agent: igbvf's reset through the mailbox, open, ARP, pings. */
function recordVf(): { bench: TraceBench; bytes: Uint8Array } {
  const bench = createTraceBench({ kind: "vf", trust: false, spoofchk: true });
  const nic = bench.find(0x8086, 0x10ca)!;
  expect(nic).toBeDefined();
  const bar0 = nic.bars.get(0)!;
  const vf = new SimIgbvf({
    bar: { read: (off) => bench.access.mmioRead(bar0 + off, 4), write: (off, _s, v) => bench.access.mmioWrite(bar0 + off, 4, v) },
    mem: bench.mem,
    ram: bench.mem.bytes,
    alloc: bench.alloc,
    delay: (us) => bench.clock.advance(us * 1000),
  });
  expect(vf.reset()).toBe(true);
  vf.open();
  const receive = (): Uint8Array[] => {
    for (let i = 0; i < 50; i++) {
      const got = vf.receive().map((r) => r.frame);
      if (got.length > 0) return got;
      bench.clock.advance(10_000);
    }
    return [];
  };
  expect(arpAndPing(vf.mac, (f) => vf.send(f), receive, 2)).toBe(2);
  return { bench, bytes: bench.recorder.finish() };
}

const count = (events: TraceEvent[], kind: TraceEvent["kind"]): number => events.filter((e) => e.kind === kind).length;

const cases: Array<[string, () => { bench: TraceBench; bytes: Uint8Array }, number]> = [
  ["virtio-net split", () => recordVirtio(false), 0x1041],
  ["virtio-net packed", () => recordVirtio(true), 0x1041],
  ["igb PF", recordIgb, 0x10c9],
  ["igbvf on a host-kept PF", recordVf, 0x10ca],
];

for (const [name, record] of cases) {
  describe(`driver trace: ${name}`, () => {
    it("records every kind of boundary event, and replays clean against a fresh platform", () => {
      const { bytes } = record();
      const t = decodeTrace(bytes);
      expect(t.cut).toBe(false);
      for (const k of ["cfg-read", "cfg-write", "mmio-read", "mmio-write", "dma-read", "dma-write", "tx", "rx"] as const) expect(count(t.events, k), k).toBeGreaterThan(0);
      // The encoding round-trips.
      expect(encodeTrace(t)).toEqual(bytes);
      const r = replayTrace(bytes);
      expect(r.status, formatReplayResult(r)).toBe("clean");
      if (r.status !== "clean") return;
      expect(r.events).toBe(t.events.length);
      expect(r.counts.tx).toBe(count(t.events, "tx"));
    });

    it("reports exactly the first access whose answer a changed model gives differently", () => {
      const { bytes } = record();
      const t = decodeTrace(bytes);
      // The device's last distinct MMIO register read, from the middle of the bring-up.
      const reads = t.events.map((e, i) => [e, i] as const).filter(([e]) => e.kind === "mmio-read");
      const [target] = reads[Math.floor(reads.length / 2)]!;
      if (target.kind !== "mmio-read") throw new Error("unreachable");
      const first = t.events.findIndex((e) => e.kind === "mmio-read" && e.addr === target.addr);
      const r = replayTrace(bytes, {
        tamper: (p) => ({
          configRead: (b, d, reg, s) => p.configRead(b, d, reg, s),
          configWrite: (b, d, reg, s, v) => p.configWrite(b, d, reg, s, v),
          // The changed register: one bit flipped in what it answers.
          mmioRead: (a, s) => (a === target.addr ? (p.mmioRead(a, s) ^ 0x10) >>> 0 : p.mmioRead(a, s)),
          mmioWrite: (a, s, v) => p.mmioWrite(a, s, v),
          ioRead: (port, s) => p.ioRead(port, s),
          ioWrite: (port, s, v) => p.ioWrite(port, s, v),
        }),
      });
      expect(r.status).toBe("differs");
      if (r.status !== "differs") return;
      const e = t.events[first]!;
      expect(r.difference.index).toBe(first);
      expect(r.difference.kind).toBe("mmio-read");
      expect(r.difference.t).toBe(e.t);
      if (e.kind !== "mmio-read") throw new Error("unreachable");
      expect(r.difference.expected).toBe(`0x${e.value.toString(16).padStart(8, "0")}`);
      expect(r.difference.got).toBe(`0x${((e.value ^ 0x10) >>> 0).toString(16).padStart(8, "0")}`);
      expect(r.difference.where).toMatch(/^02:00\.0 BAR\d\+0x[0-9a-f]{4}/);
      expect(formatReplayResult(r)).toContain(`differs at event ${first} of ${t.events.length}`);
    });
  });
}

describe("driver trace: a changed device behaviour", () => {
  it("a model that does something else (another DMA write) is reported at that device event", () => {
    const { bytes } = recordVirtio(false);
    const t = decodeTrace(bytes);
    const firstWrite = t.events.findIndex((e) => e.kind === "dma-write");
    // Guest memory the fresh model writes is compared byte for byte: change the trace's first
    // DMA write's first byte, as if the model had written something else.
    const changed = structuredClone(t);
    const w = changed.events[firstWrite]!;
    if (w.kind !== "dma-write") throw new Error("unreachable");
    w.data[0] = w.data[0]! ^ 0xff;
    const r = replayTrace(changed);
    expect(r.status).toBe("differs");
    if (r.status !== "differs") return;
    expect(r.difference.index).toBe(firstWrite);
    expect(r.difference.kind).toBe("dma-write");
  });
});

describe("igb register names in a report", () => {
  it("names the 82576 PF register of a differing read", () => {
    const { bytes } = recordIgb();
    const t = decodeTrace(bytes);
    const bar0 = t.events.find((e) => e.kind === "mmio-read")!;
    if (bar0.kind !== "mmio-read") throw new Error("unreachable");
    // STATUS is at BAR0 + 8; find its first read.
    const statusIdx = t.events.findIndex((e) => e.kind === "mmio-read" && (e.addr & 0x1ffff) === R.STATUS);
    const status = t.events[statusIdx]!;
    if (status.kind !== "mmio-read") throw new Error("unreachable");
    const r = replayTrace(bytes, {
      tamper: (p) => ({
        configRead: (b, d, reg, s) => p.configRead(b, d, reg, s),
        configWrite: (b, d, reg, s, v) => p.configWrite(b, d, reg, s, v),
        mmioRead: (a, s) => (a === status.addr ? 0 : p.mmioRead(a, s)),
        mmioWrite: (a, s, v) => p.mmioWrite(a, s, v),
        ioRead: (port, s) => p.ioRead(port, s),
        ioWrite: (port, s, v) => p.ioWrite(port, s, v),
      }),
    });
    expect(r.status).toBe("differs");
    if (r.status !== "differs") return;
    expect(r.difference.index).toBe(statusIdx);
    expect(r.difference.where).toBe("02:00.0 BAR0+0x0008 (STATUS)");
  });
});

describe("igbvf register names in a report", () => {
  it("names the VF register (the mailbox) of a differing read", () => {
    const { bytes } = recordVf();
    const t = decodeTrace(bytes);
    const idx = t.events.findIndex((e) => e.kind === "mmio-read" && (e.addr & 0x3fff) === 0x0c40);
    expect(idx).toBeGreaterThanOrEqual(0);
    const mbx = t.events[idx]!;
    if (mbx.kind !== "mmio-read") throw new Error("unreachable");
    const r = replayTrace(bytes, {
      tamper: (p) => ({
        configRead: (b, d, reg, s) => p.configRead(b, d, reg, s),
        configWrite: (b, d, reg, s, v) => p.configWrite(b, d, reg, s, v),
        mmioRead: (a, s) => (a === mbx.addr ? (p.mmioRead(a, s) ^ 0x20) >>> 0 : p.mmioRead(a, s)),
        mmioWrite: (a, s, v) => p.mmioWrite(a, s, v),
        ioRead: (port, s) => p.ioRead(port, s),
        ioWrite: (port, s, v) => p.ioWrite(port, s, v),
      }),
    });
    expect(r.status).toBe("differs");
    if (r.status !== "differs") return;
    expect(r.difference.index).toBe(idx);
    expect(r.difference.where).toBe("02:00.0 BAR0+0x0c40 (V2PMAILBOX)");
  });
});

describe("the recorder as a live tap (nicvisor web)", () => {
  it("hands every complete event to onEvent in trace order, and a snapshot mid-run is the trace so far", () => {
    const seen: TraceEvent[] = [];
    const bench = createTraceBench({ kind: "virtio", maxPairs: 1, standby: false, packed: false, withhold: [] }, 32, { onEvent: (e) => seen.push(e) });
    const nic = bench.find(0x1af4, 0x1041)!;
    const d = new SimVirtioNet({ fn: bench.fnPort(nic.bus, nic.devfn, nic.bars), ram: bench.mem.bytes, alloc: bench.alloc }, {});
    const p = d.probe();
    const mid = decodeTrace(bench.recorder.snapshot());
    expect(mid.events.length).toBe(seen.length);
    expect(mid.events.length).toBeGreaterThan(50);
    d.open();
    expect(arpAndPing(p.mac, (f) => d.send(f), () => d.receive(), 2)).toBe(2);
    const all = decodeTrace(bench.recorder.finish());
    // The snapshot did not end the recording: the whole trace holds it as a prefix, and more.
    expect(all.events.length).toBe(seen.length);
    expect(all.events.length).toBeGreaterThan(mid.events.length);
    expect(all.events.slice(0, mid.events.length).map((e) => e.kind)).toEqual(mid.events.map((e) => e.kind));
    expect(seen.map((e) => `${e.kind}@${e.depth}`)).toEqual(all.events.map((e) => `${e.kind}@${e.depth}`));
    // Answers are filled in before the listener sees an access.
    const reads = seen.filter((e) => e.kind === "mmio-read");
    expect(reads.map((e) => (e.kind === "mmio-read" ? e.value : -1))).toEqual(all.events.filter((e) => e.kind === "mmio-read").map((e) => (e.kind === "mmio-read" ? e.value : -1)));
    expect(replayTrace(all).status).toBe("clean");
  });

  it("with write: false it records nothing and still feeds onEvent", () => {
    let n = 0;
    const bench = createTraceBench({ kind: "igb" }, 32, { onEvent: () => n++, write: false });
    const nic = bench.find(0x8086, 0x10c9)!;
    bench.access.mmioRead(nic.bars.get(0)! + R.STATUS, 4);
    expect(n).toBeGreaterThan(0);
    expect(bench.recorder.count).toBe(n);
    expect(bench.recorder.snapshot().length).toBe(0);
    expect(bench.recorder.finish().length).toBe(0);
  });
});

