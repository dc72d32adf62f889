/**
 * Frames per second through nicvisor's virtio-net, in process, one core: the simulated virtio-net
 * driver (src/guest/virtio-net) on one side, a counting backend on the other; TX and RX for 64 B,
 * 1500 B and 64 KiB frames, split and packed rings (the 64 KiB RX frame spreads over mergeable
 * 2 KiB buffers; the simulated driver sends plain frames, without a TSO header). Medians,
 * frames/s, and each task's ratio to split-ring 64 B TX measured in the same run.
 *
 * Run: `node --import tsx bench/virtio-net.bench.ts` (or `npm run bench -- virtio-net`).
 */
import { Bench } from "tinybench";
import type { FrameSink, NetBackend } from "../src/devices/net/backend.js";
import { createVirtioNetTestbed } from "../src/guest/virtio-net/testbed.js";

const BATCH = 64;
const MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);

class Counting implements NetBackend {
  sent = 0;
  sink: FrameSink | undefined;
  readonly offloads = { csum: true, tso4: true, tso6: true };
  transmit(): void {
    this.sent++;
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
}

function setup(packed: boolean, maxFrame: number) {
  const up = new Counting();
  const tb = createVirtioNetTestbed({
    backend: up,
    device: { queueSize: 256, packed },
    driver: { packed, ringSize: 256, rxBufSize: 2048, maxTxFrame: maxFrame },
    memSize: 128 << 20,
  });
  tb.driver.probe();
  tb.driver.open();
  return { up, d: tb.driver };
}

function frame(size: number, dst: Uint8Array): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set([0x02, 9, 9, 9, 9, 9], 6);
  f.set([0x08, 0x00], 12);
  return f;
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
const rxFrames = (size: number): number => (size > 1514 ? 4 : BATCH);

for (const packed of [false, true]) {
  const ring = packed ? "packed" : "split";
  for (const size of [64, 1500, 65_000]) {
    const tx = setup(packed, size);
    const f = frame(size, Uint8Array.of(0x02, 9, 9, 9, 9, 9));
    bench.add(`virtio-net ${ring} TX ${size} B x${BATCH}`, () => {
      for (let i = 0; i < BATCH; i++) if (!tx.d.queue(f)) throw new Error("TX ring full");
      tx.d.flush();
      tx.d.reclaim();
    });
    const rx = setup(packed, 1514);
    const g = frame(size, MAC);
    const n = rxFrames(size);
    bench.add(`virtio-net ${ring} RX ${size} B x${n}`, () => {
      // A 64 KiB frame takes 32 of the 256 mergeable 2 KiB buffers: 4 per round.
      for (let i = 0; i < n; i++) if (rx.up.sink?.(g) !== true) throw new Error("RX refused");
      if (rx.d.receive().length !== n) throw new Error("frames lost");
    });
  }
}

await bench.run();
console.table(bench.table());
const perTask = new Map<string, number>();
for (const task of bench.tasks) {
  const res = task.result;
  if ("latency" in res) {
    const frames = Number(/x(\d+)$/.exec(task.name)?.[1] ?? BATCH);
    perTask.set(task.name, (frames * 1000) / res.latency.p50!);
  }
}
const base = perTask.get(`virtio-net split TX 64 B x${BATCH}`) ?? NaN;
for (const [name, fps] of perTask) {
  console.log(`${name}: median ${Math.round(fps).toLocaleString("en-US")} frames/s (${(fps / base).toFixed(2)}x split 64 B TX)`);
}
