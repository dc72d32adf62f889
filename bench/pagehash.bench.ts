/**
 * Live migration's page hash over 64 MiB of "guest RAM" in a WebAssembly memory (as v86's): the
 * WebAssembly SIMD kernel hashing in place against the TypeScript one over the same bytes, the
 * previous TypeScript hash (four scalar lanes, still here as the baseline) and a plain copy of the
 * same bytes (what any pass must at least touch). Medians per MiB and ratios, one process.
 *
 * The last row is the same module compiled after V8's `--liftoff-only` switch, which the VMM sets
 * once a machine runs (`setGuestCodeTier`): what the migration's hash cost while its module was
 * compiled on first use, and why it is now compiled when its file loads.
 *
 * Run: `node --import tsx bench/pagehash.bench.ts` (or `npm run bench -- pagehash`)
 */
import { Bench } from "tinybench";
import v8 from "node:v8";
import { createPageHasher, hashPageTs } from "../src/vmm/migration/page-hash.js";
import { PAGEHASH_WASM_BASE64 } from "../src/vmm/migration/wasm/pagehash-wasm.generated.js";
import { decodeBase64 } from "../src/devices/net/base64.js";

const MIB = 64;
const PAGES = (MIB << 20) / 4096;
const wa = (globalThis as unknown as {
  WebAssembly: {
    Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
    Module: new (b: Uint8Array) => object;
    Instance: new (m: object, i: object) => { exports: unknown };
  };
}).WebAssembly;
const mem = new wa.Memory({ initial: (MIB << 20) / 65536 + 1 });
const bytes = new Uint8Array(mem.buffer);
const words = new Uint32Array(mem.buffer);
for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 0x9e3779b1) ^ (i >>> 7);
const wasm = createPageHasher(mem);
if (wasm.kind !== "wasm") {
  console.log("SKIPPED: the WebAssembly page hash did not load");
  process.exit(0);
}

/** The hash before this change (four scalar FNV-style lanes), as the baseline. */
function hashPageOld(w: Uint32Array, at: number, out: Uint32Array): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  let c = 0x2545f491;
  let d = 0x6c8e9cf5;
  for (let i = at; i < at + 1024; i += 2) {
    const x = w[i]!;
    const y = w[i + 1]!;
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ y, 0x01000193);
    c = Math.imul(c ^ x, 0x85ebca6b);
    d = Math.imul(d ^ y, 0xc2b2ae35);
  }
  out[0] = (a ^ Math.imul(b, 0x27d4eb2f)) >>> 0;
  out[1] = (c ^ Math.imul(d, 0x165667b1)) >>> 0;
}

// The same kernel compiled after the switch to V8's baseline compiler, as it used to be. The flag
// stays on, as in a VMM; the modules of the other rows were compiled before it.
v8.setFlagsFromString("--liftoff-only");
// V8 caches compiled modules by their bytes: an empty custom section ("x") makes these bytes new.
const wire = decodeBase64(PAGEHASH_WASM_BASE64);
const lateBytes = new Uint8Array(wire.length + 4);
lateBytes.set(wire);
lateBytes.set([0, 2, 1, 0x78], wire.length);
const lateX = new wa.Instance(new wa.Module(lateBytes), { env: { memory: mem } }).exports as { hashPage(p: number): number };

const out = new Uint32Array(2);
let sink = 0;
const copy = new Uint8Array(MIB << 20);
const bench = new Bench({ time: 2000, warmup: true });
bench
  .add("copy (baseline)", () => {
    copy.set(bytes.subarray(0, MIB << 20));
    sink ^= copy[4096]!;
  })
  .add("previous ts hash", () => {
    for (let p = 0; p < PAGES; p++) hashPageOld(words, p * 1024, out);
    sink ^= out[0]!;
  })
  .add("ts hash", () => {
    for (let p = 0; p < PAGES; p++) hashPageTs(words, p * 1024, out);
    sink ^= out[0]!;
  })
  .add("wasm simd hash (in place)", () => {
    for (let p = 0; p < PAGES; p++) wasm.hash(bytes, words, p * 4096, out);
    sink ^= out[0]!;
  })
  .add("wasm simd hash, compiled after --liftoff-only", () => {
    for (let p = 0; p < PAGES; p++) sink ^= lateX.hashPage(p * 4096);
  });
await bench.run();
const med = (n: string): number => {
  const r = bench.getTask(n)?.result;
  return r !== undefined && r.state === "completed" ? r.latency.p50 : NaN; // ms per 64 MiB
};
const base = med("previous ts hash");
console.table(
  ["copy (baseline)", "previous ts hash", "ts hash", "wasm simd hash (in place)", "wasm simd hash, compiled after --liftoff-only"].map((n) => ({
    task: n,
    "median ms per 64 MiB": med(n).toFixed(2),
    "ms per 256 MiB": (med(n) * 4).toFixed(1),
    "GB/s": ((MIB * 1.048576) / med(n)).toFixed(2),
    "previous ts / this": (base / med(n)).toFixed(2),
  })),
);
console.log(`(sink: ${sink})`);
