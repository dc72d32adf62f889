/**
 * Soak: a Debian guest (igbvf on the failover VF) migrates ten times with transparent failover,
 * back and forth between "host A" and "host B" (a fresh `node` process each time, its TAP on the
 * same bridge), under a sequence peer at 200 echo requests a second and `ping -i 0.01` from the
 * namespace the whole time. Afterwards it still pings, its dmesg shows no reset, nothing arrived
 * twice or out of order, and the peers counted what was lost over all ten moves (printed, with
 * where each loss fell and each move's downtime; under 1%).
 */
import { afterAll, describe, expect, it } from "vitest";
import { skipTest } from "../skip.js";
import type { MigrationInfo } from "../../src/vmm/migration/info.js";
import { spawnSync } from "node:child_process";
import { BridgeSegment, childResult, childSkipped, icmpDelta, pingMissing, type Child } from "./migration-bridge-helpers.js";
import { SeqPeer } from "./seq-peer.js";

const MOVES = 10;
const PEER_RATE = 200;
/** Traffic on each host before the guest moves on. */
const DWELL_MS = 1500;
const seg = new BridgeSegment();
afterAll(() => seg.close());

describe("live migration soak", () => {
  it(`moves a guest ${MOVES} times back and forth under load; it still pings and dmesg shows no reset`, async (ctx) => {
    const why = seg.setUp();
    if (why !== undefined) return skipTest(ctx, `SKIPPED: ${why}`);
    const { ns, tag } = seg;
    const host = (k: number): string => (k % 2 === 0 ? "A" : "B");
    // Process k runs the guest after move k (0: the source that boots it). The last only receives.
    const procs: Child[] = [];
    const spawnNext = async (k: number): Promise<Child> => {
      const mode = k === MOVES ? ["dest", seg.uri(`soak${k}`), ns, `nvk${k}x${tag}`, "transparent"] : ["hop", seg.uri(`soak${k}`), ns, `nvk${k}x${tag}`, "transparent", seg.uri(`soak${k + 1}`)];
      const c = seg.start(mode);
      await c.marker(/^(LISTENING|SKIPPED)/m);
      return c;
    };
    procs[1] = await spawnNext(1);
    if (childSkipped(procs[1]) !== undefined) return skipTest(ctx, `SKIPPED: ${childSkipped(procs[1])}`);
    procs[0] = seg.start(["source", seg.uri("soak1"), ns, `nvk0x${tag}`, "transparent"]);
    await procs[0].marker(/^(READY|SKIPPED)/m);
    if (childSkipped(procs[0]) !== undefined) return skipTest(ctx, `SKIPPED: ${childSkipped(procs[0])}`);
    if (!/^READY/m.test(procs[0].out())) throw new Error(`the source did not come up:\n${procs[0].out().slice(-4000)}`);

    const peer = new SeqPeer(seg.peerTap!, { ip: "10.0.7.3", guestIp: "10.0.7.15" });
    expect(await peer.resolve()).toBe(true);
    peer.start(PEER_RATE);
    const nsIcmp = (): string => spawnSync("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"], { encoding: "utf8" }).stdout;
    const nsIcmpBefore = nsIcmp();

    const pingAt = performance.now();
    const ping = seg.nsPing(0);
    const moves: Array<{ from: string; to: string; downtimeMs: number; totalMs: number; status: string; goAt: number; doneAt: number }> = [];
    const t0 = performance.now();
    /** During move k (its go .. the sender's exit), or how long after which move, for a time since t0. */
    const phaseOf = (t: number): string => {
      const k = moves.findIndex((m) => t >= m.goAt && t <= m.doneAt);
      if (k >= 0) return `move ${k + 1} +${Math.round(t - moves[k]!.goAt)} ms (its downtime ${moves[k]!.downtimeMs} ms ended about ${Math.round(moves[k]!.doneAt - moves[k]!.goAt)} ms after go)`;
      const after = moves.filter((m) => m.doneAt < t).length;
      return `${Math.round(t - (moves[after - 1]?.doneAt ?? 0))} ms after move ${after}`;
    };
    const fail = (k: number, what: string): Error => new Error(`move ${k}: ${what}\n--- process ${k - 1}:\n${procs[k - 1]!.out().slice(-3000)}\n--- process ${k}:\n${procs[k]!.out().slice(-3000)}`);
    for (let k = 1; k <= MOVES; k++) {
      await new Promise((r) => setTimeout(r, DWELL_MS));
      const goAt = performance.now() - t0;
      procs[k - 1]!.proc.stdin!.write("go\n");
      const code = await procs[k - 1]!.exit;
      const doneAt = performance.now() - t0;
      const r = childResult(procs[k - 1]!);
      const info = r?.info as MigrationInfo | undefined;
      if (code !== 0 || info?.status !== "completed") throw fail(k, `the sending process exited ${String(code)}`);
      moves.push({ from: host(k - 1), to: host(k), downtimeMs: Math.round(info.downtimeMs ?? -1), totalMs: Math.round(info.totalMs), status: info.status, goAt, doneAt });
      if (k < MOVES) {
        await procs[k]!.marker(/^(RUNNING|RESULT)/m);
        if (!/^RUNNING/m.test(procs[k]!.out())) throw fail(k, "the receiving process did not run the guest");
        procs[k + 1] = await spawnNext(k + 1);
      }
    }
    const last = procs[MOVES]!;
    await last.marker(/^(PINGS-DONE|RESULT)/m);
    await new Promise((r) => setTimeout(r, DWELL_MS));
    peer.stop();
    ping.stop();
    await ping.done;
    await new Promise((r) => setTimeout(r, 2500));
    const rep = peer.report();
    // The namespace kernel's own count of the echo requests it sent and the replies it got.
    const nsKernel = icmpDelta(nsIcmpBefore, nsIcmp());

    // When the lost requests were sent: during move k (go .. the sender's exit) or between moves.
    const when = peer.missing().map(({ at }) => phaseOf(at - t0));
    // ping -i 0.01 sends request n about 10 n ms after it started (just before t0)

    last.proc.stdin!.write("go\n");
    const code = await last.exit;
    const dr = childResult(last);
    const taps = procs.map((c) => (childResult(c)?.tap ?? {}) as { txDropped?: number; rxDropped?: number; rxErrors?: number });
    if (code !== 0 || dr === undefined) throw fail(MOVES, `the last process exited ${String(code)}`);
    // ping stopped by SIGINT: the requests of its last second may still have been on their way
    const nsm = pingMissing(ping.out(), 100);
    // ping -i 0.01 sends request n about 10 n ms after it started (just before t0)
    const nsWhen = (nsm?.missing ?? []).map((seq) => `seq ${seq}: ${phaseOf(seq * 10 - 10 - (t0 - pingAt))}`);
    const downs = moves.map((m) => m.downtimeMs);
    console.log(
      `soak: ${moves.length} moves ${moves.map((m) => `${m.from}->${m.to}`).join(" ")}; downtime ms [${downs.join(", ")}] (median ${[...downs].sort((a, b) => a - b)[downs.length >> 1]}, max ${Math.max(...downs)}); ` +
        `total ms [${moves.map((m) => m.totalMs).join(", ")}]; sequence peer ${rep.sent} sent, lost ${rep.lost}${when.length > 0 ? ` (${when.join("; ")})` : ""}, duplicated ${rep.duplicated}, reordered ${rep.reordered}, largest gap ${rep.largestGapMs.toFixed(1)} ms; ` +
        `ping -i 0.01 from the namespace: ${nsm === undefined ? ping.out().slice(-300) : `${nsm.transmitted} transmitted, ${nsm.received} received, ${nsm.duplicates} duplicates, missing before its last second: [${nsWhen.join("; ")}]`} (namespace kernel: ${nsKernel.outEchos} echo requests out, ${nsKernel.inEchoReps} replies in); TAP drops per process (tx/rx/rx errors) ${taps.map((t) => `${t.txDropped}/${t.rxDropped}/${t.rxErrors}`).join(" ")}; final failover ${JSON.stringify(dr.failover)}`,
    );
    expect(moves).toHaveLength(MOVES);
    expect(rep.sent).toBeGreaterThan(PEER_RATE * MOVES);
    // What the issue asks of the soak: ten moves, the guest still pings, no reset. Frames lost are
    // printed, not required to be 0 here: a single move must lose none (migration-bridge.test.ts),
    // but across ten moves in CI, where other test files load both cores, a move has once lost one
    // 20 ms burst (4 of 10,586 requests). Nothing may arrive twice or out of order.
    expect(rep.lost).toBeLessThan(rep.sent / 100);
    expect(rep.duplicated).toBe(0);
    expect(rep.reordered).toBe(0);
    expect(nsm, ping.out().slice(-500)).toBeDefined();
    expect(nsm!.transmitted).toBeGreaterThan(100 * MOVES);
    expect(nsm!.missing.length).toBeLessThan(nsm!.transmitted / 100);
    expect(nsm!.duplicates).toBe(0);
    expect(dr.failover).toMatchObject({ active: "passthrough", failures: 0, framesDropped: 0 });
    expect(dr.stillPings).toBe(0);
    // dmesg since the guest was up on the first host (the source printed how long it was then)
    const dmesgLines = childResult(procs[0])!.dmesgLines as number;
    const newLines = (dr.dmesg as string).split("\n").slice(dmesgLines - 1).join("\n");
    expect(newLines).not.toMatch(/reset|watchdog|link is down|link down|timed out|hang/i);
  }, 600_000);
});
