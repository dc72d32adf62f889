/**
 * What the live-migration tests on a shared bridge have in common (migration-bridge.test.ts,
 * migration-soak.test.ts): a network namespace with a bridge br0 at 10.0.7.1/24 and this
 * process's TAP on it (for a {@link SeqPeer}), the children (migration-bridge-child.ts) started
 * and read, and the guest kernel's ICMP counters.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TapBackend, tapUnavailableReason } from "../../src/vmm/host/net/tap.js";
import type { MigrationInfo } from "../../src/vmm/migration/info.js";
import { SeqPeer } from "./seq-peer.js";

const child = new URL("./migration-bridge-child.ts", import.meta.url).pathname;

function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** A child process (migration-bridge-child.ts) and what it printed. */
export interface Child {
  proc: ChildProcess;
  out: () => string;
  /** Resolves once the output matches `re` (or the child exited). */
  marker: (re: RegExp) => Promise<void>;
  exit: Promise<number | null>;
}

/** The child's `RESULT {...}` line, parsed. */
export function childResult(c: Child): Record<string, unknown> | undefined {
  const line = /^RESULT (.*)$/m.exec(c.out())?.[1];
  return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
}

/** The child's `SKIPPED: reason`, if it printed one. */
export const childSkipped = (c: Child): string | undefined => /^SKIPPED: (.*)$/m.exec(c.out())?.[1];

/** The namespace with its bridge, the peer TAP, the children and a scratch folder, torn down by {@link BridgeSegment.close}. */
export class BridgeSegment {
  readonly ns = `nvmig-${process.pid}`;
  /** A short number for TAP names (15 characters at most). */
  readonly tag = process.pid % 100000;
  readonly dir = mkdtempSync(join(tmpdir(), "nicvisor-migbr-"));
  peerTap: TapBackend | undefined;
  private readonly procs: ChildProcess[] = [];
  private state: string | undefined | null = null;

  /** Sets the segment up once: undefined when it is there, else why it cannot be. */
  setUp(): string | undefined {
    if (this.state !== null) return this.state;
    this.state = this.make();
    return this.state;
  }

  private make(): string | undefined {
    const why = tapUnavailableReason();
    if (why !== undefined) return `TAP unavailable: ${why}`;
    const added = sh("ip", ["netns", "add", this.ns]);
    if (added.status !== 0) return `cannot create a network namespace: ${added.out.trim()}`;
    const name = `nvmp${this.tag}`;
    this.peerTap = TapBackend.open({ name });
    const ns = this.ns;
    for (const args of [
      // An address of its own: a bridge otherwise takes its lowest port's, and changes it as the
      // children's TAPs come and go, which the guest (answering the namespace's pings) sees as
      // its peer changing MAC.
      ["netns", "exec", ns, "ip", "link", "add", "br0", "address", "02:4e:56:00:07:01", "type", "bridge"],
      ["netns", "exec", ns, "ip", "addr", "add", "10.0.7.1/24", "dev", "br0"],
      ["netns", "exec", ns, "ip", "link", "set", "br0", "up"],
      ["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
      ["link", "set", name, "netns", ns],
      ["netns", "exec", ns, "ip", "link", "set", name, "master", "br0"],
      ["netns", "exec", ns, "ip", "link", "set", name, "up"],
    ]) {
      const r = sh("ip", args);
      if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
    }
    return undefined;
  }

  /** A unix-socket migration URI in the scratch folder. */
  uri(name: string): string {
    return `unix:${join(this.dir, `${name}.sock`)}`;
  }

  /** Starts `ping -i 0.01` from the namespace to the guest (10.0.7.15); `count` 0 runs until stopped (SIGINT prints the summary). */
  nsPing(count: number): { out: () => string; done: Promise<void>; stop: () => void } {
    const args = ["netns", "exec", this.ns, "ping", "-i", "0.01", ...(count > 0 ? ["-c", String(count)] : []), "-W", "2", "10.0.7.15"];
    const p = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.procs.push(p);
    let out = "";
    p.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    const done = new Promise<void>((r) => p.on("exit", () => r()));
    return { out: () => out, done, stop: () => void p.kill("SIGINT") };
  }

  /**
   * Starts a sequence-numbered UDP stream both ways between the namespace and the guest for
   * `seconds`: iperf3 (Debian's, host side) as the client of the guest's `iperf3 -s` with `-u
   * --bidir`, 200 kbit/s of 256-byte datagrams each way (about 98 a second). Each datagram carries
   * iperf3's sequence number; each receiver counts the lost and the out-of-order ones.
   */
  nsUdp(seconds: number): { done: Promise<UdpReport | string> } {
    const args = ["netns", "exec", this.ns, "iperf3", "-c", "10.0.7.15", "-u", "-b", "200K", "-l", "256", "--bidir", "-t", String(seconds), "-J", "--connect-timeout", "5000"];
    const p = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.procs.push(p);
    let out = "";
    p.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const done = new Promise<UdpReport | string>((r) => p.on("exit", () => r(parseIperfUdp(out))));
    return { done };
  }

  /** Starts a child: `dest|source|hop URI NS TAP STYLE [OUT]` (see migration-bridge-child.ts). */
  start(args: string[]): Child {
    const p = spawn(process.execPath, ["--import", "tsx", child, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.procs.push(p);
    let out = "";
    const waiters: Array<[RegExp, () => void]> = [];
    const check = (): void => {
      for (const w of [...waiters]) if (w[0].test(out)) (waiters.splice(waiters.indexOf(w), 1), w[1]());
    };
    p.stdout!.on("data", (b: Buffer) => ((out += b.toString()), check()));
    p.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const exit = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
    const kill = setTimeout(() => p.kill("SIGKILL"), 280_000);
    void exit.then(() => clearTimeout(kill));
    return {
      proc: p,
      out: () => out,
      marker: (re) => new Promise<void>((r) => (waiters.push([re, r]), check(), void exit.then(() => r()))),
      exit,
    };
  }

  /** Kills what is left, removes the namespace (its bridge and TAPs go with it) and the folder. */
  close(): void {
    for (const p of this.procs) p.kill("SIGKILL");
    this.peerTap?.close();
    sh("ip", ["netns", "del", this.ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The guest kernel's echo requests sent and echo replies received between two reads of the Icmp lines of /proc/net/snmp. */
export function icmpDelta(before: string, after: string): { outEchos: number; inEchoReps: number } {
  const read = (t: string): Map<string, number> => {
    const [names, values] = t.split("\n").filter((l) => l.startsWith("Icmp:"));
    const n = (names ?? "").split(/\s+/).slice(1);
    const v = (values ?? "").split(/\s+/).slice(1).map(Number);
    return new Map(n.map((k, i) => [k, v[i] ?? NaN]));
  };
  const a = read(before);
  const b = read(after);
  const d = (k: string): number => (b.get(k) ?? NaN) - (a.get(k) ?? NaN);
  return { outEchos: d("OutEchos"), inEchoReps: d("InEchoReps") };
}

/**
 * `ping`'s requests with no reply in its output (per-reply lines `icmp_seq=N`), leaving out the
 * last `inFlight` sequence numbers (a ping stopped by SIGINT counts the requests still on their way
 * as transmitted). Returns the summary's counts and the missing sequence numbers.
 */
export function pingMissing(out: string, inFlight: number): { transmitted: number; received: number; duplicates: number; missing: number[] } | undefined {
  const m = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(out);
  if (m === null) return undefined;
  const transmitted = Number(m[1]);
  const got = new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
  const missing: number[] = [];
  for (let seq = 1; seq <= transmitted - inFlight; seq++) if (!got.has(seq)) missing.push(seq);
  return { transmitted, received: Number(m[2]), duplicates: Number(m[3] ?? 0), missing };
}

/** One direction of the UDP stream, as its receiver counted it. */
export interface UdpDirection {
  /** Datagrams sent. */
  sent: number;
  /** Missing in the receiver's sequence at the end. */
  lost: number;
  /** Arrived after a higher sequence number (iperf3 counts a duplicate here too). */
  outOfOrder: number;
}

/** Both directions of {@link BridgeSegment.nsUdp}'s stream. */
export interface UdpReport {
  hostToGuest: UdpDirection;
  guestToHost: UdpDirection;
}

/** iperf3's `-J` output of a `-u --bidir` run as a {@link UdpReport}, or what went wrong. */
export function parseIperfUdp(out: string): UdpReport | string {
  let j: { error?: string; end?: Record<string, { packets?: number; lost_packets?: number }> & { streams?: Array<{ udp?: { sender?: boolean; out_of_order?: number } }> } };
  try {
    j = JSON.parse(out.slice(out.indexOf("{"))) as typeof j;
  } catch {
    return `iperf3 gave no JSON: ${out.slice(-400)}`;
  }
  if (j.error !== undefined) return `iperf3: ${j.error}`;
  const e = j.end;
  const fwd = e?.["sum_received"];
  const rev = e?.["sum_received_bidir_reverse"];
  if (fwd?.packets === undefined || rev?.packets === undefined) return `iperf3's report has no UDP sums: ${out.slice(-400)}`;
  // The streams: the client's own (sender) stream carries the guest's count of what it received,
  // the reverse one this side's count.
  const streams = e?.streams ?? [];
  const ooo = (sender: boolean): number => streams.filter((x) => x.udp?.sender === sender).reduce((a, x) => a + (x.udp?.out_of_order ?? 0), 0);
  return {
    hostToGuest: { sent: fwd.packets + (fwd.lost_packets ?? 0), lost: fwd.lost_packets ?? 0, outOfOrder: ooo(true) },
    guestToHost: { sent: rev.packets + (rev.lost_packets ?? 0), lost: rev.lost_packets ?? 0, outOfOrder: ooo(false) },
  };
}

/** What one migration on the bridge gave. */
export interface BridgeRun {
  rep: ReturnType<SeqPeer["report"]>;
  ns: RegExpExecArray | null;
  nsOut: string;
  guestPing: RegExpExecArray | null;
  kernelEcho: { outEchos: number; inEchoReps: number };
  /** The UDP stream both ways, or why it did not run. */
  udp: UdpReport | string;
  si: MigrationInfo;
  sr: Record<string, unknown>;
  dr: Record<string, unknown>;
  nsPings: number;
}

/**
 * Boots a guest in a source process, migrates it in `style` to a destination process while a
 * sequence peer sends `peerRate` echo requests a second and the namespace pings the guest
 * `nsPings` times every 10 ms (enough to straddle the migration: standby first waits for the
 * guest's pciehp to let the VF go, 5 s after the button), and prints the figures; or returns the
 * reason it cannot run.
 */
export async function runBridgeMigration(seg: BridgeSegment, style: "transparent" | "standby", o: { peerRate: number; nsPings: number }): Promise<BridgeRun | { skip: string }> {
  const why = seg.setUp();
  if (why !== undefined) return { skip: why };
  const { ns: NS, tag } = seg;
  const { nsPings } = o;
  const result = childResult;
  const skipped = childSkipped;
  const uri = seg.uri(style);
  const d = seg.start(["dest", uri, NS, `nv${style[0]}d${tag}`, style]);
  await d.marker(/^(LISTENING|SKIPPED)/m);
  if (skipped(d) !== undefined) return { skip: skipped(d)! };
  const s = seg.start(["source", uri, NS, `nv${style[0]}s${tag}`, style]);
  await s.marker(/^(READY|SKIPPED)/m);
  if (skipped(s) !== undefined) return { skip: skipped(s)! };
  if (!/^READY/m.test(s.out())) throw new Error(`the source did not come up:\n${s.out().slice(-4000)}`);

  const peer = new SeqPeer(seg.peerTap!, { ip: "10.0.7.3", guestIp: "10.0.7.15" });
  if (!(await peer.resolve())) throw new Error("the sequence peer got no ARP answer from the guest");
  peer.start(o.peerRate);
  const nsPing = seg.nsPing(nsPings);
  // UDP both ways, from before the go to after the guest's ping at the destination is done.
  const udp = seg.nsUdp(style === "standby" ? 20 : 10);
  await new Promise((r) => setTimeout(r, 1500));
  const tGo = performance.now();
  const dateGo = Date.now();
  s.proc.stdin!.write("go\n");
  const sc = await s.exit;
  await d.marker(/^PINGS-DONE/m);
  await nsPing.done;
  const udpRep = await udp.done;
  const nsOut = nsPing.out();
  peer.stop();
  await new Promise((r) => setTimeout(r, 2500));
  const rep = peer.report();
  d.proc.stdin!.write("go\n");
  const dc = await d.exit;
  const missing = peer.missing();
  const lostAt = missing.length === 0 ? "none" : `${missing.length} between ${Math.round(missing[0]!.at - tGo)} and ${Math.round(missing[missing.length - 1]!.at - tGo)} ms after go (seq ${missing[0]!.seq}..${missing[missing.length - 1]!.seq})`;
  const log = `source exit ${String(sc)}, destination exit ${String(dc)}\n--- source:\n${s.out().slice(-3000)}\n--- destination:\n${d.out().slice(-3000)}`;
  const phaseList = [...s.out().matchAll(/^PROGRESS (.*)$/gm)]
    .map((m) => JSON.parse(m[1]!) as { at: number; status: string; phase: string })
    .filter((p, i, a) => i === 0 || a[i - 1]!.phase !== p.phase || a[i - 1]!.status !== p.status)
    .map((p) => ({ name: `${p.status}/${p.phase}`, ms: p.at - dateGo }));
  const phases = phaseList.map((p) => `${p.name}@${p.ms}ms`);
  // Where the lost requests were sent: before the go, or in which phase of the migration.
  const lostByPhase = new Map<string, number>();
  for (const m of missing) {
    const t = m.at - tGo;
    const name = t < 0 ? "before go" : ([...phaseList].reverse().find((p) => p.ms <= t)?.name ?? "go, before the first progress");
    lostByPhase.set(name, (lostByPhase.get(name) ?? 0) + 1);
  }
  const sr = result(s);
  const dr = result(d);
  if (sr === undefined || dr === undefined || sc !== 0 || dc !== 0) throw new Error(log);
  const si = sr.info as MigrationInfo;
  const ns = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(nsOut);
  const guestPing = /(\d+) packets transmitted, (\d+) packets received(?:, (\d+) duplicates)?/.exec(dr.ping as string);
  const kernelEcho = icmpDelta(sr.icmpBefore as string, dr.icmpAfter as string);
  const guestSeqs = new Set([...(dr.ping as string).matchAll(/seq=(\d+)/g)].map((m) => Number(m[1])));
  const guestMissing = Array.from({ length: Number(guestPing?.[1] ?? 0) }, (_, i) => i).filter((i) => !guestSeqs.has(i));
  console.log(
    `${style} migration on a bridge: sequence peer ${rep.sent} sent, lost ${rep.lost}, duplicated ${rep.duplicated}, reordered ${rep.reordered}, largest gap ${rep.largestGapMs.toFixed(1)} ms, lost: ${lostAt} ${JSON.stringify(Object.fromEntries(lostByPhase))}; ` +
      `UDP both ways (iperf3 -u --bidir): ${typeof udpRep === "string" ? udpRep : `host to guest ${udpRep.hostToGuest.lost} lost of ${udpRep.hostToGuest.sent}, ${udpRep.hostToGuest.outOfOrder} out of order; guest to host ${udpRep.guestToHost.lost} lost of ${udpRep.guestToHost.sent}, ${udpRep.guestToHost.outOfOrder} out of order`}; ` +
      `ping -i 0.01 from the namespace: ${ns?.[0] ?? nsOut.slice(-300)}; guest's ping: ${guestPing?.[0] ?? dr.ping} (missing in ping's count: seq ${guestMissing.join(",") || "none"}; guest kernel: ${kernelEcho.outEchos} echo requests out, ${kernelEcho.inEchoReps} replies in); ` +
      `downtime ${Math.round(si.downtimeMs ?? -1)} ms (expected ${Math.round(si.expectedDowntimeMs)} before the stop; parts ${JSON.stringify(Object.fromEntries(Object.entries(si.downtimeParts ?? {}).map(([k, v]) => [k, Math.round(v)])))}), ` +
      `total ${Math.round(si.totalMs)} ms, bytes ${si.bytes} (${(si.bytes / 2 ** 20).toFixed(1)} MiB), rounds ${si.iterations} (pre-copy ${si.iterations - 1}; last pass ${si.rounds[si.rounds.length - 1]?.dirtyPages ?? "?"} pages in ${Math.round(si.rounds[si.rounds.length - 1]?.ms ?? NaN)} ms, ${Math.round(si.rounds[si.rounds.length - 1]?.scanMs ?? NaN)} of them hashing; engine state ${si.engineBytes} bytes, device state ${si.deviceBytes}; pre-copy passes ${si.rounds.slice(0, -1).map((r) => r.dirtyPages).join("/")} pages), late-frame bytes ${si.lateBytes} (ended by ${si.lateEnd ?? "-"}), page hash ${si.pageHash}; destination engine load ${Math.round(dr.engineRestoreMs as number)} ms, device load ${Math.round(dr.deviceRestoreMs as number)} ms, resume ${Math.round(dr.resumeMs as number)} ms; ` +
      `frames sent between READY and go ${JSON.stringify(sr.beforeGo)}; source failover ${JSON.stringify(sr.failover)}; destination at resume ${JSON.stringify(dr.failoverAtResume)}, at the end ${JSON.stringify(dr.failover)}; source phases after go: ${phases.join(", ")}`,
  );
  return { rep, ns, nsOut, guestPing, kernelEcho, udp: udpRep, si, sr, dr, nsPings };
}

