/**
 * The host PF agent: what Linux igb does for its VFs, done by the VMM on the 82576 PF's registers.
 * It initialises the PF for SR-IOV (VMDq pools, default pool, loopback, anti-spoofing), enables
 * N VFs, answers every igbvf mailbox message with the reply Linux igb gives, and offers the
 * administrator's `ip link set PF vf N mac|vlan|spoofchk|trust` as methods. Platform-neutral: it
 * sees the PF only through a BAR0 accessor.
 *
 * igbvf has no API-version negotiation (that is ixgbevf); its messages are VF_RESET, SET_MAC_ADDR
 * (primary, or filter add/clear in bits 23:16), SET_MULTICAST, SET_VLAN, SET_LPE and SET_PROMISC.
 *
 * Where Linux igb lets one VF reach another, the agent is stricter (issue 15, defect 5), and
 * NACKs as igb does for a refused request:
 * - a MAC in use by another function is refused: the PF's, another VF's (its policy MAC counts
 *   from the moment it is given, before that VF has reset), another pool's receive filter;
 * - a unicast filter (MAC_FILTER_ADD) for an address other than the VF's own needs `trust`;
 * - a VF joins at most {@link vfVlanQuota} VLANs, so one VLVF entry per VF always stays for the
 *   administrator's port VLAN.
 *
 * Left open: an untrusted VF without an administrator's MAC may still pick any free MAC as its
 * own, including an outside host's (the agent does not know the wire's addresses); give such VFs
 * an administrator's MAC where that matters.
 * @module
 */
import { B, IGB_SIZES, MBX, R } from "../../devices/igb/regs.js";
import { StateError, hexBytes, toHex } from "../../state/parse.js";
import { PfFilters, ZERO_MAC, isZero, macHi, macLo, sameMac, vfRar, type PfBar } from "./pf-filters.js";
import type { StateType } from "../../state/versioned.js";
import {
  MAX_JUMBO_FRAME, MAX_VF_MAC_FILTERS, MIN_LPE_FRAME, PfAgentStateType, PfAgentVfStateType, VLVF_ENTRIES,
  type PfAgentState, type PfAgentVfState, type VfPolicySaved,
} from "./agent-state.js";

export type { PfBar };
export { MAX_JUMBO_FRAME, MAX_VF_MAC_FILTERS, VLVF_ENTRIES, PfAgentStateType, PfAgentVfStateType, type PfAgentState, type PfAgentVfState };

/** Options of a {@link PfAgent}. */
export interface PfAgentOptions {
  /** The PF's BAR0. */
  readonly bar: PfBar;
  /** Turns SR-IOV VF Enable on with `n` VFs (the PCI side). */
  readonly enableVfs: (n: number) => void;
  /** MAC to give VF n when the administrator set none (default: none, the VF picks its own). */
  readonly defaultVfMac?: (vf: number) => Uint8Array | undefined;
  /** Receives one line per refused request (optional). */
  readonly log?: (msg: string) => void;
}

/** Per-VF policy and state, as Linux igb keeps it in `vf_data`. */
export interface VfPolicy {
  /** The VF's MAC (zero = none). */
  mac: Uint8Array;
  /** The administrator set `mac` (the VF may not change it unless trusted). */
  adminMac: boolean;
  /** Port VLAN (0 = none) and its priority. */
  portVlan: number;
  qos: number;
  /** MAC/VLAN anti-spoof checking. */
  spoofchk: boolean;
  /** Trusted VFs may change an administrator MAC and use promiscuous multicast. */
  trust: boolean;
  /** Clear to send: the VF completed its reset handshake. */
  cts: boolean;
  /** Multicast hashes the VF asked for. */
  mcHashes: number[];
  /** VLANs the VF joined. */
  vlans: number[];
  /** Receive long packet maximum length. */
  rlpml: number;
  /** Extra unicast filters the VF added (RAR rows 1..15 of this NIC). */
  extraMacs: number[];
  /** Messages refused (NACKed). */
  nacks: number;
}

/**
 * Checks a saved whole-agent state (version 1 or 2) and returns it parsed, without changing any
 * agent: lets a caller validate the agent's half of a larger state before changing anything.
 * Same as `PfAgentStateType.parse`.
 * @throws StateError naming the field
 */
export function checkPfAgentState(state: unknown, path = "pf-agent"): PfAgentState {
  return PfAgentStateType.parse(state, path);
}

/** Raised for an administrator request that cannot be carried out. */
export class PfAgentError extends Error {
  override readonly name = "PfAgentError";
}

/** A live policy's saved fields (no `extraMacs`: rows or addresses, depending on the state type). */
function policySaved(p: VfPolicy): VfPolicySaved {
  return {
    mac: toHex(p.mac), adminMac: p.adminMac, portVlan: p.portVlan, qos: p.qos, spoofchk: p.spoofchk, trust: p.trust, cts: p.cts,
    mcHashes: [...p.mcHashes], vlans: [...p.vlans], rlpml: p.rlpml, nacks: p.nacks,
  };
}

/** A parsed policy as live fields (fresh arrays; `extraMacs` left to the caller). */
function policyLive(s: VfPolicySaved): Omit<VfPolicy, "extraMacs"> {
  return {
    mac: hexBytes(s.mac, "mac", 6), adminMac: s.adminMac, portVlan: s.portVlan, qos: s.qos, spoofchk: s.spoofchk, trust: s.trust, cts: s.cts,
    mcHashes: [...s.mcHashes], vlans: [...s.vlans], rlpml: s.rlpml, nacks: s.nacks,
  };
}

/**
 * How many VLANs one VF may join by SET_VLAN with `numVfs` VFs enabled: floor(32 / numVfs) - 1
 * (31, 15, 9, 7, 5, 4, 3 for 1..7 VFs). With every VF at its quota, one VLVF entry per VF is still
 * free, so one VF cannot starve the others of VLAN filters, and the administrator's port VLAN
 * (`setVfVlan`) always finds room.
 */
export function vfVlanQuota(numVfs: number): number {
  return numVfs > 0 ? Math.floor(VLVF_ENTRIES / numVfs) - 1 : 0;
}

/**
 * The agent.
 * @example
 * const agent = new PfAgent({ bar, enableVfs: (n) => core.setNumVfs(n) });
 * agent.init(4);
 * irq.onPf = () => agent.service();
 */
export class PfAgent {
  /** Per-VF policy. */
  readonly vfs: VfPolicy[] = [];
  /** The PF's MAC (read from the NVM at init). */
  readonly mac = new Uint8Array(6);
  private numVfs = 0;

  private readonly hw: PfFilters;

  constructor(private readonly opts: PfAgentOptions) {
    this.hw = new PfFilters(opts.bar);
  }

  private rd(off: number): number {
    return this.hw.rd(off);
  }
  private wr(off: number, v: number): void {
    this.hw.wr(off, v);
  }

  /** Number of VFs enabled. */
  get vfCount(): number {
    return this.numVfs;
  }

  /** VLANs one VF may join ({@link vfVlanQuota} of the VF count). */
  get vlanQuota(): number {
    return vfVlanQuota(this.numVfs);
  }

  /** The PF's own pool (Linux igb: the pool after the VFs'). */
  get pfPool(): number {
    return Math.min(this.numVfs, IGB_SIZES.pools - 1);
  }

  /** Resets the PF, reads its MAC, enables `numVfs` VFs and programs VMDq, switch and mailbox. */
  init(numVfs: number): void {
    if (!(Number.isInteger(numVfs) && numVfs >= 0 && numVfs < IGB_SIZES.pools)) {
      throw new PfAgentError(`numVfs must be 0..${IGB_SIZES.pools - 1} (one pool stays with the PF)`);
    }
    this.wr(R.CTRL, this.rd(R.CTRL) | B.CTRL_RST);
    for (let i = 0; i < 3; i++) {
      this.wr(R.EERD, (i << B.EERD_ADDR_SHIFT) | B.EERD_START);
      const w = this.rd(R.EERD) >>> B.EERD_DATA_SHIFT;
      this.mac[2 * i] = w & 0xff;
      this.mac[2 * i + 1] = w >>> 8;
    }
    this.numVfs = numVfs;
    this.vfs.length = 0;
    for (let vf = 0; vf < numVfs; vf++) {
      const m = this.opts.defaultVfMac?.(vf);
      this.vfs.push({
        mac: m ? Uint8Array.from(m) : new Uint8Array(6), adminMac: false, portVlan: 0, qos: 0, spoofchk: true, trust: false,
        cts: false, mcHashes: [], vlans: [], rlpml: 1522, extraMacs: [], nacks: 0,
      });
    }
    this.opts.enableVfs(numVfs);
    const pool = this.pfPool;
    this.hw.setRar(0, this.mac, pool);
    if (numVfs > 0) {
      this.wr(R.MRQC, B.MRQC_VMDQ);
      this.wr(R.VT_CTL, B.VT_CTL_VM_REPL_EN | (pool << B.VT_CTL_DEF_POOL_SHIFT));
    }
    this.wr(R.VMOLR(pool), B.VMOLR_AUPE | B.VMOLR_BAM | B.VMOLR_ROMPE | 0x80000000 | 1522);
    let spoof = 0;
    for (let vf = 0; vf < numVfs; vf++) spoof |= (1 << vf) | (1 << (vf + B.DTXSWC_VLAN_SPOOF_SHIFT));
    this.wr(R.DTXSWC, B.DTXSWC_VMDQ_LOOPBACK_EN | spoof);
    this.wr(R.VFRE, 1 << pool);
    this.wr(R.VFTE, 1 << pool);
    this.wr(R.RCTL, B.RCTL_EN | B.RCTL_BAM);
    this.wr(R.TCTL, this.rd(R.TCTL) | B.TCTL_EN);
    // MSI-X mode as Linux igb runs it with VFs: vector 0 for "other" causes (mailbox, link)
    this.wr(R.GPIE, B.GPIE_MSIX_MODE | B.GPIE_EIAME | B.GPIE_PBA | B.GPIE_NSICR);
    this.wr(R.IVAR_MISC, (B.IVAR_VALID | 0) << 8);
    this.wr(R.EIAC, this.rd(R.EIAC) | 1);
    this.wr(R.EIMS, 1);
    this.wr(R.MBVFIMR, (1 << numVfs) - 1);
    this.wr(R.IMS, B.ICR_VMMB | B.ICR_LSC);
    this.wr(R.CTRL_EXT, this.rd(R.CTRL_EXT) | B.CTRL_EXT_PFRSTD | B.CTRL_EXT_DRV_LOAD);
    for (let vf = 0; vf < numVfs; vf++) this.vfPoolDefaults(vf);
    this.pingAll();
  }

  /** Parses a saved whole-agent state (version 1 or 2); throws `StateError` naming the field. */
  readonly stateType: StateType<PfAgentState> = PfAgentStateType;

  /** The agent's own state (the PF's registers are saved with the NIC). */
  save(): PfAgentState {
    return {
      version: 2,
      numVfs: this.numVfs,
      mac: toHex(this.mac),
      vfs: this.vfs.map((p) => ({ ...policySaved(p), extraMacs: [...p.extraMacs] })),
    };
  }

  /**
   * Applies a state from {@link PfAgent.stateType} (the NIC's registers are restored with the NIC).
   * Never throws.
   */
  restore(s: PfAgentState): void {
    this.numVfs = s.numVfs;
    this.mac.set(hexBytes(s.mac, "mac", 6));
    this.vfs.length = 0;
    for (const v of s.vfs) this.vfs.push({ ...policyLive(v), extraMacs: [...v.extraMacs] });
  }

  // ---- one VF on its own (the failover switch) ----

  /**
   * VF `vf`'s agent state on its own: its policy, its mailbox handshake (`cts`), and its extra
   * unicast filters as addresses. Reads registers, changes nothing.
   * @throws PfAgentError if the VF is not enabled
   */
  saveVf(vf: number): PfAgentVfState {
    const p = this.policy(vf);
    const extraMacs: string[] = [];
    for (const i of p.extraMacs) if (this.hw.rarPools(i) & (1 << vf)) extraMacs.push(toHex(this.hw.rarMac(i)));
    return { version: 1, policy: { ...policySaved(p), extraMacs } };
  }

  /**
   * Parses one VF's state for VF `vf` of this agent: the field checks of `PfAgentVfStateType`,
   * then the rules against this agent: the VF exists, it has no more VLANs than this agent's
   * quota, and its MAC and filters are no other function's here (the PF's, another VF's,
   * another pool's receive filter). Changes nothing.
   * @throws StateError naming the field
   */
  parseVfState(vf: number, u: unknown, path = "pf-agent-vf"): PfAgentVfState {
    const s = PfAgentVfStateType.parse(u, path);
    if (!(Number.isInteger(vf) && vf >= 0 && vf < this.numVfs)) throw new StateError(path, `no VF ${vf} here (${this.numVfs} enabled)`);
    if (s.policy.vlans.length > this.vlanQuota) throw new StateError(`${path}.policy.vlans`, `${s.policy.vlans.length} VLANs, the quota here is ${this.vlanQuota}`);
    const mac = hexBytes(s.policy.mac, "mac", 6);
    if (!isZero(mac) && this.macInUse(mac, vf)) throw new StateError(`${path}.policy.mac`, "MAC in use by another function here");
    s.policy.extraMacs.forEach((m, i) => {
      if (this.macInUse(hexBytes(m, "mac", 6), vf)) throw new StateError(`${path}.policy.extraMacs[${i}]`, "MAC in use by another function here");
    });
    return s;
  }

  /**
   * Installs a state from {@link PfAgent.parseVfState} as VF `vf`'s, mid-traffic: the VF keeps its
   * handshake (no reset, no refused message). Call it after the NIC's own per-VF state (queues,
   * mailbox registers, the VF's filters) is in place, then {@link PfAgent.service} to answer a
   * message that was pending at capture. Re-derives the PF registers the agent owns for the VF:
   * its MAC in its own RAR row, its extra filters in rows 1..15, its VLVF/VFTA membership, its
   * anti-spoof bits and the shared multicast table. A filter that finds no free row or VLVF entry
   * is left out (counted in the result); never throws.
   */
  restoreVf(vf: number, s: PfAgentVfState): { droppedMacs: number; droppedVlans: number } {
    const p = this.vfs[vf];
    if (p === undefined) return { droppedMacs: s.policy.extraMacs.length, droppedVlans: s.policy.vlans.length };
    Object.assign(p, policyLive(s.policy), { extraMacs: [] });
    const vids = new Set(p.vlans);
    if (p.portVlan) vids.add(p.portVlan);
    const extras = s.policy.extraMacs.map((m) => hexBytes(m, "mac", 6));
    const r = this.hw.placeVf(vf, p.mac, extras, vids);
    p.extraMacs = r.extraRows;
    p.vlans = p.vlans.filter((v) => !r.droppedVlans.includes(v));
    this.hw.setSpoofchk(vf, p.spoofchk);
    this.rebuildMta();
    return { droppedMacs: r.droppedMacs, droppedVlans: r.droppedVlans.length };
  }

  /** Tells every VF the PF is (back) up: PF_CONTROL_MSG, with CTS if the VF had completed reset. */
  pingAll(): void {
    for (let vf = 0; vf < this.numVfs; vf++) {
      this.send(vf, [MBX.PF_CONTROL_MSG | (this.vfs[vf]?.cts ? MBX.MSGTYPE_CTS : 0)]);
    }
  }

  /** Handles pending VF resets, messages and acks. Call on the PF's mailbox interrupt (ICR.VMMB). */
  service(): void {
    this.rd(R.ICR); // acknowledge (read-to-clear) so the next mailbox event interrupts again
    const lre = this.rd(R.VFLRE);
    if (lre) this.wr(R.VFLRE, lre);
    for (let vf = 0; vf < this.numVfs; vf++) if ((lre >>> vf) & 1) this.vfResetEvent(vf);
    const icr = this.rd(R.MBVFICR);
    for (let vf = 0; vf < this.numVfs; vf++) {
      if ((icr >>> vf) & 1) {
        this.wr(R.MBVFICR, 1 << vf);
        this.receive(vf);
      }
      if ((icr >>> (vf + 16)) & 1) this.wr(R.MBVFICR, 1 << (vf + 16));
    }
  }

  // ---- administrator API (ip link set PF vf N ...) ----

  /** `ip link set PF vf N mac M`: the VF gets M at its next reset and may not change it unless trusted. */
  setVfMac(vf: number, mac: Uint8Array): void {
    const p = this.policy(vf);
    if (mac.length !== 6 || ((mac[0] ?? 0) & 1) === 1) throw new PfAgentError("VF MAC must be a 6-byte unicast address");
    if (!isZero(mac) && this.macInUse(mac, vf)) throw new PfAgentError("MAC address in use by the PF or another VF");
    p.mac = Uint8Array.from(mac);
    p.adminMac = !isZero(mac);
    this.hw.setRar(vfRar(vf), mac, vf);
    this.dropUntrustedFilters(vf);
  }

  /** `ip link set PF vf N vlan V qos Q` (V = 0 removes the port VLAN). */
  setVfVlan(vf: number, vid: number, qos = 0): void {
    const p = this.policy(vf);
    if (!(Number.isInteger(vid) && vid >= 0 && vid < 4095 && Number.isInteger(qos) && qos >= 0 && qos < 8)) {
      throw new PfAgentError("VLAN id must be 0..4094 and qos 0..7");
    }
    // One VLVF entry per VF is held back from the VFs' own requests (see vfVlanQuota), so this
    // finds room unless entries were taken outside the agent; checked before anything changes.
    if (vid && vid !== p.portVlan && this.hw.vlvfIndex(vid) < 0 && this.hw.vlvfFree() === 0) throw new PfAgentError("no free VLVF entry");
    if (p.portVlan && !p.vlans.includes(p.portVlan)) this.hw.vlvf(vf, p.portVlan, false);
    p.portVlan = vid;
    p.qos = vid ? qos : 0;
    if (vid) {
      this.hw.vlvf(vf, vid, true);
      this.wr(R.VMVIR(vf), B.VMVIR_VLANA_DEFAULT | vid | (qos << 13));
      this.wr(R.VMOLR(vf), (this.rd(R.VMOLR(vf)) | B.VMOLR_STRVLAN) & ~B.VMOLR_AUPE);
    } else {
      this.wr(R.VMVIR(vf), 0);
      this.wr(R.VMOLR(vf), (this.rd(R.VMOLR(vf)) & ~B.VMOLR_STRVLAN) | B.VMOLR_AUPE);
    }
  }

  /** `ip link set PF vf N spoofchk on|off`. */
  setVfSpoofchk(vf: number, on: boolean): void {
    this.policy(vf).spoofchk = on;
    this.hw.setSpoofchk(vf, on);
  }

  /** `ip link set PF vf N trust on|off`. */
  setVfTrust(vf: number, on: boolean): void {
    this.policy(vf).trust = on;
    if (!on) {
      this.dropUntrustedFilters(vf);
      this.wr(R.VMOLR(vf), this.rd(R.VMOLR(vf)) & ~B.VMOLR_MPME);
    }
  }

  /**
   * An untrusted VF keeps only filters it could add now: none with an administrator's MAC, else
   * only for its own MAC. Run when trust goes, or the VF's MAC changes.
   */
  private dropUntrustedFilters(vf: number): void {
    const p = this.policy(vf);
    if (p.trust) return;
    p.extraMacs = p.extraMacs.filter((row) => {
      const mine = this.hw.rarPools(row) === 1 << vf;
      if (mine && !p.adminMac && sameMac(this.hw.rarMac(row), p.mac)) return true;
      if (mine) this.hw.setRar(row, ZERO_MAC, vf);
      return false;
    });
  }

  // ---- mailbox plumbing ----

  private policy(vf: number): VfPolicy {
    const p = this.vfs[vf];
    if (p === undefined) throw new PfAgentError(`no VF ${vf}`);
    return p;
  }

  /** VLVF entries the administrator may still need: one per VF without a port VLAN. */
  private vlvfReserved(): number {
    return this.vfs.filter((p) => p.portVlan === 0).length;
  }

  private vfPoolDefaults(vf: number): void {
    const p = this.policy(vf);
    let vmolr = B.VMOLR_AUPE | B.VMOLR_BAM | B.VMOLR_ROMPE | 0x80000000 | B.VMOLR_LPE | (p.rlpml & B.VMOLR_RLPML_MASK);
    if (p.portVlan) vmolr = (vmolr | B.VMOLR_STRVLAN) & ~B.VMOLR_AUPE;
    this.wr(R.VMOLR(vf), vmolr);
  }

  /** VFLRE: the VF reset itself. Forget what it asked for, keep the administrator's settings. */
  private vfResetEvent(vf: number): void {
    const p = this.policy(vf);
    p.cts = false;
    p.mcHashes = [];
    for (const vid of p.vlans) if (vid !== p.portVlan) this.hw.vlvf(vf, vid, false);
    p.vlans = [];
    this.clearExtraMacs(vf);
    p.rlpml = 1522;
    this.vfPoolDefaults(vf);
    this.rebuildMta();
    if (!p.adminMac) {
      const m = this.opts.defaultVfMac?.(vf);
      if (m === undefined) p.mac = new Uint8Array(6);
    }
  }

  /** Reads the VF's message (lock, copy, ACK) and answers it. */
  private receive(vf: number): void {
    this.wr(R.P2VMAILBOX(vf), B.P2V_PFU);
    if ((this.rd(R.P2VMAILBOX(vf)) & B.P2V_PFU) === 0) return; // VF holds the buffer; it will ask again
    const msg: number[] = [];
    for (let i = 0; i < MBX.WORDS; i++) msg.push(this.rd(R.VMBMEM(vf) + 4 * i));
    this.wr(R.P2VMAILBOX(vf), B.P2V_ACK);
    const reply = this.handle(vf, msg);
    if (reply !== undefined) this.send(vf, reply);
  }

  /** Writes a message to the VF (lock, copy, STS). Returns false if the VF holds the buffer. */
  private send(vf: number, words: number[]): boolean {
    this.wr(R.P2VMAILBOX(vf), B.P2V_PFU);
    if ((this.rd(R.P2VMAILBOX(vf)) & B.P2V_PFU) === 0) return false;
    words.slice(0, MBX.WORDS).forEach((w, i) => this.wr(R.VMBMEM(vf) + 4 * i, w));
    this.wr(R.P2VMAILBOX(vf), B.P2V_STS);
    return true;
  }

  private nack(vf: number, why: string): false {
    const p = this.policy(vf);
    p.nacks++;
    this.opts.log?.(`pf-agent: VF ${vf}: ${why}`);
    return false;
  }

  /** One message; returns the reply words (undefined: no reply). */
  private handle(vf: number, msg: number[]): number[] | undefined {
    const p = this.policy(vf);
    const w0 = msg[0] ?? 0;
    if (w0 & (MBX.MSGTYPE_ACK | MBX.MSGTYPE_NACK)) return undefined;
    const id = w0 & 0xffff;
    if (id === MBX.VF_RESET) return this.resetMsg(vf);
    let ok: boolean;
    if (!p.cts) ok = this.nack(vf, "message before reset handshake");
    else {
      switch (id) {
        case MBX.VF_SET_MAC_ADDR:
          ok = this.setMacMsg(vf, w0, msg);
          break;
        case MBX.VF_SET_MULTICAST:
          ok = this.setMcMsg(vf, w0, msg);
          break;
        case MBX.VF_SET_VLAN:
          ok = this.setVlanMsg(vf, w0, msg);
          break;
        case MBX.VF_SET_LPE:
          ok = this.setLpeMsg(vf, msg);
          break;
        case MBX.VF_SET_PROMISC:
          ok = this.setPromiscMsg(vf, w0);
          break;
        default:
          ok = this.nack(vf, `unknown message 0x${id.toString(16)}`);
      }
    }
    return [((w0 & ~(MBX.MSGTYPE_ACK | MBX.MSGTYPE_NACK | MBX.MSGTYPE_CTS)) | (ok ? MBX.MSGTYPE_ACK : MBX.MSGTYPE_NACK) | MBX.MSGTYPE_CTS) >>> 0];
  }

  private resetMsg(vf: number): number[] {
    const p = this.policy(vf);
    this.vfResetEvent(vf);
    if (!isZero(p.mac)) this.hw.setRar(vfRar(vf), p.mac, vf);
    this.wr(R.VFTE, this.rd(R.VFTE) | (1 << vf));
    this.wr(R.VFRE, this.rd(R.VFRE) | (1 << vf));
    if (p.portVlan) this.hw.vlvf(vf, p.portVlan, true);
    p.cts = true;
    // Linux igb answers RESET|ACK (or NACK without a MAC) with the MAC in words 1-2, and no CTS
    // bit: igbvf compares word 0 against exactly RESET|ACK and RESET|NACK.
    const m = p.mac;
    const w1 = macLo(m);
    const w2 = macHi(m);
    return [MBX.VF_RESET | (isZero(m) ? MBX.MSGTYPE_NACK : MBX.MSGTYPE_ACK), w1, w2];
  }

  private setMacMsg(vf: number, w0: number, msg: number[]): boolean {
    const p = this.policy(vf);
    const info = w0 & MBX.MSGINFO_MASK;
    const mac = new Uint8Array(6);
    const lo = msg[1] ?? 0;
    const hi = msg[2] ?? 0;
    mac.set([lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff]);
    if (info === MBX.MAC_FILTER_CLR) {
      this.clearExtraMacs(vf);
      return true;
    }
    if (isZero(mac) || (mac[0] ?? 0) & 1) return this.nack(vf, "invalid MAC address");
    if (info === MBX.MAC_FILTER_ADD) {
      if (p.adminMac && !p.trust) return this.nack(vf, "MAC filters refused: administrator set the MAC");
      // A filter for someone else's address would let the VF swallow frames other functions send
      // there (internal switching picks the VF's pool): only a trusted VF may add one.
      if (!p.trust && !sameMac(mac, p.mac)) return this.nack(vf, "MAC filter for another address refused: VF not trusted");
      if (this.macInUse(mac, vf)) return this.nack(vf, "MAC address in use by another function");
      if (p.extraMacs.length >= MAX_VF_MAC_FILTERS) return this.nack(vf, "no MAC filter left");
      const row = this.hw.freeExtraRow();
      if (row < 0) return this.nack(vf, "RAR table full");
      this.hw.setRar(row, mac, vf);
      p.extraMacs.push(row);
      return true;
    }
    if (info !== 0) return this.nack(vf, "unknown SET_MAC_ADDR variant");
    if (p.adminMac && !p.trust && !sameMac(mac, p.mac)) {
      return this.nack(vf, "VF tried to override the administrator's MAC");
    }
    if (this.macInUse(mac, vf)) return this.nack(vf, "MAC address in use by another function");
    p.mac = mac;
    this.hw.setRar(vfRar(vf), mac, vf);
    this.dropUntrustedFilters(vf);
    return true;
  }

  /** Clears the extra unicast filters of VF `vf` (only rows that still belong to that pool alone). */
  private clearExtraMacs(vf: number): void {
    const p = this.policy(vf);
    for (const i of p.extraMacs) {
      if (this.hw.rarPools(i) === 1 << vf) this.hw.setRar(i, ZERO_MAC, vf);
    }
    p.extraMacs = [];
  }

  /**
   * Whether `mac` belongs to a function other than VF `vf`: the PF, another VF's MAC (its policy
   * MAC counts from the moment it is given, before that VF has reset and its filter is written),
   * or a receive-address filter of another pool.
   */
  private macInUse(mac: Uint8Array, vf: number): boolean {
    if (sameMac(mac, this.mac)) return true;
    for (let i = 0; i < this.vfs.length; i++) {
      const m = this.vfs[i]?.mac;
      if (i !== vf && m !== undefined && !isZero(m) && sameMac(m, mac)) return true;
    }
    return this.hw.macInOtherPool(mac, vf);
  }

  private setMcMsg(vf: number, w0: number, msg: number[]): boolean {
    const n = Math.min((w0 & MBX.MSGINFO_MASK) >>> MBX.MSGINFO_SHIFT, MBX.MAX_MC);
    const hashes: number[] = [];
    for (let i = 0; i < n; i++) {
      const w = msg[1 + (i >>> 1)] ?? 0;
      hashes.push((i & 1 ? w >>> 16 : w) & 0xfff);
    }
    this.policy(vf).mcHashes = hashes;
    this.rebuildMta();
    return true;
  }

  private rebuildMta(): void {
    this.hw.writeMta(this.vfs.map((p) => p.mcHashes));
  }

  private setVlanMsg(vf: number, w0: number, msg: number[]): boolean {
    const p = this.policy(vf);
    if (p.portVlan) return this.nack(vf, "VLAN change refused: port VLAN set by administrator");
    const add = ((w0 & MBX.MSGINFO_MASK) >>> MBX.MSGINFO_SHIFT) !== 0;
    const vid = (msg[1] ?? 0) & 0xfff;
    if (add) {
      if (!p.vlans.includes(vid)) {
        if (p.vlans.length >= this.vlanQuota) return this.nack(vf, `VLAN quota of ${this.vlanQuota} reached`);
        if (this.hw.vlvfIndex(vid) < 0 && this.hw.vlvfFree() <= this.vlvfReserved()) return this.nack(vf, "no free VLVF entry");
      }
      if (!this.hw.vlvf(vf, vid, true)) return this.nack(vf, "no free VLVF entry");
      if (!p.vlans.includes(vid)) p.vlans.push(vid);
      this.wr(R.VMOLR(vf), this.rd(R.VMOLR(vf)) | B.VMOLR_STRVLAN);
    } else {
      this.hw.vlvf(vf, vid, false);
      p.vlans = p.vlans.filter((v) => v !== vid);
    }
    return true;
  }

  private setLpeMsg(vf: number, msg: number[]): boolean {
    const size = msg[1] ?? 0;
    if (size > MAX_JUMBO_FRAME || size < MIN_LPE_FRAME) return this.nack(vf, `frame size ${size} refused`);
    const p = this.policy(vf);
    p.rlpml = size;
    this.wr(R.VMOLR(vf), (this.rd(R.VMOLR(vf)) & ~B.VMOLR_RLPML_MASK) | B.VMOLR_LPE | size);
    return true;
  }

  private setPromiscMsg(vf: number, w0: number): boolean {
    const flags = w0 & MBX.MSGINFO_MASK;
    if (flags & ~MBX.PROMISC_MULTICAST) return this.nack(vf, "unsupported promiscuous flags");
    const vmolr = this.rd(R.VMOLR(vf));
    if (flags & MBX.PROMISC_MULTICAST) {
      if (!this.policy(vf).trust) return this.nack(vf, "multicast promiscuous refused: VF not trusted");
      this.wr(R.VMOLR(vf), vmolr | B.VMOLR_MPME);
    } else {
      this.wr(R.VMOLR(vf), vmolr & ~B.VMOLR_MPME);
    }
    return true;
  }
}
