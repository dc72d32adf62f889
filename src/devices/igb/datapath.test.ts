import { describe, it, expect } from "vitest";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { SimIgbvf } from "../../guest/igbvf/driver.js";
import { segmentTso } from "../net/segment.js";
import { completeChecksum } from "../net/checksum.js";
import { B, D, R } from "./regs.js";
import { parseFrame, verifyCsum, csumAdd, csumFinish } from "./offload.js";
import { toeplitz } from "./switch.js";
import { RecordingBackend } from "../net/testing.js";
import { buildUdp, ipFrame } from "../net/frames.js";

const PF_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/** An Ethernet/IPv4/TCP frame with `payload` bytes; checksums valid unless `seedOnly`. */
function tcpFrame(payload: number, opts: { seedOnly?: boolean; tso?: boolean } = {}): Uint8Array {
  const f = new Uint8Array(14 + 20 + 20 + payload);
  f.set(PF_MAC, 0);
  f.set([0x02, 0, 0, 0, 0, 9], 6);
  f.set([0x08, 0x00], 12);
  const ip = 14;
  f[ip] = 0x45;
  const tot = opts.tso ? 0 : 40 + payload;
  f[ip + 2] = tot >> 8;
  f[ip + 3] = tot & 0xff;
  f[ip + 4] = 0x12;
  f[ip + 5] = 0x34;
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  f.set([10, 0, 0, 1], ip + 12);
  f.set([10, 0, 0, 2], ip + 16);
  const tcp = 34;
  f.set([0x04, 0xd2, 0x00, 0x50], tcp);
  f.set([0, 0, 0x10, 0], tcp + 4); // seq 4096
  f[tcp + 12] = 0x50;
  f[tcp + 13] = 0x18; // ACK|PSH
  for (let i = 0; i < payload; i++) f[54 + i] = (i * 7) & 0xff;
  const l4len = 20 + payload;
  // pseudo-header sum without length for TSO (as Linux seeds it), with length otherwise
  let ps = csumAdd(0, f, ip + 12, 8) + 6 + (opts.tso ? 0 : l4len);
  while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
  if (opts.seedOnly || opts.tso) {
    f[tcp + 16] = ps >> 8;
    f[tcp + 17] = ps & 0xff;
  } else {
    f[ip + 10] = 0;
    f[ip + 11] = 0;
    const c = csumFinish(csumAdd(0, f, ip, 20));
    f[ip + 10] = c >> 8;
    f[ip + 11] = c & 0xff;
    const t = csumFinish(csumAdd(ps, f, tcp, l4len));
    f[tcp + 16] = t >> 8;
    f[tcp + 17] = t & 0xff;
  }
  return f;
}

function pfBed(offloads?: RecordingBackend["offloads"], o: { copies?: boolean } = {}) {
  const up = new RecordingBackend(offloads, o);
  const tb = createIgbTestbed({ numVfs: 0, backend: up });
  const pf = new SimIgbvf({ bar: { read: (o) => tb.core.mmioRead(o, 4), write: (o, _s, v) => tb.core.mmioWrite(o, 4, v) }, mem: tb.mem, alloc: tb.alloc, delay: (us) => tb.clock.advance(us * 1000) });
  pf.open();
  return { up, tb, pf };
}

/** Writes raw descriptors at the PF's queue 0 tail and bumps TDT. */
function rawTx(tb: ReturnType<typeof createIgbTestbed>, descs: Uint8Array[]): void {
  const base = tb.core.regs.get("TDBAL", 0);
  const n = tb.core.regs.get("TDLEN", 0) / 16;
  let t = tb.core.regs.get("TDT", 0);
  for (const d of descs) {
    tb.mem.write(base + t * 16, d);
    t = (t + 1) % n;
  }
  tb.core.mmioWrite(R.TDT(0), 4, t);
}

function ctxDesc(maclen: number, iplen: number, tucmd: number, mss = 0, l4len = 0): Uint8Array {
  const d = new Uint8Array(16);
  const v = new DataView(d.buffer);
  v.setUint32(0, iplen | (maclen << 9), true);
  v.setUint32(8, (D.TXD_DTYP_CTXT | D.TXD_CMD_DEXT | tucmd) >>> 0, true);
  v.setUint32(12, (mss << 16) | (l4len << 8), true);
  return d;
}

function dataDesc(tb: ReturnType<typeof createIgbTestbed>, f: Uint8Array, cmd: number, olinfo: number): Uint8Array {
  const a = tb.alloc(f.length, 64);
  tb.mem.write(a, f);
  const d = new Uint8Array(16);
  const v = new DataView(d.buffer);
  v.setUint32(0, a, true);
  v.setUint32(8, (D.TXD_DTYP_DATA | D.TXD_CMD_DEXT | D.TXD_CMD_EOP | D.TXD_CMD_RS | cmd | f.length) >>> 0, true);
  v.setUint32(12, olinfo >>> 0, true);
  return d;
}

describe("transmit offloads", () => {
  it("IPv4 header and TCP checksum insertion", () => {
    const { up, tb } = pfBed();
    const f = tcpFrame(100, { seedOnly: true });
    rawTx(tb, [ctxDesc(14, 20, D.CTX_TUCMD_IPV4 | D.CTX_TUCMD_L4T_TCP), dataDesc(tb, f, 0, D.TXD_POPTS_IXSM | D.TXD_POPTS_TXSM | (f.length << 14))]);
    expect(up.sent.length).toBe(1);
    const out = up.sent[0]!;
    const cs = verifyCsum(out, parseFrame(out));
    expect(cs).toEqual({ udp: false, ipOk: true, l4Ok: true });
    expect(Array.from(out)).toEqual(Array.from(tcpFrame(100)));
  });

  it("TSO cuts a 3000-byte payload into MSS-sized segments with valid headers", () => {
    const { up, tb } = pfBed();
    const f = tcpFrame(3000, { tso: true });
    rawTx(tb, [ctxDesc(14, 20, D.CTX_TUCMD_IPV4 | D.CTX_TUCMD_L4T_TCP, 1000, 20), dataDesc(tb, f, D.TXD_CMD_TSE, D.TXD_POPTS_IXSM | D.TXD_POPTS_TXSM | (3000 << 14))]);
    expect(up.sent.map((s) => s.length)).toEqual([1054, 1054, 1054]);
    up.sent.forEach((s, i) => {
      const info = parseFrame(s);
      expect(verifyCsum(s, info)).toEqual({ udp: false, ipOk: true, l4Ok: true });
      const seq = new DataView(s.buffer, s.byteOffset).getUint32(38, false);
      expect(seq).toBe(4096 + i * 1000);
      expect(s[47]! & 0x08).toBe(i === 2 ? 0x08 : 0); // PSH only on the last
      expect(Array.from(s.subarray(54, 64))).toEqual(Array.from(f.subarray(54 + i * 1000, 64 + i * 1000)));
    });
  });

  it("TSO to an uplink that takes it goes out whole as GSO; the host's segmentation gives the same wire frames and statistics", () => {
    const tso = (bed: ReturnType<typeof pfBed>): void => {
      const f = tcpFrame(3000, { tso: true });
      rawTx(bed.tb, [ctxDesc(14, 20, D.CTX_TUCMD_IPV4 | D.CTX_TUCMD_L4T_TCP, 1000, 20), dataDesc(bed.tb, f, D.TXD_CMD_TSE, D.TXD_POPTS_IXSM | D.TXD_POPTS_TXSM | (3000 << 14))]);
    };
    const whole = pfBed({ csum: true, tso4: true, tso6: true });
    const cut = pfBed();
    tso(whole);
    tso(cut);
    expect(whole.up.sent.length).toBe(1);
    expect(whole.up.metas[0]).toEqual({ gso: { type: "tcpv4", size: 1000, hdrLen: 54 }, needsCsum: { start: 34, offset: 16 } });
    const big = whole.up.sent[0]!;
    expect((big[16]! << 8) | big[17]!).toBe(big.length - 14); // IPv4 total length filled in
    expect(verifyCsum(big, parseFrame(big)).ipOk).toBe(true);
    // The TCP checksum field holds the pseudo-header sum with the full length (Linux's CHECKSUM_PARTIAL
    // seed): completing it over the whole packet gives a valid checksum.
    const done = big.slice();
    expect(completeChecksum(done, 34, 16)).toBe(true);
    expect(verifyCsum(done, parseFrame(done)).l4Ok).toBe(true);
    // What a host would put on the wire from the GSO frame, against what the NIC cut itself.
    const r = segmentTso(big, whole.up.metas[0]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.frames.map((x) => Array.from(x))).toEqual(cut.up.sent.map((x) => Array.from(x)));
    for (const reg of ["GPTC", "TPT", "GOTCL", "TOTL"] as const) expect(whole.tb.core.regs.get(reg), reg).toBe(cut.tb.core.regs.get(reg));
    // Without TSO for IPv4 the uplink gets the segments.
    const no4 = pfBed({ csum: true, tso4: false, tso6: true });
    tso(no4);
    expect(no4.up.sent.map((x) => x.length)).toEqual([1054, 1054, 1054]);
    expect(no4.up.metas).toEqual([undefined, undefined, undefined]);
  });

  it("a packet assembled from several descriptors is its own frame once sent: the next packet does not overwrite it", () => {
    /** Sends `f` as two data descriptors (the first without EOP). */
    const twoDescs = (tb: ReturnType<typeof createIgbTestbed>, f: Uint8Array, cmd: number, olinfo: number): void => {
      const a = dataDesc(tb, f.subarray(0, 54), cmd, olinfo);
      const v = new DataView(a.buffer);
      v.setUint32(8, (v.getUint32(8, true) & ~(D.TXD_CMD_EOP | D.TXD_CMD_RS)) >>> 0, true);
      rawTx(tb, [a, dataDesc(tb, f.subarray(54), cmd, olinfo)]);
    };
    const tsoPair = (bed: ReturnType<typeof pfBed>): Uint8Array[] => {
      const fs = [1, 2].map((k) => {
        const f = tcpFrame(3000, { tso: true });
        f.fill(k, 54);
        return f;
      });
      for (const f of fs) {
        rawTx(bed.tb, [ctxDesc(14, 20, D.CTX_TUCMD_IPV4 | D.CTX_TUCMD_L4T_TCP, 1000, 20)]);
        twoDescs(bed.tb, f, D.TXD_CMD_TSE, D.TXD_POPTS_IXSM | D.TXD_POPTS_TXSM | (3000 << 14));
      }
      return fs;
    };
    // Whole as GSO to a backend that keeps what it is given: each frame its own.
    const keep = pfBed({ csum: true, tso4: true, tso6: true });
    tsoPair(keep);
    expect(keep.up.sent.length).toBe(2);
    expect(keep.up.sent.map((f) => [f.length, f[54], f[f.length - 1]])).toEqual([
      [3054, 1, 1],
      [3054, 2, 2],
    ]);
    // Whole as GSO to a backend that copies (the TAP): lent from the queue's one buffer, no copy per packet.
    const copies = pfBed({ csum: true, tso4: true, tso6: true }, { copies: true });
    tsoPair(copies);
    expect(copies.up.sent.map((f) => [f.length, f[54], f[f.length - 1]])).toEqual([
      [3054, 1, 1],
      [3054, 2, 2],
    ]);
    expect(copies.up.handed[0]!.buffer).toBe(copies.up.handed[1]!.buffer);
    // Cut into segments, and plain packets: new frames each time.
    const cut = pfBed();
    tsoPair(cut);
    expect(cut.up.sent.map((f) => f[54])).toEqual([1, 1, 1, 2, 2, 2]);
    const plain = pfBed({ csum: true, tso4: true, tso6: true }, { copies: true });
    const p1 = tcpFrame(500);
    const p2 = tcpFrame(500);
    p2.fill(9, 54);
    twoDescs(plain.tb, p1, 0, 0);
    twoDescs(plain.tb, p2, 0, 0);
    // (the arrays handed over, read after both went: the first would show p2 had it been lent)
    expect(plain.up.handed.map((f) => Array.from(f))).toEqual([Array.from(p1), Array.from(p2)]);
  });

  it("a TSO request the NIC would refuse or cut differently is not handed to the host as GSO", () => {
    const bed = pfBed({ csum: true, tso4: true, tso6: true });
    const send = (mss: number, l4len: number): void => {
      const f = tcpFrame(3000, { tso: true });
      rawTx(bed.tb, [ctxDesc(14, 20, D.CTX_TUCMD_IPV4 | D.CTX_TUCMD_L4T_TCP, mss, l4len), dataDesc(bed.tb, f, D.TXD_CMD_TSE, D.TXD_POPTS_IXSM | D.TXD_POPTS_TXSM | (3000 << 14))]);
    };
    // MSS 2: 1500 segments, over the NIC's bound; it drops the packet as before, the host gets nothing.
    send(2, 20);
    expect(bed.up.sent.length).toBe(0);
    expect(bed.tb.core.counters.txErrors).toBe(1);
    // L4LEN 32 while the TCP header is 20 bytes: the NIC cuts the packet itself, by its context.
    send(1000, 32);
    expect(bed.up.metas.every((m) => m === undefined)).toBe(true);
    expect(bed.up.sent.length).toBeGreaterThan(1);
  });

  it("a packet spread over several data descriptors is sent whole; DD is written back", () => {
    const { up, tb } = pfBed();
    const f = tcpFrame(500);
    const a = dataDesc(tb, f.subarray(0, 100), 0, 0);
    const v = new DataView(a.buffer);
    v.setUint32(8, (v.getUint32(8, true) & ~(D.TXD_CMD_EOP | D.TXD_CMD_RS)) >>> 0, true);
    rawTx(tb, [a, dataDesc(tb, f.subarray(100), 0, 0)]);
    expect(up.sent.length).toBe(1);
    expect(Array.from(up.sent[0]!)).toEqual(Array.from(f));
    const base = tb.core.regs.get("TDBAL", 0);
    expect(tb.mem.bytes[base + 16 + 12]! & D.TXD_STA_DD).toBe(1);
  });
});

describe("receive", () => {
  it("reports checksums and packet type; a bad TCP checksum sets TCPE", () => {
    const { tb, pf } = pfBed();
    expect(tb.core.receive(tcpFrame(64))).toBe(true);
    const bad = tcpFrame(64);
    bad[60]! ^= 0xff;
    expect(tb.core.receive(bad)).toBe(true);
    const got = pf.receive();
    expect(got.length).toBe(2);
    expect(got[0]!.status & (D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS)).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS);
    expect(got[0]!.status & (D.RXD_ERR_TCPE | D.RXD_ERR_IPE)).toBe(0);
    expect(got[1]!.status & D.RXD_ERR_TCPE).toBe(D.RXD_ERR_TCPE);
  });

  it("reports only the verdicts RXCSUM enables (IPOFL and TUOFL are set at reset, as igb expects)", () => {
    const { tb, pf } = pfBed();
    expect(tb.core.regs.get("RXCSUM") & (B.RXCSUM_IPOFL | B.RXCSUM_TUOFL)).toBe(B.RXCSUM_IPOFL | B.RXCSUM_TUOFL);
    const bad = tcpFrame(64);
    bad[60] = bad[60]! ^ 0xff;
    const all = D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_STAT_UDPCS | D.RXD_ERR_TCPE | D.RXD_ERR_IPE;
    const statusWith = (rxcsum: number): number => {
      tb.core.mmioWrite(R.RXCSUM, 4, rxcsum);
      expect(tb.core.receive(bad)).toBe(true);
      const got = pf.receive();
      expect(got.length).toBe(1);
      return got[0]!.status & all;
    };
    expect(statusWith(B.RXCSUM_IPOFL | B.RXCSUM_TUOFL)).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE);
    expect(statusWith(B.RXCSUM_IPOFL)).toBe(D.RXD_STAT_IPCS);
    expect(statusWith(B.RXCSUM_TUOFL)).toBe(D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE);
    expect(statusWith(0)).toBe(0);
  });

  it("takes a known-good L4 checksum on trust (no payload sum) but still checks the IPv4 header and where a completion landed", () => {
    const { tb, pf, up } = pfBed();
    const bits = (): number => {
      const got = pf.receive();
      expect(got.length).toBe(1);
      return got[0]!.status & (D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE | D.RXD_ERR_IPE);
    };
    // csumValid (the host kernel's DATA_VALID, or nicvisor's own software offload): the TCP
    // checksum is not summed, so a payload changed after it was computed still reads good...
    const stale = tcpFrame(64);
    stale[60] = stale[60]! ^ 0xff;
    expect(up.sink!(stale, { csumValid: true })).toBe(true);
    expect(bits()).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS);
    // ...while the same frame without the flag is summed and fails
    expect(up.sink!(stale)).toBe(true);
    expect(bits()).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE);
    // the IPv4 header is checked either way
    const badIp = tcpFrame(64);
    badIp[14 + 8] = badIp[14 + 8]! ^ 1;
    expect(up.sink!(badIp, { csumValid: true })).toBe(true);
    expect(bits()).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_IPE);
    // a partial checksum completed into some other field than TCP's leaves the TCP checksum as
    // it was (here: only the pseudo-header sum), and the write-back sums and reports it bad
    const partial = tcpFrame(100);
    partial.set(tcpFrame(100, { seedOnly: true }).subarray(50, 52), 50);
    expect(up.sink!(partial.slice(), { needsCsum: { start: 34, offset: 14 } })).toBe(true);
    expect(bits()).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE);
    expect(up.sink!(partial.slice(), { needsCsum: { start: 34, offset: 16 } })).toBe(true);
    expect(bits()).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS);
  });

  it("does the offloads a vnet-header TAP leaves on a frame: GSO frames arrive segmented, partial checksums completed", () => {
    const { tb, pf, up } = pfBed();
    // A 3000-byte TCP payload handed over as one GSO frame with an MSS of 1000 (as a TAP does).
    expect(up.sink!(tcpFrame(3000), { gso: { type: "tcpv4", size: 1000, hdrLen: 54 }, needsCsum: { start: 34, offset: 16 } })).toBe(true);
    // A frame whose TCP checksum holds only the pseudo-header sum (NEEDS_CSUM); its IP header is whole.
    const partial = tcpFrame(100);
    partial.set(tcpFrame(100, { seedOnly: true }).subarray(50, 52), 50);
    expect(up.sink!(partial, { needsCsum: { start: 34, offset: 16 } })).toBe(true);
    const got = pf.receive();
    expect(got.map((g) => g.frame.length)).toEqual([54 + 1000, 54 + 1000, 54 + 1000, 54 + 100]);
    for (const g of got) {
      expect(g.status & (D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS)).toBe(D.RXD_STAT_IPCS | D.RXD_STAT_TCPCS);
      expect(g.status & (D.RXD_ERR_TCPE | D.RXD_ERR_IPE)).toBe(0);
    }
    // UDP GSO arrives as IP fragments: nicvisor's own cut, but a fragment's UDP checksum cannot be
    // checked, so no L4 status is reported (only the TCP segments cut here skip the verification).
    const dgram = ipFrame({ srcMac: Uint8Array.of(2, 0, 0, 0, 0, 9), dstMac: Uint8Array.from(PF_MAC), src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2), proto: 17, l4: buildUdp(1, 2, new Uint8Array(2500).fill(3)) });
    expect(up.sink!(dgram, { gso: { type: "udp", size: 1000, hdrLen: 42 } })).toBe(true);
    const frags = pf.receive();
    expect(frags.length).toBeGreaterThan(1);
    for (const g of frags) {
      expect(g.status & D.RXD_STAT_IPCS).toBe(D.RXD_STAT_IPCS);
      expect(g.status & (D.RXD_STAT_UDPCS | D.RXD_STAT_TCPCS | D.RXD_ERR_TCPE | D.RXD_ERR_IPE)).toBe(0);
    }
    // An offload request that cannot be done is dropped and counted, never thrown.
    const notIp = tcpFrame(100);
    notIp[12] = 0x88;
    notIp[13] = 0xb5;
    expect(tb.core.receive(notIp, { gso: { type: "tcpv4", size: 1000, hdrLen: 54 } })).toBe(false);
    expect(tb.core.counters.uplinkOffloadErrors).toBe(1);
    expect(pf.receive().length).toBe(0);
  });

  it("frames for other MACs are filtered unless promiscuous; broadcast needs BAM", () => {
    const { up, tb } = pfBed();
    const other = tcpFrame(10);
    other[5] = 0x99;
    expect(tb.core.receive(other)).toBe(false);
    tb.core.mmioWrite(R.RCTL, 4, tb.core.mmioRead(R.RCTL, 4) | B.RCTL_UPE);
    expect(tb.core.receive(other)).toBe(true);
    const bc = tcpFrame(10);
    bc.fill(0xff, 0, 6);
    tb.core.mmioWrite(R.RCTL, 4, B.RCTL_EN);
    expect(tb.core.receive(bc)).toBe(false);
  });

  it("header split puts the headers in the header buffer", () => {
    const { up, tb, pf } = pfBed();
    tb.core.mmioWrite(R.SRRCTL(0), 4, 2 | (4 << 8) | B.SRRCTL_DESCTYPE_HDR_SPLIT_ALWAYS);
    const base = tb.core.regs.get("RDBAL", 0);
    const hdrBuf = tb.alloc(256, 64);
    const head = tb.core.regs.get("RDH", 0);
    new DataView(tb.mem.bytes.buffer).setUint32(base + head * 16 + 8, hdrBuf, true);
    const f = tcpFrame(300);
    expect(tb.core.receive(f)).toBe(true);
    const wb = new DataView(tb.mem.bytes.buffer, base + head * 16, 16);
    const hdrInfo = wb.getUint16(2, true);
    expect(hdrInfo & D.RXD_HDR_SPH).toBe(D.RXD_HDR_SPH);
    expect((hdrInfo >> 5) & 0x3ff).toBe(54);
    expect(Array.from(tb.mem.bytes.subarray(hdrBuf, hdrBuf + 54))).toEqual(Array.from(f.subarray(0, 54)));
    expect(wb.getUint16(12, true)).toBe(300);
    expect(pf.receive().length).toBe(1);
  });
});

describe("RSS", () => {
  const key = Uint8Array.from([0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa]);

  it("Toeplitz matches the Microsoft RSS verification vectors", () => {
    const ipOnly = Uint8Array.from([66, 9, 149, 187, 161, 142, 100, 80]);
    expect(toeplitz(key, ipOnly)).toBe(0x323e8fc2);
    const tcp = Uint8Array.from([66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6]);
    expect(toeplitz(key, tcp)).toBe(0x51ccc178);
  });

  it("MRQC RSS picks the queue from RETA and writes the hash back", () => {
    const { up, tb } = pfBed();
    for (let i = 0; i < 10; i++) tb.core.mmioWrite(R.RSSRK(i), 4, new DataView(key.buffer).getUint32(i * 4, true));
    for (let i = 0; i < 32; i++) tb.core.mmioWrite(R.RETA(i), 4, 0x03030303);
    tb.core.mmioWrite(R.MRQC, 4, B.MRQC_RSS | B.MRQC_RSS_TCPV4 | B.MRQC_RSS_IPV4);
    // queue 3 ring
    const n = 16;
    const ring = tb.alloc(n * 16, 128);
    const buf = tb.alloc(2048 * n, 64);
    for (let i = 0; i < n; i++) new DataView(tb.mem.bytes.buffer).setUint32(ring + i * 16, buf + i * 2048, true);
    tb.core.mmioWrite(R.RDBAL(3), 4, ring);
    tb.core.mmioWrite(R.RDLEN(3), 4, n * 16);
    tb.core.mmioWrite(R.SRRCTL(3), 4, 2 | B.SRRCTL_DESCTYPE_ONEBUF);
    tb.core.mmioWrite(R.RXDCTL(3), 4, B.RXDCTL_ENABLE);
    tb.core.mmioWrite(R.RDT(3), 4, n - 1);
    expect(tb.core.receive(tcpFrame(10))).toBe(true);
    expect(tb.core.regs.get("RDH", 3)).toBe(1);
    const wb = new DataView(tb.mem.bytes.buffer, ring, 16);
    expect(wb.getUint16(0, true) & 0xf).toBe(D.RSS_TYPE_TCPV4);
    const tuple = Uint8Array.from([10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xd2, 0x00, 0x50]);
    expect(wb.getUint32(4, true)).toBe(toeplitz(key, tuple));
    // a new key takes effect with the next frame (the device's hash table follows RSSRK)
    const key2 = key.map((b, i) => b ^ (i * 37));
    for (let i = 0; i < 10; i++) tb.core.mmioWrite(R.RSSRK(i), 4, new DataView(key2.buffer).getUint32(i * 4, true));
    expect(tb.core.receive(tcpFrame(10))).toBe(true);
    const wb2 = new DataView(tb.mem.bytes.buffer, ring + 16, 16);
    expect(wb2.getUint32(4, true)).toBe(toeplitz(key2, tuple));
    expect(toeplitz(key2, tuple)).not.toBe(toeplitz(key, tuple));
  });
});

describe("VMDq + RSS", () => {
  it("a pool with RSSE receives on its second queue when the RETA entry's bit 0 is set", () => {
    const up = new RecordingBackend();
    const tb = createIgbTestbed({ numVfs: 1, backend: up });
    const pool = tb.agent.pfPool;
    tb.core.mmioWrite(R.MRQC, 4, B.MRQC_VMDQ_RSS | B.MRQC_RSS_TCPV4);
    tb.core.mmioWrite(R.VMOLR(pool), 4, tb.core.mmioRead(R.VMOLR(pool), 4) | B.VMOLR_RSSE);
    for (let i = 0; i < 32; i++) tb.core.mmioWrite(R.RETA(i), 4, 0x01010101);
    const q = pool + 8;
    const n = 8;
    const ring = tb.alloc(n * 16, 128);
    const buf = tb.alloc(2048 * n, 64);
    for (let i = 0; i < n; i++) new DataView(tb.mem.bytes.buffer).setUint32(ring + i * 16, buf + i * 2048, true);
    tb.core.mmioWrite(R.RDBAL(q), 4, ring);
    tb.core.mmioWrite(R.RDLEN(q), 4, n * 16);
    tb.core.mmioWrite(R.RXDCTL(q), 4, B.RXDCTL_ENABLE);
    tb.core.mmioWrite(R.RDT(q), 4, n - 1);
    expect(tb.core.receive(tcpFrame(20))).toBe(true);
    expect(tb.core.regs.get("RDH", q)).toBe(1);
    expect(new DataView(tb.mem.bytes.buffer, ring, 16).getUint16(0, true) & 0xf).toBe(D.RSS_TYPE_TCPV4);
  });
});
