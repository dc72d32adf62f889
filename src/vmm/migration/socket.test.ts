import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ByteChannel } from "./channel.js";
import { MigrationUriError, connectMigration, listenMigration, parseMigrationUri } from "./socket.js";

const dir = mkdtempSync(join(tmpdir(), "nicvisor-mig-sock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function collect(ch: ByteChannel): { bytes: () => number[]; ended: Promise<Error | undefined> } {
  const got: number[] = [];
  let done!: (e: Error | undefined) => void;
  const ended = new Promise<Error | undefined>((r) => (done = r));
  ch.start((c) => got.push(...c), (e) => done(e));
  return { bytes: () => got, ended };
}

describe("migration transport (node:net)", () => {
  it("parses QEMU's URI spellings and refuses others", () => {
    expect(parseMigrationUri("tcp:127.0.0.1:4444")).toEqual({ kind: "tcp", host: "127.0.0.1", port: 4444 });
    expect(parseMigrationUri("tcp:[::1]:5")).toEqual({ kind: "tcp", host: "::1", port: 5 });
    expect(parseMigrationUri("tcp::4444")).toEqual({ kind: "tcp", host: "", port: 4444 });
    expect(parseMigrationUri("unix:/tmp/x.sock")).toEqual({ kind: "unix", path: "/tmp/x.sock" });
    for (const bad of ["tcp:host", "tcp:h:99999", "unix:", "exec:cat", "fd:3"]) expect(() => parseMigrationUri(bad)).toThrow(MigrationUriError);
  });

  for (const uri of [`unix:${join(dir, "m.sock")}`, "tcp:127.0.0.1:0"]) {
    it(`carries bytes both ways and reports the end (${uri.split(":")[0]})`, async () => {
      const l = await listenMigration(uri);
      const target = l.address.kind === "tcp" ? `tcp:127.0.0.1:${l.address.port}` : uri;
      const [dst, src] = await Promise.all([l.accept(), connectMigration(target)]);
      const a = collect(dst);
      const b = collect(src);
      const big = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
      await src.write(big);
      await dst.write(new Uint8Array([1, 2, 3]));
      for (let i = 0; i < 200 && (a.bytes().length < big.length || b.bytes().length < 3); i++) await new Promise((r) => setTimeout(r, 10));
      expect(a.bytes().length).toBe(big.length);
      expect(a.bytes()[12345]).toBe(12345 & 0xff);
      expect(b.bytes()).toEqual([1, 2, 3]);
      src.close();
      expect(await a.ended).toBeUndefined();
      await expect(connectMigration(target)).rejects.toThrow();
    });
  }

  it("a write waiting for the peer to read settles (rejects) when the peer goes away instead of hanging", async () => {
    const uri = `unix:${join(dir, "gone.sock")}`;
    const l = await listenMigration(uri);
    const [dst, src] = await Promise.all([l.accept(), connectMigration(uri)]);
    // The destination never reads: 64 MiB fills both socket buffers, so the write waits for drain.
    const w = src.write(new Uint8Array(64 << 20));
    let settled = false;
    void w.then(() => (settled = true), () => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    dst.close();
    await expect(w).rejects.toThrow();
  });
});
