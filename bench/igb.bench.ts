/**
 * Frames per second through one 82576 VF's TX and RX rings (in-process: simulated igbvf driver,
 * PF agent, internal switch), for 64-byte and 1500-byte frames.
 *
 * Run: `node --import tsx bench/igb.bench.ts`
 */
import { Bench } from "tinybench";
import { createIgbTestbed } from "../src/vmm/pf-agent/testbed.js";
import { CountingBackend } from "../src/devices/net/testing.js";

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
