import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../main.js";
import { parseRunArgs } from "./run.js";
import { createTraceBench } from "../../trace/bench.js";
import { decodeTrace, encodeTrace } from "../../trace/format.js";

/** A small trace: firmware's enumeration and a few register reads of the 82576. */
function igbTrace(): Uint8Array {
  const b = createTraceBench({ kind: "igb" });
  const nic = b.find(0x8086, 0x10c9)!;
  for (const off of [0, 8, 0x10, 0x5400]) b.access.mmioRead(nic.bars.get(0)! + off, 4);
  return b.recorder.finish();
}

async function cli(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const status = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { status, out, err };
}

describe("nicvisor replay", () => {
  const dir = mkdtempSync(join(tmpdir(), "nicvisor-replay-"));

  it("exits 0 on a clean replay, 1 on a difference, 2 on a bad trace", async () => {
    const bytes = igbTrace();
    const good = join(dir, "good.nvtrace");
    writeFileSync(good, bytes);
    const ok = await cli(["replay", good]);
    expect(ok.status).toBe(0);
    expect(ok.out).toMatch(/^clean: \d+ events replayed \(cfg-read \d+/);

    // The trace says STATUS read something else than the model answers.
    const t = decodeTrace(bytes);
    const idx = t.events.findIndex((e) => e.kind === "mmio-read" && (e.addr & 0xffff) === 8);
    const e = t.events[idx]!;
    if (e.kind !== "mmio-read") throw new Error("unreachable");
    e.value = (e.value ^ 0x2) >>> 0;
    const changed = join(dir, "changed.nvtrace");
    writeFileSync(changed, encodeTrace(t));
    const d = await cli(["replay", changed]);
    expect(d.status).toBe(1);
    expect(d.out).toContain(`differs at event ${idx} of ${t.events.length}`);
    expect(d.out).toContain("BAR0+0x0008 (STATUS)");

    const bad = join(dir, "bad.nvtrace");
    writeFileSync(bad, bytes.subarray(0, bytes.length - 3));
    const b = await cli(["replay", bad]);
    expect(b.status).toBe(2);
    expect(b.err).toMatch(/bad trace .*: (events\[\d+\]|end)/);

    expect((await cli(["replay"])).status).toBe(2);
  });

  it("run --trace takes virtio, igb and vf, and refuses the others", () => {
    expect(parseRunArgs(["--net", "igb", "--trace", "x"]).trace).toBe("x");
    expect(parseRunArgs(["--net", "virtio,packed", "--trace", "x"]).trace).toBe("x");
    expect(() => parseRunArgs(["--trace", "x"])).toThrow(/--trace records/);
    expect(() => parseRunArgs(["--net", "vf,failover", "--trace", "x"])).toThrow(/--trace records/);
    expect(() => parseRunArgs(["--net", "igb", "--trace", "x", "--incoming", "tcp:127.0.0.1:4444"])).toThrow(/--incoming/);
  });
});
