/**
 * The failover VF's part in a live migration (its `live` hooks), with the simulated igbvf driver:
 * transparent mode switches to emulation before the stop and back to pass-through after the
 * resume; frames that reach the stopped source after its save travel as late frames and reach the
 * guest on the destination in order, ahead of what reached the destination since its restore; the
 * destination announces the guest's MAC; a failed migration puts the source back on pass-through.
 * The guest's "migration" here is its RAM copied and the driver's own fields carried over.
 */
import { describe, expect, it } from "vitest";
import { VR } from "../../devices/igb/regs.js";
import { StateError } from "../../state/parse.js";
import { GUEST_MAC, PEER, createFailoverTestbed, seqFrame, serviceGuest, vfStats, wireSeqs, type FailoverTestbed } from "./testbed.js";

function bringUp(): FailoverTestbed {
  const tb = createFailoverTestbed({ adminMac: GUEST_MAC });
  expect(tb.driver.reset()).toBe(true);
  tb.driver.open();
  tb.write(VR.EIMS, 7);
  return tb;
}

/** A RARP announce of `mac` (what `announceFrame` builds): broadcast, EtherType 0x8035, sender `mac`. */
function isAnnounceOf(f: Uint8Array, mac: Uint8Array): boolean {
  return f.length >= 28 && f.subarray(0, 6).every((b) => b === 0xff) && f[12] === 0x80 && f[13] === 0x35 && f.subarray(22, 28).every((b, i) => b === mac[i]);
}

const json = <T>(x: T): unknown => JSON.parse(JSON.stringify(x)) as unknown;

/** Moves the guest from `a` to a fresh test bed: stop, save, RAM and driver across, restore. */
function migrate(a: FailoverTestbed, transparent: boolean, during: { afterSave?: () => void; afterRestore?: (b: FailoverTestbed) => void } = {}): FailoverTestbed {
  a.model.live.beforeStop({ transparent });
  a.model.migration.go("STOP_COPY");
  const saved = json(a.model.save());
  during.afterSave?.();
  const b = createFailoverTestbed({ adminMac: GUEST_MAC });
  b.mem.bytes.set(a.mem.bytes);
  // the driver's own fields live in guest memory on a real guest: they move with it
  const { env: _env, ...driverFields } = a.driver as unknown as Record<string, unknown>;
  Object.assign(b.driver, driverFields);
  b.model.restore(b.model.stateType.parse(saved));
  during.afterRestore?.(b);
  const late = a.model.live.takeLate();
  if (late !== undefined) b.model.live.putLate(b.model.live.parseLate(json(late), "late.failover-vf"));
  b.model.migration.go("RUNNING");
  b.model.live.afterResume({ transparent });
  return b;
}

describe("the failover VF in a live migration", () => {
  it("transparent mode: emulated across the stop, late frames delivered in order ahead of the destination's own, MAC announced, back on pass-through", () => {
    const a = bringUp();
    let rx = 0;
    const got: number[] = [];
    for (; rx < 8; rx++) a.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rx));
    got.push(...serviceGuest(a));
    const b = migrate(a, true, {
      // frames held by the quiesce before the save travel in the state; these come after it
      afterSave: () => {
        expect(a.model.failover.active).toBe("emulated");
        for (let i = 0; i < 5; i++) expect(a.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rx++))).toBe(true);
      },
      // and these reach the destination once it announced, before the source sent its late frames
      afterRestore: (bb) => {
        for (let i = 0; i < 3; i++) bb.wire.inject(seqFrame(GUEST_MAC, PEER, 3, 1000 + i));
        expect(bb.wire.sent.some((f) => isAnnounceOf(f, GUEST_MAC))).toBe(true);
      },
    });
    // on the source, the switch to emulation happened once, and nothing went back
    expect(a.model.failover.stats().switches).toBe(1);
    expect(b.model.failover.active).toBe("passthrough");
    expect(b.model.failover.stats().switches).toBe(1);
    // announced after the resume as well
    expect(b.wire.sent.filter((f) => isAnnounceOf(f, GUEST_MAC)).length).toBeGreaterThanOrEqual(2);
    b.clock.advance(50_000);
    const after = serviceGuest(b).map((s) => (s === -1 ? -1 : s));
    got.push(...after.filter((s) => s < 1000));
    expect(got).toEqual(Array.from({ length: rx }, (_, i) => i));
    // the destination's own frames came after the carried ones, in their order
    const all = after;
    expect(all.slice(all.length - 3)).toEqual([1000, 1001, 1002]);
    // traffic goes on both ways on the destination's pass-through backing
    for (let i = 0; i < 4; i++) b.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rx++));
    expect(b.driver.send(seqFrame(PEER, GUEST_MAC, 1, 7))).toBe(true);
    b.clock.advance(50_000);
    expect(serviceGuest(b)).toEqual([rx - 4, rx - 3, rx - 2, rx - 1]);
    expect(wireSeqs(b)).toContain(7);
    expect(b.model.failover.stats().framesDropped).toBe(0);
    // the statistics count every frame the guest got once
    expect(vfStats(b)[0]).toBe(rx + 3);
  });

  it("without transparent mode the backing stays as it was (pass-through's state moves as it is); late frames still travel", () => {
    const a = bringUp();
    let rx = 0;
    const b = migrate(a, false, { afterSave: () => void a.wire.inject(seqFrame(GUEST_MAC, PEER, 0, rx++)) });
    expect(a.model.failover.stats().switches).toBe(0);
    expect(b.model.failover.active).toBe("passthrough");
    expect(b.model.failover.stats().switches).toBe(0);
    b.clock.advance(50_000);
    expect(serviceGuest(b)).toEqual([0]);
  });

  it("a failed migration after beforeStop: afterAbort puts the source back on pass-through, and it carries on", () => {
    const a = bringUp();
    a.model.live.beforeStop({ transparent: true });
    expect(a.model.failover.active).toBe("emulated");
    a.model.migration.go("STOP_COPY");
    a.model.save();
    a.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 0));
    a.model.migration.go("RUNNING");
    a.model.live.afterAbort();
    expect(a.model.failover.active).toBe("passthrough");
    a.wire.inject(seqFrame(GUEST_MAC, PEER, 0, 1));
    a.clock.advance(50_000);
    expect(serviceGuest(a)).toEqual([0, 1]);
    // a second afterAbort does nothing
    a.model.live.afterAbort();
    expect(a.model.failover.stats().switches).toBe(2);
  });

  it("late data is untrusted: unknown keys, too many frames, a runt frame are refused naming the field", () => {
    const b = createFailoverTestbed({ adminMac: GUEST_MAC });
    const frame = Buffer.from(seqFrame(GUEST_MAC, PEER, 0, 1)).toString("hex");
    const h = { q: 0, frame, rssHash: 0, rssType: 0, loopback: false };
    const cases: Array<[unknown, RegExp]> = [
      [{ held: [h], extra: 1 }, /late\.extra/],
      [{ held: Array.from({ length: 257 }, () => h) }, /late\.held/],
      [{ held: [{ ...h, frame: "0011" }] }, /late\.held\[0\]\.frame/],
      [{ held: [{ ...h, q: 2 }] }, /late\.held\[0\]\.q/],
      [[], /late/],
    ];
    for (const [u, path] of cases) {
      let err: unknown;
      try {
        b.model.live.parseLate(u, "late");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StateError);
      expect((err as Error).message).toMatch(path);
    }
    expect(b.model.live.parseLate({ held: [h] }, "late")).toHaveLength(1);
  });
});
