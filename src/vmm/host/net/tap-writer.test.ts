import { describe, it, expect } from "vitest";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TapWriter, TAP_TX_BYTES, TAP_TX_MAX } from "./tap-writer.js";

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
        expect(w!.push(hdr, frame)).toBe(true);
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

  it("goes round the ring several times with large frames, waiting for room instead of dropping", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-tapw-"));
    const fd = openSync(join(dir, "out"), "w");
    try {
      const w = TapWriter.start(fd)!;
      const sizes: number[] = [];
      let total = 0;
      // 3.5 times the ring's bytes, in frames of 2 bytes to 64 KiB, pushed as fast as possible
      for (let i = 0; total < 3.5 * TAP_TX_BYTES; i++) {
        const n = i % 7 === 0 ? 2 : 65536 - ((i * 7919) % 60000);
        const f = new Uint8Array(n);
        f[0] = i & 0xff;
        f[n - 1] = (i * 3) & 0xff;
        expect(w.push(Uint8Array.of(0xee), f)).toBe(true);
        sizes.push(n);
        total += n + 1;
      }
      await w.stop();
      expect(w.failed).toBe(0);
      const got = readFileSync(join(dir, "out"));
      expect(got.length).toBe(total);
      let at = 0;
      sizes.forEach((n, i) => {
        expect([got[at], got[at + 1], got[at + n]]).toEqual([0xee, i & 0xff, (i * 3) & 0xff]);
        at += n + 1;
      });
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts what was queued as failed when the thread cannot start", async () => {
    const w = TapWriter.start(1, "/nonexistent/koffi.js")!;
    expect(w.push(new Uint8Array(0), Uint8Array.of(1))).toBe(true);
    expect(w.push(new Uint8Array(0), Uint8Array.of(2))).toBe(true);
    await w.stop();
    expect(w.exited).toBe(true);
    expect(w.failed).toBe(2);
    expect(w.push(new Uint8Array(0), Uint8Array.of(3))).toBe(false);
  });

  it("refuses a frame larger than a slot and counts writes that fail", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-tapw-"));
    // a read-only fd: every write(2) fails with EBADF
    const path = join(dir, "ro");
    closeSync(openSync(path, "w"));
    const fd = openSync(path, "r");
    try {
      const w = TapWriter.start(fd)!;
      expect(w.push(new Uint8Array(12), new Uint8Array(TAP_TX_MAX - 11))).toBe(false);
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
