import { describe, it, expect } from "vitest";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TapWriter, TAP_TX_SLOT } from "./tap-writer.js";

describe("TapWriter", () => {
  it("writes every pushed frame, header first, in order, before stop() resolves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-tapw-"));
    const fd = openSync(join(dir, "out"), "w");
    try {
      const w = TapWriter.start(fd);
      expect(w).toBeDefined();
      const expected: number[] = [];
      let queued = 0;
      for (let i = 0; i < 500; i++) {
        const hdr = i % 2 === 0 ? Uint8Array.of(0xa0, i & 0xff) : new Uint8Array(0);
        const frame = new Uint8Array(1 + (i % 300)).fill(i & 0xff);
        // the ring holds 64 frames: wait for room rather than drop, so the order can be checked
        while (!w!.push(hdr, frame)) await new Promise((r) => setTimeout(r, 1));
        queued++;
        expected.push(...hdr, ...frame);
      }
      expect(queued).toBe(500);
      await w!.stop();
      expect(w!.exited).toBe(true);
      expect(w!.failed).toBe(0);
      const got = readFileSync(join(dir, "out"));
      expect(got.length).toBe(expected.length);
      expect(Buffer.compare(got, Buffer.from(expected))).toBe(0);
      // after stop nothing more is taken
      expect(w!.push(new Uint8Array(0), Uint8Array.of(1))).toBe(false);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a frame larger than a slot and counts writes that fail", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-tapw-"));
    // a read-only fd: every write(2) fails with EBADF
    const path = join(dir, "ro");
    closeSync(openSync(path, "w"));
    const fd = openSync(path, "r");
    try {
      const w = TapWriter.start(fd)!;
      expect(w.push(new Uint8Array(12), new Uint8Array(TAP_TX_SLOT - 11))).toBe(false);
      expect(w.push(new Uint8Array(0), Uint8Array.of(1, 2, 3))).toBe(true);
      expect(w.push(new Uint8Array(0), Uint8Array.of(4))).toBe(true);
      await w.stop();
      expect(w.failed).toBe(2);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
