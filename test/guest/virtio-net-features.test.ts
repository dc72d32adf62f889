/**
 * Debian's virtio_net against nicvisor's virtio-net with every feature it drives: the control
 * queue (rx modes, MAC tables, announce), multiqueue, checksum and segmentation offloads, the MTU
 * feature; then the same traffic suite in each feature variant, re-probing the driver in the same
 * guest after changing the device's offer while it is reset.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { VIRTIO_NET_F } from "../../src/devices/virtio-net/features.js";
import { VIRTIO_F } from "../../src/devices/virtio/pci-transport.js";
import { buildUdp, ipFrame, parseIpv4, parseMac } from "../../src/devices/net/frames.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

const BDF = "0000:02:00.0";
const has = (f: bigint, bit: number): boolean => ((f >> BigInt(bit)) & 1n) === 1n;

let vm: GuestVm | undefined;
let skip: string | undefined;
const platformOf = (v: GuestVm): VirtioNetPlatform => platformAs(v, VirtioNetPlatform);

beforeAll(async () => {
  const g = await bootTestGuest((env) => new VirtioNetPlatform(env, { mtu: 9000, maxPairs: 2 }));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  const r = await vm.exec("modprobe virtio_pci && modprobe virtio_net && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0", { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`bringing up virtio_net failed: ${r.output}`);
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

/** A UDP frame from the host stub's side to a (multicast) MAC. */
function udpTo(dstMac: string): Uint8Array {
  return ipFrame({
    srcMac: parseMac("52:55:0a:00:02:02"),
    dstMac: parseMac(dstMac),
    src: parseIpv4("10.0.2.2"),
    dst: parseIpv4("239.1.2.3"),
    proto: 17,
    l4: buildUdp(4000, 4000, new Uint8Array(32)),
  });
}

describe("virtio_net with every feature nicvisor offers", () => {
  it("negotiates the control queue, MQ, MTU, checksum and TSO offloads, and the MTU is the device's", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const f = platformOf(vm).nic.negotiatedFeatures;
    for (const b of [VIRTIO_NET_F.CTRL_VQ, VIRTIO_NET_F.CTRL_RX, VIRTIO_NET_F.MQ, VIRTIO_NET_F.MTU, VIRTIO_NET_F.CSUM, VIRTIO_NET_F.GUEST_CSUM,
      VIRTIO_NET_F.HOST_TSO4, VIRTIO_NET_F.HOST_TSO6, VIRTIO_NET_F.GUEST_TSO4, VIRTIO_NET_F.MRG_RXBUF, VIRTIO_NET_F.GUEST_ANNOUNCE,
      VIRTIO_NET_F.CTRL_MAC_ADDR, VIRTIO_F.EVENT_IDX]) {
      expect(has(f, b), `feature bit ${b}`).toBe(true);
    }
    const k = (await vm.exec("ethtool -k eth0")).output;
    expect(k).toMatch(/tx-checksumming: on/);
    expect(k).toMatch(/tcp-segmentation-offload: on/);
    expect(k).toMatch(/rx-checksumming: on/);
    expect((await vm.exec("cat /sys/class/net/eth0/mtu")).output.trim()).toBe("9000");
    expect((await vm.exec("/usr/bin/ip -d link show eth0")).output).toMatch(/maxmtu 9000/);
    expect((await vm.exec("ethtool eth0")).output).toMatch(/Speed: 10000Mb\/s[\s\S]*Duplex: Full/);
  });

  it("carries jumbo frames at the offered MTU", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ping -c 3 -s 8000 -W 2 10.0.2.2", { timeoutMs: 30_000 });
    expect(r.output).toMatch(/3 packets transmitted, 3 packets received/);
  });

  it("switches promiscuous and all-multicast mode through the control queue", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const filter = platformOf(vm).nic.filter;
    // Linux turned the power-on promiscuous mode off when it brought the interface up.
    expect(filter.promisc).toBe(false);
    await vm.exec("/usr/bin/ip link set eth0 promisc on");
    expect(filter.promisc).toBe(true);
    await vm.exec("/usr/bin/ip link set eth0 promisc off");
    expect(filter.promisc).toBe(false);
    await vm.exec("/usr/bin/ip link set eth0 allmulticast on");
    expect(filter.allmulti).toBe(true);
    await vm.exec("/usr/bin/ip link set eth0 allmulticast off");
    expect(filter.allmulti).toBe(false);
    expect(platformOf(vm).nic.counters.ctrlErrors).toBe(0);
  });

  it("filters multicast by the MAC table the guest programs", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    expect((await vm.exec("/usr/bin/ip maddr add 01:00:5e:01:02:03 dev eth0")).status).toBe(0);
    expect(p.nic.filter.multicast.has("01005e010203")).toBe(true);
    const rx = async (): Promise<number> => Number((await vm!.exec("cat /sys/class/net/eth0/statistics/rx_packets")).output.trim());
    const filtered = p.nic.counters.rxFiltered;
    const guestBefore = await rx();
    expect(p.nic.receive(udpTo("01:00:5e:09:09:09"))).toBe(true);
    expect(p.nic.counters.rxFiltered).toBe(filtered + 1);
    const frames = p.nic.counters.rxFrames;
    expect(p.nic.receive(udpTo("01:00:5e:01:02:03"))).toBe(true);
    expect(p.nic.counters.rxFrames).toBe(frames + 1);
    expect(await rx()).toBeGreaterThanOrEqual(guestBefore + 1);
    await vm.exec("/usr/bin/ip maddr del 01:00:5e:01:02:03 dev eth0");
    expect(p.nic.filter.multicast.has("01005e010203")).toBe(false);
  });

  it("uses two queue pairs after ethtool -L combined 2, and traffic still flows", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    expect((await vm.exec("ethtool -l eth0")).output).toMatch(/Pre-set maximums:[\s\S]*Combined:\s+2/);
    expect((await vm.exec("ethtool -L eth0 combined 2")).status).toBe(0);
    expect(p.nic.pairs).toBe(2);
    expect((await vm.exec("grep -c 'virtio0-input.1' /proc/interrupts")).output.trim()).toBe("1");
    const r = await vm.exec("ping -c 10 -i 0.2 -W 2 10.0.2.2", { timeoutMs: 30_000 });
    expect(r.output).toMatch(/10 packets transmitted, 10 packets received/);
    expect((await vm.exec("ethtool -L eth0 combined 1")).status).toBe(0);
    expect(p.nic.pairs).toBe(1);
  });

  it("announces the guest after a host request, and the driver acknowledges it", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const tx = p.nic.counters.txFrames;
    expect(p.nic.announce()).toBe(true);
    await vm.exec("sleep 1");
    expect(p.nic.announcePending).toBe(false);
    // The gratuitous ARP went out.
    expect(p.nic.counters.txFrames).toBeGreaterThan(tx);
  });
});

/** The variants: features withheld from the offer (and the packed ring offered). */
const VARIANTS: ReadonlyArray<{ name: string; withhold: number[]; packed?: boolean; check: (f: bigint) => boolean }> = [
  { name: "all features", withhold: [], check: (f) => has(f, VIRTIO_NET_F.MRG_RXBUF) && has(f, VIRTIO_NET_F.CTRL_VQ) && has(f, VIRTIO_NET_F.HOST_TSO4) },
  { name: "packed ring, all features", withhold: [], packed: true, check: (f) => has(f, VIRTIO_F.RING_PACKED) && has(f, VIRTIO_NET_F.CTRL_VQ) && has(f, VIRTIO_NET_F.MRG_RXBUF) },
  { name: "no MRG_RXBUF", withhold: [VIRTIO_NET_F.MRG_RXBUF], check: (f) => !has(f, VIRTIO_NET_F.MRG_RXBUF) && has(f, VIRTIO_NET_F.GUEST_TSO4) },
  { name: "no EVENT_IDX", withhold: [VIRTIO_F.EVENT_IDX], check: (f) => !has(f, VIRTIO_F.EVENT_IDX) },
  { name: "no checksum or TSO offloads", withhold: [VIRTIO_NET_F.CSUM, VIRTIO_NET_F.GUEST_CSUM], check: (f) => !has(f, VIRTIO_NET_F.CSUM) && !has(f, VIRTIO_NET_F.HOST_TSO4) && !has(f, VIRTIO_NET_F.GUEST_TSO4) },
  { name: "no control queue", withhold: [VIRTIO_NET_F.CTRL_VQ], check: (f) => !has(f, VIRTIO_NET_F.CTRL_VQ) && !has(f, VIRTIO_NET_F.MQ) && !has(f, VIRTIO_NET_F.CTRL_RX) },
  // Linux then posts big buffers (MTU 9000 is above 1500). Small buffers at MTU 1500 would need the
  // host stub to reassemble and fragment IPv4 for the 4000-byte pings, which it does not do yet.
  { name: "no MRG_RXBUF and no offloads", withhold: [VIRTIO_NET_F.MRG_RXBUF, VIRTIO_NET_F.CSUM, VIRTIO_NET_F.GUEST_CSUM], check: (f) => !has(f, VIRTIO_NET_F.MRG_RXBUF) && !has(f, VIRTIO_NET_F.GUEST_TSO4) },
];

describe("the same traffic in every feature variant (driver re-probed after changing the offer)", () => {
  for (const v of VARIANTS) {
    it(`${v.name}: binds, pings 10/10, carries 4000-byte pings`, async (ctx) => {
      if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
      const p = platformOf(vm);
      expect((await vm.exec(`echo ${BDF} > /sys/bus/pci/drivers/virtio-pci/unbind`)).status).toBe(0);
      // Linux resets the device on remove, then acknowledges it again (status 1), never DRIVER_OK.
      expect(p.transport.status & 4).toBe(0);
      expect(p.nic.setOffer({ withhold: v.withhold ?? [], mtu: 9000, packed: v.packed === true })).toBe(true);
      const bind = await vm.exec(`echo ${BDF} > /sys/bus/pci/drivers/virtio-pci/bind && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0`, { timeoutMs: 30_000 });
      expect(bind.status, bind.output).toBe(0);
      expect(v.check(p.nic.negotiatedFeatures)).toBe(true);
      const errs = p.nic.counters.txErrors;
      const r = await vm.exec("ping -c 10 -i 0.2 -W 2 10.0.2.2; ping -c 3 -s 4000 -W 2 10.0.2.2", { timeoutMs: 60_000 });
      expect(r.output).toMatch(/10 packets transmitted, 10 packets received/);
      expect(r.output).toMatch(/3 packets transmitted, 3 packets received/);
      expect(p.nic.counters.txErrors).toBe(errs);
      expect(p.transport.lastError).toBeUndefined();
    });
  }
});
