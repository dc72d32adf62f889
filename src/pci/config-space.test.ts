import { describe, expect, it } from "vitest";
import { ConfigSpace } from "./config-space.js";
import { PciConfigError } from "./errors.js";

describe("ConfigSpace", () => {
  it("writes through wmask and clears RW1C bits only where 1 is written", () => {
    const cs = new ConfigSpace(256);
    cs.set16(0x40, 0x00f0);
    cs.setMasks(0x40, 2, { w: 0x000f, w1c: 0x00f0 });
    cs.write(0x40, 2, 0xff3a);
    expect(cs.get16(0x40)).toBe(0x00ca); // low nibble written (0xa), RW1C bits 4,5 cleared, 6,7 kept
  });
  it("rejects overlapping wmask and w1cmask", () => {
    expect(() => new ConfigSpace(256).setMasks(0x40, 1, { w: 1, w1c: 1 })).toThrow(PciConfigError);
  });
  it("reads all ones and drops writes outside the space or with odd sizes", () => {
    const cs = new ConfigSpace(256);
    cs.setMasks(0xfc, 4, { w: 0xffffffff });
    expect(cs.read(0xfe, 4)).toBe(0xffffffff);
    expect(cs.read(0x100, 1)).toBe(0xff);
    expect(cs.read(0, 3)).toBe(0xffffffff);
    cs.write(0xfe, 4, 0x12345678);
    expect(cs.get32(0xfc)).toBe(0);
  });
  it("chains standard and extended capabilities", () => {
    const cs = new ConfigSpace(4096);
    const a = cs.addCapability(0x01, 8);
    const b = cs.addCapability(0x05, 0x18);
    expect(cs.get8(0x34)).toBe(a);
    expect(cs.get8(a + 1)).toBe(b);
    expect(cs.get16(0x06) & 0x10).toBe(0x10);
    expect(cs.findCapability(0x05)).toBe(b);
    const x = cs.addExtCapability(0x0e, 1, 8);
    const y = cs.addExtCapability(0x10, 1, 0x40);
    expect(x).toBe(0x100);
    expect(cs.get32(x) >>> 20).toBe(y);
    expect(cs.findExtCapability(0x10)).toBe(y);
    expect(() => new ConfigSpace(256).addExtCapability(1, 1, 8)).toThrow(PciConfigError);
  });
});
