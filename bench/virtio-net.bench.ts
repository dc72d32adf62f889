/**
 * Frames per second through virtio-net in-process (one core): the simulated virtio-net driver on
 * top of VirtioNet + the virtio-pci transport, split and packed rings, TX and RX, for 64-byte,
 * 1500-byte and 64 KiB frames. Ratios are against split-ring 64 B TX measured in the same process.
 * A last table sets packed RX of 64 KiB frames beside split RX (medians, packed/split) and beside
 * the least a 64 KiB receive can cost in this process: one 64 KiB copy.
 *
 * Run: `node --import tsx bench/virtio-net.bench.ts` (or `npm run bench -- virtio-net`). Arguments
 * keep only the tasks whose name contains one of them (the baselines always run), e.g.
 * `node --import tsx bench/virtio-net.bench.ts "RX 65536"`.
 */
import { Bench } from "tinybench";
import { createVirtioNetTestbed } from "../src/guest/virtio-net/testbed.js";
import { CountingBackend } from "../src/devices/net/testing.js";

const BATCH = 128;

function setup(packed: boolean, size: number) {
  const backend = new CountingBackend();
  const tb = createVirtioNetTestbed({
    backend,
    device: { packed, queueSize: 256 },
    driver: { packed, maxTxFrame: Math.max(1514, size) },
    memSize: size > 4096 ? 96 << 20 : 32 << 20,
  });
  const p = tb.driver.probe();
  tb.driver.open();
  const frame = new Uint8Array(size);
  frame.set(p.mac, 0);
  frame.set([0x02, 9, 9, 9, 9, 9], 6);
  frame.set([0x08, 0x00], 12);
  return { tb, d: tb.driver, backend, frame };
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
const names: string[] = [];
const only = process.argv.slice(2);
const wanted = (name: string): boolean => only.length === 0 || only.some((x) => name.includes(x));

// Machine baseline: the least any device must do per 64-byte frame, a copy into a slot of a
// preallocated ring plus an index bump, with no descriptors, no features, no backend. The device
// figures divided by this one carry better from one host to another than the raw nanoseconds.
{
  const ring = new Uint8Array(256 * 2048);
  const src = new Uint8Array(64).fill(7);
  let idx = 0;
  let sum = 0;
  bench.add("baseline 64 B copy", () => {
    for (let i = 0; i < BATCH; i++) {
      ring.set(src, (idx & 255) * 2048);
      idx = (idx + 1) & 0xffff;
    }
    sum += ring[(idx & 255) * 2048]!;
  });
  names.push("baseline 64 B copy");
  // The same for a 64 KiB frame (four per run, as the 64 KiB RX tasks): the copy no receive path
  // can avoid.
  const big = new Uint8Array(8 * 65536);
  const bsrc = new Uint8Array(65536).fill(7);
  let bidx = 0;
  bench.add("baseline 64 KiB copy", () => {
    for (let i = 0; i < 4; i++) {
      big.set(bsrc, (bidx & 7) * 65536);
      bidx++;
    }
    sum += big[(bidx & 7) * 65536]!;
  });
  names.push("baseline 64 KiB copy");
  if (sum < 0) console.log(sum);
}
for (const packed of [false, true]) {
  const layout = packed ? "packed" : "split";
  for (const size of [64, 1500, 65536]) {
    const batch = size > 4096 ? 16 : BATCH;
    const tx = `${layout} TX ${size} B`;
    const rx = `${layout} RX ${size} B`;
    if (wanted(tx)) {
      const t = setup(packed, size);
      bench.add(tx, () => {
        for (let i = 0; i < batch; i++) t.d.queue(t.frame);
        t.d.flush();
        if (t.d.reclaim() !== batch) throw new Error("TX frames lost");
      });
      names.push(tx);
    }
    if (!wanted(rx)) continue;
    // A 64 KiB frame takes ~43 mergeable buffers: 4 of them fit in a 256-entry RX ring.
    const rxBatch = size > 4096 ? 4 : BATCH;
    const r = setup(packed, size);
    let got = 0;
    const onFrame = (): void => void got++;
    bench.add(rx, () => {
      const sink = r.backend.sink!;
      for (let i = 0; i < rxBatch; i++) sink(r.frame);
      got = 0;
      r.d.drain(onFrame);
      if (got !== rxBatch) throw new Error(`RX frames lost: ${got}/${rxBatch}`);
    });
    names.push(rx);
  }
}

await bench.run();
const perFrame = new Map<string, number>();
for (const task of bench.tasks) {
  const res = task.result as { latency?: { p50?: number } };
  const p50 = res.latency?.p50;
  if (p50 === undefined) continue;
  const res2 = task.result as { error?: unknown };
  if (res2.error !== undefined) console.log(`${task.name}: ${String(res2.error)}`);
  const batch = task.name.includes("65536") ? (task.name.includes("RX") ? 4 : 16) : task.name.includes("64 KiB") ? 4 : BATCH;
  perFrame.set(task.name, p50 / batch);
}
const base = perFrame.get("split TX 64 B");
const floor = perFrame.get("baseline 64 B copy")!;
for (const n of names) {
  const ns = perFrame.get(n);
  if (ns === undefined) continue;
  const fps = 1000 / ns;
  const vsBase = base === undefined ? "" : `  ratio vs split TX 64 B: ${(base / ns).toFixed(2)}`;
  console.log(`${n.padEnd(22)} median ${(ns * 1e6).toFixed(0).padStart(7)} ns/frame  ${(fps / 1e6).toFixed(3)} Mpps${vsBase}  x baseline copy: ${(ns / floor).toFixed(1)}`);
}
// Issue 17's figure: packed against split RX of 64 KiB frames, same process, same run.
const splitRx = perFrame.get("split RX 65536 B");
const packedRx = perFrame.get("packed RX 65536 B");
const copy64k = perFrame.get("baseline 64 KiB copy")!;
if (splitRx !== undefined && packedRx !== undefined) {
  const us = (ms: number): string => `${(ms * 1e3).toFixed(2).padStart(8)} us/frame`;
  console.log("\nRX of 64 KiB frames (medians)");
  console.log(`  split                 ${us(splitRx)}  x 64 KiB copy: ${(splitRx / copy64k).toFixed(1)}`);
  console.log(`  packed                ${us(packedRx)}  x 64 KiB copy: ${(packedRx / copy64k).toFixed(1)}`);
  console.log(`  baseline 64 KiB copy  ${us(copy64k)}`);
  console.log(`  packed / split        ${(packedRx / splitRx).toFixed(2)}`);
}
