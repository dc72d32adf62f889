/**
 * Saved state of the host PF agent, read as untrusted input: the whole agent ({@link PfAgentState},
 * version 2; version 1, as the agent saved it before, loads through an upgrade) and one VF's policy
 * on its own ({@link PfAgentVfState}, for the failover switch, which moves a VF between agents).
 * Parsers take `unknown`, check every field and the rules between fields, and throw `StateError`
 * naming the field; the agent then applies a parsed state with no failure point.
 *
 * Platform-neutral.
 * @module
 */
import { IGB_SIZES } from "../../devices/igb/regs.js";
import { StateError, arr, bool, field, hexBytes, int, obj, onlyKeys, toHex, u8 } from "../../state/parse.js";
import { defineState, type StateType } from "../../state/versioned.js";

/** Most extra MAC filters one VF may add. */
export const MAX_VF_MAC_FILTERS = 3;
/** Largest frame SET_LPE may ask for (Linux MAX_JUMBO_FRAME_SIZE). */
export const MAX_JUMBO_FRAME = 9728;
/** Smallest frame SET_LPE may ask for. */
export const MIN_LPE_FRAME = 64;
/** VLAN filter (VLVF) entries of the 82576, shared by all pools. */
export const VLVF_ENTRIES = 32;
/** RAR rows the agent hands out as extra unicast filters: 1 up to (not including) this. Above are the VFs' own rows. */
export const EXTRA_RAR_END = IGB_SIZES.rar - IGB_SIZES.pools;

/** One VF's policy as saved (MAC as 12 hex digits). */
export interface VfPolicySaved {
  /** The VF's MAC, 12 hex digits (all zero = none). */
  readonly mac: string;
  readonly adminMac: boolean;
  readonly portVlan: number;
  readonly qos: number;
  readonly spoofchk: boolean;
  readonly trust: boolean;
  readonly cts: boolean;
  readonly mcHashes: readonly number[];
  readonly vlans: readonly number[];
  readonly rlpml: number;
  readonly nacks: number;
}

/** One VF's policy in a whole-agent state: its extra unicast filters are RAR rows of the same NIC. */
export interface VfPolicyRowsSaved extends VfPolicySaved {
  /** RAR rows (1..15) holding the VF's extra unicast filters. */
  readonly extraMacs: readonly number[];
}

/** Saved state of a whole {@link PfAgent} (version 2). */
export interface PfAgentState {
  readonly version: 2;
  readonly numVfs: number;
  /** The PF's MAC, 12 hex digits. */
  readonly mac: string;
  readonly vfs: readonly VfPolicyRowsSaved[];
}

/**
 * One VF's agent state on its own, as the failover switch moves it between agents: the policy
 * and the mailbox handshake (`cts`); extra unicast filters as addresses, since RAR rows differ
 * between NICs. The VF's registers (queues, mailbox memory, its filters) move with the NIC's own
 * per-VF state.
 */
export interface PfAgentVfState {
  readonly version: 1;
  readonly policy: VfPolicySaved & {
    /** The VF's extra unicast filters, 12 hex digits each. */
    readonly extraMacs: readonly string[];
  };
}

const POLICY_KEYS = ["mac", "adminMac", "portVlan", "qos", "spoofchk", "trust", "cts", "mcHashes", "vlans", "rlpml", "extraMacs", "nacks"] as const;

/** A MAC as 12 hex digits: unicast (or all zero when `zeroOk`). */
function macHex(v: unknown, path: string, zeroOk: boolean): string {
  const b = hexBytes(v, path, 6);
  const zero = b.every((x) => x === 0);
  if (zero && !zeroOk) throw new StateError(path, "the zero MAC is not allowed here");
  if (!zero && ((b[0] ?? 0) & 1) === 1) throw new StateError(path, "a multicast MAC is not allowed here");
  return toHex(b);
}

function uniqueInts(v: unknown, path: string, max: number, lo: number, hi: number): number[] {
  const a = arr(v, path, max, (x, p) => int(x, p, lo, hi));
  a.forEach((x, i) => {
    if (a.indexOf(x) !== i) throw new StateError(`${path}[${i}]`, `${x} appears twice`);
  });
  return a;
}

/** The policy fields common to both state types (not `extraMacs`). */
function parsePolicyCommon(o: Record<string, unknown>, path: string): VfPolicySaved {
  onlyKeys(o, path, POLICY_KEYS);
  const mac = field(o, "mac", path, (v, p) => macHex(v, p, true));
  const adminMac = field(o, "adminMac", path, bool);
  if (adminMac && /^0+$/.test(mac)) throw new StateError(`${path}.adminMac`, "an administrator's MAC cannot be zero");
  const portVlan = field(o, "portVlan", path, (v, p) => int(v, p, 0, 4094));
  const qos = field(o, "qos", path, (v, p) => int(v, p, 0, 7));
  return {
    mac, adminMac, portVlan, qos,
    spoofchk: field(o, "spoofchk", path, bool),
    trust: field(o, "trust", path, bool),
    cts: field(o, "cts", path, bool),
    mcHashes: field(o, "mcHashes", path, (v, p) => arr(v, p, 30, (x, q) => int(x, q, 0, 0xfff))),
    vlans: field(o, "vlans", path, (v, p) => uniqueInts(v, p, VLVF_ENTRIES, 0, 4095)),
    rlpml: field(o, "rlpml", path, (v, p) => int(v, p, MIN_LPE_FRAME, MAX_JUMBO_FRAME)),
    nacks: field(o, "nacks", path, (v, p) => int(v, p, 0, Number.MAX_SAFE_INTEGER)),
  };
}

/** Rejects a MAC used by two functions (the PF's and the VFs' non-zero MACs). */
function checkMacsDistinct(pfMac: string, vfMacs: readonly string[], path: string): void {
  const seen = new Map<string, string>([[pfMac, `${path}.mac`]]);
  vfMacs.forEach((m, i) => {
    if (/^0+$/.test(m)) return;
    const other = seen.get(m);
    if (other !== undefined) throw new StateError(`${path}.vfs[${i}].mac`, `MAC in use by ${other}`);
    seen.set(m, `${path}.vfs[${i}].mac`);
  });
}

/** v1 saved MACs as arrays of 6 bytes; v2 as hex. */
function upgradeMac(v: unknown, path: string): string {
  return toHex(Uint8Array.from(arr(v, path, 6, u8, true)));
}

/**
 * The whole-agent state type: version 2, and version 1 (MACs as byte arrays) through an upgrade.
 * @example
 * agent.restore(PfAgentStateType.parse(JSON.parse(text)));
 */
export const PfAgentStateType: StateType<PfAgentState> = defineState<PfAgentState>(
  "pf-agent",
  2,
  {
    1: (o, path) => ({
      ...o,
      version: 2,
      mac: upgradeMac(o.mac, `${path}.mac`),
      vfs: arr(o.vfs, `${path}.vfs`, IGB_SIZES.pools - 1, (v, p) => {
        const x = obj(v, p);
        return { ...x, mac: upgradeMac(x.mac, `${p}.mac`) };
      }),
    }),
  },
  (o, path) => {
    onlyKeys(o, path, ["version", "numVfs", "mac", "vfs"]);
    const numVfs = field(o, "numVfs", path, (v, p) => int(v, p, 0, IGB_SIZES.pools - 1));
    const mac = field(o, "mac", path, (v, p) => toHex(hexBytes(v, p, 6)));
    const rows = new Map<number, string>();
    const vfs = field(o, "vfs", path, (v, p) =>
      arr(v, p, numVfs, (x, q): VfPolicyRowsSaved => {
        const po = obj(x, q);
        const common = parsePolicyCommon(po, q);
        const extraMacs = field(po, "extraMacs", q, (e, ep) => uniqueInts(e, ep, MAX_VF_MAC_FILTERS, 1, EXTRA_RAR_END - 1));
        extraMacs.forEach((r, i) => {
          const other = rows.get(r);
          if (other !== undefined) throw new StateError(`${q}.extraMacs[${i}]`, `RAR row ${r} is also ${other}'s`);
          rows.set(r, q);
        });
        return { ...common, extraMacs };
      }, true),
    );
    checkMacsDistinct(mac, vfs.map((p) => p.mac), path);
    return { version: 2, numVfs, mac, vfs };
  },
);

/** The one-VF state type (version 1; new with the failover switch). */
export const PfAgentVfStateType: StateType<PfAgentVfState> = defineState<PfAgentVfState>("pf-agent-vf", 1, {}, (o, path) => {
  onlyKeys(o, path, ["version", "policy"]);
  const policy = field(o, "policy", path, (v, p) => {
    const po = obj(v, p);
    const common = parsePolicyCommon(po, p);
    const extraMacs = field(po, "extraMacs", p, (e, ep) => arr(e, ep, MAX_VF_MAC_FILTERS, (x, q) => macHex(x, q, false)));
    extraMacs.forEach((m, i) => {
      if (extraMacs.indexOf(m) !== i) throw new StateError(`${p}.extraMacs[${i}]`, "appears twice");
      // the rules SET_MAC_ADDR enforces hold for a moved VF too
      if (common.adminMac && !common.trust) throw new StateError(`${p}.extraMacs[${i}]`, "no filters for an untrusted VF with an administrator's MAC");
      if (!common.trust && m !== common.mac) throw new StateError(`${p}.extraMacs[${i}]`, "a filter for another address needs trust");
    });
    return { ...common, extraMacs };
  });
  return { version: 1, policy };
});
