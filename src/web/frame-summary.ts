/**
 * One line per Ethernet frame, in the spirit of tcpdump's: addresses, protocol and the fields a
 * reader looks for first (ARP's question, ICMP's type and sequence, TCP's flags, ports).
 *
 * Platform-neutral.
 * @module
 */
import { EtherType, IpProto, parseFrame } from "../devices/net/parse.js";
import { formatIpv4, formatMac } from "../devices/net/frames.js";

const ICMP_TYPES: Record<number, string> = { 0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded" };
const ICMP6_TYPES: Record<number, string> = { 128: "echo request", 129: "echo reply", 133: "router solicitation", 134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement", 143: "MLDv2 report" };
const TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];

function ipv6(f: Uint8Array, o: number): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((f[o + i]! << 8) | f[o + i + 1]!).toString(16));
  return g.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** A one-line description of `frame`. Never throws; reads only inside the frame. */
export function summarizeFrame(frame: Uint8Array): string {
  if (frame.length < 14) return `runt frame, ${frame.length} bytes`;
  const p = parseFrame(frame);
  const macs = `${formatMac(frame, 6)} > ${formatMac(frame, 0)}`;
  const vlan = p.vlanCount > 0 && p.vlanTci >= 0 ? ` vlan ${p.vlanTci & 0xfff}` : "";
  const len = `, ${frame.length} bytes`;
  const o = p.l3Offset;
  if (p.etherType === EtherType.ARP && o >= 0 && frame.length >= o + 28) {
    const op = (frame[o + 6]! << 8) | frame[o + 7]!;
    const spa = formatIpv4(frame, o + 14);
    const tpa = formatIpv4(frame, o + 24);
    if (op === 1) return `ARP${vlan} who-has ${tpa} tell ${spa}${len}`;
    if (op === 2) return `ARP${vlan} ${spa} is-at ${formatMac(frame, o + 8)}${len}`;
    if (op === 3 || op === 4) return `RARP${vlan} ${op === 3 ? "request" : "reply"} ${formatMac(frame, o + 18)}${len}`;
    return `ARP${vlan} op ${op}${len}`;
  }
  if (p.etherType === 0x8035) return `RARP${vlan} ${macs}${len}`;
  if (p.ipVersion === 0) return `${macs}${vlan} ethertype 0x${p.etherType.toString(16).padStart(4, "0")}${len}`;
  const src = p.ipVersion === 4 ? formatIpv4(frame, o + 12) : ipv6(frame, o + 8);
  const dst = p.ipVersion === 4 ? formatIpv4(frame, o + 16) : ipv6(frame, o + 24);
  const ip = `IPv${p.ipVersion}${vlan} ${src}`;
  const l4 = p.l4Offset;
  const frag = p.laterFragment ? " (fragment)" : "";
  if (l4 < 0 || p.l4HeaderLen === 0) return `${ip} > ${dst} proto ${p.l4Proto}${frag}${len}`;
  switch (p.l4Proto) {
    case IpProto.TCP: {
      const fl = frame[l4 + 13]!;
      const flags = TCP_FLAGS.filter((_, i) => (fl & (1 << i)) !== 0).join(",");
      const payload = Math.max(0, p.ipEnd - (l4 + p.l4HeaderLen));
      return `${ip}.${p.srcPort} > ${dst}.${p.dstPort} TCP [${flags}] ${payload} data bytes${len}`;
    }
    case IpProto.UDP:
      return `${ip}.${p.srcPort} > ${dst}.${p.dstPort} UDP${len}`;
    case IpProto.ICMP:
    case IpProto.ICMPv6: {
      const type = frame[l4]!;
      const name = (p.l4Proto === IpProto.ICMP ? ICMP_TYPES : ICMP6_TYPES)[type] ?? `type ${type}`;
      const echo = name.startsWith("echo") ? ` id ${(frame[l4 + 4]! << 8) | frame[l4 + 5]!} seq ${(frame[l4 + 6]! << 8) | frame[l4 + 7]!}` : "";
      return `${ip} > ${dst} ICMP${p.l4Proto === IpProto.ICMPv6 ? "v6" : ""} ${name}${echo}${len}`;
    }
    default:
      return `${ip} > ${dst} proto ${p.l4Proto}${len}`;
  }
}
