/**
 * The two data paths side by side, in one process: virtio-net (split ring) and one 82576 VF
 * (through the PF agent's internal switch), TX and RX, 64-byte and 1500-byte frames, each driven
 * by its simulated guest driver the same way (a batch of frames queued, one doorbell, completions
 * reaped; received frames handed to a callback as views into guest memory), plus a baseline: the
 * same bytes copied into a ring of slots. Prints medians per frame, frames/s, VF/virtio ratios
 * and each figure as a multiple of the baseline, so ratios carry from one host to another.
 *
 * The host may be shared: every task runs in each of several rounds (`--rounds=N`, default 5;
 * virtio and VF side by side within a round), and the table gives each task's best round median
 * (the least disturbed one) and, for the ratios, also the median over rounds of the ratio measured
 * within one round.
 *
 * Run: `node --import tsx bench/datapath.bench.ts` (or `npm run bench -- datapath`).
 * `--udp`: the frames are IPv4/UDP with valid checksums instead of a non-IP payload (the 82576
 * then verifies both checksums on receive, as the hardware does, and reports them in the
 * descriptor). `--only=vf TX 64` runs the tasks whose name contains the text (for profiling runs:
 * `node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/datapath.bench.ts --only=...`).
 */
import { Bench } from "tinybench";
import { createIgbTestbed } from "../src/vmm/pf-agent/testbed.js";
import { createVirtioNetTestbed } from "../src/guest/virtio-net/testbed.js";
import { CountingBackend } from "../src/devices/net/testing.js";
import { buildUdp, ipFrame } from "../src/devices/net/frames.js";

const BATCH = 128;
const SIZES = [64, 1500] as const;
const ROUNDS = Number(process.argv.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 5);
const udp = process.argv.includes("--udp");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);

/** A frame addressed to `dst` from a fixed local MAC, non-IP payload of zeros. */
function frameTo(dst: Uint8Array, src: Uint8Array, size: number): Uint8Array {
  if (udp) {
    const l4 = buildUdp(1000, 2000, new Uint8Array(size - 14 - 20 - 8).fill(0x5a));
    return ipFrame({ srcMac: src, dstMac: dst, src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2), proto: 17, l4 });
  }
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(src, 6);
  f.set([0x08, 0x00], 12);
  return f;
}
const PEER = new Uint8Array([0x02, 9, 9, 9, 9, 9]);

function virtio(size: number) {
  const backend = new CountingBackend();
  const tb = createVirtioNetTestbed({ backend, device: { packed: false, queueSize: 256 }, driver: { packed: false, maxTxFrame: 1514 } });
  const p = tb.driver.probe();
  tb.driver.open();
  return { d: tb.driver, backend, tx: frameTo(PEER, p.mac, size), rx: frameTo(p.mac, PEER, size) };
}

function vf(size: number) {
  const backend = new CountingBackend();
  // flat RAM the device may access directly, as the virtio-net test bed gives its device
  const tb = createIgbTestbed({ numVfs: 1, backend, driver: { ringSize: 256 }, linear: true });
  const d = tb.vfs[0]!;
  if (!d.reset()) throw new Error("VF reset failed");
  d.open();
  return { d, backend, tx: frameTo(PEER, d.mac, size), rx: frameTo(d.mac, PEER, size) };
}

const bench = new Bench({ time: 400, warmupTime: 100 });
const want = (name: string) => only === undefined || name.includes(only);
let got = 0;
const onFrame = (): void => void got++;

for (const size of SIZES) {
  if (want(`baseline ${size}`)) {
    const ring = new Uint8Array(256 * 2048);
    const src = new Uint8Array(size).fill(7);
    let idx = 0;
    bench.add(`baseline ${size}`, () => {
      for (let i = 0; i < BATCH; i++) {
        ring.set(src, (idx & 255) * 2048);
        idx = (idx + 1) & 0xffff;
      }
      got += ring[(idx & 255) * 2048]!;
    });
  }
  for (const kind of ["virtio", "vf"] as const) {
    if (want(`${kind} TX ${size}`)) {
      const t = kind === "virtio" ? virtio(size) : vf(size);
      bench.add(`${kind} TX ${size}`, () => {
        const before = t.backend.sent;
        for (let i = 0; i < BATCH; i++) if (!t.d.queue(t.tx)) throw new Error("TX ring full");
        t.d.flush();
        if (t.d.reclaim() !== BATCH || t.backend.sent - before !== BATCH) throw new Error("TX frames lost");
      });
    }
    if (want(`${kind} RX ${size}`)) {
      const t = kind === "virtio" ? virtio(size) : vf(size);
      bench.add(`${kind} RX ${size}`, () => {
        const sink = t.backend.sink!;
        for (let i = 0; i < BATCH; i++) sink(t.rx);
        got = 0;
        t.d.drain(onFrame);
        if (got !== BATCH) throw new Error(`RX frames lost: ${got}/${BATCH}`);
      });
    }
  }
}

const rounds: Map<string, number>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  bench.reset();
  await bench.run();
  const ns = new Map<string, number>();
  for (const task of bench.tasks) {
    const res = task.result as { latency?: { p50?: number }; error?: unknown };
    if (res.error !== undefined) throw new Error(`${task.name}: ${String(res.error)}`);
    const p50 = res.latency?.p50;
    if (p50 !== undefined) ns.set(task.name, (p50 * 1e6) / BATCH);
  }
  rounds.push(ns);
}
const best = (name: string): number | undefined => {
  const xs = rounds.map((m) => m.get(name)).filter((x): x is number => x !== undefined);
  return xs.length === 0 ? undefined : Math.min(...xs);
};
const roundRatio = (a: string, b: string): number | undefined => {
  const xs = rounds.map((m) => (m.get(a) ?? NaN) / (m.get(b) ?? NaN)).filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  return xs.length === 0 ? undefined : xs[Math.floor(xs.length / 2)];
};
if (process.argv.includes("--verbose")) for (const [i, m] of rounds.entries()) console.log(`round ${i + 1}: ${[...m].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
const fmt = (x: number | undefined, d = 0) => (x === undefined ? "-" : x.toFixed(d));
console.log(`per frame of a ${BATCH}-frame batch, ${udp ? "IPv4/UDP" : "non-IP"} frames: best of ${ROUNDS} round medians; node ${process.version}`);
console.log("path              ns/frame    Mframes/s   x baseline   VF/virtio speed (best; median of rounds)");
for (const size of SIZES) {
  const base = best(`baseline ${size}`);
  if (base !== undefined) console.log(`baseline ${String(size).padEnd(8)} ${fmt(base, 1).padStart(8)} ${fmt(1000 / base, 2).padStart(12)}`);
  for (const dir of ["TX", "RX"]) {
    const v = best(`virtio ${dir} ${size}`);
    const f = best(`vf ${dir} ${size}`);
    for (const [k, x] of [["virtio", v], ["vf", f]] as const) {
      if (x === undefined) continue;
      const ratio = k === "vf" && v !== undefined ? `${fmt(v / x, 2)}; ${fmt(roundRatio(`virtio ${dir} ${size}`, `vf ${dir} ${size}`), 2)}` : "";
      console.log(`${`${k} ${dir} ${size}`.padEnd(17)} ${fmt(x, 1).padStart(8)} ${fmt(1000 / x, 2).padStart(12)} ${(base === undefined ? "-" : fmt(x / base, 1)).padStart(12)}   ${ratio}`);
    }
  }
}
