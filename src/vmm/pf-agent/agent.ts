/**
 * The host PF agent: what Linux igb does for its VFs, done by the VMM on the 82576 PF's registers.
 * It initialises the PF for SR-IOV (VMDq pools, default pool, loopback, anti-spoofing), enables
 * N VFs, answers every igbvf mailbox message with the reply Linux igb gives, and offers the
 * administrator's `ip link set PF vf N mac|vlan|spoofchk|trust` as methods. Platform-neutral: it
 * sees the PF only through a BAR0 accessor.
 *
 * igbvf has no API-version negotiation (that is ixgbevf); its messages are VF_RESET, SET_MAC_ADDR
 * (primary, or filter add/clear in bits 23:16), SET_MULTICAST, SET_VLAN, SET_LPE and SET_PROMISC.
 * @module
 */
import { B, IGB_SIZES, MBX, R } from "../../devices/igb/regs.js";
import { StateError, hexBytes, toHex } from "../../devices/state/parse.js";
import type { StateType } from "../../devices/state/versioned.js";
import {
  EXTRA_RAR_END, MAX_JUMBO_FRAME, MAX_VF_MAC_FILTERS, MIN_LPE_FRAME, PfAgentStateType, PfAgentVfStateType, VLVF_ENTRIES,
  type PfAgentState, type PfAgentVfState, type VfPolicySaved,
} from "./agent-state.js";

export { MAX_JUMBO_FRAME, MAX_VF_MAC_FILTERS, VLVF_ENTRIES, PfAgentStateType, PfAgentVfStateType, type PfAgentState, type PfAgentVfState };

/** 32-bit register access to the PF's BAR0. */
export interface PfBar {
  read(offset: number, size: 4): number;
  write(offset: number, size: 4, value: number): void;
}

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

const ZERO_MAC = new Uint8Array(6);
const isZero = (m: Uint8Array) => m.every((b) => b === 0);
const sameMac = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const rarMac = (ral: number, rah: number) => Uint8Array.of(ral & 0xff, (ral >>> 8) & 0xff, (ral >>> 16) & 0xff, ral >>> 24, rah & 0xff, (rah >>> 8) & 0xff);

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

const macLo = (m: Uint8Array) => ((m[0] ?? 0) | ((m[1] ?? 0) << 8) | ((m[2] ?? 0) << 16) | ((m[3] ?? 0) << 24)) >>> 0;
const macHi = (m: Uint8Array) => (m[4] ?? 0) | ((m[5] ?? 0) << 8);

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

  constructor(private readonly opts: PfAgentOptions) {}

  private rd(off: number): number {
    return this.opts.bar.read(off, 4) >>> 0;
  }
  private wr(off: number, v: number): void {
    this.opts.bar.write(off, 4, v >>> 0);
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
    this.setRar(0, this.mac, pool);
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
    for (const i of p.extraMacs) {
      const rah = this.rd(R.RAH(i));
      if (rah & B.RAH_AV && ((rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) & (1 << vf)) extraMacs.push(toHex(rarMac(this.rd(R.RAL(i)), rah)));
    }
    return { version: 1, policy: { ...policySaved(p), extraMacs } };
  }

  /**
   * Parses one VF's state for VF `vf` of this agent: the field checks of `PfAgentVfStateType`,
   * then the rules against this agent: the VF exists, and its MAC and filters are no other
   * function's here (the PF's, another VF's, another pool's receive filter). Changes nothing.
   * @throws StateError naming the field
   */
  parseVfState(vf: number, u: unknown, path = "pf-agent-vf"): PfAgentVfState {
    const s = PfAgentVfStateType.parse(u, path);
    if (!(Number.isInteger(vf) && vf >= 0 && vf < this.numVfs)) throw new StateError(path, `no VF ${vf} here (${this.numVfs} enabled)`);
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
    const own = 1 << vf;
    const wanted = s.policy.extraMacs.map((m) => hexBytes(m, "mac", 6));
    const placed = new Set<number>();
    // the pool's own rows: keep extras already in rows 1..15, clear the rest
    for (let i = 1; i < IGB_SIZES.rar; i++) {
      const rah = this.rd(R.RAH(i));
      if ((rah & B.RAH_AV) === 0 || ((rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) !== own) continue;
      const m = rarMac(this.rd(R.RAL(i)), rah);
      const k = wanted.findIndex((w, j) => !placed.has(j) && sameMac(w, m));
      if (k >= 0 && i < EXTRA_RAR_END) {
        placed.add(k);
        p.extraMacs.push(i);
      } else if (i !== this.vfRar(vf)) {
        this.setRar(i, ZERO_MAC, vf);
      }
    }
    // the VF's own row: move away what another pool's restore put there, then write the MAC
    const row = this.vfRar(vf);
    const rowRah = this.rd(R.RAH(row));
    if (rowRah & B.RAH_AV && ((rowRah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) & ~own) {
      const free = this.freeExtraRow();
      if (free >= 0) {
        this.wr(R.RAL(free), this.rd(R.RAL(row)));
        this.wr(R.RAH(free), rowRah);
      }
    }
    this.setRar(row, p.mac, vf);
    let droppedMacs = 0;
    wanted.forEach((m, j) => {
      if (placed.has(j)) return;
      const free = this.freeExtraRow();
      if (free < 0) return void droppedMacs++;
      this.setRar(free, m, vf);
      p.extraMacs.push(free);
    });
    // VLANs: the pool is in exactly the entries of its port VLAN and the VLANs it joined
    const vids = new Set(p.vlans);
    if (p.portVlan) vids.add(p.portVlan);
    for (let i = 0; i < VLVF_ENTRIES; i++) {
      const v = this.rd(R.VLVF(i));
      const vid = v & B.VLVF_VLANID_MASK;
      if (v & B.VLVF_VLANID_ENABLE && (v >>> B.VLVF_POOLSEL_SHIFT) & own && !vids.has(vid)) this.vlvf(vf, vid, false);
    }
    let droppedVlans = 0;
    for (const vid of vids) {
      if (this.vlvf(vf, vid, true)) continue;
      droppedVlans++;
      p.vlans = p.vlans.filter((x) => x !== vid);
    }
    const bits = own | (1 << (vf + B.DTXSWC_VLAN_SPOOF_SHIFT));
    const d = this.rd(R.DTXSWC);
    this.wr(R.DTXSWC, p.spoofchk ? d | bits : d & ~bits);
    this.rebuildMta();
    return { droppedMacs, droppedVlans };
  }

  /** A RAR row in 1..15 not in use, or -1. */
  private freeExtraRow(): number {
    for (let i = 1; i < EXTRA_RAR_END; i++) if ((this.rd(R.RAH(i)) & B.RAH_AV) === 0) return i;
    return -1;
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
    this.setRar(this.vfRar(vf), mac, vf);
  }

  /** `ip link set PF vf N vlan V qos Q` (V = 0 removes the port VLAN). */
  setVfVlan(vf: number, vid: number, qos = 0): void {
    const p = this.policy(vf);
    if (!(Number.isInteger(vid) && vid >= 0 && vid < 4095 && Number.isInteger(qos) && qos >= 0 && qos < 8)) {
      throw new PfAgentError("VLAN id must be 0..4094 and qos 0..7");
    }
    // One VLVF entry per VF is held back from the VFs' own requests (see vfVlanQuota), so this
    // finds room unless entries were taken outside the agent; checked before anything changes.
    if (vid && vid !== p.portVlan && this.vlvfIndex(vid) < 0 && this.vlvfFree() === 0) throw new PfAgentError("no free VLVF entry");
    if (p.portVlan && !p.vlans.includes(p.portVlan)) this.vlvf(vf, p.portVlan, false);
    p.portVlan = vid;
    p.qos = vid ? qos : 0;
    if (vid) {
      this.vlvf(vf, vid, true);
      this.wr(R.VMVIR(vf), B.VMVIR_VLANA_DEFAULT | vid | (qos << 13));
      this.wr(R.VMOLR(vf), (this.rd(R.VMOLR(vf)) | B.VMOLR_STRVLAN) & ~B.VMOLR_AUPE);
    } else {
      this.wr(R.VMVIR(vf), 0);
      this.wr(R.VMOLR(vf), (this.rd(R.VMOLR(vf)) & ~B.VMOLR_STRVLAN) | B.VMOLR_AUPE);
    }
  }

  /** `ip link set PF vf N spoofchk on|off`. */
  setVfSpoofchk(vf: number, on: boolean): void {
    const p = this.policy(vf);
    p.spoofchk = on;
    const bits = (1 << vf) | (1 << (vf + B.DTXSWC_VLAN_SPOOF_SHIFT));
    const d = this.rd(R.DTXSWC);
    this.wr(R.DTXSWC, on ? d | bits : d & ~bits);
  }

  /** `ip link set PF vf N trust on|off`. */
  setVfTrust(vf: number, on: boolean): void {
    this.policy(vf).trust = on;
  }

  // ---- mailbox plumbing ----

  private policy(vf: number): VfPolicy {
    const p = this.vfs[vf];
    if (p === undefined) throw new PfAgentError(`no VF ${vf}`);
    return p;
  }

  /** RAR entry Linux igb gives VF n: counted from the top. */
  private vfRar(vf: number): number {
    return IGB_SIZES.rar - 1 - vf;
  }

  private setRar(i: number, mac: Uint8Array, pool: number): void {
    if (isZero(mac)) {
      this.wr(R.RAH(i), 0);
      this.wr(R.RAL(i), 0);
      return;
    }
    this.wr(R.RAL(i), macLo(mac));
    this.wr(R.RAH(i), (macHi(mac) | B.RAH_AV | ((1 << pool) << B.RAH_POOL_SHIFT)) >>> 0);
  }

  /** The VLVF entry enabled for `vid`, or -1. */
  private vlvfIndex(vid: number): number {
    for (let i = 0; i < VLVF_ENTRIES; i++) {
      const v = this.rd(R.VLVF(i));
      if (v & B.VLVF_VLANID_ENABLE && (v & B.VLVF_VLANID_MASK) === vid) return i;
    }
    return -1;
  }

  /** Number of VLVF entries not enabled. */
  private vlvfFree(): number {
    let n = 0;
    for (let i = 0; i < VLVF_ENTRIES; i++) if ((this.rd(R.VLVF(i)) & B.VLVF_VLANID_ENABLE) === 0) n++;
    return n;
  }

  /** VLVF entries the administrator may still need: one per VF without a port VLAN. */
  private vlvfReserved(): number {
    return this.vfs.filter((p) => p.portVlan === 0).length;
  }

  /** Adds or removes pool `vf` in the VLVF entry for `vid`. Returns false if no entry is free. */
  private vlvf(vf: number, vid: number, add: boolean): boolean {
    let idx = -1;
    let free = -1;
    for (let i = 0; i < VLVF_ENTRIES; i++) {
      const v = this.rd(R.VLVF(i));
      if (v & B.VLVF_VLANID_ENABLE && (v & B.VLVF_VLANID_MASK) === vid) idx = i;
      else if (free < 0 && (v & B.VLVF_VLANID_ENABLE) === 0) free = i;
    }
    const bit = (1 << vf) << B.VLVF_POOLSEL_SHIFT;
    if (!add) {
      if (idx >= 0) {
        const v = this.rd(R.VLVF(idx)) & ~bit;
        this.wr(R.VLVF(idx), v & B.VLVF_POOLSEL_MASK ? v : 0);
      }
      return true;
    }
    if (idx < 0) idx = free;
    if (idx < 0) return false;
    this.wr(R.VLVF(idx), (B.VLVF_VLANID_ENABLE | vid | (this.rd(R.VLVF(idx)) & B.VLVF_POOLSEL_MASK) | bit) >>> 0);
    this.wr(R.VFTA(vid >>> 5), this.rd(R.VFTA(vid >>> 5)) | (1 << (vid & 31)));
    return true;
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
    for (const vid of p.vlans) if (vid !== p.portVlan) this.vlvf(vf, vid, false);
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
    if (!isZero(p.mac)) this.setRar(this.vfRar(vf), p.mac, vf);
    this.wr(R.VFTE, this.rd(R.VFTE) | (1 << vf));
    this.wr(R.VFRE, this.rd(R.VFRE) | (1 << vf));
    if (p.portVlan) this.vlvf(vf, p.portVlan, true);
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
      for (let i = 1; i < IGB_SIZES.rar - IGB_SIZES.pools; i++) {
        if ((this.rd(R.RAH(i)) & B.RAH_AV) === 0) {
          this.setRar(i, mac, vf);
          p.extraMacs.push(i);
          return true;
        }
      }
      return this.nack(vf, "RAR table full");
    }
    if (info !== 0) return this.nack(vf, "unknown SET_MAC_ADDR variant");
    if (p.adminMac && !p.trust && !sameMac(mac, p.mac)) {
      return this.nack(vf, "VF tried to override the administrator's MAC");
    }
    if (this.macInUse(mac, vf)) return this.nack(vf, "MAC address in use by another function");
    p.mac = mac;
    this.setRar(this.vfRar(vf), mac, vf);
    return true;
  }

  /** Clears the extra unicast filters of VF `vf` (only rows that still belong to that pool alone). */
  private clearExtraMacs(vf: number): void {
    const p = this.policy(vf);
    for (const i of p.extraMacs) {
      if (((this.rd(R.RAH(i)) & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) === 1 << vf) this.setRar(i, ZERO_MAC, vf);
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
    const lo = macLo(mac);
    const hi = macHi(mac);
    for (let i = 0; i < IGB_SIZES.rar; i++) {
      const rah = this.rd(R.RAH(i));
      if ((rah & B.RAH_AV) === 0 || this.rd(R.RAL(i)) !== lo || (rah & 0xffff) !== hi) continue;
      if ((((rah & B.RAH_POOL_MASK) >>> B.RAH_POOL_SHIFT) & ~(1 << vf)) !== 0) return true;
    }
    return false;
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
    const mta = new Uint32Array(128);
    for (const p of this.vfs) for (const h of p.mcHashes) mta[h >>> 5] = (mta[h >>> 5] ?? 0) | (1 << (h & 31));
    for (let i = 0; i < 128; i++) this.wr(R.MTA(i), mta[i] ?? 0);
  }

  private setVlanMsg(vf: number, w0: number, msg: number[]): boolean {
    const p = this.policy(vf);
    if (p.portVlan) return this.nack(vf, "VLAN change refused: port VLAN set by administrator");
    const add = ((w0 & MBX.MSGINFO_MASK) >>> MBX.MSGINFO_SHIFT) !== 0;
    const vid = (msg[1] ?? 0) & 0xfff;
    if (add) {
      if (!p.vlans.includes(vid)) {
        if (p.vlans.length >= this.vlanQuota) return this.nack(vf, `VLAN quota of ${this.vlanQuota} reached`);
        if (this.vlvfIndex(vid) < 0 && this.vlvfFree() <= this.vlvfReserved()) return this.nack(vf, "no free VLVF entry");
      }
      if (!this.vlvf(vf, vid, true)) return this.nack(vf, "no free VLVF entry");
      if (!p.vlans.includes(vid)) p.vlans.push(vid);
      this.wr(R.VMOLR(vf), this.rd(R.VMOLR(vf)) | B.VMOLR_STRVLAN);
    } else {
      this.vlvf(vf, vid, false);
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
