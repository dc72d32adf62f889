/**
 * `--net` and `--pcap` for `nicvisor run`: which NIC the guest gets, on the host stub's segment
 * (10.0.2.2, fe80::2), and an optional capture of that segment.
 *
 * | spec | NIC |
 * | --- | --- |
 * | `virtio[,mac=M][,mq=N][,mtu=N][,standby][,packed][,no-<feature>...]` | nicvisor's virtio-net in root port 00:04.0 (02:00.0); features by name as in `VIRTIO_NET_FEATURE_NAMES` |
 * | `igb[,mac=M]` | the whole 82576 PF (with its 8 VFs) in root port 00:05.0 (02:00.0) |
 * | `vf[,mac=M][,trust][,spoofchk=off]` | one 82576 VF passed through in root port 00:06.0 (02:00.0), the PF kept by the host PF agent; `mac=` is set as the administrator's MAC (default: the agent offers 52:54:00:12:34:58 and the guest may change it) |
 * | `vf,failover[,mac=M]` | the failover VF: the same guest-visible VF, backed by the host 82576's VF (pass-through) or by the VMM's own emulated 82576, switched with `failover-switch` on the control socket or `--switch-every MS` |
 * | `failover[,mac=M]` | QEMU's `failover=on` pair: virtio-net with STANDBY in root port 00:04.0 and an 82576 VF (the primary, passed through, hidden until the guest's virtio-net takes STANDBY) in 00:06.0, one MAC, for Linux's `net_failover`; a migration unplugs the VF first and the destination plugs one |
 * | `none` (default) | no NIC: the PCI test device only |
 *
 * `netdev=ID` (on `virtio`, `igb`, `vf` and `failover`) attaches the NIC to the `--netdev` with that id (a TAP,
 * a QEMU-compatible stream or dgram socket; see `netdev-option.ts`) instead of the host stub.
 * @module
 */
import { UsageError } from "./command.js";
import { NETDEV_ID } from "./netdev-option.js";
import { VIRTIO_NET_FEATURE_NAMES } from "../devices/virtio-net/features.js";
import { AddressParseError, parseMac } from "../devices/net/frames.js";
import type { NetBackend } from "../devices/net/backend.js";
import type { PlatformBus, PlatformEnv } from "../vmm/machine-platform.js";

/** A parsed `--net`. */
export type NetSpec =
  | { kind: "none" }
  | { kind: "virtio"; mac?: Uint8Array; maxPairs: number; mtu?: number; standby: boolean; packed: boolean; withhold: number[]; netdev?: string }
  | { kind: "igb"; mac?: Uint8Array; netdev?: string }
  | { kind: "vf"; mac?: Uint8Array; trust: boolean; spoofchk: boolean; netdev?: string; failover: boolean }
  | { kind: "failover"; mac?: Uint8Array; netdev?: string };

/** The `netdev=` value, checked as an id. */
function netdevId(v: string): string {
  if (!NETDEV_ID.test(v)) throw new UsageError(`--net: netdev=${v} is not a netdev id`);
  return v;
}

/** Parses a `--net` value. @throws UsageError */
export function parseNetSpec(spec: string): NetSpec {
  const [kind, ...opts] = spec.split(",");
  const mac = (v: string): Uint8Array => {
    try {
      const m = parseMac(v);
      if ((m[0]! & 1) === 1) throw new UsageError(`--net: mac=${v} is a multicast address`);
      return m;
    } catch (e) {
      if (e instanceof AddressParseError) throw new UsageError(`--net: bad mac '${v}'`);
      throw e;
    }
  };
  const int = (k: string, v: string, lo: number, hi: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`--net: ${k} must be an integer in ${lo}..${hi}`);
    return n;
  };
  switch (kind) {
    case "none":
      if (opts.length > 0) throw new UsageError("--net none takes no options");
      return { kind: "none" };
    case "virtio": {
      const out: NetSpec = { kind: "virtio", maxPairs: 2, standby: false, packed: false, withhold: [] };
      for (const o of opts) {
        const eq = o.indexOf("=");
        const k = eq < 0 ? o : o.slice(0, eq);
        const v = eq < 0 ? "" : o.slice(eq + 1);
        if (k === "mac") out.mac = mac(v);
        else if (k === "netdev" && eq > 0) out.netdev = netdevId(v);
        else if (k === "mq") out.maxPairs = int("mq", v, 1, 16);
        else if (k === "mtu") out.mtu = int("mtu", v, 68, 65535);
        else if (k === "standby" && eq < 0) out.standby = true;
        else if (k === "packed" && eq < 0) out.packed = true;
        else if (k.startsWith("no-") && eq < 0) {
          const bit = VIRTIO_NET_FEATURE_NAMES[k.slice(3)];
          if (bit === undefined) throw new UsageError(`--net virtio: unknown feature '${k.slice(3)}' (one of: ${Object.keys(VIRTIO_NET_FEATURE_NAMES).join(", ")})`);
          out.withhold.push(bit);
        } else throw new UsageError(`--net virtio: unknown option '${o}'`);
      }
      return out;
    }
    case "igb": {
      const out: NetSpec = { kind: "igb" };
      for (const o of opts) {
        if (o.startsWith("mac=")) out.mac = mac(o.slice(4));
        else if (o.startsWith("netdev=")) out.netdev = netdevId(o.slice(7));
        else throw new UsageError(`--net igb: unknown option '${o}' (mac=M, netdev=ID)`);
      }
      return out;
    }
    case "vf": {
      const out: NetSpec = { kind: "vf", trust: false, spoofchk: true, failover: false };
      for (const o of opts) {
        if (o.startsWith("mac=")) out.mac = mac(o.slice(4));
        else if (o.startsWith("netdev=")) out.netdev = netdevId(o.slice(7));
        else if (o === "trust") out.trust = true;
        else if (o === "spoofchk=off") out.spoofchk = false;
        else if (o === "spoofchk=on") out.spoofchk = true;
        else if (o === "failover") out.failover = true;
        else throw new UsageError(`--net vf: unknown option '${o}' (mac=M, trust, spoofchk=on|off, netdev=ID, failover)`);
      }
      if (out.failover && (out.trust || !out.spoofchk)) throw new UsageError("--net vf,failover: trust and spoofchk=off are not supported with failover yet");
      return out;
    }
    case "failover": {
      const out: NetSpec = { kind: "failover" };
      for (const o of opts) {
        if (o.startsWith("mac=")) out.mac = mac(o.slice(4));
        else if (o.startsWith("netdev=")) out.netdev = netdevId(o.slice(7));
        else throw new UsageError(`--net failover: unknown option '${o}' (mac=M, netdev=ID)`);
      }
      return out;
    }
    default:
      throw new UsageError(`--net: unknown NIC '${kind ?? ""}' (virtio, igb, vf, failover or none)`);
  }
}

/**
 * The modules the project image's init loads before its ready marker (`nv.modules=`), per NIC
 * kind: the guest's drivers are up when the shell is.
 */
export const GUEST_MODULES: Readonly<Record<"virtio" | "igb" | "vf" | "failover", string>> = {
  virtio: "virtio_pci,virtio_net",
  igb: "igb",
  vf: "igbvf",
  failover: "virtio_pci,virtio_net,igbvf",
};

/**
 * The platform factory for a NIC spec. `wrap` (for `--pcap`) receives the NIC's backend and the
 * machine's clock, and returns the backend to use. `backend` (an opened `--netdev`) replaces the
 * host stub's segment as the NIC's network.
 */
export async function netPlatform(
  spec: NetSpec,
  wrap?: (backend: NetBackend, env: PlatformEnv) => NetBackend,
  backend?: NetBackend,
): Promise<((env: PlatformEnv) => PlatformBus) | undefined> {
  if (spec.kind === "none") return undefined;
  const { VirtioNetPlatform, IgbPlatform, IgbVfPlatform, FailoverVfPlatform, FailoverPlatform } = await import("../vmm/platforms.js");
  if (spec.kind === "failover") {
    return (env) => {
      // --pcap on the failover pair: a tap on the fabric's outside port is not wired yet.
      if (wrap !== undefined) process.stderr.write("nicvisor: --pcap is not supported with --net failover yet; no capture\n");
      return new FailoverPlatform(env, { hidePrimary: true, ...(spec.mac !== undefined ? { mac: spec.mac } : {}), ...(backend !== undefined ? { backend } : {}) });
    };
  }
  if (spec.kind === "virtio") {
    return (env) =>
      new VirtioNetPlatform(env, {
        maxPairs: spec.maxPairs,
        withhold: spec.withhold,
        standby: spec.standby,
        packed: spec.packed,
        ...(spec.mac !== undefined ? { mac: spec.mac } : {}),
        ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
        ...(backend !== undefined ? { backend } : {}),
        ...(wrap !== undefined ? { wrapBackend: (b: NetBackend) => wrap(b, env) } : {}),
      });
  }
  if (spec.kind === "vf" && spec.failover) {
    return (env) => {
      const p = new FailoverVfPlatform(env, {
        log: (m) => process.stderr.write(`nicvisor: ${m}\n`),
        ...(spec.mac !== undefined ? { mac: spec.mac } : {}),
        ...(backend !== undefined ? { backend } : {}),
      });
      // --pcap on the failover VF: a tap on the fabric's uplink side is not wired yet.
      if (wrap !== undefined) process.stderr.write("nicvisor: --pcap is not supported with vf,failover yet; no capture\n");
      return p;
    };
  }
  if (spec.kind === "vf") {
    return (env) =>
      new IgbVfPlatform(env, {
        trust: spec.trust,
        spoofchk: spec.spoofchk,
        log: (m) => process.stderr.write(`nicvisor: ${m}\n`),
        ...(spec.mac !== undefined ? { adminMac: spec.mac } : {}),
        ...(backend !== undefined ? { backend } : {}),
        ...(wrap !== undefined ? { wrapBackend: (b: NetBackend) => wrap(b, env) } : {}),
      });
  }
  return (env) =>
    new IgbPlatform(env, {
      ...(spec.mac !== undefined ? { mac: spec.mac } : {}),
      ...(backend !== undefined ? { backend } : {}),
      ...(wrap !== undefined ? { wrapBackend: (b: NetBackend) => wrap(b, env) } : {}),
    });
}
