/**
 * Issue 15, defect 5: one VF must not starve, impersonate or snoop on another through the PF
 * agent's mailbox. Each case here ran against the agent before the fix and failed.
 */
import { describe, expect, it } from "vitest";
import { createIgbTestbed } from "./testbed.js";
import { PfAgentError, vfVlanQuota } from "./agent.js";
import { B, MBX } from "../../devices/igb/regs.js";
import { RecordingBackend } from "../../devices/net/testing.js";

function frame(dst: ArrayLike<number>, src: ArrayLike<number>, len = 64): Uint8Array {
  const f = new Uint8Array(len).fill(0x5a);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

const vfMac = (vf: number) => [0x02, 0, 0, 0, 0x01, vf];
const GATEWAY = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const PF_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const lo = (m: number[]) => ((m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0);
const hi = (m: number[]) => m[4]! | (m[5]! << 8);
const isAck = (r: number[] | undefined) => r !== undefined && (r[0]! & MBX.MSGTYPE_ACK) !== 0;

describe("one VF cannot take another function's MAC", () => {
  it("VF 0 cannot take VF 1's MAC before VF 1 has reset, so VF 1 keeps its frames and VF 0 cannot send as VF 1", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
    d0.reset();
    expect(d0.setMac(Uint8Array.from(vfMac(1)))).toBe(false);
    expect(tb.agent.vfs[0]!.nacks).toBe(1);
    expect(Array.from(tb.agent.vfs[0]!.mac)).toEqual(vfMac(0));
    d1.reset();
    expect(Array.from(d1.mac)).toEqual(vfMac(1));
    d0.open();
    d1.open();
    // frames for VF 1's MAC reach VF 1 only
    expect(up.inject(frame(vfMac(1), GATEWAY))).toBe(true);
    expect(d1.receive().length).toBe(1);
    expect(d0.receive().length).toBe(0);
    // and VF 0 sending as VF 1 is dropped by anti-spoofing
    d0.send(frame(GATEWAY, vfMac(1)));
    expect(up.sent.length).toBe(0);
    expect(tb.core.counters.spoofDrops[0]).toBe(1);
  });

  it("a VF cannot take the PF's MAC, nor another VF's MAC once that VF has it, and the administrator cannot give one MAC twice", () => {
    const tb = createIgbTestbed({ numVfs: 2, vfMac: () => undefined });
    const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
    d0.reset();
    d1.reset();
    expect(d0.setMac(Uint8Array.from(PF_MAC))).toBe(false);
    expect(d1.setMac(Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1))).toBe(true);
    expect(d0.setMac(Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1))).toBe(false);
    expect(() => tb.agent.setVfMac(0, Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1))).toThrow(PfAgentError);
    expect(() => tb.agent.setVfMac(0, Uint8Array.from(PF_MAC))).toThrow(PfAgentError);
    // the same VF may set its own MAC again, and the administrator may give it that MAC
    expect(d1.setMac(Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1))).toBe(true);
    tb.agent.setVfMac(1, Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1));
    expect(tb.agent.vfs[1]!.adminMac).toBe(true);
  });
});

describe("unicast filters for other addresses need trust", () => {
  it("an untrusted VF cannot add the gateway's MAC as a filter; VF 1's frames to the gateway still reach the wire", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
    for (const d of [d0, d1]) {
      d.reset();
      d.open();
    }
    const add = () => d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(GATEWAY), hi(GATEWAY)]);
    expect(isAck(add())).toBe(false);
    expect(tb.agent.vfs[0]!.extraMacs).toEqual([]);
    d1.send(frame(GATEWAY, vfMac(1)));
    expect(up.sent.length).toBe(1);
    expect(d0.receive().length).toBe(0);
    // a filter for its own address is harmless and allowed; clearing is always allowed
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(vfMac(0)), hi(vfMac(0))]))).toBe(true);
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_CLR, 0, 0]))).toBe(true);
    // the administrator's trust allows it (ip link set PF vf 0 trust on)
    tb.agent.setVfTrust(0, true);
    expect(isAck(add())).toBe(true);
    expect(tb.agent.vfs[0]!.extraMacs.length).toBe(1);
    // but never for an address another function owns, trusted or not
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(vfMac(1)), hi(vfMac(1))]))).toBe(false);
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(PF_MAC), hi(PF_MAC)]))).toBe(false);
  });
});

describe("VLAN filters have a per-VF quota and the administrator always has room", () => {
  for (const numVfs of [2, 7]) {
    it(`with ${numVfs} VFs: VF 0 gets ${vfVlanQuota(numVfs)} VLANs, the others theirs, and setVfVlan still works`, () => {
      const tb = createIgbTestbed({ numVfs });
      const quota = vfVlanQuota(numVfs);
      expect(tb.agent.vlanQuota).toBe(quota);
      expect(quota).toBeGreaterThanOrEqual(3);
      for (const d of tb.vfs) d.reset();
      let granted = 0;
      for (let vid = 1; vid <= 32; vid++) if (tb.vfs[0]!.setVlan(vid, true)) granted++;
      expect(granted).toBe(quota);
      expect(tb.agent.vfs[0]!.vlans.length).toBe(quota);
      // every other VF still gets its whole quota of VLANs nobody else uses
      for (let vf = 1; vf < numVfs; vf++) {
        for (let k = 0; k < quota; k++) expect(tb.vfs[vf]!.setVlan(100 * vf + k, true)).toBe(true);
        expect(tb.vfs[vf]!.setVlan(100 * vf + quota, true)).toBe(false);
      }
      // and the administrator can still give every VF a port VLAN of its own
      for (let vf = 0; vf < numVfs; vf++) tb.agent.setVfVlan(vf, 4000 + vf);
      const used = Array.from({ length: 32 }, (_, i) => tb.core.regs.get("VLVF", i)).filter((v) => v & B.VLVF_VLANID_ENABLE);
      expect(used.length).toBe(numVfs * (quota + 1));
      // leaving a VLAN frees quota
      tb.agent.setVfVlan(0, 0);
      tb.vfs[0]!.reset();
      expect(tb.vfs[0]!.setVlan(7, true)).toBe(true);
    });
  }

  it("a VF joining a VLAN another VF already has uses no new entry but still counts against its quota", () => {
    const tb = createIgbTestbed({ numVfs: 7 });
    for (const d of tb.vfs) d.reset();
    for (let vf = 0; vf < 7; vf++) for (const vid of [10, 11, 12]) expect(tb.vfs[vf]!.setVlan(vid, true)).toBe(true);
    expect(tb.vfs[0]!.setVlan(13, true)).toBe(false);
    const used = Array.from({ length: 32 }, (_, i) => tb.core.regs.get("VLVF", i)).filter((v) => v & B.VLVF_VLANID_ENABLE);
    expect(used.length).toBe(3);
  });
});

describe("revoking trust takes effect", () => {
  it("filters for other addresses and multicast promiscuous mode go when the administrator turns trust off", () => {
    const tb = createIgbTestbed({ numVfs: 2 });
    const d0 = tb.vfs[0]!;
    d0.reset();
    tb.agent.setVfTrust(0, true);
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(GATEWAY), hi(GATEWAY)]))).toBe(true);
    expect(isAck(d0.request([MBX.VF_SET_MAC_ADDR | MBX.MAC_FILTER_ADD, lo(vfMac(0)), hi(vfMac(0))]))).toBe(true);
    expect(isAck(d0.request([MBX.VF_SET_PROMISC | MBX.PROMISC_MULTICAST]))).toBe(true);
    expect(tb.core.regs.get("VMOLR", 0) & B.VMOLR_MPME).toBe(B.VMOLR_MPME);
    const row = tb.agent.vfs[0]!.extraMacs[0]!;
    tb.agent.setVfTrust(0, false);
    expect(tb.agent.vfs[0]!.extraMacs.length).toBe(1); // its own address stays
    expect(tb.core.regs.get("RAH", row) & B.RAH_AV).toBe(0);
    expect(tb.core.regs.get("VMOLR", 0) & B.VMOLR_MPME).toBe(0);
    // and an administrator's MAC leaves an untrusted VF no filters at all
    tb.agent.setVfMac(0, Uint8Array.of(0x02, 0xcc, 0, 0, 0, 1));
    expect(tb.agent.vfs[0]!.extraMacs).toEqual([]);
    // every VF's state still round-trips on its own
    for (let vf = 0; vf < 2; vf++) expect(() => tb.agent.parseVfState(vf, tb.agent.saveVf(vf))).not.toThrow();
  });
});
