/**
 * Driver traces recorded from real Debian guests (`nicvisor run --trace`, see test/traces/README.md)
 * replay clean against today's device models, and a deliberately changed register behaviour is
 * reported at the first access it changes.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { decodeTrace } from "../src/trace/format.js";
import { formatReplayResult, replayTrace } from "../src/trace/replay.js";

const dir = new URL("./traces/", import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith(".nvtrace") || f.endsWith(".nvtrace.gz"));

describe("shipped driver traces", () => {
  it("there are traces to replay", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const f of files) {
    const raw = readFileSync(new URL(f, dir));
    const bytes = f.endsWith(".gz") ? gunzipSync(raw) : raw;

    it(`${f} replays clean`, () => {
      const t = decodeTrace(bytes);
      const r = replayTrace(t);
      expect(r.status, formatReplayResult(r)).toBe("clean");
      expect(r.events).toBe(t.events.length);
      expect(t.events.some((e) => e.kind === "tx")).toBe(true);
      expect(t.events.some((e) => e.kind === "rx")).toBe(true);
    });

    it(`${f}: a changed register answer is reported at its first read`, () => {
      const t = decodeTrace(bytes);
      const reads = t.events.filter((e) => e.kind === "mmio-read");
      const target = reads[Math.floor(reads.length / 2)]!;
      if (target.kind !== "mmio-read") throw new Error("unreachable");
      const first = t.events.findIndex((e) => e.kind === "mmio-read" && e.addr === target.addr);
      const r = replayTrace(t, {
        tamper: (p) => ({
          configRead: (b, d, reg, s) => p.configRead(b, d, reg, s),
          configWrite: (b, d, reg, s, v) => p.configWrite(b, d, reg, s, v),
          mmioRead: (a, s) => (a === target.addr ? (p.mmioRead(a, s) ^ 1) >>> 0 : p.mmioRead(a, s)),
          mmioWrite: (a, s, v) => p.mmioWrite(a, s, v),
          ioRead: (port, s) => p.ioRead(port, s),
          ioWrite: (port, s, v) => p.ioWrite(port, s, v),
        }),
      });
      expect(r.status).toBe("differs");
      if (r.status !== "differs") return;
      expect(r.difference.index).toBe(first);
      expect(r.difference.kind).toBe("mmio-read");
      // Every shipped trace's NIC has register names (82576 BAR0, virtio's transport regions).
      expect(r.difference.where).toMatch(/^[0-9a-f]{2}:[0-9a-f]{2}\.\d BAR\d\+0x[0-9a-f]{4} \(\S+\)$/);
    });
  }
});
