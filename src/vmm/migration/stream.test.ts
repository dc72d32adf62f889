import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  MAX_PAGES_PER_RECORD,
  MigrationStreamError,
  RecordDecoder,
  RecordType,
  decodeHello,
  decodePages,
  decodeZeroRuns,
  encodeHello,
  encodePages,
  encodeRecord,
  encodeStreamHeader,
  encodeZeroRuns,
  packSparse,
  unpackSparse,
  type MigrationRecord,
} from "./stream.js";
import { PAGE_SIZE } from "./dma-log.js";
import { RamScanner, toRuns } from "./ram.js";
import { hashPageTs as hashPage } from "./page-hash.js";
import { DmaWriteLog } from "./dma-log.js";

const ALL = [RecordType.HELLO, RecordType.RAM_PAGES, RecordType.RAM_ZERO, RecordType.ENGINE, RecordType.DEVICES, RecordType.COMMIT, RecordType.ERROR];
const hello = { engine: "v86 test", memBytes: 1 << 20, pageSize: PAGE_SIZE, devices: [{ name: "machine", kind: "machine", version: 2 }, { name: "virtio-net", kind: "virtio-net", version: 3 }] };

/** A stream of a header and a few records of every kind. */
function sampleStream(): { bytes: Uint8Array; records: MigrationRecord[] } {
  const page = new Uint8Array(PAGE_SIZE).fill(0xab);
  const payloads: Array<[RecordType, Uint8Array]> = [
    [RecordType.HELLO, encodeHello(hello)],
    [RecordType.RAM_PAGES, encodePages([3, 7], new Uint8Array([...page, ...page.map((x) => x ^ 0xff)]))],
    [RecordType.RAM_ZERO, encodeZeroRuns([[0, 3], [10, 100]])],
    [RecordType.ENGINE, packSparse(new Uint8Array(10000).fill(1, 5000, 5100))],
    [RecordType.DEVICES, new TextEncoder().encode("container bytes")],
    [RecordType.COMMIT, new Uint8Array(0)],
  ];
  const records = payloads.map(([type, payload], seq) => ({ type, seq, payload }));
  const parts = [encodeStreamHeader(), ...records.map((r) => encodeRecord(r.type, r.seq, r.payload))];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { bytes, records };
}

function decodeAll(bytes: Uint8Array, cuts: number[] = []): MigrationRecord[] {
  const d = new RecordDecoder({ streamHeader: true, allowed: ALL });
  const out: MigrationRecord[] = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < bytes.length).sort((a, b) => a - b), bytes.length]) {
    out.push(...d.push(bytes.subarray(at, c)));
    at = c;
  }
  d.end();
  return out;
}

const plain = (rs: MigrationRecord[]): unknown[] => rs.map((r) => ({ type: r.type, seq: r.seq, payload: [...r.payload] }));

describe("migration stream", () => {
  it("round-trips a stream whatever the chunking", () => {
    const { bytes, records } = sampleStream();
    expect(plain(decodeAll(bytes))).toEqual(plain(records));
    let runs = 0;
    fc.assert(
      fc.property(fc.array(fc.nat(bytes.length), { maxLength: 200, size: "max" }), (cuts) => {
        runs++;
        expect(plain(decodeAll(bytes, cuts))).toEqual(plain(records));
      }),
      { numRuns: 300 },
    );
    expect(runs).toBe(300);
  });

  it("payload codecs round-trip and HELLO is parsed field by field", () => {
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
    const b = decodePages(encodePages([1, 2], new Uint8Array(2 * PAGE_SIZE).fill(9)), 16);
    expect([...b.pages]).toEqual([1, 2]);
    expect(b.data.length).toBe(2 * PAGE_SIZE);
    expect(decodeZeroRuns(encodeZeroRuns([[0, 3]]), 16)).toEqual([[0, 3]]);
    const blob = new Uint8Array(3 * PAGE_SIZE + 17);
    blob[PAGE_SIZE + 5] = 1;
    blob[blob.length - 1] = 2;
    const packed = packSparse(blob);
    expect(packed.length).toBe(4 + 1 + PAGE_SIZE + 17);
    expect(unpackSparse(packed, 1 << 20, "x")).toEqual(blob);
  });

  it("names the record and field it refuses", () => {
    const bad = (h: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(h));
    expect(() => decodeHello(bad({ ...hello, memBytes: -1 }), 0)).toThrow(/record #0 \(hello\): hello.memBytes/);
    expect(() => decodeHello(bad({ ...hello, devices: [hello.devices[0], hello.devices[0]] }))).toThrow(/hello.devices\[1\].name: machine appears twice/);
    expect(() => decodeHello(bad({ ...hello, extra: 1 }))).toThrow(/hello.extra: unknown field/);
    expect(() => decodeHello(new Uint8Array([0xff]))).toThrow(MigrationStreamError);
    expect(() => decodePages(encodePages([20], new Uint8Array(PAGE_SIZE)), 16, 5)).toThrow(/record #5 \(ram-pages\): page 20 outside RAM/);
    expect(() => decodeZeroRuns(encodeZeroRuns([[10, 7]]), 16, 6)).toThrow(/record #6 \(ram-zero\): run 0/);
    const p = encodePages([1], new Uint8Array(PAGE_SIZE));
    new DataView(p.buffer).setUint32(0, MAX_PAGES_PER_RECORD + 1, true);
    expect(() => decodePages(p, 16)).toThrow(/page count/);
    expect(() => unpackSparse(new Uint8Array([0, 0, 0, 0x10]), 1 << 20, "record #9 (engine)")).toThrow(/record #9 \(engine\): unpacked length/);
    // A record longer than its type allows is refused from its header, before its payload arrives.
    const h = encodeRecord(RecordType.COMMIT, 4);
    new DataView(h.buffer).setUint32(8, 1, true);
    const d = new RecordDecoder({ streamHeader: false, allowed: ALL });
    expect(() => d.push(h)).toThrow(/record #4 \(commit\): payload length 1, at most 0/);
    // A type this side does not expect.
    expect(() => new RecordDecoder({ streamHeader: false, allowed: [RecordType.ACK] }).push(encodeRecord(RecordType.HELLO, 0, encodeHello(hello)))).toThrow(/record #0 \(hello\): record type not expected/);
    // Another stream version.
    const sh = encodeStreamHeader();
    sh[8] = 3;
    expect(() => new RecordDecoder({ streamHeader: true, allowed: ALL }).push(sh)).toThrow(/stream header: stream version 3, this build reads 1 to 2/);
    sh[8] = 0;
    expect(() => new RecordDecoder({ streamHeader: true, allowed: ALL }).push(sh)).toThrow(/stream header: stream version 0/);
    // Version 1 (RAM before the engine state only) is still read.
    sh[8] = 1;
    expect(new RecordDecoder({ streamHeader: true, allowed: ALL }).push(sh)).toEqual([]);
  });

  it("property: any corruption or truncation of a stream is refused with a MigrationStreamError naming a record, never passed on", () => {
    const { bytes, records } = sampleStream();
    let runs = 0;
    let refused = 0;
    let boundaries = 0;
    let unchanged = 0;
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(bytes.length - 1), v: fc.nat(255) }), { minLength: 1, maxLength: 64, size: "max" }),
        fc.nat(bytes.length),
        fc.array(fc.nat(bytes.length), { maxLength: 50, size: "max" }),
        (edits, cut, cuts) => {
          runs++;
          const b = bytes.slice(0, cut);
          let changed = b.length !== bytes.length;
          for (const e of edits) {
            if (e.at < b.length && b[e.at] !== e.v) {
              b[e.at] = e.v;
              changed = true;
            }
          }
          if (!changed) {
            unchanged++;
            return;
          }
          let err: unknown;
          let got: MigrationRecord[] = [];
          try {
            got = decodeAll(b, cuts);
          } catch (e) {
            err = e;
          }
          if (err === undefined) {
            // Only a clean cut at a record boundary decodes without error: a prefix of what was
            // sent, which the destination then refuses for its missing COMMIT.
            expect(b).toEqual(bytes.subarray(0, b.length));
            expect(plain(got)).toEqual(plain(records.slice(0, got.length)));
            boundaries++;
            return;
          }
          expect(err).toBeInstanceOf(MigrationStreamError);
          refused++;
          expect((err as MigrationStreamError).record).toMatch(/^(stream header|record #\d+ \(|record header)/);
          // Whatever came out before the refusal is an unchanged prefix of what was sent.
          expect(plain(got)).toEqual(plain(records.slice(0, got.length)));
        },
      ),
      { numRuns: 2000 },
    );
    expect(runs).toBe(2000);
    expect(refused + boundaries + unchanged).toBe(runs);
    expect(refused).toBeGreaterThan(1500);
  });

  it("property: corrupted sparse and page payloads only ever raise MigrationStreamError", () => {
    const packed = packSparse(new Uint8Array(5 * PAGE_SIZE + 3).map((_, i) => (i % 3 === 0 ? i & 0xff : 0)));
    const pages = encodePages([0, 1, 2], new Uint8Array(3 * PAGE_SIZE).fill(5));
    let runs = 0;
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat(), v: fc.nat(255) }), { minLength: 1, maxLength: 32, size: "max" }), fc.nat(), (edits, cut) => {
        runs++;
        for (const [src, dec] of [
          [packed, (x: Uint8Array) => unpackSparse(x, 1 << 20, "engine")],
          [pages, (x: Uint8Array) => decodePages(x, 4)],
        ] as const) {
          const b = src.slice(0, cut % (src.length + 1));
          for (const e of edits) if (b.length > 0) b[e.at % b.length] = e.v;
          try {
            dec(b);
          } catch (e) {
            expect(e).toBeInstanceOf(MigrationStreamError);
          }
        }
      }),
      { numRuns: 1000 },
    );
    expect(runs).toBe(1000);
  });
});

describe("RAM scanning", () => {
  it("finds changed pages, zero pages and pages DMA wrote; the hash feeds every word into both halves", () => {
    const mem = new Uint8Array(64 * PAGE_SIZE);
    const ram = { read: (a: number, l: number) => mem.subarray(a, a + l), write: (a: number, d: Uint8Array) => (mem.set(d, a), true) };
    const log = new DmaWriteLog(ram, mem.length);
    mem.fill(1, 5 * PAGE_SIZE, 6 * PAGE_SIZE);
    const s = new RamScanner(ram, mem.length);
    const first = s.scan(0, 64);
    expect(first.pages).toEqual([5]);
    expect(first.zero.length).toBe(63);
    expect(s.scan(0, 64).pages.length + s.scan(0, 64).zero.length).toBe(0);
    mem[9 * PAGE_SIZE + 100] = 7; // the CPU writes
    log.space.write(20 * PAGE_SIZE - 2, new Uint8Array([0, 0, 0, 0])); // DMA writes zeros over zeros: pages 19 and 20
    mem.fill(0, 5 * PAGE_SIZE, 6 * PAGE_SIZE); // a page becomes zero
    const r = s.scan(0, 64, log.take());
    expect(r.pages).toEqual([9]);
    expect(r.zero).toEqual([5, 19, 20]);
    expect(r.dmaOnly).toBe(2);
    expect(r.data[100]).toBe(7);
    expect(log.pending).toBe(0);
    // Every single-word change changes both halves of the hash.
    const words = new Uint32Array(1024);
    const base = new Uint32Array(2);
    hashPage(words, 0, base);
    for (let i = 0; i < 1024; i += 37) {
      words[i] = 1;
      const h = new Uint32Array(2);
      hashPage(words, 0, h);
      expect(h[0]).not.toBe(base[0]);
      expect(h[1]).not.toBe(base[1]);
      words[i] = 0;
    }
    expect(toRuns([1, 2, 3, 7, 9, 10])).toEqual([[1, 3], [7, 1], [9, 2]]);
  });
});
