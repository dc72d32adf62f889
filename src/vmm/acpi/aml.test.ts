import { describe, expect, it } from "vitest";
import {
  AmlError, arg, buffer, cat, createDWordField, device, eisaId, eisaIdValue, ifThen, int, lEqual, lNot, method, name, nameString, or, pkg,
  pkgLength, ref, res, resourceTemplate, ret, scope, str, uuidBytes,
} from "./aml.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("AML encoder", () => {
  it("encodes PkgLength in 1-4 bytes, counting its own bytes", () => {
    expect([...pkgLength(0)]).toEqual([0x01]);
    expect([...pkgLength(62)]).toEqual([0x3f]);
    // 63 bytes of body: 2-byte form, total 65 = 0x41 -> low nibble 1, next byte 0x04.
    expect([...pkgLength(63)]).toEqual([0x41, 0x04]);
    expect([...pkgLength(0xffd)]).toEqual([0x4f, 0xff]);
    // 0xffe + 3 = 0x1001 needs the 3-byte form.
    expect([...pkgLength(0xffe)]).toEqual([0x81, 0x00, 0x01]);
    expect(() => pkgLength(-1)).toThrow(AmlError);
    expect(() => pkgLength(1 << 28)).toThrow(AmlError);
  });

  it("encodes name strings with root, parent, dual and multi prefixes", () => {
    expect(hex(nameString("_HID"))).toBe("5f484944");
    expect(hex(nameString("CDW1"))).toBe("43445731");
    expect(hex(nameString("PCI"))).toBe("5043495f");
    expect(hex(nameString("\\_SB"))).toBe("5c5f53425f");
    expect(hex(nameString("\\_SB.PCI0"))).toBe("5c2e5f53425f" + "50434930");
    expect(hex(nameString("^^LNKA"))).toBe("5e5e4c4e4b41");
    expect(hex(nameString("\\_SB.PCI0.RP03"))).toBe("5c2f035f53425f" + "50434930" + "52503033");
    expect(hex(nameString("\\"))).toBe("5c00");
    expect(() => nameString("toolong")).toThrow(AmlError);
    expect(() => nameString("1ABC")).toThrow(AmlError);
  });

  it("encodes integers in the shortest form", () => {
    expect(hex(int(0))).toBe("00");
    expect(hex(int(1))).toBe("01");
    expect(hex(int(0x0b))).toBe("0a0b");
    expect(hex(int(0x1234))).toBe("0b3412");
    expect(hex(int(0xffff_ffff))).toBe("0cffffffff");
    expect(hex(int(0x1_0000_0000n))).toBe("0e0000000001000000");
    expect(() => int(-1)).toThrow(AmlError);
  });

  it("compresses EISA IDs as iasl's EisaId() does", () => {
    expect(eisaIdValue("PNP0A08")).toBe(0x080ad041);
    expect(eisaIdValue("PNP0A03")).toBe(0x030ad041);
    expect(eisaIdValue("PNP0C02")).toBe(0x020cd041);
    expect(hex(eisaId("PNP0C0F"))).toBe("0c41d00c0f");
    expect(() => eisaIdValue("pnp0a08")).toThrow(AmlError);
  });

  it("lays out ToUUID bytes with the first three fields little-endian", () => {
    expect(hex(uuidBytes("33db4d5b-1ff7-401c-9657-7441c03dd766"))).toBe("5b4ddb33f71f1c4096577441c03dd766");
    expect(() => uuidBytes("not-a-uuid")).toThrow(AmlError);
  });

  it("encodes strings, buffers, packages, names, scopes, devices and methods", () => {
    expect(hex(str("AB"))).toBe("0d414200");
    expect(hex(buffer([1, 2, 3]))).toBe("1106" + "0a03" + "010203");
    expect(hex(pkg(int(0), int(0x10)))).toBe("1205" + "02" + "00" + "0a10");
    expect(hex(name("_UID", int(0)))).toBe("08" + "5f554944" + "00");
    expect(hex(scope("\\_SB"))).toBe("1006" + "5c5f53425f");
    expect(hex(device("LNKA", name("_UID", int(1))))).toBe("5b82" + "0b" + "4c4e4b41" + "08" + "5f554944" + "01");
    expect(hex(method("_SRS", 1, false))).toBe("1406" + "5f535253" + "01");
    expect(hex(method("M", 2, true, ret(arg(1))))).toBe("1408" + "4d5f5f5f" + "0a" + "a469");
    expect(hex(ifThen(lNot(lEqual(arg(0), int(2))), or(ref("CDW1"), int(4), ref("CDW1"))))).toBe(
      "a0" + "11" + "9293680a02" + "7d" + "43445731" + "0a04" + "43445731",
    );
    expect(hex(createDWordField(arg(3), 0, "CDW1"))).toBe("8a" + "6b" + "00" + "43445731");
    expect(hex(cat([1], new Uint8Array([2])))).toBe("0102");
    expect(() => method("X", 8, false)).toThrow(AmlError);
    expect(() => pkg(...Array.from({ length: 256 }, () => int(0)))).toThrow(AmlError);
  });

  it("builds resource templates ending in a valid end tag", () => {
    const t = resourceTemplate(res.io(0xcf8, 0xcf8, 1, 8), res.memory32Fixed(0xb0000000, 0x4000000));
    // Buffer, PkgLength, BufferSize, IO(8) + Memory32Fixed(12) + EndTag(2) = 22 bytes.
    expect(hex(t)).toBe("1119" + "0a16" + "4701f80cf80c0108" + "86090001" + "000000b0" + "00000004" + "7900");
    expect(res.wordBusNumber(0, 0x3f)).toHaveLength(16);
    expect(res.dwordMemory(0xc0000000, 0xdfffffff, false)).toHaveLength(26);
    expect(res.interrupt([10], { level: true, activeLow: false, shared: true })).toEqual([0x89, 6, 0, 0x09, 1, 10, 0, 0, 0]);
  });
});
