import { describe, it, expect } from "vitest";
import { bdfName, formatLspciDump, type DumpFunction } from "./lspci.js";

function fakeFn(bytes: Uint8Array, bus: number, devfn: number): DumpFunction {
  return { bus, devfn, size: bytes.length === 4096 ? 4096 : 256, read: (r) => bytes[r] ?? 0xff };
}

describe("formatLspciDump", () => {
  const cfg = new Uint8Array(4096);
  cfg.set([0x86, 0x80, 0xc9, 0x10], 0); // 8086:10c9
  cfg[8] = 0x01; // revision
  cfg[0x0a] = 0x00;
  cfg[0x0b] = 0x02; // Ethernet
  cfg[0x100] = 0x10;
  cfg[0xfff] = 0xab;

  it("-x writes the description line, 4 rows of 16 bytes and a blank line", () => {
    const out = formatLspciDump([fakeFn(cfg, 1, (2 << 3) | 3)], 1);
    const lines = out.split("\n");
    expect(lines[0]).toBe("01:02.3 Ethernet controller: Device 8086:10c9 (rev 01)");
    expect(lines[1]).toBe("00: 86 80 c9 10 00 00 00 00 01 00 00 02 00 00 00 00");
    expect(lines[4]?.startsWith("30:")).toBe(true);
    expect(lines[5]).toBe("");
    expect(lines.length).toBe(7); // trailing "" after the final newline
  });

  it("-xxx stops at 0xff; -xxxx goes to 0xff0 for a 4096-byte function", () => {
    const three = formatLspciDump([fakeFn(cfg, 0, 0)], 3).split("\n");
    expect(three.filter((l) => /^[0-9a-f]+:/.test(l) && !l.includes(".")).length).toBe(16);
    const four = formatLspciDump([fakeFn(cfg, 0, 0)], 4).split("\n");
    expect(four[1 + 16]).toBe("100: 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    expect(four[1 + 255]).toBe("ff0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ab");
    expect(four.length).toBe(1 + 256 + 2);
  });

  it("-xxxx dumps only 256 bytes of a conventional function", () => {
    const small = cfg.slice(0, 256);
    const out = formatLspciDump([fakeFn(small, 0, 0)], 4).split("\n");
    expect(out.length).toBe(1 + 16 + 2);
  });

  it("names functions BB:DD.F", () => {
    expect(bdfName(0x1f, (0x1e << 3) | 7)).toBe("1f:1e.7");
  });
});
