/**
 * Frames per second through one 82576 VF's TX and RX rings (in-process: simulated igbvf driver,
 * PF agent, internal switch), for 64-byte and 1500-byte frames; then a 64 KiB TCP GSO frame from
 * the uplink (what a TAP with a vnet header hands over), cut into 45 segments for the VF's ring,
 * and a 64 KiB TSO packet from the VF handed whole to an uplink that takes TSO and copies what it
 * is given (as the TAP does), each beside a copy of the same bytes.
 *
 * Run: `node --import tsx bench/igb.bench.ts`
 */
import { Bench } from "tinybench";
import { createIgbTestbed } from "../src/vmm/pf-agent/testbed.js";
import { CountingBackend } from "../src/devices/net/testing.js";
import { buildTcp, ipFrame } from "../src/devices/net/frames.js";
import type { FrameSink, NetBackend } from "../src/devices/net/backend.js";

/** An uplink that takes TSO and checksum offloads whole and copies each frame, as the TAP writes it. */
class CopyingTsoUplink implements NetBackend {
  readonly offloads = { csum: true, tso4: true, tso6: true };
  readonly copiesOnTransmit = true;
  readonly out = new Uint8Array(256 * 1024);
  sent = 0;
  sink: FrameSink | undefined;
  transmit(f: Uint8Array): void {
    this.out.set(f);
    this.sent++;
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
}

const BATCH = 64;

function setup(size: number) {
  const up = new CountingBackend();
  const tb = createIgbTestbed({ numVfs: 1, backend: up, driver: { ringSize: 256 } });
  const d = tb.vfs[0]!;
  if (!d.reset()) throw new Error("VF reset failed");
  d.open();
  const tx = new Uint8Array(size);
  tx.set([0x02, 9, 9, 9, 9, 9], 0);
  tx.set(d.mac, 6);
  tx.set([0x08, 0x00], 12);
  const rx = new Uint8Array(size);
  rx.set(d.mac, 0);
  rx.set([0x02, 9, 9, 9, 9, 9], 6);
  rx.set([0x08, 0x00], 12);
  return { up, d, tx, rx };
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
for (const size of [64, 1500]) {
  const t = setup(size);
  bench.add(`VF TX ${size} B x${BATCH}`, () => {
    for (let i = 0; i < BATCH; i++) t.d.queue(t.tx);
    t.d.flush();
    t.d.reclaim();
  });
  const r = setup(size);
  bench.add(`VF RX ${size} B x${BATCH}`, () => {
    for (let i = 0; i < BATCH; i++) r.up.sink?.(r.rx);
    if (r.d.receive().length !== BATCH) throw new Error("frames lost");
  });
}

// VF 0 -> VF 1 through the internal switch (loopback), 64-byte frames
{
  const up = new CountingBackend();
  const tb = createIgbTestbed({ numVfs: 2, backend: up, driver: { ringSize: 256 } });
  const [a, b] = [tb.vfs[0]!, tb.vfs[1]!];
  for (const d of [a, b]) {
    if (!d.reset()) throw new Error("VF reset failed");
    d.open();
  }
  const f = new Uint8Array(64);
  f.set(b.mac, 0);
  f.set(a.mac, 6);
  f.set([0x08, 0x00], 12);
  bench.add(`VF->VF loopback 64 B x${BATCH}`, () => {
    for (let i = 0; i < BATCH; i++) a.queue(f);
    a.flush();
    a.reclaim();
    if (b.receive().length !== BATCH) throw new Error("frames lost");
  });
}

await bench.run();
console.table(bench.table());
for (const task of bench.tasks) {
  const res = task.result;
  if ("throughput" in res) {
    const fps = res.throughput.mean * BATCH;
    console.log(`${task.name}: ${Math.round(fps).toLocaleString("en-US")} frames/s`);
  }
}

// A 64 KiB TCP GSO frame from the uplink, as a TAP with a vnet header delivers host-to-guest
// traffic: the 82576 has no receive coalescing, so it is cut into wire-size segments.
{
  const GSO = 4;
  const MSS = 1448;
  const t = setup(64);
  const l4 = buildTcp({ srcPort: 5201, dstPort: 40000, seq: 1, payload: new Uint8Array(MSS * 45).fill(0x5a) });
  const frame = ipFrame({ srcMac: Uint8Array.of(2, 9, 9, 9, 9, 9), dstMac: t.d.mac, src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2), proto: 6, l4 });
  const meta = { gso: { type: "tcpv4" as const, size: MSS, hdrLen: 54 }, needsCsum: { start: 34, offset: 16 } };
  // The least a device does: each segment's header and payload copied into a ring slot of 2 KiB.
  const ring = new Uint8Array(256 * 2048);
  let slot = 0;
  const gb = new Bench({ time: 1500, warmupTime: 300 });
  gb.add(`baseline: the same bytes copied into 45 ring slots x${GSO}`, () => {
    for (let i = 0; i < GSO; i++) {
      for (let k = 0; k < 45; k++) {
        const at = (slot++ & 255) * 2048;
        ring.set(frame.subarray(0, 54), at);
        ring.set(frame.subarray(54 + k * MSS, 54 + (k + 1) * MSS), at + 54);
      }
    }
  });
  gb.add(`VF RX 64 KiB GSO -> 45 segments x${GSO}`, () => {
    for (let i = 0; i < GSO; i++) t.up.sink?.(frame, meta);
    if (t.d.receive().length !== 45 * GSO) throw new Error("segments lost");
  });
  // TX: the VF's TSO packet (one context and one data descriptor, as the simulated igbvf queues
  // it) handed to the uplink whole as a GSO frame.
  const up = new CopyingTsoUplink();
  const vt = createIgbTestbed({ numVfs: 1, backend: up, driver: { ringSize: 256 } });
  const vd = vt.vfs[0]!;
  if (!vd.reset()) throw new Error("VF reset failed");
  vd.open();
  const tso = ipFrame({ srcMac: vd.mac, dstMac: Uint8Array.of(2, 9, 9, 9, 9, 9), src: Uint8Array.of(10, 0, 0, 2), dst: Uint8Array.of(10, 0, 0, 1), proto: 6, l4: buildTcp({ srcPort: 40000, dstPort: 5201, seq: 1, payload: new Uint8Array(MSS * 45).fill(0x3c) }) });
  tso[16] = 0; // IPv4 total length 0, as Linux leaves it for TSO
  tso[17] = 0;
  const txCopy = new Uint8Array(tso.length);
  gb.add(`baseline: the TSO packet's bytes copied once x${GSO}`, () => {
    for (let i = 0; i < GSO; i++) txCopy.set(tso);
  });
  gb.add(`VF TX 64 KiB TSO -> uplink whole x${GSO}`, () => {
    const before = up.sent;
    for (let i = 0; i < GSO; i++) if (!vd.queueOffload(tso, { ipv4: true, tcp: true, maclen: 14, iplen: 20, mss: MSS, l4len: 20 })) throw new Error("TX ring full");
    vd.flush();
    vd.reclaim();
    if (up.sent - before !== GSO) throw new Error(`TSO packets not sent whole: ${up.sent - before}/${GSO}`);
  });
  await gb.run();
  for (const t of gb.tasks) if ("error" in t.result && t.result.error !== undefined) console.error(t.name, t.result.error);
  const med = (i: number): number => {
    const r = gb.tasks[i]!.result;
    return "latency" in r ? (r.latency.p50 * 1000) / GSO : NaN; // µs per 64 KiB frame
  };
  console.table(gb.tasks.map((task, i) => ({ task: task.name, "median µs per 64 KiB frame": med(i).toFixed(1), "x baseline": (med(i) / med(i < 2 ? 0 : 2)).toFixed(1) })));
}
