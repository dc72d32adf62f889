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
import { BROADCAST_MAC, buildEthernet, parseIpv4, parseMac } from "../src/devices/net/frames.js";

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
  });
await bench.run();
console.table(
  bench.tasks.map((t) => {
    const r = t.result;
    const ns = r.state === "completed" ? (r.latency.p50 * 1e6) / BATCH : NaN;
    return { task: t.name, "median ns/frame": ns.toFixed(0), "frames/s": (1e9 / ns).toExponential(2) };
  }),
);
console.log(`delivered ${delivered} frames, ${replies} ping replies; stub replied ${stub.counters.echoReplies}`);
