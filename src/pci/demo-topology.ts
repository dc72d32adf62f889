/**
 * The built-in demo topology: host bridge, one root port, and the PCI test device in the root
 * port's slot as a PF with NumVFs = 2 and VF Enable set, with its two VFs. Everything is
 * programmed as firmware and an OS would leave it: bus numbers, bridge windows, ARI forwarding,
 * BARs, Command bits, VF BARs. `nicvisor lspci` prints it.
 * @module
 */
import { SRIOV, SRIOV_CTRL } from "./caps/sriov.js";
import { PCIE } from "./caps/pcie.js";
import type { DmaSpace, InterruptSink } from "./interfaces.js";
import { CMD, PCI } from "./regs.js";
import { PciTestDevice } from "./test-device.js";
import { PciRoot } from "./topology/root-complex.js";

/** What {@link demoTopology} returns. */
export interface DemoTopology {
  root: PciRoot;
  device: PciTestDevice;
}

const NO_IRQ: InterruptSink = { msi: () => {}, intx: () => {} };
const NO_DMA: DmaSpace = { read: () => undefined, write: () => false };

/** Root port at 00:01.0; its secondary bus 1 holds the test device (01:00.0) and VFs 01:00.1-2. */
export function demoTopology(env: { interrupts?: InterruptSink; dma?: DmaSpace } = {}): DemoTopology {
  const root = new PciRoot({ interrupts: env.interrupts ?? NO_IRQ, dma: env.dma ?? NO_DMA });
  const port = root.addRootPort(0x08, { slotNumber: 1 });
  const device = new PciTestDevice();
  port.plug(device.pf, { coldplug: true });

  const w = (bus: number, devfn: number, reg: number, size: 1 | 2 | 4, v: number): void => root.configWrite(bus, devfn, reg, size, v);
  // Root port: buses 1-1, memory window 0xC0000000-0xC00FFFFF, prefetchable 0xC0100000-0xC01FFFFF, ARI forwarding.
  w(0, 0x08, PCI.PRIMARY_BUS, 4, 0x00010100);
  w(0, 0x08, PCI.MEM_BASE, 2, 0xc000);
  w(0, 0x08, PCI.MEM_LIMIT, 2, 0xc000);
  w(0, 0x08, PCI.PREF_BASE, 2, 0xc010);
  w(0, 0x08, PCI.PREF_LIMIT, 2, 0xc010);
  w(0, 0x08, PCI.COMMAND, 2, CMD.MEMORY | CMD.BUS_MASTER);
  const portPcie = port.pcie.offset;
  w(0, 0x08, portPcie + PCIE.DEVCTL2, 2, 1 << 5);
  // PF: BAR0 at 0xC0000000, BAR2 (64-bit) at 0xC0001000, memory + bus master.
  w(1, 0x00, PCI.BAR0, 4, 0xc0000000);
  w(1, 0x00, PCI.BAR0 + 8, 4, 0xc0001000);
  w(1, 0x00, PCI.BAR0 + 12, 4, 0);
  w(1, 0x00, PCI.COMMAND, 2, CMD.MEMORY | CMD.BUS_MASTER);
  // SR-IOV: ARI capable hierarchy, VF BAR0 at 0xC0010000 (8 x 4 KiB), VF BAR2 at 0xC0100000 (prefetchable window).
  const sr = device.sriov.offset;
  w(1, 0x00, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
  w(1, 0x00, sr + SRIOV.NUM_VFS, 2, 2);
  w(1, 0x00, sr + SRIOV.VF_BAR0, 4, 0xc0010000);
  w(1, 0x00, sr + SRIOV.VF_BAR0 + 8, 4, 0xc0100000);
  w(1, 0x00, sr + SRIOV.VF_BAR0 + 12, 4, 0);
  w(1, 0x00, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI | SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
  for (const vf of [1, 2]) w(1, vf, PCI.COMMAND, 2, CMD.BUS_MASTER);
  return { root, device };
}
