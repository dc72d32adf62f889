import { describe, expect, it } from "vitest";
import { createFailoverTestbed } from "./testbed.js";

const MAC = Uint8Array.of(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
const PEER = Uint8Array.of(0x02, 0x99, 0, 0, 0, 1);
function frame(dst: Uint8Array, src: Uint8Array, tag: number): Uint8Array {
  const f = new Uint8Array(80).fill(tag);
  f.set(dst, 0); f.set(src, 6); f[12] = 0x88; f[13] = 0xb5;
  return f;
}
describe("smoke", () => {
  it("runs", () => {
    const tb = createFailoverTestbed({ adminMac: MAC });
    const d = tb.driver;
    expect(d.reset()).toBe(true);
    d.open();
    expect(d.setLpe(1522)).toBe(true);
    expect(d.send(frame(PEER, MAC, 1))).toBe(true);
    expect(tb.wire.inject(frame(MAC, PEER, 2))).toBe(true);
    expect(d.receive().map((x) => x.frame[20])).toEqual([2]);
    console.log(tb.msi, tb.wire.sent.map((f) => f[20]));
    const r = tb.model.failover.switchTo("emulated");
    console.log(r);
    expect(r.ok).toBe(true);
    expect(d.send(frame(PEER, MAC, 3))).toBe(true);
    expect(tb.wire.inject(frame(MAC, PEER, 4))).toBe(true);
    expect(d.receive().map((x) => x.frame[20])).toEqual([4]);
    console.log(tb.msi, tb.wire.sent.map((f) => [f[12], f[20]]));
    expect(d.setVlan(5, true)).toBe(true);
    expect(d.checkLink()).toBe("up");
    const r2 = tb.model.failover.switchTo("passthrough");
    expect(r2.ok).toBe(true);
    expect(d.send(frame(PEER, MAC, 5))).toBe(true);
    expect(tb.wire.inject(frame(MAC, PEER, 6))).toBe(true);
    expect(d.receive().map((x) => x.frame[20])).toEqual([6]);
    expect(d.checkLink()).toBe("up");
    console.log(tb.msi, tb.model.failover.stats(), tb.model.net.macTable());
  });
});
