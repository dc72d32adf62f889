import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { adviseHugePages, readFileHuge, transparentHugePageMode } from "./memory.js";
import { skipTest } from "../../../test/skip.js";

/** Mappings of this process that carry the `hg` (MADV_HUGEPAGE) flag. */
function hugeAdvisedMappings(): number {
  return readFileSync("/proc/self/smaps", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("VmFlags:") && / hg( |$)/.test(l)).length;
}

describe("adviseHugePages", () => {
  it("marks a wasm memory's pages MADV_HUGEPAGE", async (ctx) => {
    const mode = transparentHugePageMode();
    if (mode === undefined || mode === "never") return skipTest(ctx, `SKIPPED: transparent huge pages unavailable here (${mode ?? "no /sys/kernel/mm/transparent_hugepage"})`);
    // The tsconfig has no DOM or WebAssembly typings; Node has the API.
    const wa = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
    const mem = new wa.Memory({ initial: 512 }); // 32 MiB
    const before = hugeAdvisedMappings();
    expect(await adviseHugePages(new Uint8Array(mem.buffer, 64 << 10, 16 << 20))).toBe(true);
    expect(hugeAdvisedMappings()).toBeGreaterThan(before);
  });

  it("does nothing for an empty range", async () => {
    expect(await adviseHugePages(new Uint8Array(0))).toBe(false);
  });
});

describe("readFileHuge", () => {
  it("reads small and large files byte for byte", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-huge-"));
    try {
      for (const size of [0, 5, 3 << 20]) {
        const data = new Uint8Array(size).map((_, i) => (i * 131 + (i >>> 12)) & 0xff);
        const f = join(dir, `f${size}`);
        writeFileSync(f, data);
        const got = await readFileHuge(f);
        expect(got.length).toBe(size);
        expect(Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.length), Buffer.from(data))).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
