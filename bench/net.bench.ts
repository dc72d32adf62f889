/**
 * In-process network backends: frames per second through the L2 switch (learned unicast and
 * broadcast flooding to 7 ports, 64- and 1500-byte frames), and ping round trips through the host
 * stub (ICMP echo request in, checksum verification, reply built and delivered back).
 *
 * Run: `node --import tsx bench/net.bench.ts`
 */
import { Bench } from "tinybench";
import { L2Switch } from "../src/devices/net/switch.js";
import { HostStub } from "../src/devices/net/host-stub.js";
import { ManualClock, guestFrames } from "../src/devices/net/testing.js";
import { BROADCAST_MAC, buildEthernet, buildTcp, ipFrame, parseIpv4, parseIpv6, parseMac } from "../src/devices/net/frames.js";
import { segmentTso } from "../src/devices/net/segment.js";
import { IpProto } from "../src/devices/net/parse.js";

const BATCH = 256;
const clock = new ManualClock();
const sw = new L2Switch({ clock });
const ports = Array.from({ length: 8 }, (_, i) => sw.port({ name: `p${i}` }));
let delivered = 0;
for (const p of ports) p.setReceiver(() => (delivered++, true));
const mac = (i: number) => parseMac(`02:00:00:00:00:${(i + 1).toString(16).padStart(2, "0")}`);
// Teach the switch where every MAC lives.
ports.forEach((p, i) => p.transmit(buildEthernet({ dst: BROADCAST_MAC, src: mac(i), etherType: 0x88b5, payload: new Uint8Array(46) })));
const frame = (size: number, dst: Uint8Array) => buildEthernet({ dst, src: mac(0), etherType: 0x88b5, payload: new Uint8Array(size - 14) });
const uni64 = frame(64, mac(1));
const uni1500 = frame(1500, mac(1));
const bcast64 = frame(64, BROADCAST_MAC);

const hostSw = new L2Switch({ clock });
const stub = new HostStub({ backend: hostSw.port({ name: "host" }) });
const vm = hostSw.port({ name: "vm" });
let replies = 0;
vm.setReceiver(() => (replies++, true));
const GMAC = parseMac("52:54:00:12:34:56");
const ping = guestFrames.echoRequest(GMAC, stub.mac, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2"), 1, 1);

// 64 KiB TSO frames (MSS 1448: 46 segments), IPv4 and IPv6.
const tso = (six: boolean) =>
  ipFrame({
    srcMac: mac(0), dstMac: mac(1), proto: IpProto.TCP,
    src: six ? parseIpv6("2001:db8::1") : parseIpv4("10.0.0.1"), dst: six ? parseIpv6("2001:db8::2") : parseIpv4("10.0.0.2"),
    l4: buildTcp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(65000).fill(7) }),
  });
const tso4 = tso(false);
const tso6 = tso(true);
let segs = 0;

const bench = new Bench({ time: 400, warmup: true });
bench
  .add("switch unicast 64B", () => {
    for (let i = 0; i < BATCH; i++) ports[0]!.transmit(uni64);
  })
  .add("switch unicast 1500B", () => {
    for (let i = 0; i < BATCH; i++) ports[0]!.transmit(uni1500);
  })
  .add("switch broadcast 64B to 7 ports", () => {
    for (let i = 0; i < BATCH; i++) ports[0]!.transmit(bcast64);
  })
  .add("host stub ping round trip (56B payload)", () => {
    for (let i = 0; i < BATCH; i++) vm.transmit(ping);
  })
  .add("segmentTso 65000B TCPv4 -> 45 segments", () => {
    const r = segmentTso(tso4, { gso: { type: "tcpv4", size: 1448, hdrLen: 54 } });
    if (r.ok) segs += r.frames.length;
  })
  .add("segmentTso 65000B TCPv6 -> 45 segments", () => {
    const r = segmentTso(tso6, { gso: { type: "tcpv6", size: 1448, hdrLen: 74 } });
    if (r.ok) segs += r.frames.length;
  });
await bench.run();
console.table(
  bench.tasks.map((t) => {
    const r = t.result;
    const perOp = t.name.startsWith("segmentTso") ? 1 : BATCH;
    const ns = r.state === "completed" ? (r.latency.p50 * 1e6) / perOp : NaN;
    return { task: t.name, "median ns per op": ns.toFixed(0), "ops/s": (1e9 / ns).toExponential(2) };
  }),
);
console.log(`segments produced: ${segs}`);
console.log(`delivered ${delivered} frames, ${replies} ping replies; stub replied ${stub.counters.echoReplies}`);
