/**
 * An in-process 82576 test bed: flat guest memory, a manual clock, the PF core with N VFs
 * enabled by the {@link PfAgent}, and one simulated igbvf driver per VF. Used by tests and
 * benchmarks; also a worked example of wiring the pieces together.
 * @module
 */
import { IgbCore } from "../../devices/igb/core.js";
import { IgbVfRegs } from "../../devices/igb/vf.js";
import { FlatMemory, IrqRecorder, ManualClock } from "../../devices/igb/testing.js";
import type { NetBackend } from "../../devices/net/backend.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { SimIgbvf, type VfDriverOptions } from "../../guest/igbvf/driver.js";
import { PfAgent } from "./agent.js";

/** Options of {@link createIgbTestbed}. */
export interface IgbTestbedOptions {
  /** VFs to enable (0..7). */
  readonly numVfs: number;
  /** Guest memory size (default 32 MiB). */
  readonly memSize?: number;
  /** Uplink. */
  readonly backend?: NetBackend;
  /** MAC the agent gives VF n by default (default 02:00:00:00:01:n). `undefined` result: none. */
  readonly vfMac?: (vf: number) => Uint8Array | undefined;
  /** Options of the simulated drivers. */
  readonly driver?: VfDriverOptions;
  /** PF MAC (default 52:54:00:12:34:56). */
  readonly pfMac?: Uint8Array;
  /**
   * Give each VF a guest memory of its own (as VFs assigned to different guests have), and the PF
   * one that no driver uses, so tests can check that no function's DMA reaches another's memory.
   * Default: one memory shared by all functions.
   */
  readonly isolated?: boolean;
  /**
   * Use these memories for the VFs that have one here (the others as `isolated` says): lets two
   * test beds serve one guest's VF, as when the failover switch moves a VF between NICs.
   */
  readonly vfMemory?: readonly (FlatMemory | undefined)[];
  /**
   * Memories the test bed makes offer {@link DmaSpace.linear} (flat RAM the device may access
   * directly, as the virtio-net test bed's does), so the device's direct-access paths run.
   * Default false: every device access goes through `read`/`write` and is counted.
   */
  readonly linear?: boolean;
}

/** What {@link createIgbTestbed} builds. */
export interface IgbTestbed {
  /** The shared memory (with `isolated`: the PF's). */
  readonly mem: FlatMemory;
  /** Each VF's memory (all `mem` unless `isolated`). */
  readonly vfMem: FlatMemory[];
  readonly clock: ManualClock;
  readonly irq: IrqRecorder;
  readonly core: IgbCore;
  readonly agent: PfAgent;
  readonly vfs: SimIgbvf[];
  readonly vfRegs: IgbVfRegs[];
  /** Allocates guest memory (bump allocator; with `isolated`, in the PF's memory). */
  alloc(size: number, align: number): number;
}

/** Raised when the test bed runs out of guest memory. */
export class TestbedError extends Error {
  override readonly name = "TestbedError";
}

/**
 * Builds the test bed. The agent serves the mailbox 1 us after each PF interrupt (as a host
 * driver's interrupt handler would), so drivers must let time pass (`delay`) while they wait.
 * @example
 * const tb = createIgbTestbed({ numVfs: 2 });
 * tb.vfs[0]!.reset(); tb.vfs[0]!.open();
 */
export function createIgbTestbed(o: IgbTestbedOptions): IgbTestbed {
  const memSize = o.memSize ?? 32 << 20;
  const flat = { linear: o.linear === true };
  const mem = new FlatMemory(memSize, flat);
  const allocator = (m: FlatMemory) => {
    let next = 0x10000;
    return (size: number, align: number): number => {
      next = Math.ceil(next / align) * align;
      const a = next;
      next += size;
      if (next > m.bytes.length) throw new TestbedError("test bed guest memory exhausted");
      return a;
    };
  };
  const alloc = allocator(mem);
  const vfMem = Array.from({ length: o.numVfs }, (_, vf) => o.vfMemory?.[vf] ?? (o.isolated ? new FlatMemory(memSize, flat) : mem));
  const vfAlloc = vfMem.map((m) => (m === mem ? alloc : allocator(m)));
  const clock = new ManualClock();
  const irq = new IrqRecorder();
  const core = new IgbCore({
    mac: o.pfMac ?? new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
    dma: (fn) => (fn >= 0 ? (vfMem[fn] ?? mem) : mem),
    irq,
    clock,
    ...(o.backend !== undefined ? { backend: o.backend } : {}),
  });
  const agent = new PfAgent({
    bar: { read: (off) => core.mmioRead(off, 4), write: (off, _s, v) => core.mmioWrite(off, 4, v) },
    enableVfs: (n) => core.setNumVfs(n),
    defaultVfMac: o.vfMac ?? ((vf) => new Uint8Array([0x02, 0, 0, 0, 0x01, vf])),
  });
  let scheduled = false;
  irq.onPf = () => {
    if (scheduled) return;
    scheduled = true;
    clock.schedule(1000, () => {
      scheduled = false;
      agent.service();
    });
  };
  agent.init(o.numVfs);
  const vfRegs: IgbVfRegs[] = [];
  const vfs: SimIgbvf[] = [];
  for (let vf = 0; vf < o.numVfs; vf++) {
    const regs = new IgbVfRegs(core, vf);
    vfRegs.push(regs);
    vfs.push(new SimIgbvf({ bar: regs, mem: vfMem[vf]!, ram: vfMem[vf]!.bytes, alloc: vfAlloc[vf]!, delay: (us) => clock.advance(us * 1000) }, o.driver ?? {}));
  }
  return { mem, vfMem, clock, irq, core, agent, vfs, vfRegs, alloc };
}
