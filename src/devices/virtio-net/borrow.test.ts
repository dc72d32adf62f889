/**
 * virtio-net borrows the frames its backend hands over (`ReceiverOptions.borrows`): a backend such
 * as the TAP then reads every frame into the same bytes. So the device must be done with a frame
 * when its sink returns: placed in the guest's buffers, or copied into the FIFO while it does not
 * run. Here the backend overwrites its one buffer after each frame, as the TAP does. The other way,
 * a backend that is done with a sent frame when `transmit` returns (`copiesOnTransmit`, the TAP)
 * gets every frame in the device's one reused buffer; any other gets frames of its own.
 */
import { describe, expect, it } from "vitest";
import type { NetBackend } from "../net/backend.js";
import { ManualClock, ReusingBackend } from "../net/testing.js";
import { createVirtioNetTestbed } from "../../guest/virtio-net/testbed.js";

/** Frame `n` (`len` bytes) through the backend's one buffer; true if taken. */
const push = (wire: ReusingBackend, n: number, len: number): boolean =>
  wire.push(len, (f) => {
    f.fill(0xaa);
    f.fill(0xff, 0, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    f[14] = n;
  });

const intact = (f: Uint8Array, n: number, len: number): boolean =>
  f.length === len && f[14] === n && f.subarray(15).every((b) => b === 0xaa) && f.subarray(0, 6).every((b) => b === 0xff);

for (const packed of [false, true]) {
  describe(`borrowed receive frames, ${packed ? "packed" : "split"} ring`, () => {
    it("asks to borrow, and the guest gets every frame intact, placed at once or through the FIFO", () => {
      const wire = new ReusingBackend();
      const tb = createVirtioNetTestbed({ device: { packed, queueSize: 16, clock: new ManualClock() }, driver: { packed, ringSize: 16 }, backend: wire, memSize: 4 << 20 });
      expect(wire.options).toEqual({ borrows: true });
      tb.driver.probe();
      tb.driver.open();
      // Running: placed in guest memory before the sink returns.
      const sizes = [60, 1514, 200, 999];
      sizes.forEach((len, n) => expect(push(wire, n, len)).toBe(true));
      const got = tb.driver.receive();
      expect(got.length).toBe(sizes.length);
      got.forEach((f, n) => expect(intact(f, n, sizes[n]!)).toBe(true));
      // Quiesced: the FIFO keeps copies, delivered intact on return to running.
      tb.dev.setActivity("quiesced");
      sizes.forEach((len, n) => expect(push(wire, 10 + n, len)).toBe(true));
      tb.dev.setActivity("running");
      const later = tb.driver.receive();
      expect(later.length).toBe(sizes.length);
      later.forEach((f, n) => expect(intact(f, 10 + n, sizes[n]!)).toBe(true));
    });
  });
}

/** A backend that copies what it is sent, and notes which buffers the frames came in. */
class CopyingWire implements NetBackend {
  readonly copiesOnTransmit: boolean;
  readonly sent: Uint8Array[] = [];
  readonly kept: Uint8Array[] = [];
  readonly buffers = new Set<ArrayBufferLike>();
  constructor(copies: boolean) {
    this.copiesOnTransmit = copies;
  }
  transmit(f: Uint8Array): void {
    this.sent.push(f.slice());
    this.kept.push(f);
    this.buffers.add(f.buffer);
  }
  setReceiver(): void {}
}

const txFrame = (n: number, len: number): Uint8Array => {
  const f = new Uint8Array(len).fill(n);
  f.fill(0xff, 0, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
};

describe("sent frames and copiesOnTransmit", () => {
  for (const copies of [true, false]) {
    it(`${copies ? "a copying backend gets frames in one reused buffer" : "a keeping backend gets frames of its own that stay intact"}`, () => {
      const wire = new CopyingWire(copies);
      const tb = createVirtioNetTestbed({ device: { packed: false, queueSize: 16, clock: new ManualClock() }, driver: { packed: false, ringSize: 16 }, backend: wire, memSize: 4 << 20 });
      tb.driver.probe();
      tb.driver.open();
      // Large enough for buffers of their own (over 16 KiB), and small ones.
      const sizes = [60, 20000, 1514, 30000];
      sizes.forEach((len, n) => expect(tb.driver.send(txFrame(n + 1, len))).toBe(true));
      expect(wire.sent.map((f) => f.length)).toEqual(sizes);
      wire.sent.forEach((f, n) => expect(f.subarray(14).every((b) => b === n + 1)).toBe(true));
      if (copies) expect(wire.buffers.size).toBe(1);
      else wire.kept.forEach((f, n) => expect(f.subarray(14).every((b) => b === n + 1)).toBe(true));
    });
  }
});
