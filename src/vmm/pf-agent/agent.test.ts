import { describe, it, expect } from "vitest";
import { createIgbTestbed } from "./testbed.js";
import { B, MBX, R, VR } from "../../devices/igb/regs.js";
import { saveVf, restoreVf } from "../../devices/igb/vf.js";
import { RecordingBackend } from "../../devices/net/testing.js";

function frame(dst: ArrayLike<number>, src: ArrayLike<number>, len = 64, fill = 0xab): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

const vfMac = (vf: number) => [0x02, 0, 0, 0, 0x01, vf];

describe("mailbox and reset handshake", () => {
  it("a VF reset yields RESET|ACK with the MAC the PF assigned, and CTS afterwards", () => {
    const tb = createIgbTestbed({ numVfs: 2 });
    const d = tb.vfs[1]!;
    expect(d.reset()).toBe(true);
    expect(Array.from(d.mac)).toEqual(vfMac(1));
    expect(tb.agent.vfs[1]!.cts).toBe(true);
    expect(d.setLpe(1522)).toBe(true);
    expect(tb.core.regs.get("VFRE") & 0b10).toBe(0b10);
    expect(tb.core.regs.get("VFTE") & 0b10).toBe(0b10);
  });

  it("a VF without an assigned MAC is NACKed on reset and may then pick its own", () => {
    const tb = createIgbTestbed({ numVfs: 1, vfMac: () => undefined });
    const d = tb.vfs[0]!;
    expect(d.reset()).toBe(true);
    expect(Array.from(d.mac)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(d.setMac(new Uint8Array([0x02, 0xaa, 0, 0, 0, 1]))).toBe(true);
    expect(tb.core.regs.get("RAL", 23)).toBe(0x0000aa02);
  });

  it("messages before the reset handshake are NACKed", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    const r = tb.vfs[0]!.request([MBX.VF_SET_LPE, 1522]);
    expect(r).toBeDefined();
    expect(r![0]! & MBX.MSGTYPE_NACK).toBe(MBX.MSGTYPE_NACK);
    expect(tb.agent.vfs[0]!.nacks).toBe(1);
  });

  it("the VF sees RSTI until the PF signals reset done, and its reset fails meanwhile", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    tb.core.mmioWrite(R.CTRL, 4, B.CTRL_RST); // PF reset: VFs see RSTI
    tb.core.setNumVfs(1);
    expect(tb.vfRegs[0]!.read(VR.V2PMAILBOX, 4) & B.V2P_RSTI).toBe(B.V2P_RSTI);
    expect(tb.vfs[0]!.reset()).toBe(false);
    tb.agent.init(1);
    expect(tb.vfs[0]!.reset()).toBe(true);
  });

  it("VF lock excludes PF lock and vice versa; RVFU breaks a stuck VF lock", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    const vf = tb.vfRegs[0]!;
    vf.write(VR.V2PMAILBOX, 4, B.V2P_VFU);
    tb.core.mmioWrite(R.P2VMAILBOX(0), 4, B.P2V_PFU);
    expect(tb.core.mmioRead(R.P2VMAILBOX(0), 4) & B.P2V_PFU).toBe(0);
    expect(tb.core.mmioRead(R.P2VMAILBOX(0), 4) & B.P2V_VFU).toBe(B.P2V_VFU);
    tb.core.mmioWrite(R.P2VMAILBOX(0), 4, B.P2V_RVFU);
    expect(vf.read(VR.V2PMAILBOX, 4) & B.V2P_VFU).toBe(0);
    tb.core.mmioWrite(R.P2VMAILBOX(0), 4, B.P2V_PFU);
    expect(tb.core.mmioRead(R.P2VMAILBOX(0), 4) & B.P2V_PFU).toBe(B.P2V_PFU);
    vf.write(VR.V2PMAILBOX, 4, B.V2P_VFU);
    expect(vf.read(VR.V2PMAILBOX, 4) & B.V2P_VFU).toBe(0);
  });

  it("PF STS raises the VF's mailbox vector; VF REQ raises MBVFICR and the PF's VMMB", () => {
    const tb = createIgbTestbed({ numVfs: 3 });
    const d = tb.vfs[2]!;
    d.reset();
    d.open();
    tb.irq.vfVectors.length = 0;
    tb.core.mmioWrite(R.GPIE, 4, tb.core.mmioRead(R.GPIE, 4) | B.GPIE_MSIX_MODE);
    tb.agent.pingAll();
    expect(tb.irq.vfVectors).toContainEqual([2, 2]);
    const msg = d.readPfMessage();
    expect(msg?.[0]! & 0xffff).toBe(MBX.PF_CONTROL_MSG);
    expect(msg?.[0]! & MBX.MSGTYPE_CTS).toBe(MBX.MSGTYPE_CTS);
    tb.clock.advance(10_000); // let the agent serve (and acknowledge) what is pending
    const before = tb.irq.pfCount;
    tb.vfRegs[2]!.write(VR.V2PMAILBOX, 4, B.V2P_REQ);
    expect(tb.core.regs.get("MBVFICR") & (1 << 2)).toBe(1 << 2);
    expect(tb.irq.pfCount).toBeGreaterThan(before);
  });

  it("VF reset (CTRL.RST) disables its queues and reports VFLRE to the PF", () => {
    const tb = createIgbTestbed({ numVfs: 2 });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    expect(tb.core.regs.get("RXDCTL", 0) & B.RXDCTL_ENABLE).toBe(B.RXDCTL_ENABLE);
    tb.vfRegs[0]!.write(VR.CTRL, 4, B.CTRL_RST);
    expect(tb.core.regs.get("RXDCTL", 0) & B.RXDCTL_ENABLE).toBe(0);
    expect(tb.core.regs.get("VFLRE") & 1).toBe(1);
    expect(tb.core.regs.get("VFRE") & 1).toBe(0);
  });
});

describe("policy", () => {
  it("an administrator MAC cannot be overridden by an untrusted VF; trust allows it", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    tb.agent.setVfMac(0, new Uint8Array([0x02, 1, 2, 3, 4, 5]));
    const d = tb.vfs[0]!;
    d.reset();
    expect(Array.from(d.mac)).toEqual([0x02, 1, 2, 3, 4, 5]);
    expect(d.setMac(new Uint8Array([0x02, 9, 9, 9, 9, 9]))).toBe(false);
    tb.agent.setVfTrust(0, true);
    expect(d.setMac(new Uint8Array([0x02, 9, 9, 9, 9, 9]))).toBe(true);
  });

  it("a port VLAN forbids VF VLAN changes; otherwise SET_VLAN programs VLVF", () => {
    const tb = createIgbTestbed({ numVfs: 2 });
    tb.agent.setVfVlan(0, 100);
    tb.vfs[0]!.reset();
    expect(tb.vfs[0]!.setVlan(5, true)).toBe(false);
    tb.vfs[1]!.reset();
    expect(tb.vfs[1]!.setVlan(5, true)).toBe(true);
    const entries = Array.from({ length: 32 }, (_, i) => tb.core.regs.get("VLVF", i)).filter((v) => v & B.VLVF_VLANID_ENABLE);
    expect(entries.some((v) => (v & 0xfff) === 5 && (v >>> 12) & 0b10)).toBe(true);
    expect(entries.some((v) => (v & 0xfff) === 100 && (v >>> 12) & 0b1)).toBe(true);
  });

  it("SET_MULTICAST sets MTA bits; oversize LPE is refused", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    const d = tb.vfs[0]!;
    d.reset();
    const mc = new Uint8Array([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    expect(d.setMulticast([mc])).toBe(true);
    const h = ((mc[4]! >>> 4) | (mc[5]! << 4)) & 0xfff;
    expect((tb.core.regs.get("MTA", h >>> 5) >>> (h & 31)) & 1).toBe(1);
    expect(d.setLpe(20000)).toBe(false);
  });
});

describe("data path through the rings", () => {
  it("VF TX reaches the uplink; uplink RX reaches the VF by MAC", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    for (const d of tb.vfs) {
      d.reset();
      d.open();
    }
    const f = frame([0x02, 0x99, 0, 0, 0, 1], vfMac(0), 1500);
    expect(tb.vfs[0]!.send(f)).toBe(true);
    expect(up.sent.length).toBe(1);
    expect(Array.from(up.sent[0]!)).toEqual(Array.from(f));
    expect(tb.vfs[0]!.reclaim()).toBe(1);
    expect(tb.vfRegs[0]!.read(VR.VFGPTC, 4)).toBe(1);
    const r = frame(vfMac(1), [0x02, 0x99, 0, 0, 0, 1], 200, 0x11);
    expect(tb.core.receive(r)).toBe(true);
    const got = tb.vfs[1]!.receive();
    expect(got.length).toBe(1);
    expect(Array.from(got[0]!.frame)).toEqual(Array.from(r));
    expect(tb.vfs[0]!.receive().length).toBe(0);
    expect(tb.vfRegs[1]!.read(VR.VFGPRC, 4)).toBe(1);
    expect(tb.irq.vfVectors).toContainEqual([1, 0]);
  });

  it("VF-to-VF unicast is switched internally (loopback) and not sent to the wire", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    for (const d of tb.vfs) {
      d.reset();
      d.open();
    }
    const f = frame(vfMac(1), vfMac(0), 100);
    tb.vfs[0]!.send(f);
    expect(up.sent.length).toBe(0);
    const got = tb.vfs[1]!.receive();
    expect(got.length).toBe(1);
    expect(got[0]!.status & 0x40000).toBe(0x40000); // LB
    expect(tb.vfRegs[0]!.read(VR.VFGPTLBC, 4)).toBe(1);
    expect(tb.vfRegs[1]!.read(VR.VFGPRLBC, 4)).toBe(1);
  });

  it("broadcast from a VF reaches the other VF and the wire, not itself", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    for (const d of tb.vfs) {
      d.reset();
      d.open();
    }
    tb.vfs[0]!.send(frame([255, 255, 255, 255, 255, 255], vfMac(0)));
    expect(up.sent.length).toBe(1);
    expect(tb.vfs[1]!.receive().length).toBe(1);
    expect(tb.vfs[0]!.receive().length).toBe(0);
  });

  it("anti-spoofing drops a forged source MAC, sets WVBR and counts; spoofchk off lets it pass", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    d.send(frame([0x02, 0x99, 0, 0, 0, 1], [0x02, 0x66, 6, 6, 6, 6]));
    expect(up.sent.length).toBe(0);
    expect(tb.core.counters.spoofDrops[0]).toBe(1);
    expect(tb.core.mmioRead(R.WVBR, 4) & 1).toBe(1);
    expect(tb.core.mmioRead(R.WVBR, 4)).toBe(0);
    tb.agent.setVfSpoofchk(0, false);
    d.send(frame([0x02, 0x99, 0, 0, 0, 1], [0x02, 0x66, 6, 6, 6, 6]));
    expect(up.sent.length).toBe(1);
  });

  it("a port VLAN is inserted on transmit and stripped on receive", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    tb.agent.setVfVlan(0, 42);
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    d.send(frame([0x02, 0x99, 0, 0, 0, 1], vfMac(0)));
    expect(up.sent.length).toBe(1);
    const out = up.sent[0]!;
    expect([out[12], out[13], out[14]! & 0x0f, out[15]]).toEqual([0x81, 0x00, 0, 42]);
    const tagged = new Uint8Array(68);
    tagged.set(vfMac(0), 0);
    tagged.set([0x02, 0x99, 0, 0, 0, 1], 6);
    tagged.set([0x81, 0x00, 0x00, 42, 0x08, 0x00], 12);
    expect(tb.core.receive(tagged)).toBe(true);
    const got = d.receive();
    expect(got.length).toBe(1);
    expect(got[0]!.vlan).toBe(42);
    expect(got[0]!.frame.length).toBe(64);
    // untagged frames do not reach a port-VLAN VF
    expect(tb.core.receive(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))).toBe(false);
  });

  it("no receive buffers: the frame is refused and counted", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up, driver: { ringSize: 8 } });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    let ok = 0;
    for (let i = 0; i < 10; i++) if (tb.core.receive(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))) ok++;
    expect(ok).toBe(7);
    expect(tb.core.counters.rxNoBuffer).toBe(3);
    expect(d.receive().length).toBe(7);
    expect(tb.core.receive(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true);
  });
});

describe("VF translation isolation", () => {
  it("VF k's queue registers land on PF queues k and k+8 only", () => {
    const tb = createIgbTestbed({ numVfs: 4 });
    const before = tb.core.save();
    tb.vfRegs[3]!.write(VR.RDBAL(0), 4, 0x1000);
    tb.vfRegs[3]!.write(VR.TDLEN(1), 4, 0x200);
    expect(tb.core.regs.get("RDBAL", 3)).toBe(0x1000);
    expect(tb.core.regs.get("TDLEN", 11)).toBe(0x200);
    const after = tb.core.save();
    const flat = (r: typeof before.regs) => Object.entries(r).flatMap(([n, v]) => (typeof v === "number" ? [v] : [...v]).map((x, i) => [`${n}[${i}]`, x] as const));
    const b = new Map(flat(before.regs));
    const changed = flat(after.regs).filter(([k, v]) => b.get(k) !== v).map(([k]) => k);
    expect(changed.sort()).toEqual(["RDBAL[3]", "TDLEN[11]"]);
  });
});

describe("VF save/restore", () => {
  it("moves a running VF's complete state to another VF number and traffic continues", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 3, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    d.send(frame([0x02, 0x99, 0, 0, 0, 1], vfMac(0)));
    up.inject(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]));
    const s = JSON.parse(JSON.stringify(saveVf(tb.core, 0)));
    // the target must look identical once loaded
    restoreVf(tb.core, 2, s);
    const s2 = saveVf(tb.core, 2);
    expect({ ...s2, macs: undefined }).toEqual({ ...s, macs: undefined });
    expect(s2.macs.length).toBe(s.macs.length);
    expect(() => restoreVf(tb.core, 1, { ...s, eitr: [1] })).toThrowError(expect.objectContaining({ name: "IgbVfStateError" }));
  });
});

describe("VF FLR", () => {
  it("resets exactly that VF: its queues and vectors go, the other VF keeps running", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up });
    for (const d of tb.vfs) {
      d.reset();
      d.open();
    }
    const other = JSON.stringify(saveVf(tb.core, 0));
    tb.core.vfFlr(1);
    expect(JSON.stringify(saveVf(tb.core, 0))).toBe(other);
    const s1 = saveVf(tb.core, 1);
    expect(s1.queues.RDBAL).toEqual([0, 0]);
    expect(s1.ivar).toBe(0);
    expect(s1.rxEnable).toBe(false);
    expect(s1.vflre).toBe(true);
    // VF 0 still works; VF 1 comes back after its driver's reset
    expect(tb.core.receive(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true);
    expect(tb.vfs[0]!.receive().length).toBe(1);
    expect(tb.core.receive(frame(vfMac(1), [0x02, 0x99, 0, 0, 0, 1]))).toBe(false);
    expect(tb.vfs[1]!.reset()).toBe(true);
    tb.vfs[1]!.open();
    expect(tb.core.receive(frame(vfMac(1), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true);
  });
});

describe("VF interrupt routing", () => {
  it("VF queue events go to that VF's vectors per its IVAR; VF EITR moderates them", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 3, backend: up });
    const d = tb.vfs[2]!;
    d.reset();
    d.open();
    tb.clock.advance(10_000);
    tb.irq.vfVectors.length = 0;
    const pfBefore = tb.irq.pfCount;
    up.sink?.(frame(vfMac(2), [0x02, 0x99, 0, 0, 0, 1]));
    expect(tb.irq.vfVectors).toEqual([[2, 0]]);
    d.send(frame([0x02, 0x99, 0, 0, 0, 1], vfMac(2)));
    expect(tb.irq.vfVectors).toEqual([[2, 0], [2, 1]]);
    expect(tb.irq.pfCount).toBe(pfBefore);
    // EIAC auto-cleared the cause; EIAM auto-masked the vector until the driver re-enables it
    expect(tb.vfRegs[2]!.read(VR.EIMS, 4) & 1).toBe(0);
    tb.vfRegs[2]!.write(VR.EIMS, 4, 1);
    tb.vfRegs[2]!.write(VR.EITR(0), 4, 50 << 2);
    up.sink?.(frame(vfMac(2), [0x02, 0x99, 0, 0, 0, 1]));
    expect(tb.irq.vfVectors.length).toBe(3);
    tb.vfRegs[2]!.write(VR.EIMS, 4, 1);
    up.sink?.(frame(vfMac(2), [0x02, 0x99, 0, 0, 0, 1]));
    expect(tb.irq.vfVectors.length).toBe(3);
    tb.clock.advance(60_000);
    expect(tb.irq.vfVectors.length).toBe(4);
    expect(tb.irq.vfVectors[3]).toEqual([2, 0]);
    // the VF's EITR is PF EITR(22 - 3*2)
    expect(tb.core.regs.get("EITR", 16)).toBe(50 << 2);
  });
});

describe("transmit state across save/restore", () => {
  it("a packet half assembled from descriptors survives a device save/restore", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    const f = frame([0x02, 0x99, 0, 0, 0, 1], vfMac(0), 300);
    const base = tb.core.regs.get("TDBAL", 0);
    const buf = tb.alloc(300, 64);
    tb.mem.write(buf, f);
    const desc = (addr: number, len: number, eop: boolean) => {
      const x = new Uint8Array(16);
      const v = new DataView(x.buffer);
      v.setUint32(0, addr, true);
      v.setUint32(8, (0x00300000 | 0x20000000 | 0x08000000 | (eop ? 0x01000000 : 0) | len) >>> 0, true);
      return x;
    };
    tb.mem.write(base, desc(buf, 100, false));
    tb.vfRegs[0]!.write(VR.TDT(0), 4, 1);
    expect(up.sent.length).toBe(0);
    const saved = JSON.parse(JSON.stringify(tb.core.save()));
    const tb2 = createIgbTestbed({ numVfs: 1, backend: up });
    tb2.mem.bytes.set(tb.mem.bytes);
    tb2.core.restore(tb2.core.stateType.parse(saved));
    tb2.mem.write(base + 16, desc(buf + 100, 200, true));
    tb2.vfRegs[0]!.write(VR.TDT(0), 4, 2);
    expect(up.sent.length).toBe(1);
    expect(Array.from(up.sent[0]!)).toEqual(Array.from(f));
  });
});

describe("long packets", () => {
  it("frames above the pool's RLPML are dropped and counted until the VF raises it with SET_LPE", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    const big = frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1], 3000);
    expect(tb.core.receive(big)).toBe(false);
    expect(tb.core.mmioRead(R.ROC, 4)).toBe(1);
    expect(tb.core.receive(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1], 1514))).toBe(true);
    expect(d.setLpe(9018)).toBe(true);
    expect(tb.core.receive(big)).toBe(true);
    const got = d.receive();
    expect(got.map((g) => g.frame.length)).toEqual([1514, 3000]);
  });
});

describe("PF cannot touch VF interrupt bits", () => {
  it("PF writes to EIMC/EICS/EICR/EIAC leave the VF's bits alone while VFs are enabled", () => {
    const tb = createIgbTestbed({ numVfs: 2 });
    const d = tb.vfs[1]!;
    d.reset();
    d.open();
    const vfBits = 7 << 19;
    expect(tb.core.regs.get("EIMS") & vfBits).toBe(vfBits);
    tb.core.mmioWrite(R.EIMC, 4, 0xffffffff);
    tb.core.mmioWrite(R.EIAC, 4, 0);
    expect(tb.core.regs.get("EIMS") & vfBits).toBe(vfBits);
    expect(tb.core.regs.get("EIAC") & vfBits).toBe(vfBits);
    const before = tb.irq.vfCount;
    tb.core.mmioWrite(R.EICS, 4, 0xffffffff);
    expect(tb.irq.vfCount).toBe(before);
    tb.vfRegs[1]!.write(VR.EICS, 4, 1);
    expect(tb.irq.vfVectors.at(-1)).toEqual([1, 0]);
  });
});

describe("VF transmit offloads", () => {
  it("igbvf-style TSO through a VF yields MSS-sized segments with valid checksums", async () => {
    const { parseFrame, verifyCsum } = await import("../../devices/igb/offload.js");
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    const payload = 4000;
    const f = new Uint8Array(54 + payload);
    f.set([0x02, 0x99, 0, 0, 0, 1], 0);
    f.set(vfMac(0), 6);
    f.set([0x08, 0x00, 0x45], 12);
    f[22] = 64;
    f[23] = 6;
    f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
    f.set([0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1], 34);
    f[46] = 0x50;
    f[47] = 0x10;
    for (let i = 0; i < payload; i++) f[54 + i] = i & 0xff;
    const ps = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6; // pseudo-header sum without the length, as Linux seeds TSO
    f[50] = ps >> 8;
    f[51] = ps & 0xff;
    expect(d.queueOffload(f, { ipv4: true, tcp: true, maclen: 14, iplen: 20, mss: 1448, l4len: 20 })).toBe(true);
    d.flush();
    expect(up.sent.map((s) => s.length)).toEqual([1502, 1502, 54 + 4000 - 2 * 1448]);
    for (const s of up.sent) expect(verifyCsum(s, parseFrame(s))).toEqual({ udp: false, ipOk: true, l4Ok: true });
    expect(d.reclaim()).toBe(2);
  });
});

describe("igbvf link check", () => {
  it("is up after the handshake, down after a PF reset until the PF is back", () => {
    const tb = createIgbTestbed({ numVfs: 1 });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    expect(d.setLpe(1522)).toBe(true);
    expect(d.checkLink()).toBe("up");
    tb.core.mmioWrite(R.CTRL, 4, B.CTRL_RST);
    tb.core.setNumVfs(1);
    expect(d.checkLink()).toBe("down");
    tb.agent.init(1);
    expect(d.reset()).toBe(true);
    d.open();
    expect(d.setLpe(1522)).toBe(true);
    expect(d.checkLink()).toBe("up");
  });
});

describe("agent state", () => {
  it("save -> restore into a fresh agent keeps every VF's policy, and the VFs keep working", async () => {
    const { PfAgent } = await import("./agent.js");
    const tb = createIgbTestbed({ numVfs: 2 });
    tb.vfs[0]!.reset();
    tb.agent.setVfMac(1, new Uint8Array([0x02, 0xaa, 0, 0, 0, 7]));
    tb.agent.setVfTrust(1, true);
    const saved = JSON.parse(JSON.stringify(tb.agent.save())) as unknown;
    const fresh = new PfAgent({ bar: { read: (o) => tb.core.mmioRead(o, 4), write: (o, _s, v) => tb.core.mmioWrite(o, 4, v) }, enableVfs: () => {} });
    fresh.restore(fresh.stateType.parse(saved));
    expect(fresh.vfCount).toBe(2);
    expect(fresh.vfs[0]!.cts).toBe(true);
    expect(Array.from(fresh.vfs[1]!.mac)).toEqual([0x02, 0xaa, 0, 0, 0, 7]);
    expect(fresh.vfs[1]!.adminMac && fresh.vfs[1]!.trust).toBe(true);
    expect(fresh.save()).toEqual(saved);
  });

  it("rejects a corrupt saved state with a StateError naming the field, and keeps its own", async () => {
    const { StateError } = await import("../../state/parse.js");
    const tb = createIgbTestbed({ numVfs: 2 });
    const good = tb.agent.save();
    const v0 = good.vfs[0]!;
    const v1 = good.vfs[1]!;
    const bad: [unknown, string][] = [
      [null, "pf-agent"],
      [{ ...good, version: 3 }, "pf-agent.version"],
      [{ ...good, numVfs: 9 }, "pf-agent.numVfs"],
      [{ ...good, mac: "0102" }, "pf-agent.mac"],
      [{ ...good, vfs: [] }, "pf-agent.vfs"],
      [{ ...good, extra: 1 }, "pf-agent.extra"],
      [{ ...good, vfs: [{ ...v0, mac: "0200000001zz" }, v1] }, "pf-agent.vfs[0].mac"],
      [{ ...good, vfs: [{ ...v0, mac: "010000000100" }, v1] }, "pf-agent.vfs[0].mac"],
      [{ ...good, vfs: [v0, { ...v1, mac: v0.mac }] }, "pf-agent.vfs[1].mac"],
      [{ ...good, vfs: [{ ...v0, mac: good.mac }, v1] }, "pf-agent.vfs[0].mac"],
      [{ ...good, vfs: [{ ...v0, mac: "000000000000", adminMac: true }, v1] }, "pf-agent.vfs[0].adminMac"],
      [{ ...good, vfs: [{ ...v0, trust: "yes" }, v1] }, "pf-agent.vfs[0].trust"],
      [{ ...good, vfs: [{ ...v0, extraMacs: [99] }, v1] }, "pf-agent.vfs[0].extraMacs[0]"],
      [{ ...good, vfs: [{ ...v0, extraMacs: [3] }, { ...v1, extraMacs: [3] }] }, "pf-agent.vfs[1].extraMacs[0]"],
      [{ ...good, vfs: [{ ...v0, vlans: [5, 5] }, v1] }, "pf-agent.vfs[0].vlans[1]"],
      [{ ...good, vfs: [{ ...v0, portVlan: 5000 }, v1] }, "pf-agent.vfs[0].portVlan"],
      [{ ...good, vfs: [{ ...v0, rlpml: 20000 }, v1] }, "pf-agent.vfs[0].rlpml"],
      [{ version: 1, numVfs: 1, mac: [1, 2, 3], vfs: [] }, "pf-agent.mac"],
    ];
    for (const [b, path] of bad) {
      let err: unknown;
      try {
        tb.agent.stateType.parse(b);
      } catch (e) {
        err = e;
      }
      expect(err, path).toBeInstanceOf(StateError);
      expect((err as InstanceType<typeof StateError>).path).toBe(path);
    }
    expect(tb.agent.save()).toEqual(good);
  });
});

describe("uplink", () => {
  it("never refuses a frame (no buffers, disabled queue, no filter match), so a holding backend cannot stall the other pools", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 2, backend: up, driver: { ringSize: 8 } });
    const [d0, d1] = [tb.vfs[0]!, tb.vfs[1]!];
    d0.reset();
    d0.open();
    d1.reset(); // VF 1 never opens its queues
    for (let i = 0; i < 12; i++) expect(up.inject(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true); // ring of 8 overflows
    expect(up.inject(frame(vfMac(1), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true); // disabled queue
    expect(up.inject(frame([0x02, 0x55, 0, 0, 0, 1], [0x02, 0x99, 0, 0, 0, 1]))).toBe(true); // nobody's MAC
    expect(d0.receive().length).toBe(7);
    // missed (a filter wanted them, no queue could take them): 5 past the full ring and 1 for VF 1's
    // disabled queue; the unicast to nobody's MAC was filtered, which is not counted
    expect(tb.core.regs.get("MPC")).toBe(6);
    // nor is a multicast nobody subscribed to
    expect(up.inject(frame([0x01, 0x00, 0x5e, 0x7f, 0, 9], [0x02, 0x99, 0, 0, 0, 1]))).toBe(true);
    expect(tb.core.regs.get("MPC")).toBe(6);
    expect(up.inject(frame(vfMac(0), [0x02, 0x99, 0, 0, 0, 1]))).toBe(true);
    expect(d0.receive().length).toBe(1);
  });
});
