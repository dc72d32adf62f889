/**
 * A host-side traffic peer for real-guest tests that must count every frame: it answers ARP for
 * its own address, and sends ICMP echo requests to the guest with sequence numbers (host to guest
 * traffic) at a set rate, recording each reply (guest to host traffic). From the replies it
 * reports frames lost, duplicated and reordered. The guest's kernel answers the echoes itself, so
 * nothing needs to run in the guest.
 */
import type { FrameMeta, NetBackend } from "../../src/devices/net/backend.js";
import { buildArp, buildEcho, buildEthernet, ipFrame, parseIpv4 } from "../../src/devices/net/frames.js";
import { EtherType, IpProto, parseFrame } from "../../src/devices/net/parse.js";

/** What {@link SeqPeer.report} gives. */
export interface SeqReport {
  sent: number;
  replies: number;
  /** Sequence numbers sent more than `graceMs` ago with no reply. */
  lost: number;
  duplicated: number;
  /** Replies that came after a reply with a higher sequence number. */
  reordered: number;
  /** Largest gap in ms between consecutive replies. */
  largestGapMs: number;
}

/** The peer. Attach it to a switch port or a link end; call {@link SeqPeer.start}. */
export class SeqPeer {
  readonly mac = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x03);
  readonly ip: Uint8Array;
  private readonly guestIp: Uint8Array;
  private guestMac: Uint8Array | undefined;
  private seq = 0;
  private readonly sentAt = new Map<number, number>();
  private readonly got = new Map<number, number>();
  private lastReplySeq = -1;
  private lastReplyAt = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly id = 0x4e56;
  readonly counts = { sent: 0, replies: 0, duplicated: 0, reordered: 0, largestGapMs: 0 };

  constructor(
    private readonly backend: NetBackend,
    o: { ip: string; guestIp: string },
  ) {
    this.ip = parseIpv4(o.ip);
    this.guestIp = parseIpv4(o.guestIp);
    backend.setReceiver((f, m) => this.receive(f, m));
  }

  private receive(f: Uint8Array, _m?: FrameMeta): boolean {
    const p = parseFrame(f);
    if (p.etherType === EtherType.ARP && f.length >= 42) {
      const op = f[21];
      const tpa = f.subarray(38, 42);
      if (op === 1 && tpa.every((b, i) => b === this.ip[i])) {
        const sha = f.slice(22, 28);
        const spa = f.slice(28, 32);
        this.backend.transmit(buildEthernet({ dst: sha, src: this.mac, etherType: EtherType.ARP, payload: buildArp(2, this.mac, this.ip, sha, spa), pad: true }));
      }
      if (op === 2 && f.subarray(28, 32).every((b, i) => b === this.guestIp[i])) this.guestMac = f.slice(22, 28);
      return true;
    }
    if (p.l4Proto === IpProto.ICMP && p.l4Offset >= 0 && f[p.l4Offset] === 0) {
      const id = (f[p.l4Offset + 4]! << 8) | f[p.l4Offset + 5]!;
      if (id !== this.id) return true;
      const seq = (f[p.l4Offset + 6]! << 8) | f[p.l4Offset + 7]!;
      const now = performance.now();
      const n = (this.got.get(seq) ?? 0) + 1;
      this.got.set(seq, n);
      if (n > 1) this.counts.duplicated++;
      else {
        this.counts.replies++;
        if (seq < this.lastReplySeq) this.counts.reordered++;
        this.lastReplySeq = Math.max(this.lastReplySeq, seq);
        if (this.lastReplyAt > 0) this.counts.largestGapMs = Math.max(this.counts.largestGapMs, now - this.lastReplyAt);
        this.lastReplyAt = now;
      }
    }
    return true;
  }

  /** Asks for the guest's MAC (ARP) until it answers, up to `ms`. */
  async resolve(ms = 10_000): Promise<boolean> {
    const end = performance.now() + ms;
    while (this.guestMac === undefined && performance.now() < end) {
      const bcast = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
      this.backend.transmit(buildEthernet({ dst: bcast, src: this.mac, etherType: EtherType.ARP, payload: buildArp(1, this.mac, this.ip, new Uint8Array(6), this.guestIp), pad: true }));
      await new Promise((r) => setTimeout(r, 200));
    }
    return this.guestMac !== undefined;
  }

  /** Sends one echo request now. */
  sendOne(): void {
    if (this.guestMac === undefined) return;
    const seq = this.seq++ & 0xffff;
    this.sentAt.set(seq, performance.now());
    this.counts.sent++;
    this.backend.transmit(ipFrame({ srcMac: this.mac, dstMac: this.guestMac, src: this.ip, dst: this.guestIp, proto: IpProto.ICMP, l4: buildEcho(8, this.id, seq, new Uint8Array(56)), id: seq }));
  }

  /** Sends `perSecond` echo requests a second (in bursts every 10 ms) until {@link SeqPeer.stop}. */
  start(perSecond: number): void {
    const perTick = perSecond / 100;
    let owed = 0;
    this.timer = setInterval(() => {
      owed += perTick;
      while (owed >= 1) {
        owed -= 1;
        this.sendOne();
      }
    }, 10);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The counts so far; a request counts as lost once it is `graceMs` old with no reply. */
  report(graceMs = 2000): SeqReport {
    const now = performance.now();
    let lost = 0;
    for (const [seq, at] of this.sentAt) if (!this.got.has(seq) && now - at > graceMs) lost++;
    return { sent: this.counts.sent, replies: this.counts.replies, lost, duplicated: this.counts.duplicated, reordered: this.counts.reordered, largestGapMs: this.counts.largestGapMs };
  }

  /** The requests counted as lost by {@link SeqPeer.report}: sequence number and when sent (`performance.now()`). */
  missing(graceMs = 2000): Array<{ seq: number; at: number }> {
    const now = performance.now();
    const out: Array<{ seq: number; at: number }> = [];
    for (const [seq, at] of this.sentAt) if (!this.got.has(seq) && now - at > graceMs) out.push({ seq, at });
    return out;
  }

  /** Forgets everything counted (sequence numbers go on). */
  reset(): void {
    this.sentAt.clear();
    this.got.clear();
    this.lastReplySeq = -1;
    this.lastReplyAt = 0;
    Object.assign(this.counts, { sent: 0, replies: 0, duplicated: 0, reordered: 0, largestGapMs: 0 });
  }
}
