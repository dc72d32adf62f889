/**
 * The announce watch a migration source ends its late frames with: it hears a RARP from a MAC
 * the devices behind it sent from, only while armed, and nothing else; frames pass through both
 * ways unchanged and in order.
 */
import { describe, expect, it } from "vitest";
import { AnnounceWatch } from "./announce-watch.js";
import { createLink } from "./link.js";
import { BROADCAST_MAC, buildEthernet, parseMac } from "./frames.js";

const GUEST = parseMac("52:54:00:12:34:58");
const OTHER = parseMac("52:54:00:aa:bb:cc");
const rarp = (src: Uint8Array): Uint8Array => buildEthernet({ dst: BROADCAST_MAC, src, etherType: 0x8035, payload: new Uint8Array(28), pad: true });
const ipv4 = (src: Uint8Array, dst: Uint8Array, tag: number): Uint8Array => buildEthernet({ dst, src, etherType: 0x0800, payload: Uint8Array.of(tag, 0, 0, 0), pad: true });

function setup(): { watch: AnnounceWatch; segment: ReturnType<typeof createLink>[1]; got: Uint8Array[]; out: Uint8Array[] } {
  const [dev, segment] = createLink();
  const watch = new AnnounceWatch(dev);
  const got: Uint8Array[] = [];
  const out: Uint8Array[] = [];
  watch.setReceiver((f) => (got.push(f), true));
  segment.setReceiver((f) => (out.push(f), true));
  return { watch, segment, got, out };
}

describe("AnnounceWatch", () => {
  it("hears a RARP from the guest's MAC only once armed, after delivering what came before it", () => {
    const { watch, segment, got, out } = setup();
    expect(watch.hasMacs).toBe(false);
    watch.transmit(ipv4(GUEST, OTHER, 1));
    expect(out).toHaveLength(1);
    expect(watch.hasMacs).toBe(true);
    // Not armed: an announce from elsewhere is not news yet.
    segment.transmit(rarp(GUEST));
    expect(watch.heard).toBe(false);
    watch.arm();
    segment.transmit(ipv4(OTHER, GUEST, 2));
    expect(watch.heard).toBe(false);
    segment.transmit(rarp(GUEST));
    expect(watch.heard).toBe(true);
    // Every frame reached the devices, in order, the announce included.
    expect(got.map((f) => (f[12] === 0x80 && f[13] === 0x35 ? "rarp" : f[14]))).toEqual(["rarp", 2, "rarp"]);
    watch.disarm();
    expect(watch.heard).toBe(false);
  });

  it("ignores another station's RARP, a non-RARP frame from the guest's MAC, and group source addresses", () => {
    const { watch, segment } = setup();
    watch.transmit(ipv4(GUEST, OTHER, 1));
    // A frame with a group source address (never a station's) is not remembered.
    watch.transmit(ipv4(BROADCAST_MAC, OTHER, 1));
    watch.arm();
    segment.transmit(rarp(OTHER));
    segment.transmit(ipv4(GUEST, OTHER, 3));
    segment.transmit(rarp(BROADCAST_MAC));
    expect(watch.heard).toBe(false);
    segment.transmit(rarp(GUEST));
    expect(watch.heard).toBe(true);
  });

  it("remembers a bounded number of MACs, the latest ones", () => {
    const { watch, segment } = setup();
    for (let i = 0; i < 40; i++) watch.transmit(ipv4(Uint8Array.of(0x52, 0x54, 0, 0, 0, i), OTHER, 0));
    watch.arm();
    segment.transmit(rarp(Uint8Array.of(0x52, 0x54, 0, 0, 0, 0)));
    expect(watch.heard).toBe(false);
    segment.transmit(rarp(Uint8Array.of(0x52, 0x54, 0, 0, 0, 39)));
    expect(watch.heard).toBe(true);
  });

  it("shows the inner backend's offloads only where it has them", () => {
    const withOffloads = new AnnounceWatch({ transmit: () => undefined, setReceiver: () => undefined, offloads: { csum: true, tso4: false, tso6: false } });
    expect(withOffloads.offloads).toEqual({ csum: true, tso4: false, tso6: false });
    const without = new AnnounceWatch({ transmit: () => undefined, setReceiver: () => undefined });
    expect("offloads" in without).toBe(false);
  });
});
