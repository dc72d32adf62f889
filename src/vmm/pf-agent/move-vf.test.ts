/**
 * One VF's agent state on its own: VF 1 moves between two agents, each on its own 82576 core,
 * mid-traffic and with a mailbox request in flight, and the simulated igbvf driver on it notices
 * nothing (no mailbox reset, no refused message, no lost frame).
 */
import { describe, expect, it } from "vitest";
import { createIgbTestbed, type IgbTestbed } from "./testbed.js";
import { SimIgbvf } from "../../guest/igbvf/driver.js";
import { B, MBX, VR } from "../../devices/igb/regs.js";
import { restoreVf as restoreCoreVf, saveVf as saveCoreVf } from "../../devices/igb/vf.js";
import { StateError } from "../../state/parse.js";
import { RecordingBackend } from "../../devices/net/testing.js";

function frame(dst: ArrayLike<number>, src: ArrayLike<number>, tag: number): Uint8Array {
  const f = new Uint8Array(80).fill(tag);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

const VF1 = [0x02, 0, 0, 0, 0x01, 1];
const PEER = [0x02, 0x99, 0, 0, 0, 1];
const EXTRA = [0x02, 0x77, 0, 0, 0, 1];
const lo = (m: number[]) => (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0;
const hi = (m: number[]) => m[4]! | (m[5]! << 8);

interface Rig {
  a: IgbTestbed;
  b: IgbTestbed;
  upA: RecordingBackend;
  upB: RecordingBackend;
  d1: SimIgbvf;
  /** Runs once, inside the driver's next wait. */
  armed: (() => void) | undefined;
  target: IgbTestbed;
}

/** Two NICs; VF 1's driver sees its BAR through a pointer the move re-routes, and its memory is shared. */
function rig(): Rig {
  const upA = new RecordingBackend();
  const upB = new RecordingBackend();
  const a = createIgbTestbed({ numVfs: 2, backend: upA, isolated: true });
  const b = createIgbTestbed({ numVfs: 2, backend: upB, isolated: true, vfMemory: [undefined, a.vfMem[1]] });
  let next = 0x10000;
  const r: Rig = { a, b, upA, upB, d1: undefined as unknown as SimIgbvf, armed: undefined, target: a };
  r.d1 = new SimIgbvf({
    bar: { read: (o, s) => r.target.vfRegs[1]!.read(o, s), write: (o, s, v) => r.target.vfRegs[1]!.write(o, s, v) },
    mem: a.vfMem[1]!,
    alloc: (size, align) => {
      next = Math.ceil(next / align) * align;
      const at = next;
      next += size;
      return at;
    },
    delay: (us) => {
      const f = r.armed;
      r.armed = undefined;
      f?.();
      a.clock.advance(us * 1000);
      b.clock.advance(us * 1000);
    },
  });
  return r;
}

/** The switch's order: capture both halves, parse both on the target, then apply core, agent, and serve the mailbox. */
function moveVf1(r: Rig, withAgent: boolean): void {
  const core = JSON.parse(JSON.stringify(saveCoreVf(r.a.core, 1)));
  const agent = JSON.parse(JSON.stringify(r.a.agent.saveVf(1))) as unknown;
  const parsed = r.b.agent.parseVfState(1, agent);
  restoreCoreVf(r.b.core, 1, core);
  if (withAgent) expect(r.b.agent.restoreVf(1, parsed)).toEqual({ droppedMacs: 0, droppedVlans: 0 });
  r.target = r.b;
  r.b.agent.service();
}

function warmUp(r: Rig): void {
  const { a, b, d1 } = r;
  for (const tb of [a, b]) {
    tb.vfs[0]!.reset();
    tb.vfs[0]!.open();
  }
  a.agent.setVfTrust(1, true);
  expect(d1.reset()).toBe(true);
  d1.open();
  expect(d1.setVlan(5, true)).toBe(true);
  expect(d1.setMulticast([Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb)])).toBe(true);
  expect(d1.setLpe(3000)).toBe(true);
  expect(d1.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(EXTRA), hi(EXTRA)])?.[0]! & MBX.MSGTYPE_ACK).toBeTruthy();
  // traffic in flight: two frames received but not yet read, two sent but not yet reclaimed
  expect(d1.send(frame(PEER, VF1, 1))).toBe(true);
  expect(d1.send(frame(PEER, VF1, 2))).toBe(true);
  expect(r.upA.inject(frame(VF1, PEER, 3))).toBe(true);
  expect(r.upA.inject(frame(EXTRA, PEER, 4))).toBe(true);
}

describe("moving one VF's agent state between agents", () => {
  it("VF 1 moves mid-traffic with a request in flight; its driver notices nothing", () => {
    const r = rig();
    const { a, b, d1 } = r;
    warmUp(r);
    expect(d1.nacks).toBe(0);
    const policyBefore = a.agent.saveVf(1);
    // the move runs inside the driver's first wait after it posted SET_VLAN 6: the request is
    // pending in the source NIC's mailbox when the state is captured
    let moved = false;
    r.armed = () => {
      expect(a.core.regs.get("MBVFICR") & 0b10).toBe(0b10);
      moveVf1(r, true);
      moved = true;
    };
    expect(d1.setVlan(6, true)).toBe(true);
    expect(moved).toBe(true);
    expect(d1.nacks).toBe(0);
    // no reset indication, link up with CTS, and the policy arrived as it was (plus VLAN 6)
    expect(b.vfRegs[1]!.read(VR.V2PMAILBOX, 4) & (B.V2P_RSTI | B.V2P_RSTD)).toBe(0);
    expect(d1.checkLink()).toBe("up");
    expect(b.agent.vfs[1]!.cts).toBe(true);
    expect(b.agent.saveVf(1)).toEqual({ ...policyBefore, policy: { ...policyBefore.policy, vlans: [5, 6] } });
    // frames that arrived before the move are read, sent ones reclaimed, none lost or duplicated
    expect(d1.receive().map((x) => x.frame[20])).toEqual([3, 4]);
    expect(d1.reclaim()).toBe(2);
    expect(r.upA.sent.map((f) => f[20])).toEqual([1, 2]);
    // and traffic continues through the target NIC: its MAC, its extra filter, its multicast
    expect(r.upB.inject(frame(VF1, PEER, 5))).toBe(true);
    expect(r.upB.inject(frame(EXTRA, PEER, 6))).toBe(true);
    expect(r.upB.inject(frame([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb], PEER, 7))).toBe(true);
    expect(d1.receive().map((x) => x.frame[20])).toEqual([5, 6, 7]);
    expect(d1.send(frame(PEER, VF1, 8))).toBe(true);
    expect(r.upB.sent.map((f) => f[20])).toEqual([8]);
    expect(b.core.counters.spoofDrops[1]).toBe(0);
    // more mailbox traffic is answered by the target agent
    expect(d1.setLpe(1522)).toBe(true);
    expect(d1.setMulticast([])).toBe(true);
    expect(d1.nacks).toBe(0);
    // the target's own VF 0 was not disturbed
    expect(b.vfs[0]!.send(frame(PEER, [0x02, 0, 0, 0, 0x01, 0], 9))).toBe(true);
    expect(r.upB.sent.map((f) => f[20])).toEqual([8, 9]);
    expect(b.vfs[0]!.setVlan(7, true)).toBe(true);
    expect(b.vfs[0]!.nacks).toBe(0);
  });

  it("control: moving the NIC's half without the agent's, the driver's next request is refused", () => {
    const r = rig();
    warmUp(r);
    moveVf1(r, false);
    expect(r.d1.setVlan(6, true)).toBe(false);
    expect(r.d1.nacks).toBe(1);
  });

  it("a VF state whose MAC another function of the target uses is refused, naming the field, and nothing changes", () => {
    const r = rig();
    warmUp(r);
    const s = r.a.agent.saveVf(1);
    const before = JSON.stringify(r.b.agent.save());
    const cases: [unknown, string][] = [
      [{ ...s, policy: { ...s.policy, mac: "020000000100" } }, "pf-agent-vf.policy.mac"], // B's VF 0
      [{ ...s, policy: { ...s.policy, mac: "525400123456" } }, "pf-agent-vf.policy.mac"], // B's PF
      [{ ...s, policy: { ...s.policy, extraMacs: ["020000000100"] } }, "pf-agent-vf.policy.extraMacs[0]"],
      [{ ...s, policy: { ...s.policy, extraMacs: ["010000000000"] } }, "pf-agent-vf.policy.extraMacs[0]"],
      [{ ...s, policy: { ...s.policy, cts: 1 } }, "pf-agent-vf.policy.cts"],
      [{ ...s, version: 2 }, "pf-agent-vf.version"],
      [{ ...s, policy: { ...s.policy, trust: false } }, "pf-agent-vf.policy.extraMacs[0]"], // a foreign filter without trust
      [{ ...s, policy: { ...s.policy, vlans: Array.from({ length: 16 }, (_, i) => i) } }, "pf-agent-vf.policy.vlans"], // quota 15 here
    ];
    for (const [u, path] of cases) {
      let err: unknown;
      try {
        r.b.agent.parseVfState(1, u);
      } catch (e) {
        err = e;
      }
      expect(err, path).toBeInstanceOf(StateError);
      expect((err as StateError).path).toBe(path);
    }
    expect(() => r.b.agent.parseVfState(2, s)).toThrow(StateError);
    expect(JSON.stringify(r.b.agent.save())).toBe(before);
  });
});
