/**
 * The guest-visible VF of the failover switch: ONE PCI function (8086:10CA, as Linux igbvf
 * expects it: BAR0 the 16 KiB register slice, BAR3 MSI-X with the 3 vectors igbvf uses, PCIe
 * with FLR) that never changes for the guest, whichever backing serves it. Its config space and
 * MSI-X table and PBA live here, so MSI-X pending bits need no transfer at a switch. BAR0 accesses
 * go to the active backing's BAR0 region; the active backing's MSI-X eventfds raise this
 * function's vectors; an FLR resets the active backing's VF. The backings' DMA uses this
 * function's bus-master-gated view of guest memory ({@link FailoverGuestVf.dma}) through their
 * IOMMU domains.
 *
 * Platform-neutral.
 * @module
 */
import { addMsix } from "../../pci/caps/msix.js";
import { addPcie } from "../../pci/caps/pcie.js";
import { PciFunction, type AccessSize } from "../../pci/function.js";
import type { DmaSpace } from "../../pci/interfaces.js";
import { IGB_PF_LAYOUT, IGB_VF_LAYOUT } from "../../devices/igb/layout.js";
import { VFIO_PCI_BAR0_REGION_INDEX, type VfioDevice, type VfioEventfd } from "./vfio.js";

/** A backing as the guest function sees it: any VFIO-shaped device. */
export type GuestVfBacking = Pick<VfioDevice<unknown>, "regionRead" | "regionWrite" | "reset">;

/**
 * The guest-visible VF function and its routing to the active backing.
 * @example
 * const g = new FailoverGuestVf();
 * const dev = new IgbVfioDevice(hostNic, 0, g.dma);
 * dev.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, g.eventfds(dev));
 * g.route(dev); // BAR0, interrupts and FLR now reach dev
 */
export class FailoverGuestVf {
  /** The PCI function the guest sees. */
  readonly fn: PciFunction;
  /** Interrupts raised, per vector (from the active backing). */
  readonly irqs = [0, 0, 0];
  /** Interrupts from a backing that was not active (dropped; a stopped backing raises none). */
  staleIrqs = 0;
  /** BAR0 accesses with no backing routed (reads 0, writes dropped). */
  unrouted = 0;
  private active: GuestVfBacking | undefined;

  constructor() {
    const L = IGB_PF_LAYOUT;
    const V = IGB_VF_LAYOUT;
    const bar0 = {
      read: (off: number, size: AccessSize): number => {
        const b = this.active;
        if (b === undefined) {
          this.unrouted++;
          return 0;
        }
        return b.regionRead(VFIO_PCI_BAR0_REGION_INDEX, off, size);
      },
      write: (off: number, size: AccessSize, value: number): void => {
        const b = this.active;
        if (b === undefined) this.unrouted++;
        else b.regionWrite(VFIO_PCI_BAR0_REGION_INDEX, off, size, value);
      },
    };
    const fn = new PciFunction({
      vendorId: L.vendorId,
      deviceId: V.deviceId,
      revision: V.revision,
      classCode: V.classCode,
      express: true,
      bars: [
        { index: 0, kind: "mem64", size: L.sriov.vfBars[0]!.size, prefetchable: true, handler: bar0 },
        { index: 3, kind: "mem64", size: L.sriov.vfBars[1]!.size, prefetchable: true },
      ],
    });
    addMsix(fn, { ...V.msix });
    addPcie(fn, { type: "endpoint", flr: true });
    fn.onReset = () => this.active?.reset();
    this.fn = fn.realize();
  }

  /** Guest memory as this function may reach it (fails while Bus Master Enable is off). */
  get dma(): DmaSpace {
    return this.fn.dma;
  }

  /** The backing BAR0 now reaches. */
  get routed(): GuestVfBacking | undefined {
    return this.active;
  }

  /** Routes BAR0, interrupts and FLR to `b`. */
  route(b: GuestVfBacking): void {
    this.active = b;
  }

  /** The MSI-X eventfds to give backing `b` (`setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, ...)`): each raises this function's vector while `b` is routed. */
  eventfds(b: GuestVfBacking): VfioEventfd[] {
    return [0, 1, 2].map((v) => () => this.irq(b, v));
  }

  private irq(from: GuestVfBacking, v: number): void {
    if (from !== this.active) {
      this.staleIrqs++;
      return;
    }
    this.irqs[v] = (this.irqs[v] ?? 0) + 1;
    this.fn.notify(v);
  }
}
