/**
 * The failover VF as a {@link DeviceModel}: one guest-visible VF function, backed by a VF of the
 * host's 82576 (pass-through, through the VFIO-shaped boundary) or by the VMM's own emulation of
 * the same VF (a second 82576 core with its own PF agent), with the switch between them.
 *
 * The L2 fabric is the VMM's software switch (`net`): its `uplink` port joins the backend given
 * at attach (the outside world), `host-nic` is the wire of the host's 82576, `emu` the emulated
 * NIC's uplink. (On a real host the host NIC's wire is a physical switch port and the emulation
 * reaches the same network through the VMM's TAP; the MAC moves there through the same announce.)
 *
 * State: which backing serves, and that backing's device state (the VF's registers, in-flight
 * work and held frames, and the PF agent's policy for it). The guest function's own state (config
 * space, MSI-X table and pending bits) travels with the platform's PCI state.
 *
 * Platform-neutral.
 * @module
 */
import { LateBackend, LateClock } from "../../devices/lifecycle/late-io.js";
import { defineModel, type DeviceModel, type LiveMigrationHooks } from "../../devices/lifecycle/model.js";
import type { HeldRx } from "../../devices/igb/activity.js";
import type { IgbCore } from "../../devices/igb/core.js";
import type { IgbHeldRxState } from "../../devices/igb/state.js";
import { heldFromState, heldToState, parseVfHeldList } from "../../devices/igb/vf.js";
import { L2Switch } from "../../devices/net/switch.js";
import type { Activity, MigrationState } from "../../state/migration.js";
import { field, obj, oneOf, onlyKeys } from "../../state/parse.js";
import { defineState } from "../../state/versioned.js";
import { IgbHostNic } from "../pf-agent/host-nic.js";
import { FailoverGuestVf } from "./guest-vf.js";
import { FailoverVf, type FailoverBackingName, type FailoverStep } from "./switch.js";
import { IgbVfioDevice, VFIO_PCI_MSIX_IRQ_INDEX, type IgbVfioState } from "./vfio.js";

/** Configuration of {@link createFailoverVfModel}. */
export interface FailoverVfConfig {
  /** The host 82576's PF MAC. */
  readonly pfMac: Uint8Array;
  /** The emulated NIC's PF MAC (default 02:4e:56:00:00:01; it sends nothing). */
  readonly emuPfMac?: Uint8Array;
  /** VFs enabled on each NIC (default 2; the same on both, so the PF agents' quotas agree). */
  readonly numVfs?: number;
  /** The guest's VF (default 0; the same number on both NICs). */
  readonly vf?: number;
  /** The administrator's MAC for the VF (`ip link set PF vf N mac`), given to both PF agents. */
  readonly adminMac?: Uint8Array;
  /** Administrator policy for the VF, on both agents. */
  readonly trust?: boolean;
  readonly spoofchk?: boolean;
  /** Guest RAM in bytes (a multiple of 4 KiB), mapped into both IOMMU domains at IOVA = guest address. */
  readonly ramBytes: number;
  /** The backing that serves first (default pass-through). */
  readonly initial?: FailoverBackingName;
  /** Fault injection / observation: called at the start of every switch step (see `FailoverVfOptions.stepHook`). */
  readonly stepHook?: (step: FailoverStep, to: FailoverBackingName) => void;
  /** One line per refused mailbox request / dropped device access. */
  readonly log?: (msg: string) => void;
  readonly trace?: (msg: string) => void;
}

/** Saved state of the failover VF. */
export interface FailoverVfState {
  readonly version: 1;
  /** The backing that serves the guest. */
  readonly backing: FailoverBackingName;
  /** That backing's device state. */
  readonly device: IgbVfioState;
}

/** The model plus its parts. */
export type FailoverVfModel = DeviceModel<FailoverVfState> & {
  /** The switch: `failover.switchTo("emulated")`, `failover.stats()`. */
  readonly failover: FailoverVf;
  /** The host's 82576 (pass-through side) and the VMM's emulated one. */
  readonly host: IgbHostNic;
  readonly emu: IgbHostNic;
  /** The VMM's software L2 switch (the fabric). */
  readonly net: L2Switch;
  /** The guest-visible function and its routing. */
  readonly guest: FailoverGuestVf;
  /** The two VFIO-shaped devices. */
  readonly devices: { readonly passthrough: IgbVfioDevice; readonly emulated: IgbVfioDevice };
  /** Its live-migration part: transparent failover around the stop, late frames, the announce. */
  readonly live: FailoverLiveHooks;
};

/** The failover VF's live-migration hooks: all but `beforeMigration`, `afterRestore` (its restore announces the guest's MACs itself) and `lateDone` (the platform's segment watch says it). */
export type FailoverLiveHooks = Required<Omit<LiveMigrationHooks, "beforeMigration" | "afterRestore" | "lateDone">>;

const STATE_OF: Record<Activity, MigrationState> = { running: "RUNNING", quiesced: "RUNNING_P2P", stopped: "STOP" };

/**
 * Creates the failover VF (no I/O yet: `attach` binds the clock and the uplink).
 * @example
 * ```ts
 * const vf = createFailoverVfModel({ pfMac, adminMac, ramBytes: 256 << 20 });
 * platform.add(vf, { name: "vf0", slot: 6, backend: uplink });
 * vf.failover.switchTo("emulated");   // the guest notices nothing
 * vf.failover.switchTo("passthrough");
 * ```
 */
export function createFailoverVfModel(config: FailoverVfConfig): FailoverVfModel {
  const vf = config.vf ?? 0;
  const numVfs = config.numVfs ?? 2;
  const clock = new LateClock();
  const uplink = new LateBackend();
  const net = new L2Switch({ clock });
  net.connect(uplink, { name: "uplink" });
  const hostPort = net.port({ name: "host-nic" });
  const emuPort = net.port({ name: "emu" });
  const common = { numVfs, clock, ...(config.log !== undefined ? { log: config.log } : {}), ...(config.trace !== undefined ? { trace: config.trace } : {}) };
  const host = new IgbHostNic({ ...common, pfMac: config.pfMac, backend: hostPort });
  const emu = new IgbHostNic({ ...common, pfMac: config.emuPfMac ?? Uint8Array.of(0x02, 0x4e, 0x56, 0, 0, 1), backend: emuPort });
  for (const nic of [host, emu]) {
    if (config.adminMac !== undefined) nic.agent.setVfMac(vf, config.adminMac);
    if (config.trust !== undefined) nic.agent.setVfTrust(vf, config.trust);
    if (config.spoofchk !== undefined) nic.agent.setVfSpoofchk(vf, config.spoofchk);
  }
  const guest = new FailoverGuestVf();
  const devices = { passthrough: new IgbVfioDevice(host, vf, guest.dma), emulated: new IgbVfioDevice(emu, vf, guest.dma) };
  for (const d of [devices.passthrough, devices.emulated]) {
    const e = d.dmaMap(0, config.ramBytes) ?? d.setIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, guest.eventfds(d));
    if (e !== undefined) throw e;
  }
  const failover = new FailoverVf({
    clock,
    guest,
    passthrough: { device: devices.passthrough, port: hostPort },
    emulated: { device: devices.emulated, port: emuPort },
    ...(config.initial !== undefined ? { initial: config.initial } : {}),
    ...(config.stepHook !== undefined ? { stepHook: config.stepHook } : {}),
  });
  let activity: Activity = "running";
  // Live migration: the held frames a save took (the rest reached the stopped device later and
  // travel as late frames), the held frames a restore brought, and whether the source switched to
  // emulation for a transparent migration.
  let heldAtSave = -1;
  let heldAtRestore = 0;
  let switchedForMigration = false;
  const fifoOf = (): { fifo: HeldRx[]; vfNo: number; core: IgbCore } => {
    const d = devices[failover.active];
    return { fifo: d.core.activity.poolFifo[d.vf] ?? [], vfNo: d.vf, core: d.core };
  };
  const live: FailoverLiveHooks = {
    beforeStop: (o) => {
      if (!o.transparent || failover.active === "emulated") return;
      const r = failover.switchTo("emulated");
      if (!r.ok) throw new Error(`transparent failover: the switch to emulation failed (${r.error.message})`);
      switchedForMigration = true;
    },
    afterAbort: () => {
      heldAtSave = -1;
      if (!switchedForMigration) return;
      switchedForMigration = false;
      const r = failover.switchTo("passthrough");
      if (!r.ok) config.log?.(`failover: back to pass-through after a failed migration: ${r.error.message} (the VF stays emulated)`);
    },
    takeLate: () => {
      if (heldAtSave < 0) return undefined;
      const { fifo } = fifoOf();
      const late = fifo.slice(heldAtSave);
      heldAtSave = fifo.length;
      return late.length === 0 ? undefined : { held: heldToState(late) };
    },
    parseLate: (u, path) => {
      const o = obj(u, path);
      onlyKeys(o, path, ["held"]);
      return field(o, "held", path, parseVfHeldList);
    },
    putLate: (parsed) => {
      const { fifo, vfNo, core } = fifoOf();
      const carried = heldFromState(vfNo, parsed as IgbHeldRxState[]);
      const at = Math.min(heldAtRestore, fifo.length);
      core.activity.poolFifo[vfNo] = [];
      // the restored frames, then the carried ones, then what reached this side since the restore
      for (const h of [...fifo.slice(0, at), ...carried, ...fifo.slice(at)]) core.activity.holdPool(vfNo, h);
      heldAtRestore = at + carried.length;
    },
    afterResume: (o) => {
      heldAtRestore = 0;
      failover.announce();
      if (!o.transparent || failover.active === "passthrough") return;
      const r = failover.switchTo("passthrough");
      if (!r.ok) config.log?.(`failover: back to pass-through after the migration: ${r.error.message} (the VF stays emulated)`);
    },
  };
  const stateType = defineState<FailoverVfState>("igb-failover-vf", 1, {}, (o, path) => {
    onlyKeys(o, path, ["version", "backing", "device"]);
    const backing = field(o, "backing", path, (v, p) => oneOf(v, p, ["passthrough", "emulated"] as const));
    return { version: 1, backing, device: field(o, "device", path, (v, p) => devices[backing].parseState(v, p)) };
  });
  const model = defineModel<FailoverVfState>({
    kind: "igb-failover-vf",
    functions: [guest.fn],
    stateType,
    save: () => {
      heldAtSave = fifoOf().fifo.length;
      return { version: 1, backing: failover.active, device: devices[failover.active].captureState() };
    },
    restore: (s) => {
      failover.install(s.backing, s.device, STATE_OF[activity]);
      heldAtRestore = fifoOf().fifo.length;
    },
    setActivity: (a) => {
      activity = a;
      const d = devices[failover.active];
      if (d.migration.set(STATE_OF[a]) !== undefined) {
        d.migration.reset();
        d.migration.set(STATE_OF[a]);
      }
    },
    attach: (io) => {
      clock.bind(io.clock);
      if (io.backend !== undefined) uplink.bind(io.backend);
    },
  });
  return Object.assign(model, { failover, host, emu, net, guest, devices, live });
}
