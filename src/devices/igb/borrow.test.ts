/**
 * The 82576 model borrows the frames its uplink hands over (`ReceiverOptions.borrows`): a backend
 * such as the TAP then reads every frame into the same bytes. So the NIC must be done with a frame
 * when its sink returns: written to a ring, or copied into a hold FIFO (the whole NIC's, or a VF
 * pool's) while that does not run. Here the uplink overwrites its one buffer after each frame.
 */
import { describe, it, expect } from "vitest";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { ReusingBackend } from "../net/testing.js";

const PEER = [0x02, 0x99, 0, 0, 0, 1];
const VF0 = [0x02, 0, 0, 0, 0x01, 0];

/** Frame `seq` for VF 0 (`len` bytes) through the uplink's one buffer. */
const push = (up: ReusingBackend, seq: number, len: number): void =>
  void up.push(len, (f) => {
    f.fill(0x5a);
    f.set(VF0, 0);
    f.set(PEER, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    f[14] = seq;
  });

const intact = (f: Uint8Array, seq: number, len: number): boolean =>
  f.length === len && f[14] === seq && f.subarray(15).every((b) => b === 0x5a) && VF0.every((b, i) => f[i] === b);

describe("borrowed uplink frames", () => {
  it("asks to borrow; a VF gets every frame intact, written at once or held by the NIC or by its pool", () => {
    const up = new ReusingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const d = tb.vfs[0]!;
    d.reset();
    d.open();
    expect(up.options).toEqual({ borrows: true });
    const sizes = [60, 1514, 300];
    const check = (from: number): void => {
      const got = d.receive();
      expect(got.length).toBe(sizes.length);
      got.forEach((g, i) => expect(intact(g.frame, from + i, sizes[i]!)).toBe(true));
    };
    sizes.forEach((len, i) => push(up, i, len));
    check(0);
    tb.core.setActivity("quiesced");
    sizes.forEach((len, i) => push(up, 10 + i, len));
    tb.core.setActivity("running");
    check(10);
    tb.core.setVfActivity(0, "quiesced");
    sizes.forEach((len, i) => push(up, 20 + i, len));
    tb.core.setVfActivity(0, "running");
    check(20);
  });
});
