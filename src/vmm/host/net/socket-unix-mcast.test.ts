import { describe, it, expect, afterEach } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectStream, listenStream, openDgramMulticast, isIpv4Multicast, SocketBackendError } from "./socket.js";

async function until(cond: () => boolean, maxWaits = 500): Promise<void> {
  for (let i = 0; i < maxWaits && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const frame = (tag: number): Uint8Array => {
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f[6] = 0x52;
  f[11] = tag;
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = tag;
  return f;
};

describe("socket backends: Unix stream and multicast dgram (QEMU addr.type=unix, dgram multicast)", () => {
  it("stream over a Unix socket path carries frames both ways; a non-socket file is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-sock-"));
    dirs.push(dir);
    const path = join(dir, "net.sock");
    const server = await listenStream({ port: 0, path });
    const client = await connectStream({ port: 0, path });
    try {
      const atServer: number[] = [];
      const atClient: number[] = [];
      server.setReceiver((f) => atServer.push(f[14]!) > 0);
      client.setReceiver((f) => atClient.push(f[14]!) > 0);
      await until(() => server.connected);
      for (let i = 1; i <= 3; i++) client.transmit(frame(i));
      server.transmit(frame(9));
      await until(() => atServer.length === 3 && atClient.length === 1);
      expect(atServer).toEqual([1, 2, 3]);
      expect(atClient).toEqual([9]);
    } finally {
      client.close();
      server.close();
    }
    const file = join(dir, "plain");
    writeFileSync(file, "x");
    await expect(listenStream({ port: 0, path: file })).rejects.toThrow(SocketBackendError);
  });

  it("multicast: three members on one group each get the others' frames and never their own", async () => {
    const port = 20000 + (process.pid % 20000);
    const members = await Promise.all([0, 1, 2].map(() => openDgramMulticast({ group: "230.0.0.1", port })));
    try {
      const got = members.map(() => [] as number[]);
      members.forEach((m, i) => m.setReceiver((f) => got[i]!.push(f[14]!) > 0));
      members.forEach((m, i) => m.transmit(frame(i + 1)));
      await until(() => got.every((g) => g.length === 2));
      await new Promise((r) => setTimeout(r, 20));
      expect(got.map((g) => [...g].sort())).toEqual([[2, 3], [1, 3], [1, 2]]);
      expect(members.map((m) => m.counters.txFrames)).toEqual([1, 1, 1]);
    } finally {
      for (const m of members) m.close();
    }
  });

  it("multicast: refuses a group outside 224.0.0.0/4 and a non-loopback interface", async () => {
    expect(isIpv4Multicast("239.255.0.1")).toBe(true);
    expect(isIpv4Multicast("240.0.0.1")).toBe(false);
    expect(isIpv4Multicast("127.0.0.1")).toBe(false);
    await expect(openDgramMulticast({ group: "10.0.0.1", port: 1234 })).rejects.toThrow(/not an IPv4 multicast group/);
    await expect(openDgramMulticast({ group: "230.0.0.1", port: 1234, localHost: "10.0.0.1" })).rejects.toThrow(/loopback/);
  });
});
