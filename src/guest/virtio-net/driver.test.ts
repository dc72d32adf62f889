import { describe, expect, it } from "vitest";
import { VirtioPciTransport } from "../../devices/virtio/pci-transport.js";
import { VirtioNet } from "../../devices/virtio-net/device.js";
import { createLink } from "../../devices/net/link.js";
import { HostStub } from "../../devices/net/host-stub.js";
import { buildArp, buildEcho, ipFrame, parseIpv4, buildEthernet, BROADCAST_MAC } from "../../devices/net/frames.js";
import { VirtioDriverError, VirtioNetDriver } from "./driver.js";

function setup(want?: bigint) {
  const [dev, host] = createLink();
  const stub = new HostStub({ backend: host });
  const nic = new VirtioNet({ mac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), backend: dev, queueSize: 64 });
  const t = new VirtioPciTransport(nic);
  const memory = { bytes: new Uint8Array(16 << 20), base: 0x1000000 };
  const drv = new VirtioNetDriver(t.fn, memory, { queueSize: 64, ...(want !== undefined ? { want } : {}) });
  t.fn.attach(0x200, { msi: () => undefined, intx: () => undefined }, drv.dma);
  drv.init();
  return { nic, t, drv, stub };
}

describe("simulated virtio-net driver", () => {
  it("brings the device up from the PCI capabilities, resolves the host stub and pings it", () => {
    const { drv, stub, t } = setup();
    const mac = drv.mac();
    expect([...mac]).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(t.status).toBe(0x0f);
    const ip = parseIpv4("10.0.2.15");
    const stubIp = parseIpv4("10.0.2.2");
    expect(drv.send([buildEthernet({ dst: BROADCAST_MAC, src: mac, etherType: 0x0806, payload: buildArp(1, mac, ip, new Uint8Array(6), stubIp), pad: true })])).toBe(1);
    const arp = drv.receive();
    expect(arp).toHaveLength(1);
    const stubMac = arp[0]!.subarray(6, 12);
    expect(stub.counters.arpReplies).toBe(1);
    for (let seq = 0; seq < 300; seq++) {
      drv.send([ipFrame({ srcMac: mac, dstMac: stubMac, src: ip, dst: stubIp, proto: 1, l4: buildEcho(8, 7, seq, new Uint8Array(1400)) })]);
      drv.reclaimTx();
      const got = drv.receive();
      expect(got).toHaveLength(1);
      expect(got[0]![34]).toBe(0); // echo reply
    }
    expect(stub.counters.echoReplies).toBe(300);
  });

  it("drives the control queue, and works with plain (non-mergeable) buffers", () => {
    const { drv, nic } = setup();
    expect(drv.ctrl(0, 0, Uint8Array.of(0))).toBe(0);
    expect(nic.filter.promisc).toBe(false);
    expect(drv.ctrl(0, 9, Uint8Array.of(0))).toBe(1);
    const plain = setup((1n << 32n) | (1n << 5n));
    expect(() => plain.drv.ctrl(0, 0, Uint8Array.of(0))).toThrow(VirtioDriverError);
    expect(plain.drv.features).toBe((1n << 32n) | (1n << 5n));
  });
});
