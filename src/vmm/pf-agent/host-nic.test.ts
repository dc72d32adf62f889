import { describe, expect, it } from "vitest";
import { IgbHostNic } from "./host-nic.js";
import { PfAgentError } from "./agent.js";
import { ManualClock } from "../../devices/igb/testing.js";
import { B, MBX, VR } from "../../devices/igb/regs.js";

const pfMac = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57);
const vfMac = (vf: number) => Uint8Array.of(0x02, 0, 0, 0, 0x01, vf);

function make(numVfs = 2) {
  const clock = new ManualClock();
  const nic = new IgbHostNic({ pfMac, numVfs, clock, defaultVfMac: vfMac });
  return { clock, nic };
}

/** The VF's side of a VF_RESET through the pass-through function's BAR0, as igbvf does it. */
function vfReset(nic: IgbHostNic, clock: ManualClock, vf: number): number[] {
  const fn = nic.passthrough(vf);
  const rd = (o: number) => fn.barRead(0, o, 4);
  const wr = (o: number, v: number) => fn.barWrite(0, o, 4, v);
  wr(VR.CTRL, B.CTRL_RST);
  clock.advance(10_000);
  wr(VR.V2PMAILBOX, B.V2P_VFU);
  wr(VR.VMBMEM, MBX.VF_RESET);
  wr(VR.V2PMAILBOX, B.V2P_REQ);
  // the agent runs from the device clock, never inside the VF's register write
  const before = rd(VR.V2PMAILBOX);
  expect(before & B.V2P_PFSTS).toBe(0);
  clock.advance(10_000);
  expect(rd(VR.V2PMAILBOX) & B.V2P_PFSTS).toBe(B.V2P_PFSTS);
  const words = [0, 1, 2].map((i) => rd(VR.VMBMEM + 4 * i));
  wr(VR.V2PMAILBOX, B.V2P_ACK);
  return words;
}

describe("IgbHostNic (the PF kept by the host, VFs handed out)", () => {
  it("hands out one pass-through function per enabled VF (8086:10CA, 3 MSI-X vectors) and refuses others", () => {
    const { nic } = make(2);
    const f0 = nic.passthrough(0);
    expect(nic.passthrough(0)).toBe(f0);
    expect(nic.passthrough(1)).not.toBe(f0);
    expect(f0.config.get16(0)).toBe(0x8086);
    expect(f0.config.get16(2)).toBe(0x10ca);
    expect(() => nic.passthrough(2)).toThrow(PfAgentError);
    expect(() => nic.passthrough(-1)).toThrow(PfAgentError);
    expect(() => new IgbHostNic({ pfMac, numVfs: 0, clock: new ManualClock() })).toThrow(PfAgentError);
    expect(() => new IgbHostNic({ pfMac, numVfs: 8, clock: new ManualClock() })).toThrow(PfAgentError);
  });

  it("answers a VF's reset over the mailbox with ACK and the VF's MAC, one microsecond after the request", () => {
    const { nic, clock } = make(2);
    const w = vfReset(nic, clock, 1);
    expect(w[0]).toBe((MBX.VF_RESET | MBX.MSGTYPE_ACK) >>> 0);
    const mac = [w[1]! & 0xff, (w[1]! >>> 8) & 0xff, (w[1]! >>> 16) & 0xff, w[1]! >>> 24, w[2]! & 0xff, (w[2]! >>> 8) & 0xff];
    expect(mac).toEqual(Array.from(vfMac(1)));
    expect(nic.agent.vfs[1]!.cts).toBe(true);
    expect(nic.agent.vfs[0]!.cts).toBe(false);
  });

  it("save -> restore into a fresh host NIC carries the device and the agent's policy; bad state changes nothing", () => {
    const { nic, clock } = make(2);
    vfReset(nic, clock, 0);
    nic.agent.setVfMac(1, Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1));
    const saved = JSON.parse(JSON.stringify(nic.save())) as unknown;
    const { nic: other } = make(2);
    other.restore(other.stateType.parse(saved));
    expect(other.agent.vfs[0]!.cts).toBe(true);
    expect(other.agent.vfs[1]!.adminMac).toBe(true);
    expect(other.core.regs.get("VFRE") & 1).toBe(1);
    expect(JSON.stringify(other.save())).toBe(JSON.stringify(saved));
    const { nic: third } = make(2);
    const before = JSON.stringify(third.save());
    const s = saved as { agent: { vfs: unknown[] } };
    for (const [bad, path] of [
      [null, "igb-host"],
      [{ ...s, version: 9 }, "igb-host.version"],
      [{ ...s, agent: { ...s.agent, vfs: [] } }, "igb-host.agent.vfs"],
      [{ ...s, agent: { ...s.agent, numVfs: 1, vfs: s.agent.vfs.slice(0, 1) } }, "igb-host.agent.numVfs"],
      [{ ...s, core: 5 }, "igb-host.core"],
      [{ ...s, core: { version: 7 } }, "igb-host.core.version"],
    ] as [unknown, string][]) {
      expect(() => third.stateType.parse(bad)).toThrowError(expect.objectContaining({ name: "StateError", path }));
      expect(JSON.stringify(third.save())).toBe(before);
    }
  });
});

describe("IgbHostNic.bindVf (a VF driven through a VFIO-shaped boundary)", () => {
  it("the bound VF's DMA and interrupts go to the given I/O; a VF is bound or given out as a shim, not both", () => {
    const { clock, nic } = make();
    const reads: number[] = [];
    const irqs: number[] = [];
    nic.bindVf(1, { dma: { read: (a) => void reads.push(a), write: () => false }, irq: (v) => irqs.push(v) });
    expect(() => nic.bindVf(1, { dma: { read: () => undefined, write: () => false }, irq: () => {} })).toThrow(PfAgentError);
    expect(() => nic.passthrough(1)).toThrow(PfAgentError);
    nic.passthrough(0);
    expect(() => nic.bindVf(0, { dma: { read: () => undefined, write: () => false }, irq: () => {} })).toThrow(PfAgentError);
    expect(() => nic.bindVf(5, { dma: { read: () => undefined, write: () => false }, irq: () => {} })).toThrow(PfAgentError);
    // VF 1's TX ring fetch reaches the bound DMA space; its mailbox interrupt the bound callback
    const w = (o: number, v: number) => nic.core.vfWrite(o, 4, v);
    const r = nic.core.regs;
    r.set("VFTE", 0, r.get("VFTE") | 2);
    w(0xe000 + 0x40 * 1, 0x5000); // TDBAL(1)
    w(0xe008 + 0x40 * 1, 4096); // TDLEN(1)
    w(0xe028 + 0x40 * 1, B.TXDCTL_ENABLE); // TXDCTL(1)
    w(0xe018 + 0x40 * 1, 1); // TDT(1)
    expect(reads).toContain(0x5000);
    r.set("VTIVAR_MISC", 1, B.IVAR_VALID | 2);
    r.set("EIMS", 0, r.get("EIMS") | (7 << 19));
    nic.agent.pingAll();
    clock.advance(1000);
    expect(irqs).toContain(2);
  });
});
