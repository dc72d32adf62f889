/**
 * An 82576 owned by the host: the PF core stays with the VMM, where the {@link PfAgent} drives it
 * as Linux igb would, and single VFs go to guests through pass-through shims. A shim is the
 * guest-side PCI function of one VF (8086:10CA, BAR0 the VF's register slice, BAR3 its 3 MSI-X
 * vectors, PCIe FLR), placed in a slot of its own as VFIO would place a host VF; the VF's
 * DMA and interrupts go through the shim, so they reach that guest's memory and interrupt
 * controller and nothing else.
 *
 * The PF has no guest: its own queues are never enabled, so it does no DMA (its DMA space maps
 * nothing). Its mailbox interrupt runs the agent 1 us later, on the device clock, as a host
 * driver's interrupt handler would: never inside the VF's register write that raised it.
 *
 * Platform-neutral.
 * @module
 */
import { IgbCore, type IgbCoreState } from "../../devices/igb/core.js";
import { createIgbVfFunction } from "../../devices/igb/pci.js";
import { IGB_SIZES } from "../../devices/igb/regs.js";
import type { NetBackend } from "../../devices/net/backend.js";
import type { PciFunction } from "../../pci/function.js";
import type { Clock, DmaSpace } from "../../pci/interfaces.js";
import { StateError, field, onlyKeys } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";
import { PfAgent, PfAgentError } from "./agent.js";
import { PfAgentStateType, type PfAgentState } from "./agent-state.js";

/** Options of an {@link IgbHostNic}. */
export interface IgbHostNicOptions {
  /** The PF's MAC (its NVM). */
  readonly pfMac: Uint8Array;
  /** VFs the agent enables (1..7; one pool stays with the PF). */
  readonly numVfs: number;
  /** Device time. */
  readonly clock: Clock;
  /** The NIC's uplink. */
  readonly backend?: NetBackend;
  /** MAC the agent gives VF n when the administrator set none (see {@link PfAgentOptions.defaultVfMac}). */
  readonly defaultVfMac?: (vf: number) => Uint8Array | undefined;
  /** One line per refused mailbox request. */
  readonly log?: (msg: string) => void;
  /** One line per dropped device access or frame. */
  readonly trace?: (msg: string) => void;
}

/**
 * Saved state of an {@link IgbHostNic} (version 2: the agent's half in its version 2; version 1
 * loads through an upgrade). The core's half is the 82576 core's own state, which the core checks
 * when it restores it.
 */
export interface IgbHostNicState {
  readonly version: 2;
  readonly core: IgbCoreState;
  readonly agent: PfAgentState;
}

/**
 * The host NIC's state type for a NIC with `numVfs` VFs: the agent's half is parsed in full and
 * must have exactly `numVfs` VFs.
 */
export function igbHostNicStateType(numVfs: number, coreType: StateType<IgbCoreState>): StateType<IgbHostNicState> {
  return defineState<IgbHostNicState>("igb-host", 2, { 1: (o) => ({ ...o, version: 2 }) }, (o, path) => {
    onlyKeys(o, path, ["version", "core", "agent"]);
    const core = field(o, "core", path, (v, p) => coreType.parse(v, p));
    const agent = field(o, "agent", path, (v, p) => PfAgentStateType.parse(v, p));
    if (agent.numVfs !== numVfs) throw new StateError(`${path}.agent.numVfs`, `${agent.numVfs} VFs, this NIC has ${numVfs}`);
    return { version: 2, core, agent };
  });
}

const NO_HOST_DMA: DmaSpace = { read: () => undefined, write: () => false };

/**
 * The I/O of a VF driven through a VFIO-shaped boundary (see `src/vmm/failover/vfio.ts`) instead
 * of a pass-through shim: its DMA goes to `dma` (an IOMMU domain), its MSI-X vectors to `irq`.
 */
export interface HostVfIo {
  /** The VF's DMA space. */
  readonly dma: DmaSpace;
  /** VF MSI-X vector `vector` (0..2) fired. */
  readonly irq: (vector: number) => void;
}

/**
 * The host-owned 82576.
 * @example
 * const nic = new IgbHostNic({ pfMac, numVfs: 2, clock, backend });
 * nic.agent.setVfMac(0, mac);              // ip link set PF vf 0 mac ...
 * port.plug([nic.passthrough(0)]);         // VF 0 to a guest
 */
export class IgbHostNic {
  readonly core: IgbCore;
  readonly agent: PfAgent;
  private readonly shims: (PciFunction | undefined)[] = [];
  private readonly bound: (HostVfIo | undefined)[] = [];
  private serviceScheduled = false;
  /** Parses untrusted saved state for this NIC (its VF count); throws `StateError` naming the field. */
  readonly stateType: StateType<IgbHostNicState>;

  constructor(private readonly o: IgbHostNicOptions) {
    if (!(Number.isInteger(o.numVfs) && o.numVfs >= 1 && o.numVfs < IGB_SIZES.pools)) {
      throw new PfAgentError(`numVfs must be 1..${IGB_SIZES.pools - 1}`);
    }
    this.core = new IgbCore({
      mac: o.pfMac,
      clock: o.clock,
      dma: (fn) => (fn >= 0 ? (this.bound[fn]?.dma ?? this.shims[fn]?.dma ?? NO_HOST_DMA) : NO_HOST_DMA),
      irq: {
        pf: () => this.scheduleService(),
        pfIntx: (level) => {
          if (level) this.scheduleService();
        },
        vf: (n, v) => {
          const b = this.bound[n];
          if (b !== undefined) b.irq(v);
          else this.shims[n]?.notify(v);
        },
      },
      ...(o.backend !== undefined ? { backend: o.backend } : {}),
      ...(o.trace !== undefined ? { trace: o.trace } : {}),
    });
    this.agent = new PfAgent({
      bar: { read: (off) => this.core.mmioRead(off, 4), write: (off, _s, v) => this.core.mmioWrite(off, 4, v) },
      enableVfs: (n) => this.core.setNumVfs(n),
      ...(o.defaultVfMac !== undefined ? { defaultVfMac: o.defaultVfMac } : {}),
      ...(o.log !== undefined ? { log: o.log } : {}),
    });
    this.agent.init(o.numVfs);
    this.stateType = igbHostNicStateType(o.numVfs, this.core.stateType);
  }

  /**
   * The guest-side PCI function of VF `vf` (created once; the same function on later calls).
   * @throws PfAgentError if the VF is not enabled
   */
  passthrough(vf: number): PciFunction {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < this.agent.vfCount)) throw new PfAgentError(`no VF ${vf} (${this.agent.vfCount} enabled)`);
    if (this.bound[vf] !== undefined) throw new PfAgentError(`VF ${vf} is bound to a VFIO-shaped user`);
    let fn = this.shims[vf];
    if (fn === undefined) {
      fn = createIgbVfFunction(this.core, vf);
      this.shims[vf] = fn;
    }
    return fn;
  }

  /**
   * Hands VF `vf` to a VFIO-shaped user (the failover switch's boundary): from now on its DMA and
   * interrupts go to `io`, not to a pass-through shim. Once per VF.
   * @throws PfAgentError if the VF is not enabled, already bound, or already given out as a shim
   */
  bindVf(vf: number, io: HostVfIo): void {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < this.agent.vfCount)) throw new PfAgentError(`no VF ${vf} (${this.agent.vfCount} enabled)`);
    if (this.bound[vf] !== undefined || this.shims[vf] !== undefined) throw new PfAgentError(`VF ${vf} is already in use`);
    this.bound[vf] = io;
  }

  /**
   * Runs the agent's mailbox service 1 us from now (once, however often it is asked): after a VF's
   * state was installed with `agent.restoreVf`, so a message pending at capture is answered.
   */
  serviceSoon(): void {
    this.scheduleService();
  }

  private scheduleService(): void {
    if (this.serviceScheduled) return;
    this.serviceScheduled = true;
    this.o.clock.schedule(1000, () => {
      this.serviceScheduled = false;
      this.agent.service();
    });
  }

  /** The NIC and agent state (the shims' PCI state is saved with the topology they sit in). */
  save(): IgbHostNicState {
    return { version: 2, core: this.core.save(), agent: this.agent.save() };
  }

  /**
   * Applies a state from {@link IgbHostNic.stateType} (both halves parsed). Never throws.
   */
  restore(s: IgbHostNicState): void {
    this.core.restore(s.core);
    this.agent.restore(s.agent);
    // a mailbox event pending at save time is served again after the restore
    this.scheduleService();
  }
}
