/**
 * Blackout per failover switch (the guest's VF quiesced on one backing until it runs on the
 * other), in device-clock ns and host wall ns (median, p99, max), under traffic both ways; and a
 * baseline in the same process: one saveVf + applyVf of the same VF alone, and the whole capture
 * (VF and PF agent state) with its parse on the target.
 *
 * The device clock here is the test bed's manual clock, which moves only between switches: a
 * switch is one synchronous call, so no device time passes during it. With a real guest on v86
 * the guest's clock follows host time, so the host wall figure bounds the guest's virtual time.
 *
 * Run: `node --import tsx bench/failover.bench.ts`
 */
import { Bench } from "tinybench";
import { applyVf, saveVf } from "../src/devices/igb/vf.js";
import { VR } from "../src/devices/igb/regs.js";
import { GUEST_MAC, PEER, createFailoverTestbed, seqFrame, serviceGuest } from "../src/vmm/failover/testbed.js";
import type { FailoverBackingName } from "../src/vmm/failover/switch.js";

/** Frames each way between two switches, and the device time between them. */
const FRAMES_PER_SWITCH = 32;
const INTERVAL_NS = 1_000_000;
const SWITCHES = 2000;

function bringUp() {
  const tb = createFailoverTestbed({ adminMac: GUEST_MAC, driver: { ringSize: 256 } });
  if (!tb.driver.reset()) throw new Error("VF reset failed");
  tb.driver.open();
  tb.write(VR.EIMS, 7);
  if (!tb.driver.setLpe(1522)) throw new Error("mailbox failed");
  return tb;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

// ---- blackout per switch under traffic ----
{
  const tb = bringUp();
  const fo = tb.model.failover;
  const dev: number[] = [];
  const wall: number[] = [];
  let rx = 0;
  let tx = 0;
  let got = 0;
  const t0 = performance.now();
  for (let i = 0; i < SWITCHES; i++) {
    for (let k = 0; k < FRAMES_PER_SWITCH; k++) {
      tb.driver.queue(seqFrame(PEER, GUEST_MAC, 1, tx++, 256));
      tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rx++, 256));
    }
    tb.driver.flush();
    const to: FailoverBackingName = fo.active === "passthrough" ? "emulated" : "passthrough";
    const r = fo.switchTo(to);
    if (!r.ok) throw r.error;
    dev.push(r.blackoutNs);
    wall.push(r.blackoutWallNs);
    tb.clock.advance(INTERVAL_NS);
    got += serviceGuest(tb).length;
  }
  const secs = (performance.now() - t0) / 1000;
  if (got !== rx) throw new Error(`frames lost: ${rx - got}`);
  const s = fo.stats();
  console.log(`traffic: ${FRAMES_PER_SWITCH} frames of 256 B each way per ${INTERVAL_NS / 1e6} ms of device time = ${(FRAMES_PER_SWITCH * 1e9) / INTERVAL_NS} frames/s each way (device time); ${Math.round((2 * rx) / secs)} frames/s host wall over the run`);
  console.log(`switches: ${s.switches} (${SWITCHES / 2} each way), frames lost 0, queued ${s.framesQueued}, dropped ${s.framesDropped}`);
  const row = (name: string, xs: number[]) => ({ name, median: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) });
  console.table([row("blackout device-clock ns", dev), row("blackout host wall ns", wall)]);
}

// ---- baseline: the pieces alone, and a whole switch round trip, in tinybench ----
{
  const tb = bringUp();
  const core = tb.model.host.core;
  const dev = tb.model.devices.emulated;
  const bench = new Bench({ time: 1500, warmupTime: 300 });
  const saved = saveVf(core, 0);
  bench.add("saveVf + applyVf (one VF, same core)", () => {
    applyVf(core, 0, saveVf(core, 0));
  });
  bench.add("capture (VF + agent) + parse on the other backing", () => {
    const s = { version: 1 as const, vf: saveVf(core, 0), agent: tb.model.host.agent.saveVf(0) };
    dev.parseState(s);
  });
  bench.add("switch round trip (passthrough -> emulated -> passthrough), idle", () => {
    const a = tb.model.failover.switchTo("emulated");
    const b = tb.model.failover.switchTo("passthrough");
    if (!a.ok || !b.ok) throw new Error("switch failed");
  });
  void saved;
  await bench.run();
  console.table(bench.table());
}
