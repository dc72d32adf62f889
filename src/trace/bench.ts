/**
 * Recording a trace in process: a platform of a trace's kind on flat memory and a manual clock,
 * its guest accesses and I/O recorded, the NIC on the host stub's segment, the platform's buses
 * and BARs assigned as firmware would (through the recorded accesses), and ports for the
 * simulated guest drivers (`src/guest`) onto the recorded accesses. For tests and examples.
 *
 * Platform-neutral.
 * @module
 */
import { FlatMemory, ManualClock } from "../devices/testing.js";
import type { InterruptSink } from "../pci/interfaces.js";
import { assignResources, type ResourceAssignment } from "../pci/topology/firmware.js";
import { defaultLayout, type PlatformAccess } from "../vmm/machine-platform.js";
import type { PciPlatform } from "../vmm/pci-platform.js";
import type { TracePlatform } from "./format.js";
import { buildTracePlatform } from "./platform.js";
import { TraceRecorder, type TraceRecorderOptions } from "./record.js";

/** What {@link createTraceBench} builds. */
export interface TraceBench {
  readonly recorder: TraceRecorder;
  /** The platform (unrecorded: use {@link TraceBench.access} to drive it). */
  readonly platform: PciPlatform;
  /** The platform's access half, recorded. */
  readonly access: PlatformAccess;
  readonly mem: FlatMemory;
  readonly clock: ManualClock;
  /** Interrupts the platform raised. */
  readonly irqs: { msi: number; intx: number };
  /** Firmware's assignment. */
  readonly resources: ResourceAssignment;
  /** Bump allocator in guest memory. */
  alloc(size: number, align: number): number;
  /** The first function with this vendor:device id: its bus, devfn and BAR bases by index. */
  find(vendor: number, device: number): { bus: number; devfn: number; bars: Map<number, number> } | undefined;
  /** A PCI function port (as the simulated virtio-net driver takes) onto the recorded accesses. */
  fnPort(bus: number, devfn: number, bars: Map<number, number>): {
    configRead(reg: number, size: number): number;
    configWrite(reg: number, size: number, value: number): void;
    barRead(bar: number, offset: number, size: 1 | 2 | 4): number;
    barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void;
  };
}

/**
 * Builds a recorded platform of `platform`'s kind with `memMiB` of flat memory.
 * @example
 * ```ts
 * const b = createTraceBench({ kind: "igb" });
 * const nic = b.find(0x8086, 0x10c9)!;
 * b.access.mmioRead(nic.bars.get(0)! + 8, 4); // STATUS, recorded
 * const bytes = b.recorder.finish();
 * ```
 */
export function createTraceBench(platform: TracePlatform, memMiB = 32, recorderOptions: TraceRecorderOptions = {}): TraceBench {
  const ramBytes = memMiB << 20;
  const recorder = new TraceRecorder({ platform, ramBytes, ecamDiscovery: "acpi", nicvisor: "test" }, recorderOptions);
  const mem = new FlatMemory(ramBytes);
  const clock = new ManualClock();
  const irqs = { msi: 0, intx: 0 };
  const interrupts: InterruptSink = { msi: () => void irqs.msi++, intx: () => void irqs.intx++ };
  const layout = defaultLayout(ramBytes);
  const env = recorder.wrapEnv({ dma: mem, interrupts, clock, layout });
  const p = buildTracePlatform(platform, env, { wrapBackend: (b) => recorder.wrapBackend(b) });
  const access = recorder.wrapAccess(p);
  const [lo, hi] = layout.mmioWindows[0]!;
  const resources = assignResources(access, { mmio: [lo, hi - 1], io: [layout.ioWindow[0], layout.ioWindow[1] - 1] });
  let next = 0x10000;
  const alloc = (size: number, align: number): number => {
    next = Math.ceil(next / align) * align;
    const a = next;
    next += size;
    if (next > ramBytes) throw new RangeError("trace bench guest memory exhausted");
    return a;
  };
  return {
    recorder,
    platform: p,
    access,
    mem,
    clock,
    irqs,
    resources,
    alloc,
    find(vendor, device) {
      const want = ((device << 16) | vendor) >>> 0;
      for (const b of resources.bars) {
        if (b.vf !== undefined) continue;
        if (access.configRead(b.bus, b.devfn, 0, 4) >>> 0 !== want) continue;
        const bars = new Map<number, number>();
        for (const x of resources.bars) if (x.bus === b.bus && x.devfn === b.devfn && x.vf === undefined) bars.set(x.bar, x.base);
        return { bus: b.bus, devfn: b.devfn, bars };
      }
      return undefined;
    },
    fnPort(bus, devfn, bars) {
      const base = (bar: number): number => bars.get(bar) ?? 0;
      return {
        configRead: (reg, size) => access.configRead(bus, devfn, reg, size as 1 | 2 | 4),
        configWrite: (reg, size, value) => access.configWrite(bus, devfn, reg, size as 1 | 2 | 4, value),
        barRead: (bar, offset, size) => access.mmioRead(base(bar) + offset, size),
        barWrite: (bar, offset, size, value) => access.mmioWrite(base(bar) + offset, size, value),
      };
    },
  };
}
