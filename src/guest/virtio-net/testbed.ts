/**
 * An in-process virtio-net test bed: a `VirtioNet` behind its `VirtioPciTransport` (one `VirtioNetPci`),
 * attached to flat guest RAM, its backend linked to a {@link HostStub} (10.0.2.2) or to a given
 * backend, and the simulated driver on top. For tests and benchmarks.
 * @module
 */
import type { NetBackend } from "../../devices/net/backend.js";
import { HostStub } from "../../devices/net/host-stub.js";
import { createLink } from "../../devices/net/link.js";
import type { VirtioNetOptions } from "../../devices/virtio-net/device.js";
import { VirtioNetPci } from "../../devices/virtio-net/pci.js";
import type { DmaSpace, InterruptSink } from "../../pci/interfaces.js";
import { SimVirtioNet, type VirtioNetDriverOptions } from "./driver.js";

/** Options of {@link createVirtioNetTestbed}. */
export interface VirtioNetTestbedOptions {
  /** Device options besides mac/backend. */
  device?: Partial<Omit<VirtioNetOptions, "backend">>;
  driver?: VirtioNetDriverOptions;
  /** Backend of the device (default: a link to a HostStub). */
  backend?: NetBackend;
  /** Guest RAM bytes (default 32 MiB). */
  memSize?: number;
  /** Use this RAM (a migration target shares the guest's memory). */
  ram?: FlatRam;
}

/** A flat RAM as DMA space (guest physical address = index). */
export class FlatRam implements DmaSpace {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  read(addr: number, len: number): Uint8Array | undefined {
    return addr >= 0 && len >= 0 && addr + len <= this.bytes.length ? this.bytes.subarray(addr, addr + len) : undefined;
  }
  write(addr: number, data: Uint8Array): boolean {
    if (!(addr >= 0 && addr + data.length <= this.bytes.length)) return false;
    this.bytes.set(data, addr);
    return true;
  }
  linear(): Uint8Array {
    return this.bytes;
  }
}

/** Builds the test bed (the driver is created, not probed). */
export function createVirtioNetTestbed(o: VirtioNetTestbedOptions = {}) {
  const ram = o.ram ?? new FlatRam(o.memSize ?? 32 << 20);
  let stub: HostStub | undefined;
  let backend = o.backend;
  if (backend === undefined) {
    const [dev, host] = createLink();
    stub = new HostStub({ backend: host });
    backend = dev;
  }
  const dev = new VirtioNetPci({ mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), ...o.device, backend });
  const { nic, transport } = dev;
  const irqs = { msi: 0, intx: false };
  const sink: InterruptSink = {
    msi: () => void irqs.msi++,
    intx: (_rid, _pin, level) => void (irqs.intx = level),
  };
  transport.fn.attach(0x0100, sink, ram);
  let next = o.ram === undefined ? 0x10000 : Math.floor(ram.bytes.length / 2);
  const alloc = (size: number, align: number): number => {
    next = Math.ceil(next / align) * align;
    const a = next;
    next += size;
    if (next > ram.bytes.length) throw new RangeError("test bed guest memory exhausted");
    return a;
  };
  const driver = new SimVirtioNet({ fn: transport.fn, ram: ram.bytes, alloc }, o.driver ?? {});
  return { ram, dev, nic, transport, driver, stub, irqs, alloc };
}
