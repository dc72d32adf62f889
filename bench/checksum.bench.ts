/**
 * Internet checksum: TypeScript vs WebAssembly (SIMD) kernels, same process, for input sizes from
 * an IPv4 header to a 64 KiB TSO frame. Prints the median time per call and the ratio; the size
 * where WebAssembly starts to win sets `CSUM_WASM_MIN_BYTES` in src/devices/net/kernels.ts.
 *
 * Run: `node --import tsx bench/checksum.bench.ts`
 */
import { Bench } from "tinybench";
import { createKernels, tsKernels } from "../src/devices/net/kernels.js";

const wasm = createKernels("wasm");
if (wasm === undefined) {
  console.log("SKIPPED: WebAssembly kernels did not load");
  process.exit(0);
}

const SIZES = [20, 64, 128, 256, 512, 1500, 9000, 65536];
const bench = new Bench({ time: 300, warmup: true });
/** Calls per benchmark sample: single calls are too short for the timer, so each sample runs a batch. */
const BATCH = 64;
let sink = 0;
for (const n of SIZES) {
  const d = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);
  bench.add(`ts ${n}`, () => {
    for (let i = 0; i < BATCH; i++) sink = (sink + tsKernels.csumPartial(d, 0, n, 0)) | 0;
  });
  bench.add(`wasm ${n}`, () => {
    for (let i = 0; i < BATCH; i++) sink = (sink + wasm.csumPartial(d, 0, n, 0)) | 0;
  });
}
await bench.run();

const median = (name: string): number => {
  const r = bench.getTask(name)?.result;
  return r !== undefined && r.state === "completed" ? (r.latency.p50 * 1e6) / BATCH : NaN; // ns per call
};
const rows = SIZES.map((n) => {
  const ts = median(`ts ${n}`);
  const wa = median(`wasm ${n}`);
  return { bytes: n, "ts median ns": ts.toFixed(0), "wasm median ns": wa.toFixed(0), "ts/wasm": (ts / wa).toFixed(2), "ts MB/s": ((n / ts) * 1e3).toFixed(0), "wasm MB/s": ((n / wa) * 1e3).toFixed(0) };
});
console.table(rows);
console.log(`(sink: ${sink})`);
