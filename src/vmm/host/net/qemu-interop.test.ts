import { describe, it, expect } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { connectStream, listenStream, openDgram, type StreamBackend } from "./socket.js";
import type { NetBackend } from "../../../devices/net/backend.js";
import { FrameRecorder, guestFrames } from "../../../devices/net/testing.js";
import { parseFrame, IpProto } from "../../../devices/net/parse.js";
import { formatMac, parseIpv4, parseMac } from "../../../devices/net/frames.js";
import { skipTest } from "../../../../test/skip.js";

const QEMU = "qemu-system-i386";
const QEMU_MAC = "52:54:00:12:34:56";

function qemuMissing(): string | undefined {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  if (r.status !== 0) return `${QEMU} is not installed`;
  const m = /version (\d+)\.(\d+)/.exec(r.stdout);
  if (m === null || Number(m[1]) * 100 + Number(m[2]) < 702) return `${QEMU} is older than 7.2 (no -netdev stream/dgram)`;
  return undefined;
}

async function until(cond: () => boolean, maxWaits: number): Promise<boolean> {
  for (let i = 0; i < maxWaits && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

/** Frames in a pcap file (classic format, as QEMU's filter-dump writes it). */
function pcapFrames(path: string): Uint8Array[] {
  if (!existsSync(path)) return [];
  const b = new Uint8Array(readFileSync(path));
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Uint8Array[] = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const cap = v.getUint32(o + 8, true);
    out.push(b.slice(o + 16, o + 16 + cap));
    o += 16 + cap;
  }
  return out;
}

function isDhcpDiscoverFrom(f: Uint8Array, mac: string): boolean {
  const p = parseFrame(f);
  return formatMac(f, 6) === mac && p.l4Proto === IpProto.UDP && p.dstPort === 67 && p.srcPort === 68;
}

/**
 * Boots QEMU with no disk: SeaBIOS runs the NIC's iPXE ROM, which sends DHCP discovers through
 * the netdev. QEMU's filter-dump records what crosses the netdev in both directions.
 */
function startQemu(netdev: string, dump: string): ChildProcess {
  return spawn(QEMU, [
    "-nodefaults", "-display", "none", "-serial", "none", "-monitor", "none", "-m", "64",
    "-netdev", `${netdev},id=n0`, "-device", `e1000,netdev=n0,mac=${QEMU_MAC}`,
    "-object", `filter-dump,id=d0,netdev=n0,file=${dump}`, "-boot", "n",
  ], { stdio: "ignore" });
}

async function exchange(be: NetBackend, qemu: ChildProcess, dump: string): Promise<void> {
  const rec = new FrameRecorder().attach(be);
  const gotDhcp = await until(() => rec.frames.some((r) => isDhcpDiscoverFrom(r.frame, QEMU_MAC)), 1200);
  expect(qemu.exitCode).toBe(null);
  expect(gotDhcp).toBe(true);
  // Our frame towards QEMU: it must appear, byte for byte, in QEMU's dump of the netdev.
  const probe = guestFrames.arpRequest(parseMac("02:00:00:aa:bb:cc"), parseIpv4("10.0.2.2"), parseIpv4("10.0.2.15"));
  be.transmit(probe);
  const seen = await until(() => pcapFrames(dump).some((f) => f.length === probe.length && f.every((x, i) => x === probe[i])), 400);
  expect(seen).toBe(true);
}

describe("interop with QEMU's -netdev stream / dgram", () => {
  it("stream: QEMU (client) and a nicvisor stream server exchange frames both ways", { timeout: 120_000 }, async (ctx) => {
    const missing = qemuMissing();
    if (missing !== undefined) return skipTest(ctx, `SKIPPED: ${missing}`);
    const dir = mkdtempSync(join(tmpdir(), "nv-qemu-"));
    const server = await listenStream({ port: 0 });
    const dump = join(dir, "stream.pcap");
    const qemu = startQemu(`stream,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${server.port}`, dump);
    try {
      await exchange(server, qemu, dump);
      expect(server.counters.protocolErrors).toBe(0);
    } finally {
      qemu.kill("SIGKILL");
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stream: QEMU (server=on) and a nicvisor stream client exchange frames both ways", { timeout: 120_000 }, async (ctx) => {
    const missing = qemuMissing();
    if (missing !== undefined) return skipTest(ctx, `SKIPPED: ${missing}`);
    const dir = mkdtempSync(join(tmpdir(), "nv-qemu-"));
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const dump = join(dir, "stream-server.pcap");
    const qemu = startQemu(`stream,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`, dump);
    let client: StreamBackend | undefined;
    try {
      for (let i = 0; i < 200 && client === undefined; i++) {
        client = await connectStream({ port }).catch(() => undefined);
        if (client === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(client).toBeDefined();
      await exchange(client!, qemu, dump);
    } finally {
      qemu.kill("SIGKILL");
      client?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("dgram: QEMU and a nicvisor dgram endpoint exchange frames both ways", { timeout: 120_000 }, async (ctx) => {
    const missing = qemuMissing();
    if (missing !== undefined) return skipTest(ctx, `SKIPPED: ${missing}`);
    const dir = mkdtempSync(join(tmpdir(), "nv-qemu-"));
    // A free port for QEMU's end: bind, read, release.
    const tmp = createSocket("udp4");
    await new Promise<void>((r) => tmp.bind(0, "127.0.0.1", () => r()));
    const qemuPort = tmp.address().port;
    await new Promise<void>((r) => tmp.close(() => r()));
    const be = await openDgram({ localPort: 0, remotePort: qemuPort });
    const dump = join(dir, "dgram.pcap");
    const qemu = startQemu(
      `dgram,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${be.localPort}`,
      dump,
    );
    try {
      await exchange(be, qemu, dump);
      expect(be.counters.protocolErrors).toBe(0);
    } finally {
      qemu.kill("SIGKILL");
      be.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
