/**
 * The driver's control queue and multiqueue bring-up against a minimal virtio-net-like device
 * that offers CTRL_VQ and MQ (VirtioNet itself does not offer them yet): queue layout
 * rx0, tx0, rx1, tx1, ctrl; VQ_PAIRS_SET sent at open; `ctrl()` returns the device's ack.
 */
import { describe, expect, it } from "vitest";
import { VirtioPciTransport, type VirtioContext, type VirtioDevice } from "../../devices/virtio/pci-transport.js";
import { readChain, writeChain } from "../../devices/virtio/virtqueue.js";
import { FlatRam } from "./testbed.js";
import { CTRL, NET_F, SimVirtioNet } from "./driver.js";

class CtrlDevice implements VirtioDevice {
  readonly deviceId = 1;
  readonly features = (1n << 32n) | (1n << 5n) | (1n << BigInt(NET_F.CTRL_VQ)) | (1n << BigInt(NET_F.MQ)) | (1n << 34n) | (1n << 29n);
  readonly queueSizes = [8, 8, 8, 8, 8];
  readonly configSize = 12;
  ctx: VirtioContext | undefined;
  commands: [number, number, number[]][] = [];
  pairs = 1;
  configRead(off: number): number {
    return off === 8 ? 2 : off < 6 ? 0x50 + off : 0; // max_virtqueue_pairs = 2
  }
  configWrite(): void {}
  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }
  reset(): void {
    this.ctx = undefined;
  }
  queueNotify(i: number): void {
    const ctx = this.ctx;
    if (ctx === undefined || i !== 4) return;
    const q = ctx.queues[4]!;
    for (let c = q.popChain(ctx.mem); c !== undefined; c = q.popChain(ctx.mem)) {
      const b = readChain(ctx.mem, c, 64)!;
      const payload = [...b.subarray(2)];
      this.commands.push([b[0]!, b[1]!, payload]);
      let ack: number = CTRL.ERR;
      if (b[0] === CTRL.MQ && b[1] === CTRL.MQ_VQ_PAIRS_SET && payload.length === 2) {
        this.pairs = payload[0]! | (payload[1]! << 8);
        ack = CTRL.OK;
      }
      q.addUsed(ctx.mem, c.head, writeChain(ctx.mem, c, Uint8Array.of(ack)));
    }
  }
}

for (const packed of [false, true]) {
  describe(`simulated driver control queue, ${packed ? "packed" : "split"} ring`, () => {
    it("sets up rx0, tx0, rx1, tx1, ctrl, sends VQ_PAIRS_SET, and returns acks of generic commands", () => {
      const dev = new CtrlDevice();
      const t = new VirtioPciTransport(dev);
      const ram = new FlatRam(8 << 20);
      t.fn.attach(0x100, { msi: () => {}, intx: () => {} }, ram);
      let next = 0x10000;
      const alloc = (size: number, align: number): number => {
        next = Math.ceil(next / align) * align;
        const a = next;
        next += size;
        return a;
      };
      const d = new SimVirtioNet({ fn: t.fn, ram: ram.bytes, alloc }, { packed, pairs: 2 });
      const p = d.probe();
      expect([p.ctrl, p.pairs, p.layout]).toEqual([true, 2, packed ? "packed" : "split"]);
      d.open();
      expect(d.pairs).toBe(2);
      expect(t.queues.every((q) => q.ready)).toBe(true);
      expect(dev.pairs).toBe(2);
      expect(dev.commands[0]).toEqual([CTRL.MQ, CTRL.MQ_VQ_PAIRS_SET, [2, 0]]);
      expect(d.ctrl(0, 0, Uint8Array.of(1))).toBe(CTRL.ERR); // RX_PROMISC: this device refuses it
      expect(d.ctrl(CTRL.MQ, CTRL.MQ_VQ_PAIRS_SET, Uint8Array.of(1, 0))).toBe(CTRL.OK);
      expect(dev.pairs).toBe(1);
      expect(dev.commands.length).toBe(3);
      // Many commands: the control ring's buffers are recycled.
      for (let i = 0; i < 20; i++) expect(d.ctrl(CTRL.MQ, CTRL.MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0))).toBe(CTRL.OK);
    });
  });
}
