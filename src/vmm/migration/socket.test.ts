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

  it("a closing channel reads on until its peer closes: the peer, still writing, reads the last bytes, its writes settle, and close settles after it", async () => {
    const uri = `unix:${join(dir, "linger.sock")}`;
    const l = await listenMigration(uri);
    const [dst, src] = await Promise.all([l.accept(), connectMigration(uri)]);
    collect(dst);
    const b = collect(src);
    // The source streams RAM; the destination says why it stops (an ERROR) and closes.
    let writing = true;
    let writeError: unknown;
    const flood = (async () => {
      const chunk = new Uint8Array(1 << 20);
      while (writing) {
        try {
          await src.write(chunk);
        } catch (e) {
          writeError = e;
          return;
        }
      }
    })();
    await dst.write(new Uint8Array([7, 7, 7]));
    let closed = false;
    const closing = Promise.resolve(dst.close()).then(() => (closed = true));
    // The source reads the bytes and then the end, with no reset (a socket destroyed with unread
    // bytes is reset, and a reset may throw away what the peer had not read yet).
    expect(await b.ended).toBeUndefined();
    expect(b.bytes()).toEqual([7, 7, 7]);
    // Its write, cut off by the end, settles (rejects) instead of waiting for a drain for ever.
    await flood;
    expect(writeError).toBeDefined();
    writing = false;
    src.close();
    await closing;
    expect(closed).toBe(true);
  });
});
