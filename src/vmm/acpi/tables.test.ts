import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultLayout } from "../machine-platform.js";
import { AcpiError, acpiChecksumOk, buildAcpiTables, DEFAULT_ACPI_BASE } from "./tables.js";
import { skipTest } from "../../../test/skip.js";

const layout = defaultLayout(256 << 20);
const t = buildAcpiTables({ layout, base: DEFAULT_ACPI_BASE });
const table = (sig: string): Uint8Array => {
  const i = t.tables.find((x) => x.signature === sig);
  if (i === undefined) throw new Error(`no ${sig}`);
  return t.blob.subarray(i.address - t.base, i.address - t.base + i.length);
};
const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

let iasl: string | undefined;
try {
  execFileSync("iasl", ["-v"], { stdio: "ignore" });
  iasl = "iasl";
} catch {
  iasl = undefined;
}
const dir = mkdtempSync(join(tmpdir(), "nicvisor-acpi-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs iasl in `dir`; returns stdout+stderr (iasl reports on both). */
function runIasl(args: string[]): string {
  try {
    return execFileSync("iasl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(`iasl ${args.join(" ")} failed:\n${err.stdout ?? ""}${err.stderr ?? ""}`);
  }
}

describe("nicvisor's ACPI tables", () => {
  it("chains RSDP -> XSDT/RSDT -> FADT -> DSDT/FACS, with valid checksums everywhere", () => {
    const rsdp = t.blob.subarray(0, 36);
    expect(Buffer.from(rsdp.subarray(0, 8)).toString("latin1")).toBe("RSD PTR ");
    expect(acpiChecksumOk(rsdp.subarray(0, 20))).toBe(true);
    expect(acpiChecksumOk(rsdp)).toBe(true);
    expect(rsdp[15]).toBe(2);
    const xsdtAddr = Number(dv(rsdp).getBigUint64(24, true));
    const rsdtAddr = dv(rsdp).getUint32(16, true);
    expect(xsdtAddr).toBe(t.tables.find((x) => x.signature === "XSDT")?.address);
    expect(rsdtAddr).toBe(t.tables.find((x) => x.signature === "RSDT")?.address);
    for (const sig of ["RSDT", "XSDT", "FACP", "APIC", "MCFG", "DSDT"]) {
      const b = table(sig);
      expect(Buffer.from(b.subarray(0, 4)).toString("latin1")).toBe(sig);
      expect(dv(b).getUint32(4, true)).toBe(b.length);
      expect(acpiChecksumOk(b), sig).toBe(true);
    }
    const xsdt = table("XSDT");
    const listed = [0, 1, 2].map((i) => Number(dv(xsdt).getBigUint64(36 + 8 * i, true)));
    expect(listed).toEqual(["FACP", "APIC", "MCFG"].map((s) => t.tables.find((x) => x.signature === s)?.address));
    const fadt = table("FACP");
    expect(dv(fadt).getUint32(40, true)).toBe(t.tables.find((x) => x.signature === "DSDT")?.address);
    expect(Number(dv(fadt).getBigUint64(140, true))).toBe(t.tables.find((x) => x.signature === "DSDT")?.address);
    expect(dv(fadt).getUint32(36, true)).toBe(t.tables.find((x) => x.signature === "FACS")?.address);
    expect((t.tables.find((x) => x.signature === "FACS")?.address ?? 1) % 64).toBe(0);
    expect(t.kernelArgs).toBe("acpi_rsdp=0xf00000 memmap=4K#0xf00000 memmap=64M$0xb0000000");
  });

  it("describes the ECAM window in MCFG for 64 buses", () => {
    const m = dv(table("MCFG"));
    expect(Number(m.getBigUint64(44, true))).toBe(0xb0000000);
    expect(m.getUint16(52, true)).toBe(0);
    expect([m.getUint8(54), m.getUint8(55)]).toEqual([0, 63]);
  });

  it("rejects a misaligned base and a layout it cannot describe", () => {
    expect(() => buildAcpiTables({ layout, base: DEFAULT_ACPI_BASE + 4 })).toThrow(AcpiError);
    expect(() => buildAcpiTables({ layout, base: DEFAULT_ACPI_BASE, cpus: 0 })).toThrow(AcpiError);
    expect(() => buildAcpiTables({ layout: { ...layout, ioWindow: [0x100, 0x200] }, base: DEFAULT_ACPI_BASE })).toThrow(AcpiError);
  });

  it("disassembles with iasl without checksum or table errors", (ctx) => {
    if (iasl === undefined) return skipTest(ctx, "SKIPPED: iasl not found (apt-get install acpica-tools)");
    for (const sig of ["FACP", "APIC", "MCFG", "XSDT", "RSDT"]) {
      writeFileSync(join(dir, `${sig}.dat`), table(sig));
      const out = runIasl(["-d", `${sig}.dat`]);
      expect(out).not.toMatch(/error|warning/i);
      const dsl = readFileSync(join(dir, `${sig}.dsl`), "utf8");
      expect(dsl).not.toMatch(/Incorrect checksum|Invalid|Unknown/i);
      if (sig === "FACP") {
        expect(dsl).toMatch(/SCI Interrupt : 0009/);
        expect(dsl).toMatch(/PM Timer Block Address : 0000B008/);
        expect(dsl).toMatch(/8042 Present on ports 60\/64 \(V2\) : 0/);
      }
      if (sig === "APIC") {
        expect(dsl).toMatch(/Subtable Type : 01 \[I\/O APIC\]/);
        expect(dsl).toMatch(/Address : FEC00000/);
        expect(dsl).toMatch(/Subtable Type : 02 \[Interrupt Source Override\]/);
      }
      if (sig === "MCFG") expect(dsl).toMatch(/Base Address : 00000000B0000000/);
    }
  });

  it("has a DSDT that iasl decodes to the PCIe host bridge, _PRT, _OSC and the ECAM reservation, and recompiles to the same bytes", (ctx) => {
    if (iasl === undefined) return skipTest(ctx, "SKIPPED: iasl not found (apt-get install acpica-tools)");
    writeFileSync(join(dir, "dsdt.dat"), t.dsdt);
    runIasl(["-d", "dsdt.dat"]);
    const dsl = readFileSync(join(dir, "dsdt.dsl"), "utf8");
    expect(dsl).toMatch(/Device \(PCI0\)[\s\S]*Name \(_HID, EisaId \("PNP0A08"\)/);
    expect(dsl).toMatch(/Name \(_CID, EisaId \("PNP0A03"\)/);
    expect(dsl).toMatch(/WordBusNumber \(ResourceProducer[\s\S]*?0x003F,\s+\/\/ Range Maximum/);
    expect(dsl).toMatch(/0xE8000000,\s+\/\/ Range Minimum\s+0xFEBFFFFF,\s+\/\/ Range Maximum/);
    expect(dsl).toMatch(/Name \(_PRT, Package \(0x80\)/);
    // Root port 00:03.0, INTA -> the link for IRQ 11 (the PIIX-style swizzle 10, 10, 11, 11 by slot + pin).
    expect(dsl).toMatch(/0x0003FFFF,\s+Zero,\s+LI0B,/);
    expect(dsl).toMatch(/Method \(_OSC, 4, NotSerialized\)[\s\S]*ToUUID \("33db4d5b-1ff7-401c-9657-7441c03dd766"\)/);
    expect(dsl).toMatch(/Interrupt \(ResourceConsumer, Level, ActiveHigh, Shared/);
    expect(dsl).toMatch(/EisaId \("PNP0C02"\)[\s\S]*Memory32Fixed \(ReadWrite,\s+0xB0000000,\s+\/\/ Address Base\s+0x04000000,/);
    // Recompiled without optimisations, iasl's AML is byte for byte ours: the encoder agrees with
    // the reference compiler on every term it emits.
    const out = runIasl(["-oa", "-p", "again", "dsdt.dsl"]);
    expect(out).toMatch(/Compilation successful\. 0 Errors, 0 Warnings/);
    const again = readFileSync(join(dir, "again.aml"));
    expect(Buffer.from(again.subarray(36)).equals(Buffer.from(t.dsdt.subarray(36)))).toBe(true);
  });
});
