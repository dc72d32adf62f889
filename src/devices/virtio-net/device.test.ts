import { describe, expect, it } from "vitest";
import type { DmaSpace } from "../../pci/interfaces.js";
import type { FrameMeta, NetBackend } from "../net/backend.js";
import { buildTcp, buildUdp, ipFrame, parseIpv4, parseMac } from "../net/frames.js";
import { parseFrame } from "../net/parse.js";
import { verifyL4Checksum } from "../net/checksum.js";
import { SplitQueue, VIRTQ_DESC_F } from "../virtio/split-queue.js";
import { VIRTIO_F, type VirtioContext } from "../virtio/pci-transport.js";
import { VirtioNet } from "./device.js";
import { parseNetState } from "./state.js";
import { VIRTIO_NET_F, has, offeredFeatures } from "./features.js";
import { RxFilter } from "./rx-filter.js";

const MAC = parseMac("52:54:00:12:34:56");
const QS = 16;

/** Guest RAM plus a tiny split-ring driver for each queue. */
class Rig {
  readonly bytes = new Uint8Array(4 << 20);
  readonly view = new DataView(this.bytes.buffer);
  readonly mem: DmaSpace = {
    read: (a, l) => (a >= 0 && l >= 0 && a + l <= this.bytes.length ? this.bytes.subarray(a, a + l) : undefined),
    write: (a, d) => (a >= 0 && a + d.length <= this.bytes.length ? (this.bytes.set(d, a), true) : false),
  };
  readonly sent: Array<{ frame: Uint8Array; meta: FrameMeta | undefined }> = [];
  readonly signals: number[] = [];
  configSignals = 0;
  failures: string[] = [];
  private nextBuf = 0x100000;
  private nextDesc: number[] = [];
  readonly queues: SplitQueue[];
  readonly nic: VirtioNet;

  constructor(opts: { offloads?: NetBackend["offloads"]; maxPairs?: number; withhold?: number[]; features?: bigint } = {}) {
    const backend: NetBackend = {
      transmit: (frame, meta) => void this.sent.push({ frame, meta }),
      setReceiver: () => undefined,
      ...(opts.offloads !== undefined ? { offloads: opts.offloads } : {}),
    };
    this.nic = new VirtioNet({ mac: MAC, backend, maxPairs: opts.maxPairs ?? 2, withhold: opts.withhold ?? [], queueSize: QS, mtu: 9000 });
    this.queues = this.nic.queueSizes.map((n, i) => {
      const q = new SplitQueue(n);
      q.size = QS;
      q.desc = 0x10000 + i * 0x1000;
      q.driver = 0x40000 + i * 0x1000;
      q.device = 0x80000 + i * 0x1000;
      q.ready = true;
      this.nextDesc.push(0);
      return q;
    });
    const ctx: VirtioContext = {
      queues: this.queues,
      mem: this.mem,
      features: opts.features ?? this.nic.features,
      signalQueue: (i) => void this.signals.push(i),
      signalConfig: () => void this.configSignals++,
      fail: (r) => void this.failures.push(r),
      failed: () => false,
    };
    this.nic.activate(ctx);
  }

  private buf(data: Uint8Array | number): number {
    const a = this.nextBuf;
    const n = typeof data === "number" ? data : data.length;
    if (typeof data !== "number") this.bytes.set(data, a);
    this.nextBuf += (n + 0xff) & ~0xff;
    return a;
  }

  /** Offers one chain: readable `out` buffers, then writable buffers of `inLens` bytes. Returns the writable addresses. */
  offer(qi: number, out: Uint8Array[], inLens: number[]): number[] {
    const q = this.queues[qi]!;
    const segs = [...out.map((d) => ({ addr: this.buf(d), len: d.length, w: false })), ...inLens.map((n) => ({ addr: this.buf(n), len: n, w: true }))];
    const first = this.nextDesc[qi]!;
    segs.forEach((s, k) => {
      const i = (first + k) % QS;
      const o = q.desc + 16 * i;
      this.view.setUint32(o, s.addr, true);
      this.view.setUint32(o + 8, s.len, true);
      this.view.setUint16(o + 12, (k < segs.length - 1 ? VIRTQ_DESC_F.NEXT : 0) | (s.w ? VIRTQ_DESC_F.WRITE : 0), true);
      this.view.setUint16(o + 14, (first + k + 1) % QS, true);
    });
    this.nextDesc[qi] = (first + segs.length) % QS;
    const idx = this.view.getUint16(q.driver + 2, true);
    this.view.setUint16(q.driver + 4 + 2 * (idx % QS), first, true);
    this.view.setUint16(q.driver + 2, (idx + 1) & 0xffff, true);
    return segs.filter((s) => s.w).map((s) => s.addr);
  }

  usedCount(qi: number): number {
    return this.view.getUint16(this.queues[qi]!.device + 2, true);
  }

  usedLen(qi: number, k: number): number {
    return this.view.getUint32(this.queues[qi]!.device + 4 + 8 * (k % QS) + 4, true);
  }

  get ctrlIndex(): number {
    return has(this.nic.negotiatedFeatures, VIRTIO_NET_F.MQ) ? 2 * this.nic.maxPairs : 2;
  }

  /** Sends a control command; returns the ack byte (or undefined if none was written). */
  ctrl(cls: number, cmd: number, data: number[] | Uint8Array): number | undefined {
    const qi = this.ctrlIndex;
    const before = this.usedCount(qi);
    const [ack] = this.offer(qi, [Uint8Array.of(cls, cmd), Uint8Array.from(data)], [1]);
    this.nic.queueNotify(qi);
    if (this.usedCount(qi) === before || this.usedLen(qi, before) !== 1) return undefined;
    return this.bytes[ack!];
  }

  /** Transmits a frame with a virtio_net_hdr on tx queue `pair`. */
  tx(frame: Uint8Array, hdr: Partial<{ flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }> = {}, pair = 0): void {
    const h = new Uint8Array(12);
    const v = new DataView(h.buffer);
    h[0] = hdr.flags ?? 0;
    h[1] = hdr.gsoType ?? 0;
    v.setUint16(2, hdr.hdrLen ?? 0, true);
    v.setUint16(4, hdr.gsoSize ?? 0, true);
    v.setUint16(6, hdr.csumStart ?? 0, true);
    v.setUint16(8, hdr.csumOffset ?? 0, true);
    this.offer(2 * pair + 1, [h, frame], []);
    this.nic.queueNotify(2 * pair + 1);
  }
}

const from = (dstMac: string, dst = "10.0.2.15", sport = 1000): Uint8Array =>
  ipFrame({ srcMac: parseMac("52:55:0a:00:02:02"), dstMac: parseMac(dstMac), src: parseIpv4("10.0.2.2"), dst: parseIpv4(dst), proto: 17, l4: buildUdp(sport, 4000, new Uint8Array(20)) });

/** A TCP/IPv4 frame from the guest with `payload` bytes and the pseudo-header sum in the checksum field (as Linux leaves it for CSUM offload). */
function guestTcp(payload: number): Uint8Array {
  const f = ipFrame({
    srcMac: MAC, dstMac: parseMac("52:55:0a:00:02:02"), src: parseIpv4("10.0.2.15"), dst: parseIpv4("10.0.2.2"), proto: 6,
    l4: buildTcp({ srcPort: 40000, dstPort: 5201, seq: 1, ack: 1, flags: 0x18, window: 1000, payload: new Uint8Array(payload).map((_, i) => i & 0xff) }),
  });
  return f;
}

describe("virtio-net feature offer", () => {
  it("offers everything implemented, applying the spec's dependencies to what is withheld", () => {
    const all = offeredFeatures({});
    for (const b of Object.values(VIRTIO_NET_F)) if (b !== VIRTIO_NET_F.MTU && b !== VIRTIO_NET_F.STANDBY) expect(has(all, b), `bit ${b}`).toBe(true);
    expect(has(all, VIRTIO_F.VERSION_1)).toBe(true);
    const noCtrl = offeredFeatures({ withhold: [VIRTIO_NET_F.CTRL_VQ] });
    for (const b of [VIRTIO_NET_F.CTRL_RX, VIRTIO_NET_F.CTRL_VLAN, VIRTIO_NET_F.MQ, VIRTIO_NET_F.GUEST_ANNOUNCE, VIRTIO_NET_F.CTRL_MAC_ADDR, VIRTIO_NET_F.CTRL_RX_EXTRA, VIRTIO_NET_F.CTRL_GUEST_OFFLOADS]) {
      expect(has(noCtrl, b), `bit ${b}`).toBe(false);
    }
    const noCsum = offeredFeatures({ withhold: [VIRTIO_NET_F.CSUM] });
    expect([has(noCsum, VIRTIO_NET_F.HOST_TSO4), has(noCsum, VIRTIO_NET_F.HOST_TSO6), has(noCsum, VIRTIO_NET_F.HOST_ECN), has(noCsum, VIRTIO_NET_F.GUEST_TSO4)]).toEqual([false, false, false, true]);
    expect(has(offeredFeatures({ withhold: [VIRTIO_F.VERSION_1] }), VIRTIO_F.VERSION_1)).toBe(true);
    expect(has(offeredFeatures({ standby: true, mtu: 1500 }), VIRTIO_NET_F.STANDBY)).toBe(true);
  });

  it("changes the offer only while the device is reset", () => {
    const r = new Rig();
    expect(r.nic.setOffer({ withhold: [VIRTIO_NET_F.MQ] })).toBe(false);
    expect(has(r.nic.features, VIRTIO_NET_F.MQ)).toBe(true);
    r.nic.reset();
    expect(r.nic.setOffer({ withhold: [VIRTIO_NET_F.MQ] })).toBe(true);
    expect(has(r.nic.features, VIRTIO_NET_F.MQ)).toBe(false);
    // A field left out keeps its value; an empty list offers everything again.
    expect(r.nic.setOffer({ packed: true })).toBe(true);
    expect([has(r.nic.features, VIRTIO_NET_F.MQ), has(r.nic.features, VIRTIO_F.RING_PACKED)]).toEqual([false, true]);
    expect(r.nic.setOffer({ withhold: [] })).toBe(true);
    expect([has(r.nic.features, VIRTIO_NET_F.MQ), has(r.nic.features, VIRTIO_F.RING_PACKED)]).toEqual([true, true]);
  });
});

describe("virtio-net control queue", () => {
  it("sets the six rx modes (the last four only with CTRL_RX_EXTRA) and answers VIRTIO_NET_ERR otherwise", () => {
    const r = new Rig();
    expect(r.nic.filter.promisc).toBe(true); // power-on state
    expect(r.ctrl(0, 0, [0])).toBe(0);
    expect(r.nic.filter.promisc).toBe(false);
    expect(r.ctrl(0, 1, [1])).toBe(0);
    expect(r.ctrl(0, 5, [1])).toBe(0);
    expect([r.nic.filter.allmulti, r.nic.filter.nobcast]).toEqual([true, true]);
    expect(r.ctrl(0, 6, [1])).toBe(1);
    expect(r.ctrl(0, 0, [1, 2])).toBe(1);
    const noExtra = new Rig({ withhold: [VIRTIO_NET_F.CTRL_RX_EXTRA] });
    expect(noExtra.ctrl(0, 2, [1])).toBe(1);
    expect(noExtra.ctrl(0, 1, [1])).toBe(0);
    expect(r.nic.counters.ctrlErrors).toBe(2);
  });

  it("replaces the MAC tables, rejects a malformed one, and treats an overlong list as accept-all", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    const table = (macs: string[]): number[] => [macs.length, 0, 0, 0, ...macs.flatMap((m) => [...parseMac(m)])];
    expect(r.ctrl(1, 0, [...table(["52:54:00:00:00:99"]), ...table(["01:00:5e:01:02:03"])])).toBe(0);
    expect(r.nic.filter.unicast.has("525400000099")).toBe(true);
    expect(r.nic.filter.multicast.has("01005e010203")).toBe(true);
    expect(r.ctrl(1, 0, [...table(["52:54:00:00:00:99"]), 1, 0, 0, 0, 1, 2])).toBe(1); // truncated second table
    expect(r.ctrl(1, 0, [0xff, 0xff, 0xff, 0x7f])).toBe(1);
    expect(r.nic.filter.multicast.has("01005e010203")).toBe(true); // the bad commands changed nothing
    const many = Array.from({ length: 65 }, (_, i) => `01:00:5e:00:00:${i.toString(16).padStart(2, "0")}`);
    expect(r.ctrl(1, 0, [...table([]), ...table(many)])).toBe(0);
    expect(r.nic.filter.multiOverflow).toBe(true);
    expect(r.nic.filter.accepts(from("01:00:5e:7f:7f:7f"), MAC, false)).toBe(true);
  });

  it("sets the MAC with ADDR_SET (config space and unicast filter follow) and refuses a multicast one", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    expect(r.ctrl(1, 1, [...parseMac("52:54:00:ab:cd:ef")])).toBe(0);
    expect([0, 1, 2, 3, 4, 5].map((i) => r.nic.configRead(i, 1))).toEqual([...parseMac("52:54:00:ab:cd:ef")]);
    expect(r.nic.filter.accepts(from("52:54:00:ab:cd:ef"), r.nic.currentMac, false)).toBe(true);
    expect(r.nic.filter.accepts(from("52:54:00:12:34:56"), r.nic.currentMac, false)).toBe(false);
    expect(r.ctrl(1, 1, [...parseMac("01:00:5e:00:00:01")])).toBe(1);
    r.nic.reset();
    expect(r.nic.currentMac).toEqual(MAC);
  });

  it("filters tagged frames by the VLAN table once CTRL_VLAN is negotiated", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    const tagged = (vid: number): Uint8Array => {
      const f = from("52:54:00:12:34:56");
      const t = new Uint8Array(f.length + 4);
      t.set(f.subarray(0, 12));
      t.set([0x81, 0x00, vid >> 8, vid & 0xff], 12);
      t.set(f.subarray(12), 16);
      return t;
    };
    r.offer(0, [], [2048]);
    expect(r.nic.receive(tagged(5))).toBe(true);
    expect(r.nic.counters.rxFiltered).toBe(1);
    expect(r.ctrl(2, 0, [5, 0])).toBe(0);
    expect(r.nic.receive(tagged(5))).toBe(true);
    expect(r.nic.counters.rxFrames).toBe(1);
    expect(r.ctrl(2, 1, [5, 0])).toBe(0);
    expect(r.nic.filter.hasVlan(5)).toBe(false);
    expect(r.ctrl(2, 0, [0, 0x10])).toBe(1); // VLAN ID 4096
  });

  it("acknowledges an announce, sets the queue pairs, and switches guest offloads", () => {
    const r = new Rig();
    expect(r.nic.announce()).toBe(true);
    expect(r.nic.configRead(6, 2) & 2).toBe(2);
    expect(r.configSignals).toBe(1);
    expect(r.ctrl(3, 0, [])).toBe(0);
    expect(r.nic.announcePending).toBe(false);
    expect(r.nic.configRead(6, 2)).toBe(1);
    expect(r.ctrl(4, 0, [2, 0])).toBe(0);
    expect(r.nic.pairs).toBe(2);
    expect(r.ctrl(4, 0, [3, 0])).toBe(1);
    expect(r.ctrl(4, 0, [0, 0])).toBe(1);
    // GUEST_CSUM only (TSO off), then a bit that was never negotiated.
    expect(r.ctrl(5, 0, [2, 0, 0, 0, 0, 0, 0, 0])).toBe(0);
    expect(r.ctrl(5, 0, [0, 0, 0, 0, 0, 0, 0, 0x40])).toBe(1);
    expect(r.ctrl(9, 0, [])).toBe(1);
  });

  it("answers nothing to a command without an ack buffer, counts it, and never throws", () => {
    const r = new Rig();
    const qi = r.ctrlIndex;
    r.offer(qi, [Uint8Array.of(0, 0, 1)], []);
    expect(() => r.nic.queueNotify(qi)).not.toThrow();
    expect(r.usedCount(qi)).toBe(1);
    expect(r.usedLen(qi, 0)).toBe(0);
    expect(r.nic.counters.ctrlErrors).toBe(1);
    expect(r.failures).toEqual([]);
  });

  it("uses index 2 for the control queue when MQ is not negotiated", () => {
    const r = new Rig({ withhold: [VIRTIO_NET_F.MQ] });
    expect(r.ctrlIndex).toBe(2);
    expect(r.ctrl(0, 0, [0])).toBe(0);
    expect(r.nic.filter.promisc).toBe(false);
  });
});

describe("virtio-net offloads", () => {
  it("passes checksum and TSO requests to a backend that takes them", () => {
    const r = new Rig({ offloads: { csum: true, tso4: true, tso6: true } });
    const f = guestTcp(4000);
    r.tx(f, { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(r.sent).toHaveLength(1);
    expect(r.sent[0]!.meta).toEqual({ needsCsum: { start: 34, offset: 16 }, gso: { type: "tcpv4", size: 1448, hdrLen: 54 } });
  });

  it("segments and checksums in software for a backend without offloads", () => {
    const r = new Rig();
    const f = guestTcp(4000);
    r.tx(f, { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(r.sent.map((s) => s.frame.length)).toEqual([54 + 1448, 54 + 1448, 54 + 1104]);
    for (const s of r.sent) {
      expect(s.meta).toBeUndefined();
      expect(verifyL4Checksum(s.frame, parseFrame(s.frame))).toBe(true);
    }
    expect(r.nic.counters.swSegmented).toBe(1);
  });

  it("drops and counts offload requests the driver did not negotiate or that point outside the frame", () => {
    const r = new Rig({ features: offeredFeatures({ withhold: [VIRTIO_NET_F.CSUM] }) });
    r.tx(guestTcp(100), { flags: 1, csumStart: 34, csumOffset: 16 });
    r.tx(guestTcp(100), { gsoType: 1, gsoSize: 1000 });
    const ok = new Rig();
    ok.tx(guestTcp(100), { flags: 1, csumStart: 150, csumOffset: 16 });
    ok.tx(guestTcp(100), { flags: 1, gsoType: 1, gsoSize: 0, csumStart: 34, csumOffset: 16 });
    expect([r.sent.length, r.nic.counters.txErrors, ok.sent.length, ok.nic.counters.txErrors]).toEqual([0, 2, 0, 2]);
  });

  it("tells the guest DATA_VALID, passes GSO up with GUEST_TSO4, and segments when the guest switched TSO off", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    const big = guestTcp(3000);
    big.set(parseMac("52:54:00:12:34:56"), 0);
    const [a] = r.offer(0, [], [8192]);
    r.nic.receive(from("52:54:00:12:34:56"), { csumValid: true });
    expect(r.bytes[a!]).toBe(2); // DATA_VALID
    const [b] = r.offer(0, [], [8192]);
    r.nic.receive(big, { gso: { type: "tcpv4", size: 1000, hdrLen: 54 } });
    expect([r.bytes[b! + 1], r.view.getUint16(b! + 4, true)]).toEqual([1, 1000]);
    expect(r.ctrl(5, 0, [2, 0, 0, 0, 0, 0, 0, 0])).toBe(0);
    for (let i = 0; i < 4; i++) r.offer(0, [], [2048]);
    const frames = r.nic.counters.rxFrames;
    r.nic.receive(big, { gso: { type: "tcpv4", size: 1000, hdrLen: 54 } });
    expect(r.nic.counters.rxFrames - frames).toBe(3);
  });

  it("never delivers a software-segmented frame twice when the ring runs out part-way", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    expect(r.ctrl(5, 0, [2, 0, 0, 0, 0, 0, 0, 0])).toBe(0); // GUEST_TSO off: the device segments
    const big = guestTcp(3000);
    big.set(parseMac("52:54:00:12:34:56"), 0);
    const gso = { gso: { type: "tcpv4" as const, size: 1000, hdrLen: 54 } };
    // No buffer at all: nothing went in, so the backend may retry the whole frame.
    expect(r.nic.receive(big, gso)).toBe(false);
    expect(r.usedCount(0)).toBe(0);
    // One buffer for three segments: the first goes in, the other two are dropped and counted,
    // and the frame is reported taken so that no retry repeats the first segment.
    r.offer(0, [], [2048]);
    const noBuf = r.nic.counters.rxNoBuffer;
    expect(r.nic.receive(big, gso)).toBe(true);
    expect(r.usedCount(0)).toBe(1);
    expect(r.nic.counters.rxNoBuffer - noBuf).toBe(2);
    const first = r.usedLen(0, 0);
    expect(first).toBe(12 + 54 + 1000);
    // Buffers posted later carry only what is sent later.
    for (let i = 0; i < 3; i++) r.offer(0, [], [2048]);
    expect(r.usedCount(0)).toBe(1);
    expect(r.nic.receive(big, gso)).toBe(true);
    expect(r.usedCount(0)).toBe(4);
  });
});

describe("virtio-net multiqueue and state", () => {
  it("steers flows across the pairs in use", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    expect(r.ctrl(4, 0, [2, 0])).toBe(0);
    for (let i = 0; i < 15; i++) {
      r.offer(0, [], [2048]);
      r.offer(2, [], [2048]);
    }
    for (let p = 0; p < 16; p++) r.nic.receive(from("52:54:00:12:34:56", "10.0.2.15", 1000 + p));
    expect(r.usedCount(0) + r.usedCount(2)).toBe(16);
    expect(r.usedCount(0)).toBeGreaterThan(0);
    expect(r.usedCount(2)).toBeGreaterThan(0);
  });

  it("saves and restores filters, pairs, MAC, announce and offer; the parser rejects a corrupt state naming the field", () => {
    const r = new Rig();
    r.ctrl(0, 0, [0]);
    r.ctrl(1, 1, [...parseMac("52:54:00:ab:cd:ef")]);
    r.ctrl(2, 0, [7, 0]);
    r.ctrl(4, 0, [2, 0]);
    r.nic.announce();
    const s = r.nic.save();
    const r2 = new Rig();
    const cfg = { maxPairs: r2.nic.maxPairs, queues: r2.nic.queueSizes.length, configuredMac: r2.nic.configuredMac, fifoFrames: r2.nic.fifoFrames, negotiated: r.nic.negotiatedFeatures, live: true };
    r2.nic.restore(parseNetState(JSON.parse(JSON.stringify(s)), "net", cfg));
    expect(r2.nic.save()).toEqual(s);
    expect([r2.nic.filter.promisc, r2.nic.filter.hasVlan(7), r2.nic.pairs, r2.nic.announcePending]).toEqual([false, true, 2, true]);
    expect(r2.nic.configRead(0, 4)).toBe(0xab005452);
    const bad: [unknown, string][] = [
      [{ ...s, pairs: 3 }, "net.pairs"],
      [{ ...s, mac: "zz" }, "net.mac"],
      [{ ...s, mac: "535400123456" }, "net.mac"],
      [{ ...s, filter: { ...s.filter, vlans: [5000] } }, "net.filter.vlans[0]"],
      [{ ...s, version: 1 }, "net.version"],
      [{ ...s, pairs: 0 }, "net.pairs"],
      [null, "net"],
    ];
    for (const [b, path] of bad) expect(() => parseNetState(b, "net", cfg)).toThrow(expect.objectContaining({ name: "StateError", path }));
    expect(() => parseNetState(s, "net", { ...cfg, negotiated: 0n, live: false })).toThrow(expect.objectContaining({ path: "net.mac" }));
  });

  it("RxFilter: broadcast, no-broadcast, no-unicast and all-unicast", () => {
    const f = new RxFilter();
    f.promisc = false;
    expect(f.accepts(from("ff:ff:ff:ff:ff:ff"), MAC, false)).toBe(true);
    f.nobcast = true;
    expect(f.accepts(from("ff:ff:ff:ff:ff:ff"), MAC, false)).toBe(false);
    expect(f.accepts(from("52:54:00:00:00:01"), MAC, false)).toBe(false);
    f.alluni = true;
    expect(f.accepts(from("52:54:00:00:00:01"), MAC, false)).toBe(true);
    f.nouni = true;
    expect(f.accepts(from("52:54:00:12:34:56"), MAC, false)).toBe(false);
    expect(f.accepts(new Uint8Array(10), MAC, false)).toBe(false);
  });
});
