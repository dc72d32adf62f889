import { describe, expect, it } from "vitest";
import { buildArp, buildEcho, buildEthernet, buildIpv4, BROADCAST_MAC, finishFrame, parseIpv4 } from "../../devices/net/frames.js";
import { STATUS } from "../../devices/virtio/pci-transport.js";
import { CountingBackend } from "../../devices/net/testing.js";
import { createVirtioNetTestbed } from "./testbed.js";

const IP = parseIpv4("10.0.2.15");
const STUB_IP = parseIpv4("10.0.2.2");

for (const packed of [false, true]) {
  for (const mergeable of [true, false]) {
    const name = `${packed ? "packed" : "split"} ring, ${mergeable ? "mergeable" : "big"} RX buffers`;
    describe(`simulated virtio-net driver: ${name}`, () => {
      it("brings the device up and pings the host stub (ARP, then ICMP echo)", () => {
        const tb = createVirtioNetTestbed({ device: { packed }, driver: { packed, mergeable } });
        const d = tb.driver;
        const p = d.probe();
        expect(p.layout).toBe(packed ? "packed" : "split");
        expect([...p.mac]).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        expect(p.linkUp).toBe(true);
        expect(d.has(15)).toBe(mergeable);
        d.open();
        expect(d.status & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
        expect(tb.transport.queues[0]!.layout).toBe(packed ? "packed" : "split");

        // ARP for 10.0.2.2
        d.send(buildEthernet({ dst: BROADCAST_MAC, src: p.mac, etherType: 0x0806, payload: buildArp(1, p.mac, IP, new Uint8Array(6), STUB_IP), pad: true }));
        const [arp] = d.receive();
        expect(arp).toBeDefined();
        expect(arp!.subarray(0, 6)).toEqual(p.mac);
        expect([arp![12], arp![13], arp![21]]).toEqual([0x08, 0x06, 2]); // ARP reply
        const stubMac = arp!.subarray(6, 12).slice();

        // Echo request, with a payload that needs several mergeable buffers.
        for (const size of [56, 4000]) {
          const data = new Uint8Array(size).map((_, i) => i & 0xff);
          const req = finishFrame(buildEthernet({ dst: stubMac, src: p.mac, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 7, size, data) }) }));
          expect(d.send(req)).toBe(true);
          const got = d.receiveWithHeaders();
          expect(got.length).toBe(1);
          const r = got[0]!.frame;
          // num_buffers: how many mergeable buffers the frame took (1 without MRG_RXBUF)
          const nb = got[0]!.hdr[10]! | (got[0]!.hdr[11]! << 8);
          expect(nb).toBe(mergeable ? Math.ceil((12 + r.length) / 1536) : 1); // virtio 1.x: 1 without MRG_RXBUF
          expect(r.length).toBe(req.length);
          expect(r[14 + 20]).toBe(0); // echo reply
          expect(r.subarray(14 + 28)).toEqual(data);
        }
        expect(tb.stub!.counters.echoReplies).toBe(2);
        expect(tb.nic.counters.rxFrames).toBe(3);
        expect(tb.nic.counters.txFrames).toBe(3);
        expect(tb.transport.counters.guestErrors).toBe(0);
        expect(d.reclaim()).toBeGreaterThanOrEqual(0);
      });

      it("keeps passing traffic over several laps of the ring and after a reset and re-probe", () => {
        const tb = createVirtioNetTestbed({ device: { packed, queueSize: 16 }, driver: { packed, mergeable } });
        const d = tb.driver;
        const frame = (mac: Uint8Array, seq: number): Uint8Array =>
          finishFrame(buildEthernet({ dst: tb.stub!.mac, src: mac, etherType: 0x0800, payload: buildIpv4({ src: IP, dst: STUB_IP, proto: 1, payload: buildEcho(8, 1, seq, new Uint8Array(32)) }) }));
        for (let round = 0; round < 2; round++) {
          const p = d.probe();
          d.open();
          let replies = 0;
          for (let i = 0; i < 100; i++) {
            d.send(frame(p.mac, i));
            replies += d.receive().length;
          }
          expect(replies).toBe(100);
        }
        expect(tb.stub!.counters.echoReplies).toBe(200);
        expect(tb.transport.counters.guestErrors).toBe(0);
      });
    });
  }
}

for (const packed of [false, true]) {
  describe(`simulated virtio-net driver, ${packed ? "packed" : "split"} ring: multi-buffer frames`, () => {
    const setup = () => {
      const backend = new CountingBackend();
      const tb = createVirtioNetTestbed({ backend, device: { packed, queueSize: 64 }, driver: { packed }, memSize: 8 << 20 });
      const p = tb.driver.probe();
      tb.driver.open();
      const frame = (size: number, fill: number): Uint8Array => {
        const f = new Uint8Array(size).fill(fill);
        f.set(p.mac, 0);
        f.set([0x02, 9, 9, 9, 9, 9], 6);
        f.set([0x08, 0x00], 12);
        return f;
      };
      return { tb, sink: backend.sink!, frame };
    };

    it("reassembles each frame whole, a smaller one after a bigger one included (the reassembly array is reused)", () => {
      const { tb, sink, frame } = setup();
      const sizes = [20000, 3000, 9000, 1600, 20000];
      let n = 0;
      for (let round = 0; round < 3; round++) {
        for (const [k, size] of sizes.entries()) sink(frame(size, 0x10 + k));
        const got = tb.driver.receiveWithHeaders();
        expect(got.map((g) => g.frame.length)).toEqual(sizes);
        for (const [k, g] of got.entries()) {
          expect(g.frame).toEqual(frame(sizes[k]!, 0x10 + k));
          expect(g.hdr[10]! | (g.hdr[11]! << 8)).toBe(Math.ceil((12 + sizes[k]!) / 1536));
          n++;
        }
      }
      expect(n).toBe(15);
      expect(tb.driver.rxErrors).toBe(0);
    });

    it("a frame whose num_buffers claims more buffers than the ring holds is an rxError; the next frame arrives", () => {
      const { tb, sink, frame } = setup();
      sink(frame(100, 0x55));
      // Find the delivered header (12 bytes before the frame's MAC addresses) and corrupt num_buffers.
      const ram = tb.ram.bytes;
      const head = frame(100, 0x55).subarray(0, 14);
      let at = -1;
      for (let a = 0; a + 14 <= ram.length && at < 0; a += 64) if (ram[a + 12] === head[0] && ram.subarray(a + 12, a + 26).every((b, i) => b === head[i])) at = a;
      expect(at).toBeGreaterThanOrEqual(0);
      ram[at + 10] = 0xff;
      ram[at + 11] = 0xff;
      expect(tb.driver.receive()).toEqual([]);
      expect(tb.driver.rxErrors).toBe(1);
      sink(frame(5000, 0x66));
      const got = tb.driver.receive();
      expect(got.length).toBe(1);
      expect(got[0]).toEqual(frame(5000, 0x66));
    });
  });
}
