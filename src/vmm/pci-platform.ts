/**
 * nicvisor's PCI core as the machine's platform: a {@link PciRoot} (host bridge, root ports, the
 * devices in their slots) behind the {@link PlatformBus} the machine drives, plus the device models'
 * own state in snapshots.
 *
 * With nicvisor's ACPI tables (the default), Linux finds ECAM in the MCFG table and routes INTx
 * through the DSDT's `_PRT`. With `acpi=off`, it finds ECAM through the host bridge's Intel 945-style PCIEXBAR, and takes a
 * device's IRQ from its Interrupt Line. SeaBIOS does not know this chipset and would write 0xFF
 * there, so the platform hardwires each function's Interrupt Line to the IRQ its INTx pin is
 * routed to (the PCI swizzle up to the root-bus slot), as a board with fixed routing would.
 *
 * Platform-neutral.
 * @module
 */
import type { PciFunction } from "../pci/function.js";
import type { AccessSize } from "../pci/function.js";
import type { InterruptSink } from "../pci/interfaces.js";
import { PCI } from "../pci/regs.js";
import { PciRoot, type PciRootState } from "../pci/topology/root-complex.js";
import type { RootPort } from "../pci/topology/root-port.js";
import { PciTestDevice, type PciTestDeviceState } from "../pci/test-device.js";
import { createLink } from "../devices/net/link.js";
import { L2Switch } from "../devices/net/switch.js";
import type { NetBackend } from "../devices/net/backend.js";
import { HostStub } from "../devices/net/host-stub.js";
import { VirtioPciTransport, type VirtioTransportState } from "../devices/virtio/pci-transport.js";
import { VirtioNet, type VirtioNetState } from "../devices/virtio-net/device.js";
import { IgbPciDevice } from "../devices/igb/pci.js";
import type { IgbCoreState } from "../devices/igb/core.js";
import { IgbHostNic } from "./pf-agent/host-nic.js";
import type { MachineLayout, PlatformBus, PlatformEnv } from "./machine-platform.js";

/** A platform was built wrongly, or a saved platform state was rejected. */
export class PlatformError extends Error {
  override readonly name = "PlatformError";
}

/** A device model whose state travels in machine snapshots. */
export interface PlatformDevice {
  /** A stable name for the device in snapshots. */
  readonly name: string;
  save(): unknown;
  /** Throws a typed error on bad input. */
  restore(state: unknown): void;
}

/** Saved state of the platform. */
export interface PciPlatformState {
  version: 1;
  pci: PciRootState;
  devices: Record<string, unknown>;
}

/** The PCI platform. Build it with a factory such as {@link TestDevicePlatform}. */
export class PciPlatform implements PlatformBus {
  /** The root complex. */
  readonly root: PciRoot;
  private readonly devices: PlatformDevice[] = [];
  /** Root-bus device number of each root port (for the INTx swizzle). */
  private readonly portSlots = new Map<RootPort, number>();

  constructor(private readonly env: PlatformEnv) {
    const sink: InterruptSink = {
      msi: (a, d) => env.interrupts.msi(a, d),
      intx: (rid, pin, level) => {
        const routed = this.routeIntx(rid, pin);
        env.interrupts.intx(routed.rid, routed.pin, level);
      },
    };
    this.root = new PciRoot({
      interrupts: sink,
      dma: env.dma,
      ...(env.layout.ecamDiscovery === "pciexbar"
        ? { hostBridge: { vendorId: 0x8086, deviceId: 0x2770 }, pciexbar: { base: env.layout.ecamBase, buses: 64 as const } }
        : { hostBridge: { vendorId: 0x1b36, deviceId: 0x0008 } }),
    });
  }

  /** The machine's layout. */
  get layout(): MachineLayout {
    return this.env.layout;
  }

  /** Adds a root port at `00:dev.0` and returns it. */
  addRootPort(dev: number): RootPort {
    const port = this.root.addRootPort(dev << 3, { slotNumber: dev });
    this.portSlots.set(port, dev);
    this.hardwireLine(port.fn, dev, 1);
    return port;
  }

  /** Puts `fn` (a device's function 0) in `port`'s slot as present at power-on. */
  coldplug(port: RootPort, fns: PciFunction | PciFunction[]): void {
    const list = Array.isArray(fns) ? fns : [fns];
    const dev = this.portSlots.get(port) ?? 0;
    list.forEach((f) => this.hardwireLine(f, dev, f.pin));
    port.plug(list, { coldplug: true });
  }

  /** Registers a device model whose state goes into snapshots. */
  addDevice(d: PlatformDevice): void {
    if (this.devices.some((x) => x.name === d.name)) throw new PlatformError(`device name ${d.name} used twice`);
    this.devices.push(d);
  }

  /**
   * Puts `nic` behind a virtio-pci transport in a new root port at `00:dev.0`, present at power-on,
   * with its state (transport and device) saved under `name`. Returns the transport.
   */
  addVirtioNet(dev: number, nic: VirtioNet, name: string): VirtioPciTransport {
    const transport = new VirtioPciTransport(nic);
    this.coldplug(this.addRootPort(dev), transport.fn);
    this.addDevice({
      name,
      save: () => ({ transport: transport.save(), nic: nic.save() }),
      restore: (s) => {
        const st = s as { transport: VirtioTransportState; nic: VirtioNetState };
        nic.restore(st.nic);
        transport.restore(st.transport);
      },
    });
    return transport;
  }

  /** INTx of a function behind a root port arrives on the port's slot with the swizzled pin. */
  private routeIntx(rid: number, pin: number): { rid: number; pin: number } {
    const bus = rid >>> 8;
    if (bus === 0) return { rid, pin };
    for (const [port, dev] of this.portSlots) {
      if (port.secondaryBus === bus) return { rid: dev << 3, pin: (((pin - 1 + ((rid >>> 3) & 0x1f)) % 4) + 4) % 4 + 1 };
    }
    return { rid, pin };
  }

  private hardwireLine(fn: PciFunction, slot: number, pin: number): void {
    if (pin < 1 || pin > 4) return;
    fn.config.set8(PCI.INT_LINE, this.env.layout.intxIrq(slot, pin));
    fn.config.setMasks(PCI.INT_LINE, 1, { w: 0 });
  }

  configRead(bus: number, devfn: number, reg: number, size: AccessSize): number {
    return this.root.configRead(bus, devfn, reg, size);
  }
  configWrite(bus: number, devfn: number, reg: number, size: AccessSize, value: number): void {
    this.root.configWrite(bus, devfn, reg, size, value);
  }
  mmioRead(addr: number, size: AccessSize): number {
    return this.root.mmioRead(addr, size);
  }
  mmioWrite(addr: number, size: AccessSize, value: number): void {
    this.root.mmioWrite(addr, size, value);
  }
  ioRead(port: number, size: AccessSize): number {
    return this.root.ioRead(port, size);
  }
  ioWrite(port: number, size: AccessSize, value: number): void {
    this.root.ioWrite(port, size, value);
  }

  save(): PciPlatformState {
    const devices: Record<string, unknown> = {};
    for (const d of this.devices) devices[d.name] = d.save();
    return { version: 1, pci: this.root.save(), devices };
  }

  restore(state: unknown): void {
    const s = state as PciPlatformState | null;
    if (typeof s !== "object" || s === null || s.version !== 1 || typeof s.devices !== "object" || s.devices === null) {
      throw new PlatformError("bad PCI platform state");
    }
    for (const d of this.devices) if (!(d.name in s.devices)) throw new PlatformError(`no state for device ${d.name}`);
    this.root.restore(s.pci);
    for (const d of this.devices) d.restore(s.devices[d.name]);
  }
}

/** Root-bus device number of the root port that holds the PCI test device. */
export const TEST_DEVICE_PORT = 3;

/**
 * The platform with the PCI test device (a PF with 8 VFs) in root port 00:03.0's slot.
 * @example
 * ```ts
 * const vm = await GuestVm.boot({ kernel, initrd, platform: (env) => new TestDevicePlatform(env) });
 * ```
 */
export class TestDevicePlatform extends PciPlatform {
  /** The test device. */
  readonly device = new PciTestDevice();
  /** Its root port. */
  readonly port: RootPort;

  constructor(env: PlatformEnv) {
    super(env);
    this.port = this.addRootPort(TEST_DEVICE_PORT);
    this.coldplug(this.port, this.device.pf);
    this.addDevice({ name: "testdev", save: () => this.device.save(), restore: (s) => this.device.restore(s as PciTestDeviceState) });
  }
}

/** Root-bus device number of the root port that holds the virtio-net NIC. */
export const VIRTIO_NET_PORT = 4;

/** Options of {@link VirtioNetPlatform}. */
export interface VirtioNetPlatformOptions {
  /** The NIC's MAC (default 52:54:00:12:34:56). */
  mac?: Uint8Array;
  /** Offer VIRTIO_NET_F_STANDBY. */
  standby?: boolean;
  /** Features to withhold (bit numbers). */
  withhold?: number[];
  /** Queue pairs (default 2, so that MQ can be exercised). */
  maxPairs?: number;
  /** MTU to offer with VIRTIO_NET_F_MTU (not offered when absent). */
  mtu?: number;
  /** Offer VIRTIO_F_RING_PACKED. */
  packed?: boolean;
  /** Wraps the NIC's end of the link (e.g. a pcap tap: `tap.wrap(b)`). */
  wrapBackend?: (backend: NetBackend) => NetBackend;
  /**
   * Attach the NIC to this backend (a TAP, a QEMU-compatible socket, a switch port) instead of the
   * host stub's segment. The stub then sits on a link of its own, unused.
   */
  backend?: NetBackend;
}

/**
 * The test-device platform plus a virtio-net NIC in root port 00:04.0's slot, linked to a
 * {@link HostStub} that answers ARP, ICMP echo and IPv6 ND/echo at 10.0.2.2 / fe80::2.
 */
export class VirtioNetPlatform extends TestDevicePlatform {
  readonly nic: VirtioNet;
  readonly transport: VirtioPciTransport;
  readonly stub: HostStub;

  constructor(env: PlatformEnv, opts: VirtioNetPlatformOptions = {}) {
    super(env);
    const [dev, host] = createLink();
    this.stub = new HostStub({ backend: host });
    const nicEnd = opts.backend ?? dev;
    const netOpts: ConstructorParameters<typeof VirtioNet>[0] = { mac: opts.mac ?? new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]), backend: opts.wrapBackend?.(nicEnd) ?? nicEnd };
    if (opts.standby !== undefined) netOpts.standby = opts.standby;
    if (opts.withhold !== undefined) netOpts.withhold = opts.withhold;
    if (opts.mtu !== undefined) netOpts.mtu = opts.mtu;
    if (opts.packed !== undefined) netOpts.packed = opts.packed;
    netOpts.maxPairs = opts.maxPairs ?? 2;
    this.nic = new VirtioNet(netOpts);
    this.transport = this.addVirtioNet(VIRTIO_NET_PORT, this.nic, "virtio-net");
  }
}

/** Root-bus device number of the root port that holds the 82576. */
export const IGB_PORT = 5;

/**
 * The test-device platform plus an 82576 (PF with 8 VFs) in root port 00:05.0's slot, its uplink
 * linked to a {@link HostStub} at 10.0.2.2.
 */
export class IgbPlatform extends TestDevicePlatform {
  readonly nic: IgbPciDevice;
  readonly stub: HostStub;

  constructor(env: PlatformEnv, opts: { mac?: Uint8Array; trace?: (msg: string) => void; wrapBackend?: (backend: NetBackend) => NetBackend } = {}) {
    super(env);
    const [dev, host] = createLink();
    this.stub = new HostStub({ backend: host });
    this.nic = new IgbPciDevice({
      mac: opts.mac ?? new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]),
      clock: env.clock,
      backend: opts.wrapBackend?.(dev) ?? dev,
      ...(opts.trace !== undefined ? { trace: opts.trace } : {}),
    });
    const port = this.addRootPort(IGB_PORT);
    this.coldplug(port, this.nic.pf);
    this.addDevice({ name: "igb", save: () => this.nic.save(), restore: (s) => this.nic.restore(s as IgbCoreState) });
  }
}

/** Root-bus device number of the root port that holds a pass-through VF. */
export const VF_PORT = 6;

/** Options of {@link IgbVfPlatform}. */
export interface IgbVfPlatformOptions {
  /** The guest VF's MAC, set as the administrator (`ip link set PF vf N mac`). Default: none set. */
  adminMac?: Uint8Array;
  /** MAC the agent hands the VF when the administrator set none (default 52:54:00:12:34:58). */
  defaultMac?: Uint8Array;
  /** VFs the host agent enables (default 2); the guest gets VF `vf` (default 0). */
  numVfs?: number;
  vf?: number;
  /** Administrator policy for the guest's VF. */
  trust?: boolean;
  spoofchk?: boolean;
  /** One line per refused mailbox request or dropped access. */
  log?: (msg: string) => void;
  /** Wraps the NIC's uplink (e.g. a pcap tap). */
  wrapBackend?: (backend: NetBackend) => NetBackend;
  /** Attach the NIC's uplink to this backend (a TAP, a socket) instead of the host stub's segment. */
  backend?: NetBackend;
  /** The host stub's own backend (default: the other end of the NIC's link). */
  stubBackend?: NetBackend;
}

/**
 * The test-device platform plus one 82576 VF, passed through in root port 00:06.0's slot (so it is
 * 02:00.0 in the guest), while the host keeps the PF and serves the VF's mailbox with a
 * {@link IgbHostNic}'s agent. The NIC's uplink goes to a {@link HostStub} at 10.0.2.2.
 */
export class IgbVfPlatform extends TestDevicePlatform {
  readonly host: IgbHostNic;
  readonly stub: HostStub;
  /** The VF the guest has. */
  readonly vf: number;
  /** Its pass-through function. */
  readonly shim: PciFunction;
  /** The root port whose slot holds the VF (hot-unplug and re-plug it there). */
  readonly vfPort: RootPort;

  constructor(env: PlatformEnv, opts: IgbVfPlatformOptions = {}) {
    super(env);
    const [dev, host] = createLink();
    this.stub = new HostStub({ backend: opts.stubBackend ?? host });
    this.vf = opts.vf ?? 0;
    const defaultMac = opts.defaultMac ?? new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x58]);
    const guestVf = this.vf;
    this.host = new IgbHostNic({
      pfMac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x57]),
      numVfs: opts.numVfs ?? 2,
      clock: env.clock,
      backend: opts.wrapBackend?.(opts.backend ?? dev) ?? opts.backend ?? dev,
      defaultVfMac: (n) => (n === guestVf ? defaultMac : undefined),
      ...(opts.log !== undefined ? { log: opts.log } : {}),
    });
    if (opts.adminMac !== undefined) this.host.agent.setVfMac(this.vf, opts.adminMac);
    if (opts.trust !== undefined) this.host.agent.setVfTrust(this.vf, opts.trust);
    if (opts.spoofchk !== undefined) this.host.agent.setVfSpoofchk(this.vf, opts.spoofchk);
    this.shim = this.host.passthrough(this.vf);
    this.vfPort = this.addRootPort(VF_PORT);
    this.coldplug(this.vfPort, this.shim);
    this.addDevice({ name: "igb-host", save: () => this.host.save(), restore: (s) => this.host.restore(this.host.stateType.parse(s, "igb-host")) });
  }
}

/** Options of {@link FailoverPlatform}. */
export interface FailoverPlatformOptions {
  /** The MAC both the VF (administrator's MAC) and virtio-net's standby use. */
  mac?: Uint8Array;
}

/**
 * A guest with two paths to one network, for Linux's `net_failover`: the 82576 VF passed through
 * in root port 00:06.0's slot (the primary) and a virtio-net with VIRTIO_NET_F_STANDBY in root
 * port 00:04.0's (the standby), both with the same MAC. The NIC's uplink, virtio-net's backend and
 * the host stub at 10.0.2.2 meet on one {@link L2Switch}, so traffic reaches the stub whichever
 * path the guest uses, and the VF can be unplugged (`vfPort`) and plugged back while the guest
 * keeps its address and connections on the failover device.
 *
 * Only the guest's side of failover: moving the VF's state between pass-through and emulation
 * (the failover switch) is not built.
 */
export class FailoverPlatform extends IgbVfPlatform {
  readonly net: L2Switch;
  readonly standby: VirtioNet;
  readonly standbyTransport: VirtioPciTransport;

  constructor(env: PlatformEnv, opts: FailoverPlatformOptions = {}) {
    const mac = opts.mac ?? new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x58]);
    const net = new L2Switch({ clock: env.clock });
    super(env, { backend: net.port({ name: "igb-uplink" }), adminMac: mac, stubBackend: net.port({ name: "host" }) });
    this.net = net;
    this.standby = new VirtioNet({ mac, backend: net.port({ name: "virtio" }), standby: true, maxPairs: 1 });
    this.standbyTransport = this.addVirtioNet(VIRTIO_NET_PORT, this.standby, "virtio-net-standby");
    // The switch's learned addresses and queued frames travel with the snapshot, as the NICs' do.
    this.addDevice({ name: "l2-switch", save: () => this.net.save(), restore: (s) => this.net.restore(this.net.stateType.parse(s, "l2-switch")) });
  }
}
