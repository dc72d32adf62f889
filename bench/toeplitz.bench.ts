/**
 * Toeplitz hash of an IPv4 4-tuple (12 bytes) and an IPv6 4-tuple (36 bytes): the bit-serial
 * TypeScript kernel, the bit-serial WebAssembly kernel, and the TypeScript per-key table
 * (`ToeplitzHasher`), same process. Prints medians and ratios.
 *
 * Run: `node --import tsx bench/toeplitz.bench.ts`
 */
import { Bench } from "tinybench";
import { createKernels, tsKernels } from "../src/devices/net/kernels.js";
import { MICROSOFT_RSS_KEY, ToeplitzHasher } from "../src/devices/net/toeplitz.js";

const wasm = createKernels("wasm");
if (wasm === undefined) {
  console.log("SKIPPED: WebAssembly kernels did not load");
  process.exit(0);
}
const hasher = new ToeplitzHasher(MICROSOFT_RSS_KEY);
const inputs = { "ipv4 12B": 12, "ipv6 36B": 36 } as const;
const bench = new Bench({ time: 300, warmup: true });
/** Calls per benchmark sample: single calls are too short for the timer, so each sample runs a batch. */
const BATCH = 64;
let sink = 0;
for (const [label, n] of Object.entries(inputs)) {
  const d = Uint8Array.from({ length: n }, (_, i) => (i * 59 + 3) & 0xff);
  bench.add(`ts ${label}`, () => {
    for (let i = 0; i < BATCH; i++) sink = (sink + tsKernels.toeplitz(MICROSOFT_RSS_KEY, d)) | 0;
  });
  bench.add(`wasm ${label}`, () => {
    for (let i = 0; i < BATCH; i++) sink = (sink + wasm.toeplitz(MICROSOFT_RSS_KEY, d)) | 0;
  });
  bench.add(`table ${label}`, () => {
    for (let i = 0; i < BATCH; i++) sink = (sink + hasher.hash(d)) | 0;
  });
}
bench.add("table construction (40-byte key, 36-byte inputs)", () => {
  sink = (sink + new ToeplitzHasher(MICROSOFT_RSS_KEY).hash(Uint8Array.of(1))) | 0;
});
await bench.run();

const median = (name: string): number => {
  const r = bench.getTask(name)?.result;
  return r !== undefined && r.state === "completed" ? (r.latency.p50 * 1e6) / BATCH : NaN; // ns per call
};
console.table(
  Object.keys(inputs).map((label) => {
    const ts = median(`ts ${label}`);
    const wa = median(`wasm ${label}`);
    const tb = median(`table ${label}`);
    return { input: label, "ts bitwise ns": ts.toFixed(0), "wasm bitwise ns": wa.toFixed(0), "ts table ns": tb.toFixed(0), "ts/wasm": (ts / wa).toFixed(2), "wasm/table": (wa / tb).toFixed(2) };
  }),
);
console.log(`table construction median: ${(median("table construction (40-byte key, 36-byte inputs)") / 1000).toFixed(1)} us`);
console.log(`(sink: ${sink})`);
