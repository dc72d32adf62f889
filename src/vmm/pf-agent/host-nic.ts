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
import { PfAgent, PfAgentError, checkPfAgentState, type PfAgentState } from "./agent.js";

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

/** Saved state of an {@link IgbHostNic}. */
export interface IgbHostNicState {
  readonly version: 1;
  readonly core: IgbCoreState;
  readonly agent: PfAgentState;
}

const NO_HOST_DMA: DmaSpace = { read: () => undefined, write: () => false };

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
  private serviceScheduled = false;

  constructor(private readonly o: IgbHostNicOptions) {
    if (!(Number.isInteger(o.numVfs) && o.numVfs >= 1 && o.numVfs < IGB_SIZES.pools)) {
      throw new PfAgentError(`numVfs must be 1..${IGB_SIZES.pools - 1}`);
    }
    this.core = new IgbCore({
      mac: o.pfMac,
      clock: o.clock,
      dma: (fn) => (fn >= 0 ? (this.shims[fn]?.dma ?? NO_HOST_DMA) : NO_HOST_DMA),
      irq: {
        pf: () => this.scheduleService(),
        pfIntx: (level) => {
          if (level) this.scheduleService();
        },
        vf: (n, v) => this.shims[n]?.notify(v),
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
  }

  /**
   * The guest-side PCI function of VF `vf` (created once; the same function on later calls).
   * @throws PfAgentError if the VF is not enabled
   */
  passthrough(vf: number): PciFunction {
    if (!(Number.isInteger(vf) && vf >= 0 && vf < this.agent.vfCount)) throw new PfAgentError(`no VF ${vf} (${this.agent.vfCount} enabled)`);
    let fn = this.shims[vf];
    if (fn === undefined) {
      fn = createIgbVfFunction(this.core, vf);
      this.shims[vf] = fn;
    }
    return fn;
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
    return { version: 1, core: this.core.save(), agent: this.agent.save() };
  }

  /** Loads {@link save}'s output; the agent's half is checked before anything changes. */
  restore(state: unknown): void {
    const s = state as IgbHostNicState | null;
    if (typeof s !== "object" || s === null || s.version !== 1) throw new PfAgentError("host NIC state: bad header");
    checkPfAgentState(s.agent); // the agent's half is checked before the device changes
    const core = this.core.stateType.parse(s.core, "igb-host.core"); // and the NIC's (throws StateError)
    this.core.restore(core);
    this.agent.restore(s.agent);
    // a mailbox event pending at save time is served again after the restore
    this.scheduleService();
  }
}
