/**
 * An in-process test bed for the failover VF: flat guest memory, a manual clock, the model
 * attached to a recording wire, the guest function enabled (memory decode, bus master, MSI-X with
 * vector n sending data n) and a simulated igbvf driver on its BAR0. Used by tests and the
 * benchmark; also a worked example of wiring the failover VF without a platform.
 * @module
 */
import { FlatMemory, ManualClock } from "../../devices/igb/testing.js";
import { IGB_VF_LAYOUT } from "../../devices/igb/layout.js";
import type { FrameSink, NetBackend } from "../../devices/net/backend.js";
import { SimIgbvf, type VfDriverOptions } from "../../guest/igbvf/driver.js";
import { CMD, PCI } from "../../pci/regs.js";
import { VR } from "../../devices/igb/regs.js";
import { createFailoverVfModel, type FailoverVfConfig, type FailoverVfModel } from "./model.js";

/** The outside world at the fabric's uplink port: records what reaches it, injects frames. */
export class TestWire implements NetBackend {
  /** Frames that reached the wire, in order. */
  readonly sent: Uint8Array[] = [];
  private sink: FrameSink | undefined;
  transmit(f: Uint8Array): void {
    this.sent.push(f.slice());
  }
  setReceiver(s: FrameSink | undefined): void {
    this.sink = s;
  }
  /** A frame from the world into the fabric. */
  inject(f: Uint8Array): boolean {
    return this.sink?.(f) ?? false;
  }
}

/** Options of {@link createFailoverTestbed}. */
export interface FailoverTestbedOptions extends Partial<Omit<FailoverVfConfig, "ramBytes">> {
  /** Guest memory (default 16 MiB). */
  readonly memSize?: number;
  /** Options of the simulated driver. */
  readonly driver?: VfDriverOptions;
  /** The fabric's uplink (default: the test bed's {@link TestWire}, which then sees nothing). */
  readonly uplink?: NetBackend;
}

/** What {@link createFailoverTestbed} builds. */
export interface FailoverTestbed {
  readonly clock: ManualClock;
  readonly mem: FlatMemory;
  readonly wire: TestWire;
  readonly model: FailoverVfModel;
  readonly driver: SimIgbvf;
  /** MSI-X messages the guest received, per vector. */
  readonly msi: number[];
  /** Runs once, at the start of the driver's next wait (to switch mid-exchange). */
  armed: (() => void) | undefined;
  /** Runs at the start of every driver wait. */
  everyWait: (() => void) | undefined;
  /** Allocates guest memory (bump allocator). */
  alloc(size: number, align: number): number;
  /** Reads the guest VF's BAR0. */
  read(off: number): number;
  /** Writes the guest VF's BAR0. */
  write(off: number, v: number): void;
}

/**
 * Builds the test bed; the driver is not reset or opened yet.
 * @example
 * const tb = createFailoverTestbed({ adminMac });
 * tb.driver.reset(); tb.driver.open();
 * tb.model.failover.switchTo("emulated");
 */
export function createFailoverTestbed(o: FailoverTestbedOptions = {}): FailoverTestbed {
  const mem = new FlatMemory(o.memSize ?? 16 << 20);
  const clock = new ManualClock();
  const wire = new TestWire();
  const model = createFailoverVfModel({ pfMac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), ...o, ramBytes: mem.bytes.length });
  const msi = [0, 0, 0];
  const fn = model.guest.fn;
  fn.attach(0x0300, { msi: (_a, data) => void (msi[data & 3] = (msi[data & 3] ?? 0) + 1), intx: () => {} }, mem);
  fn.configWrite(PCI.COMMAND, 2, CMD.MEMORY | CMD.BUS_MASTER);
  for (let v = 0; v < 3; v++) {
    fn.barWrite(3, v * 16, 4, 0xfee00000);
    fn.barWrite(3, v * 16 + 4, 4, 0);
    fn.barWrite(3, v * 16 + 8, 4, v);
    fn.barWrite(3, v * 16 + 12, 4, 0);
  }
  fn.configWrite(IGB_VF_LAYOUT.caps.msix + 2, 2, 0x8000);
  model.attach({ clock, backend: o.uplink ?? wire });
  let next = 0x10000;
  const alloc = (size: number, align: number): number => {
    next = Math.ceil(next / align) * align;
    const at = next;
    next += size;
    if (next > mem.bytes.length) throw new RangeError("test bed guest memory exhausted");
    return at;
  };
  const tb: FailoverTestbed = {
    clock, mem, wire, model, msi, alloc,
    armed: undefined,
    everyWait: undefined,
    driver: undefined as unknown as SimIgbvf,
    read: (off) => fn.barRead(0, off, 4),
    write: (off, v) => fn.barWrite(0, off, 4, v),
  };
  (tb as { driver: SimIgbvf }).driver = new SimIgbvf(
    {
      bar: { read: (off, s) => fn.barRead(0, off, s), write: (off, s, v) => fn.barWrite(0, off, s, v) },
      mem,
      alloc,
      delay: (us) => {
        const f = tb.armed;
        tb.armed = undefined;
        f?.();
        tb.everyWait?.();
        clock.advance(us * 1000);
      },
    },
    o.driver ?? {},
  );
  return tb;
}

// ---- sequence-numbered traffic ----

/** The guest's MAC (the administrator's). */
export const GUEST_MAC = Uint8Array.of(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
/** A host on the wire. */
export const PEER = Uint8Array.of(0x02, 0x99, 0, 0, 0, 1);
/** EtherType of the test frames (IEEE local experimental). */
export const ETH_SEQ = 0x88b5;

/** A frame carrying direction `dir` (0: to the guest, 1: from it) and sequence number `seq`. */
export function seqFrame(dst: Uint8Array, src: Uint8Array, dir: number, seq: number, len = 64): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = ETH_SEQ >>> 8;
  f[13] = ETH_SEQ & 0xff;
  f[14] = dir;
  new DataView(f.buffer).setUint32(15, seq, true);
  for (let i = 19; i < len; i++) f[i] = (seq + i) & 0xff;
  return f;
}

/** The sequence number of a test frame, or undefined for any other frame. */
export function seqOf(f: Uint8Array): number | undefined {
  if (f.length < 19 || ((f[12]! << 8) | f[13]!) !== ETH_SEQ) return undefined;
  return new DataView(f.buffer, f.byteOffset, f.length).getUint32(15, true);
}

/** Test frames that reached the wire, by sequence number, in order. */
export function wireSeqs(tb: FailoverTestbed): number[] {
  return tb.wire.sent.map(seqOf).filter((s): s is number => s !== undefined);
}

/**
 * The guest's interrupt work: receive what the ring holds (returns the sequence numbers; any
 * frame that is not a test frame is returned as -1), reclaim sent descriptors, re-enable the
 * three vectors (igbvf re-arms EIMS after its poll).
 */
export function serviceGuest(tb: FailoverTestbed): number[] {
  const got = tb.driver.receive().map((x) => seqOf(x.frame) ?? -1);
  tb.driver.reclaim();
  tb.write(VR.EIMS, 7);
  return got;
}

/** The VF's statistics registers as the guest reads them. */
export function vfStats(tb: FailoverTestbed): number[] {
  return [VR.VFGPRC, VR.VFGPTC, VR.VFGORC, VR.VFGOTC, VR.VFMPRC].map((o) => tb.read(o) >>> 0);
}
