/**
 * The failover switch: moves the guest's VF between its two backings (pass-through onto a VF of
 * the host's 82576 through the VFIO-shaped boundary, or the VMM's own emulation of the same VF),
 * synchronously, at any moment the VMM chooses, also mid-traffic and mid-mailbox-exchange.
 *
 * Steps ({@link FAILOVER_STEPS}), each a point where an injected fault may strike:
 * 1. `quiesce`: the source goes RUNNING_P2P (its pool's frames wait in its bounded FIFO, its
 *    transmit work is latched, no interrupt goes out; registers still answer);
 * 2. `stop-copy`: the source goes STOP_COPY;
 * 3. `save`: the VF's core state (`saveVf`) and the PF agent's per-VF state are captured;
 * 4. `parse`: the target parses both (a refusal aborts the switch);
 * 5. `load`: the target goes RESUMING and installs them, its pool still closed;
 * 6. `reroute`: BAR0, interrupts and FLR of the guest function go to the target (its DMA is the
 *    target's own IOMMU domain over the same guest memory);
 * 7. `move-mac`: the source's pool is closed, the target's opened, frames that reached the source
 *    after the capture are appended to the target's FIFO in order (bounded; overflow counted),
 *    and the guest's MACs are announced from the target's port (a RARP per MAC, as QEMU announces
 *    after migration), so the L2 fabric sends the guest's unicast frames there at once;
 * 8. `resume`: the target goes RUNNING (held frames, latched transmit work, owed interrupts, in
 *    that order; then a pending mailbox message is served and pending unmasked causes are
 *    re-sent), the source STOP.
 *
 * A failure at any step (a refused state, a failed transition, or the optional step hook
 * throwing) undoes the steps done so far: the source is put back and RUNNING, frames that reached
 * the target meanwhile go back to the source's FIFO behind its own, and the result names the step
 * and the reason. `switchTo` never throws.
 *
 * Platform-neutral.
 * @module
 */
import type { Clock } from "../../pci/interfaces.js";
import type { NetBackend } from "../../devices/net/backend.js";
import type { MigrationState, MigrationStateError } from "../../state/migration.js";
import { StateError } from "../../state/parse.js";
import type { FailoverGuestVf } from "./guest-vf.js";
import { closePool, gateMacs, openPool, type PoolGate } from "./pool-gate.js";
import { VfioError, type IgbVfioDevice, type IgbVfioState } from "./vfio.js";

/** The two backings. */
export type FailoverBackingName = "passthrough" | "emulated";

/** The steps of a switch, in order. */
export const FAILOVER_STEPS = ["quiesce", "stop-copy", "save", "parse", "load", "reroute", "move-mac", "resume"] as const;

/** One step of a switch. */
export type FailoverStep = (typeof FAILOVER_STEPS)[number];

/** Why a switch did not happen: the step (or `precheck`) and the reason. The source kept running. */
export class FailoverError extends Error {
  override readonly name = "FailoverError";
  constructor(
    readonly step: FailoverStep | "precheck",
    readonly reason: string,
  ) {
    super(`failover ${step}: ${reason}`);
  }
}

/** One backing: its VFIO-shaped device and its port in the L2 fabric. */
export interface FailoverBacking {
  readonly device: IgbVfioDevice;
  /** The backing's uplink into the fabric (frames sent here enter the fabric from its port). */
  readonly port: NetBackend;
}

/** Outcome of {@link FailoverVf.switchTo}. */
export type FailoverResult =
  | { readonly ok: true; readonly from: FailoverBackingName; readonly to: FailoverBackingName; readonly blackoutNs: number; readonly blackoutWallNs: number; readonly framesQueued: number; readonly framesDropped: number }
  | { readonly ok: false; readonly error: FailoverError };

/** Counters of a {@link FailoverVf}. */
export interface FailoverStats {
  /** The backing serving the guest. */
  readonly backing: FailoverBackingName;
  /** Switches done, and refused or failed. */
  readonly switches: number;
  readonly failures: number;
  /** Blackout (source quiesced until target running) of the last and worst switch, on the device clock and in host wall time (ns). */
  readonly lastBlackoutNs: number;
  readonly worstBlackoutNs: number;
  readonly lastBlackoutWallNs: number;
  readonly worstBlackoutWallNs: number;
  /** Frames held for the guest during switches and delivered after, in all. */
  readonly framesQueued: number;
  /** Frames for the guest dropped during switches because a hold queue was full, in all. */
  readonly framesDropped: number;
  /** The last failure's message, if any. */
  readonly lastError: string | undefined;
}

/** Options of a {@link FailoverVf}. */
export interface FailoverVfOptions {
  /** The device clock (blackout in device time). */
  readonly clock: Clock;
  /** The guest-visible function. */
  readonly guest: FailoverGuestVf;
  /** The two backings (the same VF number in both). */
  readonly passthrough: FailoverBacking;
  readonly emulated: FailoverBacking;
  /** The backing that serves first (default pass-through). */
  readonly initial?: FailoverBackingName;
  /** Called at the start of every step; throwing there fails the switch at that step (fault injection). */
  readonly stepHook?: (step: FailoverStep, to: FailoverBackingName) => void;
  /** Host wall time in ns (default `performance.now() * 1e6`). */
  readonly wallNs?: () => number;
}

const other = (n: FailoverBackingName): FailoverBackingName => (n === "passthrough" ? "emulated" : "passthrough");

/** A RARP announce of `mac` (broadcast, as QEMU's self-announce after migration). */
export function announceFrame(mac: Uint8Array): Uint8Array {
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f.set(mac.subarray(0, 6), 6);
  f.set([0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03], 12);
  f.set(mac.subarray(0, 6), 22);
  f.set(mac.subarray(0, 6), 32);
  return f;
}

function must(e: MigrationStateError | VfioError | undefined): void {
  if (e !== undefined) throw e;
}

/**
 * The switch over one guest VF and its two backings.
 * @example
 * const r = failover.switchTo("emulated");
 * if (!r.ok) console.log(r.error.step, r.error.reason); // the source still serves the guest
 */
export class FailoverVf {
  private activeName: FailoverBackingName;
  private busy = false;
  private n = { switches: 0, failures: 0, last: 0, worst: 0, lastWall: 0, worstWall: 0, queued: 0, dropped: 0 };
  private lastError: string | undefined;
  private readonly wallNs: () => number;

  constructor(private readonly o: FailoverVfOptions) {
    this.activeName = o.initial ?? "passthrough";
    this.wallNs = o.wallNs ?? (() => globalThis.performance.now() * 1e6);
    const idle = this.backing(other(this.activeName));
    idle.device.migration.set("STOP");
    closePool(idle.device.core, idle.device.vf);
    o.guest.route(this.backing(this.activeName).device);
  }

  /** The backing serving the guest. */
  get active(): FailoverBackingName {
    return this.activeName;
  }

  /** One backing by name. */
  backing(name: FailoverBackingName): FailoverBacking {
    return name === "passthrough" ? this.o.passthrough : this.o.emulated;
  }

  /** Counters. */
  stats(): FailoverStats {
    const n = this.n;
    return {
      backing: this.activeName, switches: n.switches, failures: n.failures, lastBlackoutNs: n.last, worstBlackoutNs: n.worst,
      lastBlackoutWallNs: n.lastWall, worstBlackoutWallNs: n.worstWall, framesQueued: n.queued, framesDropped: n.dropped, lastError: this.lastError,
    };
  }

  /**
   * Moves the guest's VF to backing `to` (see the module documentation). Synchronous; never
   * throws. On failure the source serves the guest as before, with nothing lost.
   */
  switchTo(to: FailoverBackingName): FailoverResult {
    const from = this.activeName;
    if (this.busy) return this.refuse("precheck", "a switch is already running");
    if (to !== "passthrough" && to !== "emulated") return this.refuse("precheck", `no backing ${String(to)}`);
    if (to === from) return this.refuse("precheck", `already on ${to}`);
    const src = this.backing(from);
    const dst = this.backing(to);
    if (src.device.migration.state !== "RUNNING") return this.refuse("precheck", `the ${from} backing is ${src.device.migration.state}, not RUNNING`);
    if (dst.device.migration.state !== "STOP") return this.refuse("precheck", `the ${to} backing is ${dst.device.migration.state}, not STOP`);
    this.busy = true;
    const vf = src.device.vf;
    const sCore = src.device.core;
    const dCore = dst.device.core;
    const drops0 = sCore.activity.counters.heldDrops + dCore.activity.counters.heldDrops;
    const t0 = this.o.clock.now();
    const w0 = this.wallNs();
    let step: FailoverStep = "quiesce";
    let capturedHeld = 0;
    let carried = 0;
    let dstGate: PoolGate | undefined;
    let srcGate: PoolGate | undefined;
    let rerouted = false;
    let queued = 0;
    const hook = (s: FailoverStep): void => {
      step = s;
      this.o.stepHook?.(s, to);
    };
    try {
      hook("quiesce");
      must(src.device.migration.set("RUNNING_P2P"));
      hook("stop-copy");
      must(src.device.migration.set("STOP_COPY"));
      hook("save");
      const blob = src.device.saveState();
      if (blob instanceof VfioError) throw blob;
      capturedHeld = sCore.activity.poolFifo[vf]?.length ?? 0;
      hook("parse");
      const parsed: IgbVfioState = dst.device.parseState(blob, "failover");
      hook("load");
      must(dst.device.migration.set("RESUMING"));
      must(dst.device.loadState(parsed));
      dstGate = closePool(dCore, vf);
      hook("reroute");
      this.o.guest.route(dst.device);
      rerouted = true;
      hook("move-mac");
      srcGate = closePool(sCore, vf);
      openPool(dCore, dstGate);
      const announce = gateMacs(dstGate);
      dstGate = undefined;
      for (const h of (sCore.activity.poolFifo[vf] ?? []).slice(capturedHeld)) dCore.activity.holdPool(vf, h);
      carried = dCore.activity.poolFifo[vf]?.length ?? 0;
      for (const m of announce) dst.port.transmit(announceFrame(m));
      hook("resume");
      queued = dCore.activity.poolFifo[vf]?.length ?? 0;
      must(dst.device.migration.set("RUNNING"));
      must(src.device.migration.set("STOP"));
    } catch (e) {
      this.rollback(src, dst, vf, { capturedHeld, carried, srcGate, dstGate, rerouted });
      this.busy = false;
      const reason = e instanceof StateError ? `the ${to} backing refused the state: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.n.dropped += sCore.activity.counters.heldDrops + dCore.activity.counters.heldDrops - drops0;
      return this.refuse(step, reason);
    }
    // the source's FIFO was carried over; its pool stays closed and stopped
    sCore.activity.poolFifo[vf] = [];
    this.activeName = to;
    this.busy = false;
    const dt = this.o.clock.now() - t0;
    const dw = Math.max(0, this.wallNs() - w0);
    const dropped = sCore.activity.counters.heldDrops + dCore.activity.counters.heldDrops - drops0;
    const n = this.n;
    n.switches++;
    n.last = dt;
    n.worst = Math.max(n.worst, dt);
    n.lastWall = dw;
    n.worstWall = Math.max(n.worstWall, dw);
    n.queued += queued;
    n.dropped += dropped;
    return { ok: true, from, to, blackoutNs: dt, blackoutWallNs: dw, framesQueued: queued, framesDropped: dropped };
  }

  /**
   * Installs a parsed device state into backing `name` and makes it serve the guest (a snapshot
   * restore), leaving it in migration state `target`. The other backing is stopped and closed.
   * Cannot fail.
   */
  install(name: FailoverBackingName, s: IgbVfioState, target: MigrationState): void {
    const b = this.backing(name);
    if (this.activeName !== name) {
      const idle = this.backing(this.activeName);
      idle.device.migration.set("STOP");
      closePool(idle.device.core, idle.device.vf);
      idle.device.core.activity.poolFifo[idle.device.vf] = [];
    }
    // the state brings the pool's own filters, enables and mailbox events with it
    b.device.install(s);
    this.activeName = name;
    this.o.guest.route(b.device);
    if (b.device.migration.set(target) !== undefined) b.device.migration.reset();
    if (b.device.migration.state === "RUNNING" && b.device.awaitingKick) b.device.kick();
    this.announce();
  }

  /**
   * Announces the guest's unicast MACs (a RARP each, broadcast) from the serving backing's port,
   * so that the fabric and any switch beyond it send the guest's frames here, as QEMU's
   * self-announce does after a migration. Returns how many MACs were announced. Cannot fail.
   */
  announce(): number {
    const b = this.backing(this.activeName);
    const g = closePool(b.device.core, b.device.vf);
    openPool(b.device.core, g);
    const macs = gateMacs(g);
    for (const m of macs) b.port.transmit(announceFrame(m));
    return macs.length;
  }

  private refuse(step: FailoverStep | "precheck", reason: string): FailoverResult {
    const error = new FailoverError(step, reason);
    this.n.failures++;
    this.lastError = error.message;
    return { ok: false, error };
  }

  /** Undoes a switch that failed: everything back on the source, which runs again. Cannot fail. */
  private rollback(
    src: FailoverBacking,
    dst: FailoverBacking,
    vf: number,
    st: { capturedHeld: number; carried: number; srcGate: PoolGate | undefined; dstGate: PoolGate | undefined; rerouted: boolean },
  ): void {
    const sCore = src.device.core;
    const dCore = dst.device.core;
    if (st.srcGate !== undefined) {
      // the MAC had moved: frames that reached the target since go back behind the source's own
      closePool(dCore, vf);
      openPool(sCore, st.srcGate);
      for (const h of (dCore.activity.poolFifo[vf] ?? []).slice(st.carried)) sCore.activity.holdPool(vf, h);
      for (const m of gateMacs(st.srcGate)) src.port.transmit(announceFrame(m));
    } else if (st.dstGate === undefined && dst.device.migration.state === "RESUMING") {
      closePool(dCore, vf); // loaded but not yet closed
    }
    if (st.rerouted) this.o.guest.route(src.device);
    if (dst.device.migration.state !== "STOP") {
      if (dst.device.migration.set("STOP") !== undefined) {
        dst.device.migration.reset();
        dst.device.migration.set("STOP");
      }
    }
    dCore.activity.poolFifo[vf] = [];
    if (src.device.migration.state === "ERROR" || src.device.migration.set("RUNNING") !== undefined) src.device.migration.reset();
  }
}
