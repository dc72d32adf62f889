/**
 * What a migration source or destination needs from a machine, and the adapter that gives it for
 * nicvisor's {@link Machine}. Kept as an interface so the protocol can be tested on any RAM and
 * state, and so another VMM can migrate with it.
 *
 * Platform-neutral.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import { MACHINE_RECORD, type Machine } from "../machine.js";
import { decodeStates, encodeStates, type StateRecord } from "../../state/container.js";
import { StateError } from "../../state/parse.js";
import type { LiveMigrationHooks, LiveMigrationOptions } from "../../devices/lifecycle/model.js";
import type { DmaWriteLog } from "./dma-log.js";
import type { StateDescriptor } from "./stream.js";

/** A local state type: what {@link StateDescriptor} says plus the oldest version it still loads. */
export interface LocalStateDescriptor extends StateDescriptor {
  /** The oldest version of this state type that loads here. */
  oldest: number;
}

/** One side of a migration: a machine seen as RAM, engine state and device state. */
export interface MigrationEndpoint {
  /** The engine and its version; both sides must match. */
  readonly engine: string;
  /** Guest RAM in bytes. */
  readonly memBytes: number;
  /** Guest RAM: read on the source (a view is valid until the guest runs again), written on the destination. */
  readonly ram: DmaSpace;
  /** The WebAssembly memory `ram`'s views are into, if any: pages are then hashed there in place by the wasm kernel. */
  readonly wasmMemory?: { readonly buffer: ArrayBuffer };
  /** The pages device DMA wrote (source side); undefined when devices write no guest memory. */
  readonly dmaLog: DmaWriteLog | undefined;
  /** Every record of the machine's state and its state type. */
  describe(): LocalStateDescriptor[];
  /** Whether the guest CPU runs. */
  readonly running: boolean;
  /** Pauses the guest CPU. */
  pause(): Promise<void>;
  /** Starts or resumes the guest CPU. */
  resume(): Promise<void>;
  /** Stops the devices (no DMA, no interrupt) before their state is saved. @throws if one refuses */
  stopDevices(): void;
  /** Runs the devices again (after {@link MigrationEndpoint.stopDevices}, when a migration failed). */
  runDevices(): void;
  /** The engine's state without RAM (guest paused). */
  saveEngine(): Promise<Uint8Array>;
  /** Loads {@link MigrationEndpoint.saveEngine}'s output over the RAM already written. @throws on a state it rejects */
  restoreEngine(state: Uint8Array): Promise<void>;
  /** The devices' state as a state container (guest paused, devices stopped). */
  saveDevices(): Uint8Array;
  /** Parses then applies a state container; a rejected one changes nothing. @throws StateError naming the field */
  restoreDevices(bytes: Uint8Array): void;
  /**
   * Optional: runs the engine-state paths and the device-state parsers once on this (paused,
   * never run) machine, changing nothing, so that the restore during the downtime runs warm code.
   * Called by the destination after the HELLO.
   */
  warmUp?(): Promise<void>;
  /** Throws the machine away (destination after a failure): stopped for good, nothing left running. */
  discard(): Promise<void>;
  /**
   * Optional, source: called with the guest running before pre-copy (standby failover unplugs the
   * VF here and waits for the guest's pciehp to let it go). @throws to refuse: the migration fails, the guest runs on
   */
  beforeMigration?(o: LiveMigrationOptions): Promise<void>;
  /**
   * Optional, source: called with the guest running just before the stop (transparent failover
   * switches pass-through devices to emulation here). @throws to refuse: the migration fails, the guest runs on
   */
  beforeStop?(o: LiveMigrationOptions): void;
  /** Optional, source: after a failed migration, devices and guest running again: undoes {@link MigrationEndpoint.beforeMigration} and {@link MigrationEndpoint.beforeStop}. Cannot fail. */
  afterAbort?(): void;
  /** Optional, source: what reached the stopped devices since their state was saved, as a state container, or undefined for nothing. Taken once. */
  takeLate?(): Uint8Array | undefined;
  /**
   * Optional, source: true once no more late frames can come (the segment carried the
   * destination's announce of the guest back here). Without it, or while it says false, the
   * source waits for a quiet spell.
   */
  lateDone?(): boolean;
  /** Optional, destination: parses then applies {@link MigrationEndpoint.takeLate}'s output (devices restored, guest not running). @throws StateError, having applied nothing */
  putLate?(bytes: Uint8Array): void;
  /** Optional, destination: after the guest resumed (announce the guest's MACs, switch back to pass-through). Cannot fail. */
  afterResume?(o: LiveMigrationOptions): void;
}

/** The state type of a LATE record's entries. */
export const LATE_KIND = "late-frames";

/** An endpoint cannot serve a migration (its engine cannot save without RAM, say). */
export class MigrationEndpointError extends Error {
  override readonly name = "MigrationEndpointError";
}

/**
 * A {@link Machine} as a migration endpoint: RAM is the engine's memory, the DMA log is the
 * machine's ({@link Machine.dmaLog}), the engine state is `saveStateWithoutRam`, devices are
 * stopped through their VFIO-style migration states (STOP_COPY) and saved with
 * {@link Machine.saveBytes}.
 * @throws MigrationEndpointError when the CPU backend cannot save or load a state without RAM
 */
export function machineEndpoint(m: Machine): MigrationEndpoint {
  const cpu = m.cpu;
  const save = cpu.saveStateWithoutRam?.bind(cpu);
  const restore = cpu.restoreStateWithoutRam?.bind(cpu);
  if (save === undefined || restore === undefined) throw new MigrationEndpointError("the CPU backend cannot save or load its state without RAM");
  const platform = m.platform;
  const hooks = (): ReadonlyArray<readonly [string, LiveMigrationHooks]> => platform.liveHooks?.() ?? [];
  return {
    engine: cpu.engineId ?? "unknown",
    memBytes: cpu.memBytes,
    ram: cpu.memory,
    ...(cpu.wasmMemory !== undefined ? { wasmMemory: cpu.wasmMemory } : {}),
    dmaLog: m.dmaLog,
    describe: () => m.stateDescriptors(),
    get running() {
      return cpu.running;
    },
    pause: () => m.pause(),
    resume: () => m.start(),
    stopDevices() {
      const errors = platform.setMigrationState("STOP_COPY");
      if (errors.size > 0) {
        platform.setMigrationState("RUNNING");
        throw new MigrationEndpointError(`devices refused to stop: ${[...errors].map(([n, e]) => `${n}: ${e.message}`).join("; ")}`);
      }
    },
    runDevices() {
      platform.setMigrationState("RUNNING");
    },
    saveEngine: save,
    restoreEngine: restore,
    saveDevices: () => m.saveBytes(),
    restoreDevices: (b) => {
      m.restoreBytes(b);
      for (const [, h] of hooks()) h.afterRestore?.();
    },
    discard: () => m.stop(),
    // Only when a part has one, so that a migration says "wait-unplug" only when it waits.
    ...(hooks().some(([, h]) => h.beforeMigration !== undefined)
      ? {
          beforeMigration: async (o: LiveMigrationOptions) => {
            for (const [, h] of hooks()) await h.beforeMigration?.(o);
          },
        }
      : {}),
    beforeStop: (o) => {
      for (const [, h] of hooks()) h.beforeStop?.(o);
    },
    afterAbort: () => {
      for (const [, h] of hooks()) h.afterAbort?.();
    },
    takeLate() {
      const records: StateRecord[] = [];
      for (const [name, h] of hooks()) {
        const state = h.takeLate?.();
        if (state !== undefined) records.push({ name, kind: LATE_KIND, version: 1, state });
      }
      return records.length === 0 ? undefined : encodeStates(records);
    },
    lateDone() {
      const parts = hooks().filter(([, h]) => h.lateDone !== undefined);
      return parts.length > 0 && parts.every(([, h]) => h.lateDone!());
    },
    putLate(bytes) {
      const byName = new Map(hooks());
      const parsed = decodeStates(bytes).map((r) => {
        const h = byName.get(r.name);
        const path = `late.${r.name}`;
        if (h?.parseLate === undefined || h.putLate === undefined) throw new StateError(path, "no device of that name takes late frames here");
        if (r.kind !== LATE_KIND || r.version !== 1) throw new StateError(path, `a ${r.kind} record of version ${r.version}, expected ${LATE_KIND} version 1`);
        return [h, h.parseLate(r.state, path)] as const;
      });
      for (const [h, p] of parsed) h.putLate!(p);
    },
    afterResume: (o) => {
      for (const [, h] of hooks()) h.afterResume?.(o);
    },
    warmUp: async () => {
      if (cpu.running) return;
      await restore(await save());
      // Parse (never apply) this machine's own device state a few times: the parsers and their
      // loops are compiled by the stop (one parse left the first real one at 10-15 ms, three at 3-5).
      for (let i = 0; i < 3; i++) platform.parseRecords(decodeStates(m.saveBytes()).filter((r) => r.name !== MACHINE_RECORD));
    },
  };
}
