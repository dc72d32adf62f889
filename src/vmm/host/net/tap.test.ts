import { describe, it, expect } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { TapBackend, tapUnavailableReason } from "./tap.js";
import { HostStub } from "../../../devices/net/host-stub.js";
import { buildTcp, ipFrame, parseIpv4, parseMac } from "../../../devices/net/frames.js";
import { csumFold, pseudoHeaderSum } from "../../../devices/net/checksum.js";
import { IpProto, parseFrame } from "../../../devices/net/parse.js";
import { skipTest } from "../../../../test/skip.js";

function have(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
}

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Runs a command without blocking the event loop (the TAP reader must keep running). */
function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", (status) => resolve({ status, out }));
  });
}

function skipReason(): string | undefined {
  const r = tapUnavailableReason();
  if (r !== undefined) return r;
  if (!have("ip", ["-V"])) return "no ip(8)";
  if (!have("ping", ["-V"])) return "no ping(8)";
  return undefined;
}

describe("TAP backend", () => {
  // transmit on the writer thread (the default) and on the calling thread
  it.for([true, false])("a namespace pings a host stub behind the TAP (IPv4 ARP+echo, IPv6 NS+echo), and GSO frames reach the kernel (txThread %s)", async (txThread, ctx) => {
    const reason = skipReason();
    if (reason !== undefined) return skipTest(ctx, `SKIPPED: ${reason}`);
    const ns = `nvtest-${process.pid}-${txThread ? "t" : "s"}`;
    const ifname = `nvt${process.pid % 100000}${txThread ? "t" : "s"}`;
    const added = run("ip", ["netns", "add", ns]);
    if (added.status !== 0) return skipTest(ctx, `SKIPPED: cannot create a network namespace: ${added.out.trim()}`);
    let tap: TapBackend | undefined;
    try {
      tap = TapBackend.open({ name: ifname, txThread });
      expect(tap.name).toBe(ifname);
      const stub = new HostStub({ backend: tap });
      const inNs = (...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);
      expect(run("ip", ["link", "set", ifname, "netns", ns]).status).toBe(0);
      inNs("sysctl", "-qw", `net.ipv6.conf.${ifname}.accept_dad=0`);
      expect(inNs("ip", "addr", "add", "10.0.2.15/24", "dev", ifname).status).toBe(0);
      expect(inNs("ip", "link", "set", ifname, "up").status).toBe(0);

      const p4 = await runAsync("ip", ["netns", "exec", ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "3", "10.0.2.2"]);
      expect(p4.out).toContain("3 received");
      expect(p4.status).toBe(0);
      const p6 = await runAsync("ip", ["netns", "exec", ns, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "3", `fe80::2%${ifname}`]);
      expect(p6.out).toContain("2 received");
      expect(stub.counters).toMatchObject({ arpReplies: expect.any(Number), echoReplies: 3, echo6Replies: 2 });
      expect(stub.counters.arpReplies).toBeGreaterThanOrEqual(1);
      expect(stub.counters.neighborAdvertisements).toBeGreaterThanOrEqual(1);
      expect(tap.counters.rxErrors).toBe(0);

      // A TSO frame handed to the kernel through the vnet header (or segmented in software).
      const before = JSON.parse(inNs("ip", "-s", "-j", "link", "show", ifname).out)[0].stats64.rx.bytes as number;
      const nsMac = parseMac(JSON.parse(inNs("ip", "-j", "link", "show", ifname).out)[0].address as string);
      const f = ipFrame({ srcMac: stub.mac, dstMac: nsMac, src: parseIpv4("10.0.2.2"), dst: parseIpv4("10.0.2.15"), proto: IpProto.TCP, l4: buildTcp({ srcPort: 40000, dstPort: 9, seq: 1, flags: 0x18, payload: new Uint8Array(4000).fill(0x5a) }) });
      const p = parseFrame(f);
      const seed = csumFold(pseudoHeaderSum(f, p, f.length - p.l4Offset));
      f[p.l4Offset + 16] = seed >> 8;
      f[p.l4Offset + 17] = seed & 0xff;
      const txBefore = tap.counters.txFrames;
      tap.transmit(f, { needsCsum: { start: p.l4Offset, offset: 16 }, gso: { type: "tcpv4", size: 1448, hdrLen: p.payloadOffset } });
      expect(tap.counters.txDropped).toBe(0);
      expect(tap.counters.txFrames - txBefore).toBe(tap.offloads.tso4 ? 1 : 3);
      const after = JSON.parse(inNs("ip", "-s", "-j", "link", "show", ifname).out)[0].stats64.rx.bytes as number;
      expect(after - before).toBeGreaterThanOrEqual(4000);
      // Backpressure: a receiver without buffers holds reading; rxReady() resumes it, nothing lost.
      let open = false;
      let refused = 0;
      tap.setReceiver((frame, meta) => {
        if (!open) return (refused++, false);
        stub.receive(frame, meta);
        return true;
      });
      const echoBefore = stub.counters.echoReplies;
      const gated = runAsync("ip", ["netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "5", "10.0.2.2"]);
      for (let i = 0; i < 250 && refused === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(refused).toBeGreaterThan(0);
      open = true;
      tap.rxReady();
      const pg = await gated;
      expect(pg.out).toContain("2 received");
      expect(stub.counters.echoReplies - echoBefore).toBe(2);
      // Frames are views of the read slab: one a receiver keeps must stay intact while later reads
      // go on (several slabs' worth here: 40 pings of 30000 bytes, about 1.2 MB of fragments).
      const kept: Array<{ frame: Uint8Array; copy: Uint8Array }> = [];
      tap.setReceiver((frame) => (kept.push({ frame, copy: frame.slice() }), true));
      await runAsync("ip", ["netns", "exec", ns, "ping", "-n", "-q", "-c", "40", "-i", "0.01", "-W", "1", "-s", "30000", "10.0.2.2"]);
      const keptBytes = kept.reduce((n, k) => n + k.frame.length, 0);
      expect(keptBytes).toBeGreaterThan(1_000_000);
      expect(kept.filter((k) => !k.frame.every((b, i) => b === k.copy[i])).length).toBe(0);
      // A receiver that borrows gets every frame in the same bytes; a frame it refuses is held
      // untouched (reading pauses) and handed over again, intact, on rxReady().
      const offsets = new Set<number>();
      let first: Uint8Array | undefined;
      let again: Uint8Array | undefined;
      let n = 0;
      tap.setReceiver(
        (frame) => {
          offsets.add(frame.byteOffset);
          n++;
          if (first === undefined) return (first = frame.slice()), false;
          if (again === undefined) again = frame.slice();
          return true;
        },
        { borrows: true },
      );
      const pinging = runAsync("ip", ["netns", "exec", ns, "ping", "-n", "-q", "-c", "20", "-i", "0.01", "-W", "1", "10.0.2.2"]);
      for (let i = 0; i < 250 && first === undefined; i++) await new Promise((r) => setTimeout(r, 20));
      tap.rxReady();
      await pinging;
      expect(again).toEqual(first);
      expect(n).toBeGreaterThan(10);
      expect(offsets.size).toBeLessThanOrEqual(2);
      console.log(`TAP ${ifname}: vnet offloads ${JSON.stringify(tap.offloads)}, counters ${JSON.stringify(tap.counters)}`);
    } finally {
      tap?.close();
      await tap?.closed();
      run("ip", ["netns", "del", ns]);
    }
    expect(run("ip", ["netns", "list"]).out).not.toContain(ns);
  });
});
