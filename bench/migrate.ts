/**
 * Live migration of the same Debian i386 guest (256 MiB) three ways, under the same load, in one
 * run, printed as one Markdown table:
 *
 * - `transparent`: nicvisor, the failover VF (Debian's igbvf alone) switched to emulation before
 *   the stop and back to pass-through at the destination (test/guest/migration-bridge-child.ts);
 * - `standby`: nicvisor, QEMU's failover=on style (`FailoverPlatform` with `hidePrimary`:
 *   net_failover over virtio-net STANDBY and the VF, unplugged through pciehp before pre-copy and
 *   plugged at the destination);
 * - `qemu`: QEMU 7.2 TCG (`qemu-system-i386 -M q35`), the same kernel and initramfs,
 *   virtio-net-pci `failover=on` with an e1000e primary (`failover_pair_id`) in a
 *   `pcie-root-port`, the destination started with `-incoming`, `migrate` on QMP.
 *
 * Each guest's NICs are TAPs on one bridge in a network namespace (10.0.7.1/24); the load is a
 * sequence peer on the bridge (200 ICMP echo requests a second with sequence numbers, answered by
 * the guest's kernel: lost, duplicated, largest gap between replies), a UDP stream both ways
 * with sequence numbers (iperf3 `-u --bidir` from the namespace to the guest's `iperf3 -s`, about
 * 98 datagrams a second each way, each receiver counting the lost ones; `lost` adds them to the
 * echo requests lost) and `ping -i 0.01` from the namespace. Downtime is each VMM's own figure (nicvisor: guest paused on the source until the
 * destination acknowledged its resume; QEMU: `query-migrate`'s `downtime`); total from the start
 * of the migration command to its completion; bytes are the migration stream's.
 *
 *   node --import tsx bench/migrate.ts        (or: npm run bench:migrate; root, /dev/net/tun,
 *                                              qemu-system-i386 from scripts/setup.sh)
 *   MIGRATE_ONLY=tq ...                       only the set-ups named by initial
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { DEFAULT_READY_MARKER } from "../src/vmm/harness/runner.js";
import { BridgeSegment, runBridgeMigration, type UdpReport } from "../test/guest/migration-bridge-helpers.js";
import { SeqPeer } from "../test/guest/seq-peer.js";
import { testImage } from "../test/guest/image.js";
import { QemuGuest } from "../test/guest/qemu-guest.js";

const PEER_RATE = 200;
const only = process.env["MIGRATE_ONLY"] ?? "tsq";

/** One row of the table. */
interface Row {
  setup: string;
  lost: number | string;
  duplicated: number | string;
  gapMs: number | string;
  downtimeMs: number | string;
  totalMs: number | string;
  bytes: number | string;
  note: string;
}

/** The UDP stream's figures for a row: lost both ways, and a note. */
function udpOf(u: UdpReport | string): { lost: number; note: string } {
  if (typeof u === "string") throw new Error(`the UDP stream did not run: ${u}`);
  const d = (x: UdpReport["hostToGuest"]): string => `${x.lost}/${x.sent} lost, ${x.outOfOrder} out of order`;
  return { lost: u.hostToGuest.lost + u.guestToHost.lost, note: `UDP host to guest ${d(u.hostToGuest)}, guest to host ${d(u.guestToHost)}` };
}

const log = (s: string): void => void process.stderr.write(`bench/migrate: ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

/** A QMP connection: `cmd` sends one command and resolves with its `return` (events are skipped). */
async function qmp(path: string): Promise<{ cmd: (execute: string, args?: object) => Promise<Record<string, unknown>>; close: () => void }> {
  let sock: Socket | undefined;
  for (let i = 0; i < 200 && sock === undefined; i++) {
    sock = await new Promise<Socket | undefined>((res) => {
      const s = connect(path);
      s.once("connect", () => res(s));
      s.once("error", () => res(undefined));
    });
    if (sock === undefined) await sleep(50);
  }
  if (sock === undefined) throw new Error(`no QMP socket at ${path}`);
  let buf = "";
  const waiting: Array<(o: Record<string, unknown>) => void> = [];
  sock.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      const o = JSON.parse(line) as Record<string, unknown>;
      if ("event" in o || "QMP" in o) continue;
      waiting.shift()?.(o);
    }
  });
  const s = sock;
  const cmd = (execute: string, args?: object): Promise<Record<string, unknown>> =>
    new Promise((res, rej) => {
      waiting.push((o) => ("error" in o ? rej(new Error(`${execute}: ${JSON.stringify(o["error"])}`)) : res((o["return"] ?? {}) as Record<string, unknown>)));
      s.write(`${JSON.stringify({ execute, ...(args !== undefined ? { arguments: args } : {}) })}\n`);
    });
  await cmd("qmp_capabilities");
  return { cmd, close: () => s.destroy() };
}

/** One QEMU process (q35, the failover pair), its QMP socket, its two TAPs moved onto the bridge. */
class QemuVm extends QemuGuest {
  constructor(
    private readonly seg: BridgeSegment,
    readonly tag: string,
    files: { kernel: string; initrd: string; append: string },
    readonly qmpPath: string,
    incoming?: string,
  ) {
    const taps = QemuVm.tapNames(seg, tag);
    super(
      [
        "-M", "q35", "-accel", "tcg", "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", files.kernel, "-initrd", files.initrd, "-append", `${files.append} nv.modules=virtio_pci,virtio_net`,
        "-qmp", `unix:${qmpPath},server=on,wait=off`,
        "-device", "pcie-root-port,id=rp0,chassis=1",
        "-device", "pcie-root-port,id=rp1,chassis=2",
        "-netdev", `tap,id=hn0,ifname=${taps[0]},script=no,downscript=no`,
        "-device", "virtio-net-pci,netdev=hn0,id=net0,mac=52:54:00:12:34:58,failover=on,bus=rp0",
        "-netdev", `tap,id=hn1,ifname=${taps[1]},script=no,downscript=no`,
        // no option ROM: the destination, its e1000e hidden, would have no RAM block to load it into
        "-device", "e1000e,netdev=hn1,id=hostdev0,mac=52:54:00:12:34:58,failover_pair_id=net0,bus=rp1,romfile=",
        ...(incoming !== undefined ? ["-incoming", incoming] : []),
      ],
      `QEMU ${tag}`,
    );
  }

  static tapNames(seg: BridgeSegment, tag: string): [string, string] {
    return [`nvq${tag}v${seg.tag}`, `nvq${tag}e${seg.tag}`];
  }

  /** Moves QEMU's TAPs into the namespace's bridge once QEMU has made them. */
  async bridge(): Promise<void> {
    for (const t of QemuVm.tapNames(this.seg, this.tag)) {
      for (let i = 0; spawnSync("ip", ["link", "show", t]).status !== 0; i++) {
        if (i > 200 || this.proc.exitCode !== null) throw new Error(`QEMU made no TAP ${t}: ${this.out.slice(-500)}`);
        await sleep(50);
      }
      ip("link", "set", t, "netns", this.seg.ns);
      ip("netns", "exec", this.seg.ns, "ip", "link", "set", t, "master", "br0");
      ip("netns", "exec", this.seg.ns, "ip", "link", "set", t, "up");
    }
  }
}

async function runQemu(seg: BridgeSegment): Promise<Row> {
  const img = await testImage();
  if ("missing" in img) throw new Error(img.missing);
  const kernel = join(seg.dir, "vmlinuz");
  const initrd = join(seg.dir, "initrd");
  writeFileSync(kernel, img.kernel);
  writeFileSync(initrd, img.initrd);
  const files = { kernel, initrd, append: img.append };
  const sock = join(seg.dir, "qemu-mig.sock");
  const src = new QemuVm(seg, "s", files, join(seg.dir, "qmp-s.sock"));
  let dst: QemuVm | undefined;
  try {
    await src.bridge();
    await src.wait(DEFAULT_READY_MARKER, 0, 240_000);
    log("qemu: source guest up");
    const up = await src.exec("ip link set eth0 up && ip addr add 10.0.7.15/24 dev eth0 && echo 0 > /proc/sys/net/ipv4/icmp_ratelimit && iperf3 -s -D -1 >/dev/null 2>&1; sleep 2 && ping -c 2 -W 2 10.0.7.1");
    if (!/2 packets received/.test(up)) throw new Error(`QEMU guest network: ${up}`);
    // net_failover takes the e1000e (QEMU plugs it once virtio-net took STANDBY) and its link comes up
    const prim = await src.exec(`i=0; while [ $(dmesg | grep -c 'failover primary slave:.* registered') -lt 1 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; dmesg | grep 'failover primary'; sleep 3; ping -c 3 -i 0.2 -W 2 10.0.7.1`, 90_000);
    if (!/primary slave/.test(prim)) throw new Error(`QEMU guest: net_failover took no primary: ${prim}`);
    dst = new QemuVm(seg, "d", files, join(seg.dir, "qmp-d.sock"), `unix:${sock}`);
    await dst.bridge();
    const sq = await qmp(src.qmpPath);
    const peer = new SeqPeer(seg.peerTap!, { ip: "10.0.7.3", guestIp: "10.0.7.15" });
    if (!(await peer.resolve())) throw new Error("the sequence peer got no ARP answer from the QEMU guest");
    peer.start(PEER_RATE);
    const ping = seg.nsPing(0);
    const udp = seg.nsUdp(14);
    await sleep(1500);
    const t0 = performance.now();
    await sq.cmd("migrate", { uri: `unix:${sock}` });
    let info: Record<string, unknown> = {};
    const statuses: string[] = [];
    for (;;) {
      info = await sq.cmd("query-migrate");
      const st = String(info["status"]);
      if (statuses[statuses.length - 1] !== st) statuses.push(st);
      if (st === "completed" || st === "failed" || st === "cancelled") break;
      if (performance.now() - t0 > 180_000) throw new Error(`QEMU migration still ${st} after 180 s`);
      await sleep(50);
    }
    const totalMs = performance.now() - t0;
    log(`qemu: migration ${statuses.join(" -> ")}`);
    sq.close();
    if (info["status"] !== "completed") await sleep(1000); // the destination's last words
    if (info["status"] !== "completed") throw new Error(`QEMU migration ${String(info["status"])}: ${JSON.stringify(info)}; destination (exit ${String(dst.proc.exitCode)}, signal ${String(dst.proc.signalCode)}): ${dst.out.slice(-600)}`);
    // the destination plugs the primary again; let the load run across that too
    const dq = await qmp(dst.qmpPath);
    await sleep(10_000);
    peer.stop();
    ping.stop();
    await ping.done;
    await sleep(2500);
    const rep = peer.report();
    const ur = await udp.done;
    // QEMU's outage (seconds long) can break iperf3's own TCP control connection: then only the
    // echo requests are counted, and the row says the figure is a lower bound.
    const u = typeof ur === "string" ? undefined : udpOf(ur);
    dq.close();
    const ram = info["ram"] as Record<string, number> | undefined;
    return {
      setup: "qemu",
      lost: u !== undefined ? rep.lost + u.lost : `≥ ${rep.lost}`,
      duplicated: rep.duplicated,
      gapMs: Math.round(rep.largestGapMs),
      downtimeMs: Number(info["downtime"] ?? NaN),
      totalMs: Math.round(totalMs),
      bytes: ram?.["transferred"] ?? NaN,
      note: `${statuses.join(" → ")}; QEMU total-time ${String(info["total-time"])} ms, setup ${String(info["setup-time"])} ms; ICMP ${rep.lost}/${rep.sent} lost; ${u !== undefined ? u.note : `UDP not counted: the stream broke (${(ur as string).slice(0, 120)})`}`,
    };
  } finally {
    src.kill();
    dst?.kill();
  }
}

const seg = new BridgeSegment();
const rows: Row[] = [];
try {
  const why = seg.setUp();
  if (why !== undefined) throw new Error(why);
  for (const style of ["transparent", "standby"] as const) {
    if (!only.includes(style[0]!)) continue;
    log(`${style}: booting, then migrating under load`);
    const r = await runBridgeMigration(seg, style, { peerRate: PEER_RATE, nsPings: style === "standby" ? 2000 : 1000 });
    if ("skip" in r) throw new Error(r.skip);
    const u = udpOf(r.udp);
    rows.push({
      setup: style,
      lost: r.rep.lost + u.lost,
      duplicated: r.rep.duplicated,
      gapMs: Math.round(r.rep.largestGapMs),
      downtimeMs: Math.round(r.si.downtimeMs ?? NaN),
      totalMs: Math.round(r.si.totalMs),
      bytes: r.si.bytes,
      note: `${r.si.iterations} RAM passes; ICMP ${r.rep.lost}/${r.rep.sent} lost; ${u.note}; ping -i 0.01 ${r.ns?.[2] ?? "?"}/${r.ns?.[1] ?? "?"}`,
    });
  }
  if (only.includes("q")) {
    log("qemu: booting source and destination, then migrating under load");
    try {
      rows.push(await runQemu(seg));
    } catch (e) {
      rows.push({ setup: "qemu", lost: "-", duplicated: "-", gapMs: "-", downtimeMs: "-", totalMs: "-", bytes: "-", note: `failed: ${(e as Error).message.slice(0, 300)}` });
      log(`qemu: ${(e as Error).message}`);
    }
  }
} finally {
  seg.close();
}
console.log("| setup | lost | duplicated | largest gap ms | downtime ms | total ms | bytes | notes |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.setup} | ${r.lost} | ${r.duplicated} | ${r.gapMs} | ${r.downtimeMs} | ${r.totalMs} | ${r.bytes} | ${r.note} |`);
process.exit(0);
