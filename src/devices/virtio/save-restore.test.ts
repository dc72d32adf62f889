/**
 * Save/restore of the transport and its queues on both layouts: mid-traffic (frames queued on TX
 * but not notified, RX frames used but not yet taken by the driver), restored into a fresh device
 * on the same guest memory; traffic continues with no loss and no duplicate. Corrupt states are
 * rejected by the parser with a StateError naming the field, and change nothing.
 */
import { describe, expect, it } from "vitest";
import { buildEcho, buildEthernet, buildIpv4, finishFrame, parseIpv4 } from "../net/frames.js";
import { createVirtioNetTestbed } from "../../guest/virtio-net/testbed.js";
import { PACKED_DESC_F, PackedQueue } from "./packed-queue.js";
import { STATUS } from "./pci-transport.js";
import { parseQueueState, type PackedQueueState } from "./queue-state.js";
import type { VirtioNetPciState } from "../virtio-net/pci.js";

const IP = parseIpv4("10.0.2.15");
const STUB_IP = parseIpv4("10.0.2.2");

function ping(mac: Uint8Array, dst: Uint8Array, seq: number): Uint8Array {
  return finishFrame(buildEthernet({ dst, src: mac, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 1, seq, new Uint8Array(16)) }) }));
}
const seqOf = (f: Uint8Array): number => (f[14 + 20 + 6]! << 8) | f[14 + 20 + 7]!;

for (const packed of [false, true]) {
  describe(`save/restore, ${packed ? "packed" : "split"} ring`, () => {
    it("mid-traffic into a fresh device: no frame lost or duplicated", () => {
      const a = createVirtioNetTestbed({ device: { packed, queueSize: 16 }, driver: { packed } });
      const d = a.driver;
      const p = d.probe();
      d.open();
      const stubMac = a.stub!.mac;
      const seen: number[] = [];
      let seq = 0;
      // Several laps of the 16-entry rings so wrap counters / free-running indices are not trivial.
      for (let i = 0; i < 37; i++) {
        d.send(ping(p.mac, stubMac, seq++));
        for (const f of d.receive()) seen.push(seqOf(f));
      }
      // In flight at save time: 3 replies used but not taken, 5 requests queued but not notified.
      for (let i = 0; i < 3; i++) d.send(ping(p.mac, stubMac, seq++));
      d.reclaim();
      for (let i = 0; i < 5; i++) expect(d.queue(ping(p.mac, stubMac, seq++))).toBe(true);
      const saved = JSON.parse(JSON.stringify({ fn: a.transport.fn.save(), dev: a.dev.save() }));

      const b = createVirtioNetTestbed({ device: { packed, queueSize: 16 }, driver: { packed }, ram: a.ram });
      b.transport.fn.restore(saved.fn);
      b.dev.restore(b.dev.stateType.parse(saved.dev));
      expect(b.transport.queues[0]!.layout).toBe(packed ? "packed" : "split");
      d.rebind(b.transport.fn);
      d.flush();
      for (const f of d.receive()) seen.push(seqOf(f));
      for (let i = 0; i < 20; i++) {
        d.send(ping(p.mac, b.stub!.mac, seq++));
        for (const f of d.receive()) seen.push(seqOf(f));
      }
      expect(seen).toEqual(Array.from({ length: seq }, (_, i) => i));
      expect(a.stub!.counters.echoRequests + b.stub!.counters.echoRequests).toBe(seq);
      expect(b.transport.counters.guestErrors).toBe(0);
    });

    it("the parser rejects corrupt states naming the field; nothing changes", () => {
      const a = createVirtioNetTestbed({ device: { packed, queueSize: 16 }, driver: { packed } });
      a.driver.probe();
      a.driver.open();
      const good = a.dev.save();
      const b = createVirtioNetTestbed({ device: { packed, queueSize: 16 } });
      const before = JSON.stringify(b.dev.save());
      const bad: [(s: VirtioNetPciState) => void, string][] = [
        [(s) => void (s.transport.queues[1]!.nextAvail = 0x10000), "transport.queues[1].nextAvail"],
        [(s) => void (s.transport.queues[0]!.size = 1024), "transport.queues[0].size"],
        [(s) => void (s.transport.queues[1]!.layout = packed ? "split" : "packed"), "transport.queues[1].layout"],
        [(s) => void (s.transport.queues[0]!.desc = 3), "transport.queues[0].desc"],
        [(s) => void (s.transport.driverFeatures = "xyz"), "transport.driverFeatures"],
        [(s) => void (s.transport.queues = s.transport.queues.slice(1)), "transport.queues"],
        [(s) => void ((s.transport as unknown as { status: unknown }).status = "on"), "transport.status"],
        [(s) => void (s.transport.status = STATUS.DRIVER_OK | STATUS.DRIVER | STATUS.ACKNOWLEDGE), "transport.status"],
        [(s) => void (s.transport.queues[1]!.inflight = [[1, 99]] as never), `transport.queues[1].inflight[0]${packed ? "[1]" : ""}`],
        [(s) => void (s.transport.queues[1]!.inflight = (packed ? [[1, 1]] : [1]) as never), "transport.queues[1].inflight"],
        [(s) => void (s.transport.queues[1]!.sinceSignal = -1), "transport.queues[1].sinceSignal"],
        [(s) => void (s.transport.queues[1]!.msixVector = 7), "transport.queues[1].msixVector"],
        [(s) => void (s.transport.configVector = 4), "transport.configVector"],
        [(s) => void (s.transport.driverFeatures = (BigInt(`0x${s.transport.driverFeatures}`) | (1n << 40n)).toString(16)), "transport.driverFeatures"],
        [(s) => void (s.net.pairs = 2), "net.pairs"],
        [(s) => void (s.net.pendingQueues = [9]), "net.pendingQueues[0]"],
      ];
      for (const [mutate, path] of bad) {
        const s = JSON.parse(JSON.stringify(good)) as VirtioNetPciState;
        mutate(s);
        expect(() => b.dev.stateType.parse(s, "dev"), path).toThrow(expect.objectContaining({ name: "StateError", path: `dev.${path}` }));
        expect(JSON.stringify(b.dev.save())).toBe(before);
      }
      b.dev.restore(b.dev.stateType.parse(good));
      expect(b.transport.status & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
      expect(b.dev.save()).toEqual(good);
    });
  });
}

describe("packed queue state", () => {
  it("keeps popped-but-unused chains, wrap counters and event state across save/restore", () => {
    const bytes = new Uint8Array(0x10000);
    const v = new DataView(bytes.buffer);
    const mem = {
      read: (a: number, l: number) => (a >= 0 && a + l <= bytes.length ? bytes.subarray(a, a + l) : undefined),
      write: (a: number, d: Uint8Array) => (a >= 0 && a + d.length <= bytes.length ? (bytes.set(d, a), true) : false),
    };
    const q = new PackedQueue(4);
    Object.assign(q, { desc: 0x1000, driver: 0x2000, device: 0x3000, ready: true });
    // Driver: buffer id 5 as a 2-entry chain at 0..1, id 6 at 2 (wrap 1).
    const put = (i: number, id: number, flags: number): void => {
      v.setUint32(0x1000 + 16 * i, 0x8000, true);
      v.setUint32(0x1000 + 16 * i + 8, 64, true);
      v.setUint16(0x1000 + 16 * i + 12, id, true);
      v.setUint16(0x1000 + 16 * i + 14, flags | PACKED_DESC_F.AVAIL, true);
    };
    put(0, 5, PACKED_DESC_F.NEXT | PACKED_DESC_F.WRITE);
    put(1, 5, PACKED_DESC_F.WRITE);
    put(2, 6, PACKED_DESC_F.WRITE);
    expect(q.popChain(mem)!.head).toBe(5);
    expect(q.popChain(mem)!.head).toBe(6);
    const s = JSON.parse(JSON.stringify(q.save()));
    expect(s.inflight).toEqual([[5, 2], [6, 1]]);
    const r = new PackedQueue(4);
    r.restore(parseQueueState(s, "q", { maxSize: 4, layout: "packed", msixVectors: 2, mayBeReady: true }) as PackedQueueState);
    r.addUsed(mem, 5, 10);
    r.addUsed(mem, 6, 20);
    // Used entries at ring positions 0 (id 5) and 2 (id 6): 5 took two entries.
    expect([v.getUint16(0x1000 + 12, true), v.getUint16(0x1000 + 32 + 12, true)]).toEqual([5, 6]);
    expect([r.nextUsed, r.usedWrap]).toEqual([3, true]);
  });
});
