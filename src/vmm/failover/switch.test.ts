/**
 * The failover switch with the simulated igbvf driver on the guest function: traffic across 100
 * switches, switches in the middle of mailbox work, an interrupt held by moderation, a packet
 * whose descriptors straddle a switch, frames that arrive during a switch, and refusals.
 */
import { describe, expect, it } from "vitest";
import { D, VR } from "../../devices/igb/regs.js";
import { GUEST_MAC, PEER, createFailoverTestbed, seqFrame, serviceGuest, vfStats, wireSeqs, type FailoverTestbed } from "./testbed.js";
import type { FailoverBackingName } from "./switch.js";
import { FlatMemory } from "../../devices/igb/testing.js";
import { IgbVfRegs } from "../../devices/igb/vf.js";
import { SimIgbvf } from "../../guest/igbvf/driver.js";

const other = (n: FailoverBackingName): FailoverBackingName => (n === "passthrough" ? "emulated" : "passthrough");

function bringUp(o: Parameters<typeof createFailoverTestbed>[0] = {}): FailoverTestbed {
  const tb = createFailoverTestbed({ adminMac: GUEST_MAC, ...o });
  expect(tb.driver.reset()).toBe(true);
  tb.driver.open();
  tb.write(VR.EIMS, 7);
  // a reply with CTS in the mailbox, as igbvf's link check wants it
  expect(tb.driver.setLpe(1522)).toBe(true);
  return tb;
}

describe("the failover switch", () => {
  it("100 switches (50 each way) mid-traffic: nothing lost, duplicated or reordered; statistics equal across each switch and monotonic; no reset; link up; interrupts keep coming", () => {
    const tb = bringUp();
    const d = tb.driver;
    const fo = tb.model.failover;
    let txSeq = 0;
    let rxSeq = 0;
    const got: number[] = [];
    let prev = vfStats(tb);
    const msiBefore = [...tb.msi];
    const ways = { passthrough: 0, emulated: 0 };
    for (let i = 0; i < 100; i++) {
      const txN = 1 + (i % 4);
      for (let k = 0; k < txN; k++) expect(d.queue(seqFrame(PEER, GUEST_MAC, 1, txSeq++))).toBe(true);
      const flushBefore = i % 3 !== 0;
      if (flushBefore) d.flush();
      const rxN = 1 + (i % 5);
      for (let k = 0; k < rxN; k++) expect(tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rxSeq++))).toBe(true);
      if (i % 2 === 0) got.push(...serviceGuest(tb));
      const before = vfStats(tb);
      const to = other(fo.active);
      const r = fo.switchTo(to);
      expect(r.ok, r.ok ? "" : r.error.message).toBe(true);
      ways[to]++;
      expect(vfStats(tb)).toEqual(before);
      if (!flushBefore) d.flush(); // TDT bumped after the switch for descriptors queued before it
      tb.clock.advance(20_000);
      got.push(...serviceGuest(tb));
      const now = vfStats(tb);
      now.forEach((v, j) => expect(v).toBeGreaterThanOrEqual(prev[j]!));
      prev = now;
      if (i % 10 === 9) expect(d.setMulticast([Uint8Array.of(0x01, 0, 0x5e, 0, 0, i)])).toBe(true);
      expect(d.checkLink()).toBe("up");
    }
    got.push(...serviceGuest(tb));
    expect(ways).toEqual({ passthrough: 50, emulated: 50 });
    expect(fo.stats().switches).toBe(100);
    expect(got).toEqual(Array.from({ length: rxSeq }, (_, i) => i));
    expect(wireSeqs(tb)).toEqual(Array.from({ length: txSeq }, (_, i) => i));
    expect(d.nacks).toBe(0);
    // the statistics count every frame once
    const [gprc, gptc] = vfStats(tb);
    expect(gprc).toBe(rxSeq);
    expect(gptc).toBe(txSeq);
    // RX, TX and mailbox vectors all kept firing on the same function
    tb.msi.forEach((n, v) => expect(n, `vector ${v}`).toBeGreaterThan(msiBefore[v]! + 5));
    expect(tb.model.guest.staleIrqs).toBe(0);
    expect(fo.stats().framesDropped).toBe(0);
    // each backing's IOMMU domain saw the DMA, and logged the pages it wrote
    for (const dev of [tb.model.devices.passthrough, tb.model.devices.emulated]) {
      expect(dev.iommu.faults).toBe(0);
      expect(dev.iommu.takeDirty().length).toBeGreaterThan(0);
    }
  });

  it("switching in the middle of mailbox loops (MTU, multicast, VLAN add and remove): no refused message, no timeout", () => {
    const tb = bringUp();
    const d = tb.driver;
    const fo = tb.model.failover;
    let waits = 0;
    let switches = 0;
    tb.everyWait = () => {
      if (++waits % 3 !== 0) return;
      const r = fo.switchTo(other(fo.active));
      expect(r.ok).toBe(true);
      switches++;
    };
    for (let i = 0; i < 40; i++) {
      expect(d.setLpe(1500 + ((i * 37) % 7000)), `LPE ${i}`).toBe(true);
      expect(d.setMulticast([Uint8Array.of(0x01, 0, 0x5e, 0, 1, i), Uint8Array.of(0x33, 0x33, 0, 0, 0, i)]), `MC ${i}`).toBe(true);
      expect(d.setVlan(100 + (i % 7), true), `VLAN add ${i}`).toBe(true);
      if (i % 2 === 1) expect(d.setVlan(100 + ((i - 1) % 7), false), `VLAN del ${i}`).toBe(true);
    }
    tb.everyWait = undefined;
    expect(switches).toBeGreaterThanOrEqual(40);
    expect(d.nacks).toBe(0);
    expect(d.checkLink()).toBe("up");
    // the policy the last backing holds is what the loop asked for
    const agent = (fo.active === "passthrough" ? tb.model.host : tb.model.emu).agent;
    expect(agent.vfs[0]!.rlpml).toBe(1500 + ((39 * 37) % 7000));
    expect(agent.vfs[0]!.cts).toBe(true);
  });

  it("an interrupt held back by moderation (EITR) arrives after the switch, not before its interval ends", () => {
    const tb = bringUp();
    tb.write(VR.EITR(0), 500 << 2); // 500 us on the RX vector
    const n0 = tb.msi[0]!;
    tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 0));
    expect(tb.msi[0]).toBe(n0 + 1);
    expect(serviceGuest(tb)).toEqual([0]);
    tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 1));
    expect(tb.msi[0]).toBe(n0 + 1); // held: the interval has not passed
    expect(tb.model.failover.switchTo("emulated").ok).toBe(true);
    tb.clock.advance(100_000);
    expect(tb.msi[0]).toBe(n0 + 1);
    tb.clock.advance(450_000);
    expect(tb.msi[0]).toBe(n0 + 2); // from the emulated backing, on the same vector
    expect(serviceGuest(tb)).toEqual([1]);
    expect(tb.model.devices.emulated.irqCounts[0]).toBe(1);
  });

  it("a TX packet whose descriptors straddle the switch arrives whole and once", () => {
    const tb = bringUp();
    const ring = tb.read(VR.TDBAL(0));
    const n = tb.read(VR.TDLEN(0)) / 16;
    const full = seqFrame(PEER, GUEST_MAC, 1, 7, 100);
    const desc = (i: number, addr: number, len: number, last: boolean): void => {
      const dsc = new Uint8Array(16);
      const v = new DataView(dsc.buffer);
      v.setUint32(0, addr, true);
      v.setUint32(8, D.TXD_DTYP_DATA | D.TXD_CMD_DEXT | D.TXD_CMD_IFCS | (last ? D.TXD_CMD_EOP | D.TXD_CMD_RS : 0) | len, true);
      v.setUint32(12, (full.length << D.TXD_PAYLEN_SHIFT) >>> 0, true);
      tb.mem.write(ring + (i % n) * 16, dsc);
    };
    for (const [k, to] of [[0, "emulated"], [1, "passthrough"]] as const) {
      const t = tb.read(VR.TDT(0));
      const a = tb.alloc(60, 64);
      const b = tb.alloc(40, 64);
      tb.mem.write(a, full.subarray(0, 60));
      tb.mem.write(b, full.subarray(60));
      const sent0 = tb.wire.sent.length;
      desc(t, a, 60, false);
      if (k === 0) {
        // the device takes the first descriptor before the switch: a partial packet is in flight
        tb.write(VR.TDT(0), (t + 1) % n);
        expect(tb.read(VR.TDH(0))).toBe((t + 1) % n);
      }
      desc(t + 1, b, 40, true);
      expect(tb.wire.sent.length).toBe(sent0);
      expect(tb.model.failover.switchTo(to).ok).toBe(true);
      tb.write(VR.TDT(0), (t + 2) % n);
      const out = tb.wire.sent.slice(sent0).filter((f) => f[12] === 0x88);
      expect(out).toEqual([full]);
    }
  });

  it("frames that arrive during a switch (before the capture, after it, after the MAC moved) are delivered once, in order; a full hold queue is counted", () => {
    let inject: ((step: string) => void) | undefined;
    const tb = bringUp({ stepHook: (s) => inject?.(s), driver: { ringSize: 512 } });
    let seq = 0;
    inject = (s) => {
      if (s === "stop-copy" || s === "parse" || s === "move-mac" || s === "resume") for (let k = 0; k < 3; k++) tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, seq++));
    };
    const r = tb.model.failover.switchTo("emulated");
    expect(r.ok).toBe(true);
    expect(r.ok && r.framesQueued).toBe(12);
    expect(serviceGuest(tb)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // a flood while the source is frozen: 300 frames, the hold queue keeps 256 and counts the rest
    const base = seq;
    inject = (s) => {
      if (s === "save") for (let k = 0; k < 300; k++) tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, seq++));
    };
    const r2 = tb.model.failover.switchTo("passthrough");
    expect(r2.ok).toBe(true);
    expect(r2.ok && [r2.framesQueued, r2.framesDropped]).toEqual([256, 44]);
    expect(tb.model.failover.stats().framesDropped).toBe(44);
    expect(serviceGuest(tb)).toEqual(Array.from({ length: 256 }, (_, i) => base + i));
  });

  it("a target that refuses the state leaves the source running with nothing lost, and says why", () => {
    const tb = createFailoverTestbed();
    const d = tb.driver;
    expect(d.reset()).toBe(true); // no administrator's MAC: the VF picks its own
    d.open();
    tb.write(VR.EIMS, 7);
    expect(d.setMac(GUEST_MAC)).toBe(true);
    // on the emulated NIC another VF has that MAC already
    tb.model.emu.agent.setVfMac(1, GUEST_MAC);
    d.queue(seqFrame(PEER, GUEST_MAC, 1, 0));
    tb.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 0));
    const r = tb.model.failover.switchTo("emulated");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.name).toBe("FailoverError");
    expect(r.error.step).toBe("parse");
    expect(r.error.reason).toContain("failover.agent.policy.mac");
    expect(tb.model.failover.active).toBe("passthrough");
    expect(tb.model.devices.passthrough.migration.state).toBe("RUNNING");
    expect(tb.model.devices.emulated.migration.state).toBe("STOP");
    d.flush();
    expect(serviceGuest(tb)).toEqual([0]);
    expect(wireSeqs(tb)).toEqual([0]);
    expect(tb.model.failover.stats()).toMatchObject({ switches: 0, failures: 1, backing: "passthrough" });
    expect(tb.model.failover.switchTo("passthrough").ok).toBe(false); // already there
  });

  it("the backing that no longer serves takes nothing for the guest: broadcasts arrive once, and the host's other VF reaches the guest through the fabric", () => {
    const tb = bringUp();
    // another guest's VF on the host NIC (VF 1), with its own memory
    const host = tb.model.host;
    const mem1 = new FlatMemory(1 << 20);
    host.bindVf(1, { dma: mem1, irq: () => {} });
    let next = 0x1000;
    const other1 = new SimIgbvf({
      bar: new IgbVfRegs(host.core, 1),
      mem: mem1,
      alloc: (size, align) => {
        next = Math.ceil(next / align) * align;
        const at = next;
        next += size;
        return at;
      },
      delay: (us) => tb.clock.advance(us * 1000),
    }, { ringSize: 32 });
    expect(other1.reset()).toBe(true);
    const mac1 = Uint8Array.of(0x02, 0x33, 0, 0, 0, 1);
    expect(other1.setMac(mac1)).toBe(true);
    other1.open();
    const bcast = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    let seq = 0;
    for (const to of ["emulated", "passthrough", "emulated"] as const) {
      expect(tb.model.failover.switchTo(to).ok).toBe(true);
      const hostRx = host.core.regs.get("PVFGPRC", 0);
      tb.wire.inject(seqFrame(bcast, PEER, 0, seq++));
      expect(other1.send(seqFrame(GUEST_MAC, mac1, 0, seq++))).toBe(true);
      tb.clock.advance(10_000);
      expect(serviceGuest(tb)).toEqual([seq - 2, seq - 1]);
      if (to === "emulated") expect(host.core.regs.get("PVFGPRC", 0)).toBe(hostRx); // the host's pool took nothing
    }
  });
});
