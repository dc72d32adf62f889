/**
 * The page's models (register log, interrupts, frames and pcap, PCI tree, rings) on the driver
 * traces of Debian's igb/igbvf and virtio_net, stepped through forwards and back.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { TraceStepper } from "../src/web/stepper.js";
import { pciTree, type PciNode } from "../src/web/pci-tree.js";
import { platformRings } from "../src/web/rings.js";
import { summarizeFrame } from "../src/web/frame-summary.js";
import { buildEcho, ipFrame, parseMac, parseIpv4 } from "../src/devices/net/frames.js";
import { createTraceBench } from "../src/trace/bench.js";
import { SimVirtioNet } from "../src/guest/virtio-net/driver.js";

const trace = (name: string): Uint8Array => gunzipSync(readFileSync(new URL(`./traces/${name}.nvtrace.gz`, import.meta.url)));
const flat = (nodes: PciNode[]): PciNode[] => nodes.flatMap((n) => [n, ...flat(n.children)]);

describe("the page's views of Debian's igb (probe, sriov_numvfs 2, igbvf on both VFs, a ping)", () => {
  const st = new TraceStepper(trace("igb-ping-sriov2-igbvf"));

  it("at the end: the PF and two VFs behind the root port, with their BARs and capabilities", () => {
    const v = st.seek(st.trace.events.length);
    expect(v.difference).toBeUndefined();
    expect(v.position).toBe(st.trace.events.length);
    const tree = pciTree(v.platform.root);
    const all = flat(tree);
    const pf = all.find((n) => n.label === "Intel 82576 (PF)")!;
    expect(pf).toBeDefined();
    expect(pf.caps).toEqual(expect.arrayContaining(["MSI-X", "PCI Express", "SR-IOV"]));
    expect(pf.bars.find((b) => b.index === 0)?.address).toBeGreaterThan(0);
    const vfs = all.filter((n) => n.isVf);
    expect(vfs.map((n) => n.label)).toEqual(["Intel 82576 Virtual Function", "Intel 82576 Virtual Function"]);
    // The port holding them is a bridge with a slot; they are its children.
    const port = all.find((n) => n.children.includes(pf))!;
    expect(port.buses).toBeDefined();
    expect(port.children.filter((c) => c.isVf).length).toBe(2);
  });

  it("stepping back to before the guest enabled VFs: no VF in the tree; one step on, both", () => {
    const vfsAt = (stop: number): number => flat(pciTree(st.seek(st.stops[stop]!).platform.root)).filter((n) => n.isVf).length;
    // The first step stop with VFs (binary search: VFs stay once enabled in this trace).
    let lo = 0;
    let hi = st.stops.length - 1;
    expect(vfsAt(lo)).toBe(0);
    expect(vfsAt(hi)).toBe(2);
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (vfsAt(mid) === 2) hi = mid;
      else lo = mid;
    }
    // The step that made them is the guest's write of VF Enable (SR-IOV Control).
    const made = st.trace.events[st.stops[lo]!]!;
    expect(made.kind).toBe("cfg-write");
    if (made.kind === "cfg-write") expect(made.value & 1).toBe(1);
    expect(vfsAt(lo)).toBe(0);
    expect(vfsAt(hi)).toBe(2);
  });

  it("the register log names 82576 registers and decodes their bits; interrupts name the MSI-X entry; frames and the pcap", () => {
    const v = st.seek(st.trace.events.length);
    const log = v.monitor.accesses.newest();
    const ctrl = log.find((a) => a.name === "CTRL" && a.kind === "mmio-write");
    expect(ctrl?.bits).toBeDefined();
    expect(log.some((a) => a.name === "V2PMAILBOX")).toBe(true); // the VF's mailbox, on a VF's BAR0
    const irq = v.monitor.interrupts();
    expect(irq.length).toBeGreaterThan(0);
    expect(irq.some((x) => /^02:\d\d\.\d MSI-X \d+ \(vector 0x[0-9a-f]{2}\)$/.test(x.label))).toBe(true);
    // The root ports' hotplug/AER interrupts are plain MSI, each port its own vector.
    const ports = irq.filter((x) => /^00:0[35]\.0 MSI \(vector 0x[0-9a-f]{2}\)$/.test(x.label)).map((x) => x.label.slice(0, 7));
    expect(ports.sort()).toEqual(["00:03.0", "00:05.0"]);
    expect(irq.reduce((s, x) => s + x.total, 0)).toBe(v.monitor.counts.get("msi"));
    const frames = v.monitor.frames.newest();
    expect(frames.some((f) => f.dir === "tx" && /ICMP echo request/.test(f.summary))).toBe(true);
    expect(frames.some((f) => f.dir === "rx" && /ICMP echo reply/.test(f.summary))).toBe(true);
    const pcap = v.monitor.pcap();
    expect(new DataView(pcap.buffer, pcap.byteOffset).getUint32(0, true)).toBe(0xa1b2c3d4);
    // Count the records: one per frame.
    let n = 0;
    for (let o = 24; o < pcap.length; n++) o += 16 + new DataView(pcap.buffer, pcap.byteOffset).getUint32(o + 8, true);
    expect(n).toBe((v.monitor.counts.get("tx") ?? 0) + (v.monitor.counts.get("rx") ?? 0));
  });

  it("rings: the enabled 82576 queues with head and tail, and the descriptors the device owns", () => {
    const v = st.seek(st.trace.events.length);
    const rings = platformRings(v.platform, v.ram.read).flatMap((n) => n.rings);
    // The trace's VFs are bound but never brought up; the PF's rings are those of its pool, the one
    // after the VFs' (igb gives the PF pool numvfs).
    expect(rings.map((r) => r.name)).toEqual(["82576 queue 2 rx", "82576 queue 2 tx"]);
    const rx = rings[0]!;
    expect(rx.pool).toBe(2);
    expect(rx.size).toBe(256);
    expect(rx.deviceOwned).toBe(255); // every RX buffer but one handed to the device
    // Before the PF's driver enabled its queues there are no rings.
    const early = st.seek(st.stops[5]!);
    expect(platformRings(early.platform, early.ram.read).flatMap((n) => n.rings)).toEqual([]);
  });
});

describe("the page's views of Debian's virtio_net (probe, a ping)", () => {
  const st = new TraceStepper(trace("virtio-net-ping"));

  it("split rings move: the RX ring's used index grows between two positions of the ping", () => {
    const end = st.seek(st.trace.events.length);
    const rings = platformRings(end.platform, end.ram.read).flatMap((n) => n.rings);
    const rx = rings.find((r) => r.name === "virtio-net rx0")!;
    const tx = rings.find((r) => r.name === "virtio-net tx0")!;
    expect(rx.layout).toBe("split");
    expect(rx.driverIndex).toBeDefined();
    expect(tx.usedIndex).toBeGreaterThan(0);
    const firstEcho = st.trace.events.findIndex((e) => e.kind === "tx" && /ICMP echo request/.test(summarizeFrame(e.frame)));
    expect(firstEcho).toBeGreaterThan(0);
    const mid = st.seek(st.previous(firstEcho));
    const rxMid = platformRings(mid.platform, mid.ram.read).flatMap((n) => n.rings).find((r) => r.name === "virtio-net rx0")!;
    expect(rx.usedIndex!).toBeGreaterThan(rxMid.usedIndex!);
    const nic = pciTree(end.platform.root).flatMap((n) => [n, ...n.children]).find((n) => n.label === "virtio-net")!;
    expect(nic.caps).toEqual(expect.arrayContaining(["virtio common cfg", "virtio notify cfg", "virtio ISR", "virtio device cfg", "MSI-X"]));
    const log = end.monitor.accesses.newest();
    expect(log.some((a) => a.name === "device_status" && a.bits?.includes("DRIVER_OK"))).toBe(true);
    expect(log.some((a) => a.name?.startsWith("notify(queue "))).toBe(true);
  });
});

describe("the packed ring in the queue view", () => {
  it("shows the device's next available and used positions with their wrap counters, moving with traffic", () => {
    const bench = createTraceBench({ kind: "virtio", maxPairs: 1, standby: false, packed: true, withhold: [] });
    const nic = bench.find(0x1af4, 0x1041)!;
    const d = new SimVirtioNet({ fn: bench.fnPort(nic.bus, nic.devfn, nic.bars), ram: bench.mem.bytes, alloc: bench.alloc }, { packed: true });
    d.probe();
    d.open();
    const view = () => platformRings(bench.platform, (a, n) => bench.mem.read(a, n)).flatMap((x) => x.rings);
    const before = view().find((r) => r.name === "virtio-net tx0")!;
    expect(before.layout).toBe("packed");
    expect(before.wraps).toEqual([true, true]);
    // More frames than the ring has entries: the device's positions wrap, and so do the counters.
    for (let i = 0; i < before.size + 3; i++) {
      d.send(new Uint8Array(60).fill(i & 0xff));
      d.receive();
    }
    const after = view().find((r) => r.name === "virtio-net tx0")!;
    expect(after.deviceIndex).toBe(3);
    expect(after.usedIndex).toBe(3);
    expect(after.wraps).toEqual([false, false]);
  });
});

describe("frame summaries", () => {
  it("ARP, ICMP echo, runts", () => {
    const f = ipFrame({ srcMac: parseMac("52:54:00:12:34:56"), dstMac: parseMac("52:55:0a:00:02:02"), src: parseIpv4("10.0.2.15"), dst: parseIpv4("10.0.2.2"), proto: 1, l4: buildEcho(8, 7, 3, new Uint8Array(8)) });
    expect(summarizeFrame(f)).toBe(`IPv4 10.0.2.15 > 10.0.2.2 ICMP echo request id 7 seq 3, ${f.length} bytes`);
    expect(summarizeFrame(new Uint8Array(5))).toBe("runt frame, 5 bytes");
  });
});
