/**
 * `nicvisor run --trace` on a real Debian guest, then `nicvisor replay` of what it wrote: the
 * guest's virtio_net probe and a ping replay clean against a fresh model.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { command } from "../src/cli/commands/run.js";
import { main } from "../src/cli/main.js";
import { decodeTrace } from "../src/trace/format.js";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { testImage } from "./guest/image.js";
import { skipTest } from "./skip.js";

describe("nicvisor run --trace, then nicvisor replay (a real guest)", () => {
  it("records virtio_net's probe and a ping (with --pcap on the same NIC) and the trace replays clean", async (ctx) => {
    const assets = findV86Assets();
    const img = await testImage();
    if ("missing" in assets || "missing" in img) {
      return skipTest(ctx, `SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    }
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-trace-"));
    try {
      writeFileSync(join(dir, "vmlinuz"), img.kernel);
      writeFileSync(join(dir, "initrd"), img.initrd);
      const trace = join(dir, "virtio.nvtrace");
      let out = "";
      let err = "";
      const status = await command.run(
        [
          "--kernel", join(dir, "vmlinuz"), "--initrd", join(dir, "initrd"), "--append", `${img.append} nv.modules=virtio_pci,virtio_net`,
          "--net", "virtio", "--pcap", join(dir, "p.pcap"), "--trace", trace,
          "--exec", "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ping -c 2 -W 2 10.0.2.2",
        ],
        { out: (s) => (out += s), err: (s) => (err += s) },
      );
      expect(status, out + err).toBe(0);
      expect(out).toContain("2 packets received");
      const m = /(\d+) trace events written to .*virtio\.nvtrace \((\d+) bytes\)/.exec(err);
      expect(m, err).not.toBeNull();
      const t = decodeTrace(readFileSync(trace));
      expect(t.events.length).toBe(Number(m![1]));
      expect(t.header.platform.kind).toBe("virtio");
      // Two echo requests and their replies, at least, crossed the boundary (plus ARP).
      expect(t.events.filter((e) => e.kind === "tx").length).toBeGreaterThanOrEqual(3);
      expect(t.events.filter((e) => e.kind === "rx").length).toBeGreaterThanOrEqual(3);
      let rout = "";
      const r = await main(["replay", trace], { out: (s) => (rout += s), err: (s) => (rout += s) });
      expect(r, rout).toBe(0);
      expect(rout).toMatch(/^clean: \d+ events replayed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
