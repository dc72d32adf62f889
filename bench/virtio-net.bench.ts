/**
 * Frames per second through nicvisor's virtio-net, in process, one core: the simulated virtio-net
 * driver (src/guest/virtio-net) on one side, a counting backend on the other; TX and RX for 64 B,
 * 1500 B and 64 KiB frames (the 64 KiB TX frame carries a TSO request the backend accepts; the
 * 64 KiB RX frame spreads over mergeable 2 KiB buffers). Medians, frames/s, and each task's ratio
 * to 64 B TX measured in the same run.
 *
 * Run: `node --import tsx bench/virtio-net.bench.ts` (or `npm run bench -- virtio-net`).
 */
import { Bench } from "tinybench";
import type { FrameSink, NetBackend } from "../src/devices/net/backend.js";
import { VirtioPciTransport } from "../src/devices/virtio/pci-transport.js";
import { VirtioNet } from "../src/devices/virtio-net/device.js";
import { VirtioNetDriver } from "../src/guest/virtio-net/driver.js";

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

function setup() {
  const up = new Counting();
  const nic = new VirtioNet({ mac: MAC, backend: up, queueSize: 256 });
  const t = new VirtioPciTransport(nic);
  const drv = new VirtioNetDriver(t.fn, { bytes: new Uint8Array(64 << 20), base: 0x1000000 }, {
    queueSize: 256,
    // VERSION_1, MAC, STATUS, MRG_RXBUF, CSUM, HOST_TSO4, CTRL_VQ, CTRL_RX
    want: (1n << 32n) | (1n << 5n) | (1n << 16n) | (1n << 15n) | (1n << 0n) | (1n << 11n) | (1n << 17n) | (1n << 18n),
  });
  t.fn.attach(0x200, { msi: () => undefined, intx: () => undefined }, drv.dma);
  drv.init();
  drv.ctrl(0, 0, Uint8Array.of(0)); // promiscuous off: the RX path runs the filter
  return { up, nic, drv };
}

function frame(size: number, dst: Uint8Array): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set([0x02, 9, 9, 9, 9, 9], 6);
  f.set([0x08, 0x00, 0x45, 0, (size - 14) >> 8, (size - 14) & 0xff], 12);
  f[23] = 6;
  return f;
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
const tso = new Uint8Array(12);
tso.set([1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0]); // NEEDS_CSUM, GSO TCPv4, hdr_len 54, MSS 1448, csum 34+16

for (const size of [64, 1500, 65_000]) {
  const tx = setup();
  const f = frame(size, Uint8Array.of(0x02, 9, 9, 9, 9, 9));
  const batch = Array.from({ length: BATCH }, () => f);
  const hdr = size > 1514 ? tso : undefined;
  bench.add(`virtio-net TX ${size} B x${BATCH}`, () => {
    if (tx.drv.send(batch, hdr) !== BATCH) throw new Error("TX ring full");
    tx.drv.reclaimTx();
  });
  const rx = setup();
  const g = frame(size, MAC);
  bench.add(`virtio-net RX ${size} B x${BATCH}`, () => {
    // At most as many frames as the 2 KiB buffers hold (a 64 KiB frame takes 32 of 256).
    const n = size > 1514 ? 4 : BATCH;
    for (let i = 0; i < n; i++) if (rx.up.sink?.(g) !== true) throw new Error("RX refused");
    if (rx.drv.receive().length !== n) throw new Error("frames lost");
  });
}

await bench.run();
console.table(bench.table());
const perTask = new Map<string, number>();
for (const task of bench.tasks) {
  const res = task.result;
  if ("latency" in res && "throughput" in res) {
    const frames = task.name.includes("RX 65000") ? 4 : BATCH;
    const fps = (frames * 1000) / res.latency.p50!;
    perTask.set(task.name, fps);
  }
}
const base = perTask.get(`virtio-net TX 64 B x${BATCH}`) ?? NaN;
for (const [name, fps] of perTask) {
  console.log(`${name}: median ${Math.round(fps).toLocaleString("en-US")} frames/s (${(fps / base).toFixed(2)}x 64 B TX)`);
}
