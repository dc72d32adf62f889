import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { skipTest } from "./skip.js";

const machine = fileURLToPath(new URL("../src/vmm/machine.ts", import.meta.url));
const backend = fileURLToPath(new URL("../src/vmm/cpu/v86-backend.ts", import.meta.url));
const assets = fileURLToPath(new URL("../src/vmm/host/v86-assets.ts", import.meta.url));

// In a child process (the tier is process-wide): run a machine's BIOS, then compile a one-function
// module whose loop V8 would optimize, spin it, and let V8's trace say which tiers compiled it.
const probe = (tier: string): string => `
import { readFileSync } from "node:fs";
import { Machine } from ${JSON.stringify(machine)};
import { setGuestCodeTier } from ${JSON.stringify(backend)};
import { requireV86Assets } from ${JSON.stringify(assets)};
if (${JSON.stringify(tier)} === "optimizing") await setGuestCodeTier("optimizing");
const a = requireV86Assets();
const m = await Machine.create({ bios: readFileSync(a.biosPath), engine: { wasmPath: a.wasmPath, v86Version: a.v86Version }, memMiB: 32 });
// SeaBIOS runs (no kernel): enough for v86's interpreter functions to get hot.
await m.start();
await new Promise((r) => setTimeout(r, 1500));
await m.stop();
// (func (param i32) (result i32) loop: local0 -= 1, branch while non-zero; return local0): body 16 bytes.
const bytes = new Uint8Array([0,0x61,0x73,0x6d,1,0,0,0, 1,6,1,0x60,1,0x7f,1,0x7f, 3,2,1,0, 7,8,1,4,0x73,0x70,0x69,0x6e,0,0,
  10,0x12,1,0x10,0,3,0x40,0x20,0,0x41,1,0x6b,0x22,0,0x0d,0,0x0b,0x20,0,0x0b]);
const { instance } = await WebAssembly.instantiate(bytes);
const t0 = performance.now();
let x = 0;
while (performance.now() - t0 < 1000) x += instance.exports.spin(100000);
await new Promise((r) => setTimeout(r, 1000));
console.log("spun", x);
`;

function trace(tier: string): string {
  const r = spawnSync(process.execPath, ["--trace-wasm-compilation-times", "--import", "tsx", "--input-type=module", "-e", probe(tier)], { encoding: "utf8", maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain("spun 0");
  return r.stdout;
}

/** The module (V8's address for it) with the most functions in a trace: v86's engine, by far. */
function engineModuleTurbofan(out: string): boolean {
  const top = new Map<string, number>();
  for (const m of out.matchAll(/function (0x[0-9a-f]+)#(\d+) using/g)) top.set(m[1]!, Math.max(top.get(m[1]!) ?? 0, Number(m[2])));
  const engine = [...top].sort((a, b) => b[1] - a[1])[0];
  expect(engine?.[1]).toBeGreaterThan(1000);
  return new RegExp(`${engine![0]}#\\d+ using TurboFan`).test(out);
}

// V8's trace lines for function #0 of a module with a 16-byte body: the probe's loop.
const liftoff = /#0 using Liftoff, took .* bodysize 16 /;
const turbofan = /#0 using TurboFan, took .* bodysize 16 /;

describe("setGuestCodeTier", () => {
  it("after a machine exists, later modules compile with the baseline tier only, unless told otherwise", (ctx) => {
    const a = findV86Assets();
    if ("missing" in a) return skipTest(ctx, `SKIPPED: ${a.missing}`);
    const baseline = trace("baseline");
    expect(baseline).toMatch(liftoff);
    expect(baseline).not.toMatch(turbofan);
    // v86's own engine was compiled before the switch and still tiers up.
    expect(engineModuleTurbofan(baseline)).toBe(true);
    const optimizing = trace("optimizing");
    expect(optimizing).toMatch(liftoff);
    expect(optimizing).toMatch(turbofan);
  }, 120_000);
});
