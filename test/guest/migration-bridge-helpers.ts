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
