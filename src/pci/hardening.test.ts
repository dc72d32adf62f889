/**
 * Regression tests for issue 15 (hardening of PCI state and handlers) and issue 12's refusal of a
 * VF plugged as an ordinary function. Each failed on the code before its fix.
 */
import { describe, expect, it } from "vitest";
import { StateError } from "../state/parse.js";
import type { MsixState } from "./caps/msix.js";
import { PCIE } from "./caps/pcie.js";
import { SRIOV, SRIOV_CTRL, addSriov } from "./caps/sriov.js";
import { addPcie } from "./caps/pcie.js";
import { addAri } from "./caps/ari.js";
import { demoTopology } from "./demo-topology.js";
import { PciPlugError } from "./errors.js";
import { PciFunction, type PciFunctionState } from "./function.js";
import { fromHex, toHex } from "./hex.js";
import { PCI } from "./regs.js";
import { PciTestDevice } from "./test-device.js";
import { PciRoot } from "./topology/root-complex.js";

const RAM = { read: (_a: number, l: number) => new Uint8Array(l), write: () => true };

/** The demo topology's PF (01:00.0) with MSI-X enabled and the function masked. */
function pfWithPending() {
  const t = demoTopology();
  const pf = t.device.pf;
  const cap = pf.config.findCapability(0x11)!;
  t.root.configWrite(1, 0, cap + 2, 2, 0x8000 | 0x4000); // enable, function masked
  return { t, pf, cap };
}

function setConfig16(s: PciFunctionState, off: number, v: number): PciFunctionState {
  const b = fromHex(s.config);
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  return { ...s, config: toHex(b) };
}

describe("issue 15: an MSI-X pending bit beyond the vector count", () => {
  it("is rejected by the parser, naming the field (v2 list and v1 PBA)", () => {
    const { pf } = pfWithPending();
    const s = JSON.parse(JSON.stringify(pf.save())) as PciFunctionState;
    (s.caps.msix as MsixState).pending = [5];
    expect(() => pf.stateType.parse(s, "pf")).toThrow(StateError);
    expect(() => pf.stateType.parse(s, "pf")).toThrow(/pf\.caps\.msix\.pending\[0\]: 5 is outside \[0, 3\]/);
    // Version 1 saved the PBA as hex: bit 5 of 4 vectors.
    const v1 = { version: 1, config: s.config, intxLevel: false, caps: { msi: {}, msix: { table: "00".repeat(4 * 16), pending: "2000000000000000" }, sriov: s.caps.sriov } };
    expect(() => pf.stateType.parse(v1, "pf")).toThrow(/pf\.caps\.msix\.pending\[0\]: 5 is outside \[0, 3\]/);
  });

  it("never throws out of the BAR write or config write handlers, even if restored past the parser", () => {
    const { t, pf, cap } = pfWithPending();
    const s = pf.save();
    // Applied without the parser: a pending bit for vector 6 of 4.
    const msix = s.caps.msix as MsixState;
    pf.restore({ ...s, caps: { ...s.caps, msix: { table: msix.table.map((e) => ({ ...e, masked: false })), pending: [6] } } });
    expect(() => t.root.configWrite(1, 0, cap + 2, 2, 0x8000)).not.toThrow(); // function unmask flushes
    const bar2 = pf.barAddress(2)!;
    expect(() => t.root.mmioWrite(bar2 + 12, 4, 0)).not.toThrow(); // unmask vector 0
    expect(() => pf.configWrite(cap + 2, 2, 0xc000)).not.toThrow();
    expect(() => pf.barWrite(2, 0x1c, 4, 0)).not.toThrow();
    expect(pf.configRead(cap + 2, 2) & 0xc000).toBe(0xc000);
  });
});

describe("capability registers a guest cannot leave that way", () => {
  it("rejects a PM power state of D1/D2 and MSI Multiple Message Enable above Capable", () => {
    const dev = new PciTestDevice();
    const s = JSON.parse(JSON.stringify(dev.pf.save())) as PciFunctionState;
    const pm = dev.pf.config.findCapability(0x01)!;
    const msi = dev.pf.config.findCapability(0x05)!;
    expect(() => dev.pf.stateType.parse(setConfig16(s, pm + 4, 0x0009), "pf")).toThrow(/PM Control\/Status\]: power state D1 is not supported/);
    expect(() => dev.pf.stateType.parse(setConfig16(s, msi + 2, 0x0184 | (3 << 4)), "pf")).toThrow(/Multiple Message Enable 3 is above Multiple Message Capable 2/);
    expect(dev.pf.stateType.parse(setConfig16(s, pm + 4, 0x000b), "pf").version).toBe(2);
  });
});

describe("issue 15: SR-IOV NumVFs, First VF Offset and VF Stride", () => {
  function saved() {
    const dev = new PciTestDevice();
    dev.pf.realize();
    return { dev, s: JSON.parse(JSON.stringify(dev.pf.save())) as PciFunctionState, o: dev.sriov.offset };
  }

  it("rejects NumVFs above TotalVFs (200 of 8)", () => {
    const { dev, s, o } = saved();
    const bad = setConfig16(s, o + SRIOV.NUM_VFS, 200);
    expect(() => dev.pf.stateType.parse(bad, "pf")).toThrow(`pf.config[0x${(o + SRIOV.NUM_VFS).toString(16)} SR-IOV NumVFs]: 200 is above TotalVFs 8`);
    expect(dev.sriov.numVfs).toBe(0);
  });

  it("rejects a First VF Offset or VF Stride other than what the capability computes", () => {
    const { dev, s, o } = saved();
    expect(() => dev.pf.stateType.parse(setConfig16(setConfig16(s, o + SRIOV.VF_OFFSET, 0), o + SRIOV.VF_STRIDE, 0), "pf")).toThrow(/SR-IOV First VF Offset\]: 0, but NumVFs 0 and ARI Capable Hierarchy false give 8/);
    expect(() => dev.pf.stateType.parse(setConfig16(s, o + SRIOV.VF_STRIDE, 1), "pf")).toThrow(/SR-IOV VF Stride\]: 1, but NumVFs 0 and ARI Capable Hierarchy false give 8/);
    // With ARI Capable Hierarchy the capability computes 1/1, so 1/1 loads and 8/8 does not.
    const ari = setConfig16(s, o + SRIOV.CTRL, SRIOV_CTRL.ARI);
    expect(() => dev.pf.stateType.parse(ari, "pf")).toThrow(/give 1/);
    expect(dev.pf.stateType.parse(setConfig16(setConfig16(ari, o + SRIOV.VF_OFFSET, 1), o + SRIOV.VF_STRIDE, 1), "pf").version).toBe(2);
  });

  it("rejects VF Enable with a VF state that disagrees (a VF that does not exist must be reset)", () => {
    const { dev, s } = saved();
    const sr = s.caps.sriov as { vfs: PciFunctionState[] };
    sr.vfs[3] = setConfig16(sr.vfs[3]!, PCI.COMMAND, 4);
    expect(() => dev.pf.stateType.parse(s, "pf")).toThrow(/pf\.caps\.sriov\.vfs\[3\]: VF 3 does not exist \(VF Enable false, NumVFs 0\)/);
  });
});

describe("issue 15: a reset that clears VF Enable tells the device model", () => {
  function pfWithCallback() {
    const calls: Array<[boolean, number]> = [];
    const pf = new PciFunction({ vendorId: 0x1234, deviceId: 1, classCode: 0, express: true });
    addPcie(pf, { type: "endpoint", flr: true });
    addAri(pf);
    addSriov(pf, {
      totalVfs: 4,
      vfDeviceId: 2,
      firstVfOffset: 1,
      vfStride: 1,
      vfBars: [],
      createVf: () => new PciFunction({ vendorId: 0x1234, deviceId: 2, classCode: 0, express: true }),
      onVfEnable: (on, n) => void calls.push([on, n]),
    });
    pf.realize();
    const o = pf.sriov!.offset;
    pf.configWrite(o + SRIOV.NUM_VFS, 2, 3);
    pf.configWrite(o + SRIOV.CTRL, 2, SRIOV_CTRL.VFE);
    return { pf, calls };
  }

  it("on a PF FLR", () => {
    const { pf, calls } = pfWithCallback();
    expect(calls).toEqual([[true, 3]]);
    const pcie = pf.config.findCapability(0x10)!;
    pf.configWrite(pcie + PCIE.DEVCTL, 2, 0x8000);
    expect(pf.sriov!.vfEnabled).toBe(false);
    expect(calls).toEqual([[true, 3], [false, 0]]);
    pf.reset("bus"); // VF Enable already clear: nothing more to tell
    expect(calls.length).toBe(2);
  });

  it("on a bus reset, the same as a guest write of VF Enable = 0", () => {
    const a = pfWithCallback();
    a.pf.reset("bus");
    const b = pfWithCallback();
    b.pf.configWrite(b.pf.sriov!.offset + SRIOV.CTRL, 2, 0);
    expect(a.calls).toEqual([[true, 3], [false, 0]]);
    expect(b.calls).toEqual([[true, 3], [false, 3]]);
  });
});

describe("issue 12: a root port refuses a VF plugged as an ordinary function", () => {
  it("throws PciPlugError and leaves the slot empty", () => {
    const root = new PciRoot({ interrupts: { msi: () => {}, intx: () => {} }, dma: RAM });
    const port = root.addRootPort(0x08);
    const dev = new PciTestDevice();
    expect(() => port.plug(dev.sriov.vfs[0]!)).toThrow(PciPlugError);
    expect(() => port.plug([dev.pf, dev.sriov.vfs[1]!])).toThrow(/function 1 is VF 1/);
    expect(port.occupied).toBe(false);
    port.plug(dev.pf, { coldplug: true });
    expect(() => port.plug(new PciTestDevice().pf)).toThrow(PciPlugError);
  });
});
