/**
 * Ready-made platforms, each a {@link PciPlatform} composed with one `add()` per device (none
 * inherits another): the PCI test device alone, plus virtio-net, plus the whole 82576, plus one
 * 82576 VF whose PF the host keeps, virtio-net and a VF together, and the `net_failover` pair.
 * Every one has the PCI test device in root port 00:03.0 (what the guest image's own checks use).
 *
 * Platform-neutral.
 * @module
 */
import type { PciFunction } from "../pci/function.js";
import type { RootPort } from "../pci/topology/root-port.js";
import type { PciTestDevice } from "../pci/test-device.js";
import { createLink } from "../devices/net/link.js";
import type { L2Switch } from "../devices/net/switch.js";
import type { NetBackend } from "../devices/net/backend.js";
import { HostStub, type HostStubOptions } from "../devices/net/host-stub.js";
import type { VirtioPciTransport } from "../devices/virtio/pci-transport.js";
import type { VirtioNet } from "../devices/virtio-net/device.js";
import type { IgbPciDevice } from "../devices/igb/pci.js";
import { createTestDeviceModel } from "../devices/models/testdev.js";
import { createIgbModel } from "../devices/models/igb.js";
import { createVirtioNetModel, type VirtioNetModelConfig } from "../devices/models/virtio-net.js";
import { createSwitchModel } from "../devices/models/switch.js";
import type { IgbHostNic } from "./pf-agent/host-nic.js";
import { createIgbHostVfModel } from "./pf-agent/model.js";
import { createFailoverVfModel, type FailoverVfModel } from "./failover/model.js";
import { announceFrame, type FailoverVf } from "./failover/switch.js";
import { VIRTIO_NET_F } from "../devices/virtio-net/features.js";
import { rxEnabled } from "../devices/igb/rx.js";
import type { PlatformEnv } from "./machine-platform.js";
import { PciPlatform, PlatformError } from "./pci-platform.js";

/** Root-bus device number of the root port that holds the PCI test device. */
export const TEST_DEVICE_PORT = 3;
/** Root-bus device number of the root port that holds the virtio-net NIC. */
export const VIRTIO_NET_PORT = 4;
/** Root-bus device number of the root port that holds the 82576. */
export const IGB_PORT = 5;
/** Root-bus device number of the root port that holds a pass-through VF. */
export const VF_PORT = 6;

const mac = (last: number): Uint8Array => new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, last]);

/** Adds the PCI test device in 00:03.0's slot; returns it and its port. */
function addTestDevice(p: PciPlatform): { device: PciTestDevice; port: RootPort } {
  const m = createTestDeviceModel();
  const port = p.add(m, { name: "testdev", slot: TEST_DEVICE_PORT })!;
  return { device: m.device, port };
}

/** A host stub on one end of a new link; returns it and the link's other end. */
function stubLink(o: Omit<HostStubOptions, "backend"> = {}): { stub: HostStub; end: NetBackend } {
  const [dev, host] = createLink();
  return { stub: new HostStub({ ...o, backend: host }), end: dev };
}

/**
 * The PCI test device (a PF with 8 VFs) in root port 00:03.0's slot.
 * @example
 * ```ts
 * const vm = await GuestVm.boot({ kernel, initrd, platform: (env) => new TestDevicePlatform(env) });
 * ```
 */
export class TestDevicePlatform extends PciPlatform {
  /** The test device. */
  readonly device: PciTestDevice;
  /** Its root port. */
  readonly port: RootPort;

  constructor(env: PlatformEnv) {
    super(env);
    ({ device: this.device, port: this.port } = addTestDevice(this));
  }
}

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

/** The virtio-net configuration {@link VirtioNetPlatformOptions} describe. */
function virtioConfig(opts: VirtioNetPlatformOptions): VirtioNetModelConfig {
  const c: VirtioNetModelConfig = { mac: opts.mac ?? mac(0x56), maxPairs: opts.maxPairs ?? 2 };
  if (opts.standby !== undefined) c.standby = opts.standby;
  if (opts.withhold !== undefined) c.withhold = opts.withhold;
  if (opts.mtu !== undefined) c.mtu = opts.mtu;
  if (opts.packed !== undefined) c.packed = opts.packed;
  return c;
}

/**
 * The PCI test device plus a virtio-net NIC in root port 00:04.0's slot, linked to a
 * {@link HostStub} that answers ARP, ICMP echo and IPv6 ND/echo at 10.0.2.2 / fe80::2.
 */
export class VirtioNetPlatform extends PciPlatform {
  readonly device: PciTestDevice;
  readonly nic: VirtioNet;
  readonly transport: VirtioPciTransport;
  readonly stub: HostStub;

  constructor(env: PlatformEnv, opts: VirtioNetPlatformOptions = {}) {
    super(env);
    ({ device: this.device } = addTestDevice(this));
    const { stub, end } = stubLink();
    this.stub = stub;
    const nicEnd = opts.backend ?? end;
    const m = createVirtioNetModel(virtioConfig(opts));
    this.add(m, { name: "virtio-net", slot: VIRTIO_NET_PORT, backend: opts.wrapBackend?.(nicEnd) ?? nicEnd });
    this.nic = m.nic;
    this.transport = m.transport;
  }
}

/**
 * The PCI test device plus an 82576 (PF with 8 VFs) in root port 00:05.0's slot, its uplink
 * linked to a {@link HostStub} at 10.0.2.2.
 */
export class IgbPlatform extends PciPlatform {
  readonly device: PciTestDevice;
  readonly nic: IgbPciDevice;
  readonly stub: HostStub;

  /**
   * @param opts.backend - attach the NIC's uplink to this backend (a TAP, a socket) instead of the
   *   host stub's segment; the stub then sits on a link of its own, unused
   * @param opts.wrapBackend - wraps the NIC's uplink (e.g. a pcap tap)
   */
  constructor(env: PlatformEnv, opts: { mac?: Uint8Array; trace?: (msg: string) => void; wrapBackend?: (backend: NetBackend) => NetBackend; backend?: NetBackend } = {}) {
    super(env);
    ({ device: this.device } = addTestDevice(this));
    const { stub, end } = stubLink();
    this.stub = stub;
    const m = createIgbModel({ mac: opts.mac ?? mac(0x57), ...(opts.trace !== undefined ? { trace: opts.trace } : {}) });
    const nicEnd = opts.backend ?? end;
    this.add(m, { name: "igb", slot: IGB_PORT, backend: opts.wrapBackend?.(nicEnd) ?? nicEnd });
    this.nic = m.nic;
  }
}

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
}

/** What adding a host-kept 82576 with one guest VF gives. */
interface HostVfParts {
  host: IgbHostNic;
  vf: number;
  shim: PciFunction;
  vfPort: RootPort;
}

/** Adds the host NIC (its PF kept by the host agent) and the guest's VF in 00:06.0's slot. */
function addHostVf(p: PciPlatform, opts: IgbVfPlatformOptions, backend: NetBackend, hidden = false): HostVfParts {
  const vf = opts.vf ?? 0;
  const defaultMac = opts.defaultMac ?? mac(0x58);
  const m = createIgbHostVfModel({
    pfMac: mac(0x57),
    numVfs: opts.numVfs ?? 2,
    vf,
    defaultVfMac: (n) => (n === vf ? defaultMac : undefined),
    ...(opts.log !== undefined ? { log: opts.log } : {}),
    ...(opts.adminMac !== undefined ? { adminMac: opts.adminMac } : {}),
    ...(opts.trust !== undefined ? { trust: opts.trust } : {}),
    ...(opts.spoofchk !== undefined ? { spoofchk: opts.spoofchk } : {}),
  });
  const vfPort = p.add(m, { name: "igb-host", slot: VF_PORT, backend: opts.wrapBackend?.(backend) ?? backend, hidden })!;
  return { host: m.host, vf, shim: m.shim, vfPort };
}

/**
 * The PCI test device plus one 82576 VF, passed through in root port 00:06.0's slot (so it is
 * 02:00.0 in the guest), while the host keeps the PF and serves the VF's mailbox with a
 * {@link IgbHostNic}'s agent. The NIC's uplink goes to a {@link HostStub} at 10.0.2.2.
 */
export class IgbVfPlatform extends PciPlatform {
  readonly device: PciTestDevice;
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
    ({ device: this.device } = addTestDevice(this));
    const { stub, end } = stubLink();
    this.stub = stub;
    ({ host: this.host, vf: this.vf, shim: this.shim, vfPort: this.vfPort } = addHostVf(this, opts, opts.backend ?? end));
  }
}

/**
 * Two NICs on two segments: virtio-net in 00:04.0's slot with a host stub at 10.0.2.2, and one
 * 82576 VF (the host keeps the PF) in 00:06.0's slot with a host stub at 10.0.3.2. For guests
 * that run traffic on both kinds of NIC at once (the cross-process restore test).
 */
export class VirtioAndVfPlatform extends PciPlatform {
  readonly device: PciTestDevice;
  readonly nic: VirtioNet;
  readonly transport: VirtioPciTransport;
  readonly virtioStub: HostStub;
  readonly host: IgbHostNic;
  readonly vfStub: HostStub;
  readonly vf: number;
  readonly shim: PciFunction;
  readonly vfPort: RootPort;

  constructor(env: PlatformEnv, opts: { virtio?: VirtioNetPlatformOptions; vf?: IgbVfPlatformOptions } = {}) {
    super(env);
    ({ device: this.device } = addTestDevice(this));
    const a = stubLink();
    this.virtioStub = a.stub;
    const m = createVirtioNetModel(virtioConfig({ maxPairs: 1, ...opts.virtio }));
    this.add(m, { name: "virtio-net", slot: VIRTIO_NET_PORT, backend: a.end });
    this.nic = m.nic;
    this.transport = m.transport;
    const b = stubLink({ ipv4: "10.0.3.2" });
    this.vfStub = b.stub;
    ({ host: this.host, vf: this.vf, shim: this.shim, vfPort: this.vfPort } = addHostVf(this, opts.vf ?? {}, b.end));
  }
}

/** Options of {@link FailoverPlatform}. */
export interface FailoverPlatformOptions {
  /** The MAC both the VF (administrator's MAC) and virtio-net's standby use. */
  mac?: Uint8Array;
  /**
   * QEMU's `failover=on`: the VF is hidden until the guest's virtio-net driver takes STANDBY
   * (then hot-added); a live migration unplugs it through the slot (the attention button, then
   * pciehp powers the slot off) before pre-copy starts and waits for that, and the destination
   * (made with the same option, so its slot is empty too) hot-adds a VF after it resumes. Without
   * it (the default) the VF is present at power-on and its state travels like any device's.
   */
  hidePrimary?: boolean;
  /** With `hidePrimary`: how long a migration waits for the guest to let the VF go (default 30 s; pciehp waits 5 s after the button). */
  unplugTimeoutMs?: number;
  /** Attach the fabric's outside port to this backend (a TAP, a socket) instead of the host stub at 10.0.2.2. */
  backend?: NetBackend;
}

/**
 * A guest with two paths to one network, for Linux's `net_failover`: the 82576 VF passed through
 * in root port 00:06.0's slot (the primary) and a virtio-net with VIRTIO_NET_F_STANDBY in root
 * port 00:04.0's (the standby), both with the same MAC. The NIC's uplink, virtio-net's backend and
 * the host stub at 10.0.2.2 (or `backend`) meet on one {@link L2Switch}, so traffic reaches the
 * outside whichever path the guest uses, and the VF can be unplugged (`vfPort`) and plugged back
 * while the guest keeps its address and connections on the failover device.
 *
 * This is the standby style of failover (the guest's net_failover moves traffic while the VF is
 * gone); with `hidePrimary` it migrates as QEMU's `failover=on` does. The transparent style, where
 * the VF's backing is switched under the guest, is {@link FailoverVfPlatform}.
 */
export class FailoverPlatform extends PciPlatform {
  readonly device: PciTestDevice;
  readonly net: L2Switch;
  /** The host stub at 10.0.2.2, unless a `backend` was given. */
  readonly stub: HostStub | undefined;
  readonly host: IgbHostNic;
  readonly vf: number;
  readonly shim: PciFunction;
  readonly vfPort: RootPort;
  readonly standby: VirtioNet;
  readonly standbyTransport: VirtioPciTransport;
  /** The VF was hot-added, or unplugged for a migration, this many times. */
  readonly standbyCounts = { plugs: 0, unplugs: 0 };

  constructor(env: PlatformEnv, opts: FailoverPlatformOptions = {}) {
    super(env);
    const m = opts.mac ?? mac(0x58);
    const hide = opts.hidePrimary === true;
    ({ device: this.device } = addTestDevice(this));
    const sw = createSwitchModel();
    this.net = sw.net;
    // Ports in the order earlier nicvisor versions made them, so their saved switch states load.
    const uplink = this.net.port({ name: "igb-uplink" });
    if (opts.backend !== undefined) {
      this.net.connect(this.watchSegment(opts.backend), { name: "host" });
      this.stub = undefined;
    } else this.stub = new HostStub({ backend: this.net.port({ name: "host" }) });
    ({ host: this.host, vf: this.vf, shim: this.shim, vfPort: this.vfPort } = addHostVf(this, { adminMac: m }, uplink, hide));
    const sb = createVirtioNetModel({ mac: m, standby: true, maxPairs: 1 });
    const sbPort = this.net.port({ name: "virtio" });
    this.add(sb, { name: "virtio-net-standby", slot: VIRTIO_NET_PORT, backend: sbPort });
    this.standby = sb.nic;
    this.standbyTransport = sb.transport;
    // The switch's learned addresses and queued frames travel with the snapshot, as the NICs' do.
    this.add(sw, { name: "l2-switch" });
    // While the VF can receive (in its slot, powered, its pool enabled by igbvf's reset, its receive
    // queue enabled by igbvf's open; igbvf's close disables it again), frames for
    // the guest's MAC go to the NIC, as the NIC's own MAC filter sends them on a real host: the
    // standby's frames (net_failover's standby slave sends a few of its own) must not pull them to
    // virtio-net, where net_failover drops what arrives while a primary exists. Once the VF cannot,
    // the fabric learns again, and hears at once that the guest is on virtio-net.
    let pinned = false;
    const vfReceives = (): boolean =>
      this.vfPort.reachable().length > 0 && ((this.host.core.regs.get("VFRE") >>> this.vf) & 1) === 1 && rxEnabled(this.host.core, this.vf);
    const repin = (): void => {
      const want = vfReceives();
      if (want !== pinned) {
        pinned = want;
        this.net.setStatic(m, want ? uplink : undefined);
        if (!want) sbPort.transmit(announceFrame(m));
      }
      env.clock.schedule(10e6, repin);
    };
    repin();
    if (!hide) return;
    const tookStandby = (f: bigint): boolean => ((f >> BigInt(VIRTIO_NET_F.STANDBY)) & 1n) === 1n;
    const plug = (): void => {
      if (this.vfPort.occupied) return;
      this.shim.reset("power"); // a card put in a slot comes up from power-on
      this.vfPort.hotAdd(this.shim);
      this.standbyCounts.plugs++;
    };
    sb.nic.onActivate = (features, restored) => {
      if (!restored && tookStandby(features)) plug();
    };
    const timeout = opts.unplugTimeoutMs ?? 30_000;
    let unplugged = false;
    this.addLiveHooks("failover-standby", {
      beforeMigration: async () => {
        if (!this.vfPort.occupied) return;
        // The orderly removal QEMU asks for: the button, then pciehp powers the slot off (after 5 s).
        this.vfPort.pressAttentionButton();
        const end = Date.now() + timeout;
        while (this.vfPort.powered) {
          if (Date.now() > end) throw new PlatformError(`standby failover: the guest did not power the VF's slot off within ${timeout} ms (is pciehp loaded?)`);
          await new Promise((r) => setTimeout(r, 20));
        }
        this.vfPort.unplug();
        this.standbyCounts.unplugs++;
        unplugged = true;
      },
      afterAbort: () => {
        if (!unplugged) return;
        unplugged = false;
        plug();
      },
      // The guest is here now: frames for it come here and wait in virtio-net until the resume,
      // rather than reach the source after its last late frames were taken.
      afterRestore: () => sbPort.transmit(announceFrame(m)),
      afterResume: () => {
        // QEMU's self-announce: a RARP for the guest's MAC, and the guest asked to announce itself.
        sbPort.transmit(announceFrame(m));
        this.standby.announce();
        if (tookStandby(this.standby.negotiatedFeatures)) plug();
      },
    });
  }
}

/** Options of {@link FailoverVfPlatform}. */
export interface FailoverVfPlatformOptions {
  /** The guest VF's MAC, set as the administrator on both backings (default 52:54:00:12:34:58). */
  mac?: Uint8Array;
  /** Attach the fabric's uplink to this backend (a TAP, a socket, a test peer) instead of the host stub's segment. */
  backend?: NetBackend;
  /** The backing that serves first (default pass-through). */
  initial?: "passthrough" | "emulated";
  /** One line per refused mailbox request or dropped access. */
  log?: (msg: string) => void;
}

/**
 * The failover VF: one guest-visible 82576 VF in root port 00:06.0's slot (02:00.0 in the guest),
 * backed either by a VF of the host's 82576 through a VFIO-shaped boundary (pass-through) or by
 * the VMM's own emulated 82576, switched between them at any moment with `failover.switchTo()`
 * while the guest notices nothing. Both backings meet the host stub at 10.0.2.2 (or `backend`)
 * through the VMM's L2 switch.
 */
export class FailoverVfPlatform extends PciPlatform {
  readonly device: PciTestDevice;
  readonly stub: HostStub;
  /** The failover VF's model: `model.failover`, `model.host`, `model.emu`, `model.net`. */
  readonly model: FailoverVfModel;
  /** The switch. */
  readonly failover: FailoverVf;
  /** The root port whose slot holds the VF. */
  readonly vfPort: RootPort;

  constructor(env: PlatformEnv, opts: FailoverVfPlatformOptions = {}) {
    super(env);
    ({ device: this.device } = addTestDevice(this));
    const { stub, end } = stubLink();
    this.stub = stub;
    this.model = createFailoverVfModel({
      pfMac: mac(0x57),
      adminMac: opts.mac ?? mac(0x58),
      ramBytes: env.layout.ramBytes,
      ...(opts.initial !== undefined ? { initial: opts.initial } : {}),
      ...(opts.log !== undefined ? { log: opts.log } : {}),
    });
    this.vfPort = this.add(this.model, { name: "failover-vf", slot: VF_PORT, backend: opts.backend ?? end })!;
    this.failover = this.model.failover;
  }
}
