/**
 * nicvisor's ACPI tables: RSDP, RSDT, XSDT, FACS, FADT, MADT, MCFG and a DSDT that describes the
 * PCIe host bridge (PNP0A08 with `_CRS` windows, `_PRT` interrupt routing through link devices,
 * `_OSC` granting native PCIe hotplug, AER and PME to the OS) and a PNP0C02 motherboard device
 * that reserves the ECAM window and the ACPI register ports. The blob is placed in guest RAM and
 * handed to Linux with `acpi_rsdp=`, which replaces whatever the BIOS would have provided.
 *
 * The fixed-hardware registers (PM1a event and control, PM timer, GPE0) are the ones v86's own
 * ACPI block serves at 0xB000 and 0xAFE0; SCI is IRQ 9 (level, active high, as on QEMU's PIIX4).
 *
 * Platform-neutral.
 * @module
 */
import type { MachineLayout } from "../machine-platform.js";
import {
  arg,
  cat,
  createDWordField,
  device,
  eisaId,
  ifThen,
  int,
  lEqual,
  lNot,
  method,
  name,
  nameString,
  or,
  pkg,
  ref,
  res,
  resourceTemplate,
  ret,
  scope,
  buffer,
  uuidBytes,
  type Aml,
} from "./aml.js";

/** The ACPI tables could not be built for the given layout. */
export class AcpiError extends Error {
  override readonly name = "AcpiError";
}

/** The UUID of the PCI host bridge `_OSC` (PCI Firmware Specification 3.x). */
export const PCI_HOST_BRIDGE_OSC_UUID = "33db4d5b-1ff7-401c-9657-7441c03dd766";

/** Where ACPI's fixed hardware lives (v86's ACPI block). */
export interface AcpiFixedHardware {
  /** SCI interrupt (ISA IRQ). */
  sciIrq: number;
  /** PM1a event block (4 bytes: status, enable). */
  pm1aEvt: number;
  /** PM1a control block (2 bytes). */
  pm1aCnt: number;
  /** PM timer (4 bytes, 24 bits significant). */
  pmTmr: number;
  /** GPE0 block (4 bytes: 2 status, 2 enable). */
  gpe0: number;
  /** Other I/O ranges the platform decodes itself, reserved through the motherboard device. */
  reservedIo: ReadonlyArray<readonly [number, number]>;
}

/** v86 0.5's ACPI block. */
export const V86_ACPI_HARDWARE: AcpiFixedHardware = {
  sciIrq: 9,
  pm1aEvt: 0xb000,
  pm1aCnt: 0xb004,
  pmTmr: 0xb008,
  gpe0: 0xafe0,
  // v86's (quieted) PIIX4 hotplug ports.
  reservedIo: [[0xae00, 0x10]],
};

/** What to build. */
export interface AcpiOptions {
  layout: MachineLayout;
  /** Guest-physical address of the blob (16-byte aligned, in RAM). */
  base: number;
  /** ACPI fixed hardware (default {@link V86_ACPI_HARDWARE}). */
  hardware?: AcpiFixedHardware;
  /** Number of CPUs (default 1). */
  cpus?: number;
  /** IOAPIC base address and ID. */
  ioapic?: { address: number; id: number };
}

/** One table in the blob. */
export interface AcpiTableInfo {
  signature: string;
  address: number;
  length: number;
}

/** The built tables. */
export interface AcpiTables {
  /** Everything, to copy to {@link AcpiTables.base}. */
  blob: Uint8Array;
  base: number;
  /** Address of the RSDP (for `acpi_rsdp=`). */
  rsdp: number;
  /** Each table's address and length. */
  tables: AcpiTableInfo[];
  /** Just the DSDT's bytes (for disassembly in tests and `nicvisor acpi`). */
  dsdt: Uint8Array;
  /** Kernel arguments: `acpi_rsdp=` and an e820 reservation of the blob as ACPI data. */
  kernelArgs: string;
}

const OEM_ID = "NICVSR";
const OEM_TABLE_ID = "NICVISOR";
const CREATOR_ID = "NVSR";

function ascii(s: string, len: number): number[] {
  const out = new Array<number>(len).fill(0x20);
  for (let i = 0; i < Math.min(len, s.length); i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The 8-bit sum of `bytes` is zero when the checksum is right. */
export function acpiChecksumOk(bytes: Uint8Array): boolean {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s === 0;
}

function fixChecksum(t: Uint8Array, at: number, end = t.length): void {
  t[at] = 0;
  let s = 0;
  for (let i = 0; i < end; i++) s = (s + (t[i] ?? 0)) & 0xff;
  t[at] = (0x100 - s) & 0xff;
}

/** A System Description Table: the 36-byte header, `body`, and the checksum. */
function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Uint8Array(36 + body.length);
  const v = new DataView(t.buffer);
  t.set(ascii(signature, 4), 0);
  v.setUint32(4, t.length, true);
  t[8] = revision;
  t.set(ascii(OEM_ID, 6), 10);
  t.set(ascii(OEM_TABLE_ID, 8), 16);
  v.setUint32(24, 1, true);
  t.set(ascii(CREATOR_ID, 4), 28);
  v.setUint32(32, 1, true);
  t.set(body, 36);
  fixChecksum(t, 9);
  return t;
}

class Bytes {
  readonly b: Uint8Array;
  readonly v: DataView;
  constructor(n: number) {
    this.b = new Uint8Array(n);
    this.v = new DataView(this.b.buffer);
  }
  u8(o: number, x: number): void {
    this.v.setUint8(o, x);
  }
  u16(o: number, x: number): void {
    this.v.setUint16(o, x, true);
  }
  u32(o: number, x: number): void {
    this.v.setUint32(o, x >>> 0, true);
  }
  u64(o: number, x: number): void {
    this.v.setUint32(o, x >>> 0, true);
    this.v.setUint32(o + 4, Math.floor(x / 2 ** 32), true);
  }
  /** A Generic Address Structure for a system I/O register. */
  gasIo(o: number, port: number, bits: number, accessSize: number): void {
    this.u8(o, 1);
    this.u8(o + 1, bits);
    this.u8(o + 2, 0);
    this.u8(o + 3, accessSize);
    this.u64(o + 4, port);
  }
}

const FADT_LENGTH = 244;

/** FADT (revision 3, ACPI 2.0 layout, 244 bytes). */
function fadt(hw: AcpiFixedHardware, facs: number, dsdt: number): Uint8Array {
  const f = new Bytes(FADT_LENGTH - 36);
  const o = (off: number): number => off - 36; // offsets below are the spec's, from the table start
  f.u32(o(36), facs);
  f.u32(o(40), dsdt);
  f.u8(o(45), 0); // preferred PM profile: unspecified
  f.u16(o(46), hw.sciIrq);
  f.u32(o(48), 0); // no SMI command port: the platform is always in ACPI mode (SCI_EN is set)
  f.u32(o(56), hw.pm1aEvt);
  f.u32(o(64), hw.pm1aCnt);
  f.u32(o(76), hw.pmTmr);
  f.u32(o(80), hw.gpe0);
  f.u8(o(88), 4); // PM1_EVT_LEN
  f.u8(o(89), 2); // PM1_CNT_LEN
  f.u8(o(91), 4); // PM_TMR_LEN
  f.u8(o(92), 4); // GPE0_BLK_LEN
  f.u16(o(96), 0x65); // P_LVL2_LAT > 100: no C2
  f.u16(o(98), 0x3e9); // P_LVL3_LAT > 1000: no C3
  // IAPC_BOOT_ARCH: legacy ISA devices present (serial, RTC); no 8042 (the console is serial, and
  // this saves the i8042 probe); PCIe ASPM must not be enabled.
  f.u16(o(109), 0x0001 | 0x0010);
  // Flags: WBINVD, PROC_C1, power and sleep buttons are not fixed-feature buttons.
  f.u32(o(112), (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5));
  // X_FIRMWARE_CTRL stays 0: FIRMWARE_CTRL already holds the 32-bit FACS address.
  f.u64(o(140), dsdt);
  f.gasIo(o(148), hw.pm1aEvt, 32, 2);
  f.gasIo(o(172), hw.pm1aCnt, 16, 2);
  f.gasIo(o(208), hw.pmTmr, 32, 3);
  f.gasIo(o(220), hw.gpe0, 32, 1);
  return sdt("FACP", 3, f.b);
}

/** FACS (64 bytes, version 1; no checksum). */
function facsTable(): Uint8Array {
  const f = new Bytes(64);
  f.b.set(ascii("FACS", 4), 0);
  f.u32(4, 64);
  f.u8(32, 1);
  return f.b;
}

/** MADT: one local APIC per CPU, the IOAPIC, the SCI override and LINT1 as NMI. */
function madt(hw: AcpiFixedHardware, cpus: number, ioapic: { address: number; id: number }): Uint8Array {
  const entries: number[][] = [];
  const le32 = (x: number): number[] => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
  for (let i = 0; i < cpus; i++) entries.push([0, 8, i, i, ...le32(1)]);
  entries.push([1, 12, ioapic.id, 0, ...le32(ioapic.address), ...le32(0)]);
  // SCI: level-triggered, active high (flags 0x000d), as on QEMU's PIIX4.
  entries.push([2, 10, 0, hw.sciIrq, ...le32(hw.sciIrq), 0x0d, 0x00]);
  entries.push([4, 6, 0xff, 0, 0, 1]);
  const head = new Bytes(8);
  head.u32(0, 0xfee00000);
  head.u32(4, 1); // PCAT_COMPAT: dual 8259s present
  return sdt("APIC", 3, cat(head.b, ...entries));
}

/** MCFG: one ECAM window for segment 0. */
function mcfg(layout: MachineLayout): Uint8Array {
  const f = new Bytes(8 + 16);
  f.u64(8, layout.ecamBase);
  f.u16(16, 0);
  f.u8(18, 0);
  f.u8(19, (layout.ecamSize >>> 20) - 1);
  return sdt("MCFG", 1, f.b);
}

function linkName(irq: number): string {
  return `LI${irq.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** The DSDT's AML. */
export function dsdtAml(layout: MachineLayout, hw: AcpiFixedHardware): Aml {
  const lastBus = (layout.ecamSize >>> 20) - 1;
  if (lastBus < 0 || lastBus > 255) throw new AcpiError(`ECAM size ${layout.ecamSize} is not 1-256 buses`);
  const [ioBase, ioLimit] = layout.ioWindow;
  if (ioBase < 0xd00 || ioLimit > 0x10000) throw new AcpiError("the I/O window must lie in 0xD00-0xFFFF");
  // I/O windows: everything below 0xCF8 and above 0xCFF (the config ports are the bridge's own).
  const crs = resourceTemplate(
    res.wordBusNumber(0, lastBus),
    res.io(0xcf8, 0xcf8, 1, 8),
    res.wordIo(0x0000, 0x0cf7),
    res.wordIo(0x0d00, 0xffff),
    res.dwordMemory(0xa0000, 0xbffff, true),
    ...layout.mmioWindows.map(([b, l]) => res.dwordMemory(b, l - 1, false)),
  );
  // _PRT: every slot and pin of bus 0 to a link device that names the IRQ the board wires it to.
  const irqs = new Set<number>();
  const prt: Aml[] = [];
  for (let slot = 0; slot < 32; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      const irq = layout.intxIrq(slot, pin);
      irqs.add(irq);
      prt.push(pkg(int(((slot << 16) | 0xffff) >>> 0), int(pin - 1), ref(linkName(irq)), int(0)));
    }
  }
  // PCI Firmware spec _OSC: grant what the OS asks for (native hotplug, PME, AER, PCIe capability
  // control); an unknown UUID gets "unrecognized UUID" (bit 2 of the first DWord).
  const osc = method(
    "_OSC",
    4,
    false,
    createDWordField(arg(3), 0, "CDW1"),
    ifThen(lNot(lEqual(arg(0), buffer(uuidBytes(PCI_HOST_BRIDGE_OSC_UUID)))), or(nameString("CDW1"), int(4), nameString("CDW1"))),
    ret(arg(3)),
  );
  const pci0 = device(
    "PCI0",
    name("_HID", eisaId("PNP0A08")),
    name("_CID", eisaId("PNP0A03")),
    name("_SEG", int(0)),
    name("_BBN", int(0)),
    name("_UID", int(0)),
    name("_CRS", crs),
    name("_PRT", pkg(...prt)),
    osc,
  );
  const links = [...irqs].sort((a, b) => a - b).map((irq, i) => {
    const tmpl = resourceTemplate(res.interrupt([irq], { level: true, activeLow: false, shared: true }));
    return device(
      linkName(irq),
      name("_HID", eisaId("PNP0C0F")),
      name("_UID", int(i + 1)),
      name("_STA", int(0x0b)),
      name("_PRS", tmpl),
      name("_CRS", tmpl),
      // The routing is fixed by the board: accept the only possible setting, ignore disabling.
      method("_SRS", 1, false),
      method("_DIS", 0, false),
    );
  });
  const motherboard = device(
    "RES0",
    name("_HID", eisaId("PNP0C02")),
    name("_UID", int(0x10)),
    name(
      "_CRS",
      resourceTemplate(
        res.memory32Fixed(layout.ecamBase, layout.ecamSize),
        res.io(hw.pm1aEvt, hw.pm1aEvt, 1, 0x10),
        res.io(hw.gpe0, hw.gpe0, 1, 4),
        ...hw.reservedIo.map(([p, n]) => res.io(p, p, 1, n)),
      ),
    ),
  );
  return cat(
    scope("\\_SB", pci0, ...links, motherboard),
    name("\\_S5", pkg(int(0), int(0), int(0), int(0))),
  );
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Builds the tables for `opts.layout` at `opts.base`.
 * @throws AcpiError when the base is not 16-byte aligned or the layout cannot be described.
 */
export function buildAcpiTables(opts: AcpiOptions): AcpiTables {
  const hw = opts.hardware ?? V86_ACPI_HARDWARE;
  const cpus = opts.cpus ?? 1;
  const ioapic = opts.ioapic ?? { address: 0xfec00000, id: 0 };
  if (!Number.isInteger(opts.base) || opts.base % 64 !== 0 || opts.base <= 0 || opts.base >= 2 ** 32) {
    throw new AcpiError(`ACPI base 0x${opts.base.toString(16)} must be a 64-byte aligned 32-bit address`);
  }
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) throw new AcpiError("cpus must be 1-255");
  const dsdtBody = dsdtAml(opts.layout, hw);
  const dsdt = sdt("DSDT", 2, dsdtBody);
  const madtT = madt(hw, cpus, ioapic);
  const mcfgT = mcfg(opts.layout);

  // Placement: RSDP, FACS (64-byte aligned), then the tables 16-byte aligned.
  const rsdpOff = 0;
  const facsOff = 64;
  const rsdtOff = 128;
  const tablesAfterRoot = [madtT, mcfgT];
  const rsdtLen = 36 + 4 * (1 + tablesAfterRoot.length);
  const xsdtOff = align(rsdtOff + rsdtLen, 16);
  const xsdtLen = 36 + 8 * (1 + tablesAfterRoot.length);
  const fadtOff = align(xsdtOff + xsdtLen, 16);
  const madtOff = align(fadtOff + FADT_LENGTH, 16);
  const mcfgOff = align(madtOff + madtT.length, 16);
  const dsdtOff = align(mcfgOff + mcfgT.length, 16);
  const total = align(dsdtOff + dsdt.length, 16);

  const fadtFinal = fadt(hw, opts.base + facsOff, opts.base + dsdtOff);
  const pointers = [opts.base + fadtOff, opts.base + madtOff, opts.base + mcfgOff];
  const rsdtBody = new Bytes(4 * pointers.length);
  pointers.forEach((p, i) => rsdtBody.u32(4 * i, p));
  const xsdtBody = new Bytes(8 * pointers.length);
  pointers.forEach((p, i) => xsdtBody.u64(8 * i, p));
  const rsdt = sdt("RSDT", 1, rsdtBody.b);
  const xsdt = sdt("XSDT", 1, xsdtBody.b);

  const rsdp = new Bytes(36);
  rsdp.b.set(ascii("RSD PTR ", 8), 0);
  rsdp.b.set(ascii(OEM_ID, 6), 9);
  rsdp.u8(15, 2);
  rsdp.u32(16, opts.base + rsdtOff);
  rsdp.u32(20, 36);
  rsdp.u64(24, opts.base + xsdtOff);
  fixChecksum(rsdp.b, 8, 20);
  fixChecksum(rsdp.b, 32, 36);

  const blob = new Uint8Array(total);
  const place: Array<[number, Uint8Array, string]> = [
    [rsdpOff, rsdp.b, "RSD PTR"],
    [facsOff, facsTable(), "FACS"],
    [rsdtOff, rsdt, "RSDT"],
    [xsdtOff, xsdt, "XSDT"],
    [fadtOff, fadtFinal, "FACP"],
    [madtOff, madtT, "APIC"],
    [mcfgOff, mcfgT, "MCFG"],
    [dsdtOff, dsdt, "DSDT"],
  ];
  for (const [off, t] of place) blob.set(t, off);
  const kib = Math.ceil(total / 4096) * 4;
  return {
    blob,
    base: opts.base,
    rsdp: opts.base + rsdpOff,
    tables: place.map(([off, t, sig]) => ({ signature: sig, address: opts.base + off, length: t.length })),
    dsdt,
    // The ECAM window is also reserved in the e820 map, as firmware does, so that Linux takes MCFG
    // at its early PCI init rather than only after the namespace shows the PNP0C02 reservation.
    kernelArgs: `acpi_rsdp=0x${(opts.base + rsdpOff).toString(16)} memmap=${kib}K#0x${opts.base.toString(16)} memmap=${opts.layout.ecamSize >>> 20}M$0x${opts.layout.ecamBase.toString(16)}`,
  };
}

/**
 * Where the machine puts its ACPI tables: at 15 MiB, below the kernel's 16 MiB load address, away
 * from the bzImage (1 MiB up), the initrd (64 MiB up) and the top of RAM where SeaBIOS keeps its
 * own tables and temporary allocations. `memmap=…#` then keeps Linux (and its KASLR choice) off it.
 */
export const DEFAULT_ACPI_BASE = 0x00f00000;
