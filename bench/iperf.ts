/**
 * Real-guest network throughput, one script and one run: iperf3 TCP, guest to host and host to
 * guest, 10 s each, through a TAP whose far end sits in a network namespace running `iperf3 -s`,
 * for three set-ups with the same i386 guest image:
 *
 * (a) nicvisor's virtio-net on v86 (nicvisor's machine: ACPI, MSI-X, direct kernel boot);
 * (b) v86's own built-in virtio-net on the same v86 CPU (v86's PCI and interrupts, bridged to the
 *     TAP through v86's `net0-send`/`net0-receive` bus events; the same shared engine and V8
 *     tiers as (a): `sharedEngineLoader`), so a/b compares device models;
 * (c) QEMU 7.2 TCG, virtio-net-pci on `-netdev tap,vhost=off`;
 * (d) nicvisor's 82576 VF on v86: a VF-only guest (igbvf) whose PF the host PF agent keeps, the
 *     NIC's uplink on the TAP (with a vnet header, as (a)), so d/a compares the VF with virtio-net
 *     on the same host set-up.
 *
 * For (a) and (d) it also counts, per direction and frame, the guest's exits to nicvisor (MMIO
 * and port accesses), MSIs, and the devices' DMA calls (reads and writes of guest memory).
 * Needs root, /dev/net/tun, iperf3 and qemu-system-i386 (both from scripts/setup.sh).
 *
 *   node --import tsx bench/iperf.ts [seconds=10]     (or: npm run bench:iperf)
 *   IPERF_ONLY=ad ...                                  only the set-ups named
 *   GUEST_CODE_TIER=optimizing ...                     let V8 optimize v86's generated code too
 *                                                      (see setGuestCodeTier; default baseline)
 *   IPERF_DIRS=down ...                                only host->guest (up: only guest->host)
 *   IPERF_PROFILE=/tmp/prof ...                        for (a) and (d): a host CPU profile of each
 *                                                      iperf3 run (<dir>/<a|d>-<up|down>.cpuprofile,
 *                                                      for scripts/cpuprofile-summary.mjs) and the
 *                                                      guest's top kernel functions (guest-IP
 *                                                      sampling, bench/guest-ip.ts)
 *   TAP_TX_THREAD=0 ...                                (a), (d): the TAP writes on the VMM thread
 *                                                      instead of its writer thread (for A/B runs)
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { V86 } from "v86";
import { GuestVm, DEFAULT_READY_MARKER } from "../src/vmm/harness/runner.js";
import { setGuestCodeTier, sharedEngineLoader } from "../src/vmm/cpu/v86-backend.js";
import { IgbVfPlatform, VirtioNetPlatform } from "../src/vmm/platforms.js";
import { TapBackend, tapUnavailableReason } from "../src/vmm/host/net/tap.js";
import { requireV86Assets } from "../src/vmm/host/v86-assets.js";
import { testImage, type TestImage } from "../test/guest/image.js";
import type { V86Backend } from "../src/vmm/cpu/v86-backend.js";
import { GuestIpSampler, guestSymbols, interruptEntries, KALLSYMS_CMD, topGuestFunctions, withHostProfile, type GuestSym } from "./guest-ip.js";

type Image = Exclude<TestImage, { missing: string }>;

const SECONDS = Number(process.argv[2] ?? 10);
const DIRS = process.env["IPERF_DIRS"] ?? "both";
const PROFILE_DIR = process.env["IPERF_PROFILE"];
if (process.env["GUEST_CODE_TIER"] === "optimizing") await setGuestCodeTier("optimizing");
const NS = `nvbench-${process.pid}`;
const HOST_IP = "10.0.3.1";
const GUEST_IP = "10.0.3.15";

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Moves `ifname` into the namespace and addresses it. */
function plumb(ifname: string): void {
  sh("ip", ["link", "set", ifname, "netns", NS]);
  sh("ip", ["netns", "exec", NS, "ip", "addr", "add", `${HOST_IP}/24`, "dev", ifname]);
  sh("ip", ["netns", "exec", NS, "ip", "link", "set", ifname, "up"]);
}

function mbps(out: string): number {
  const m = /([\d.]+) ([KMG])bits\/sec\s+(?:\d+\s+)?receiver/.exec(out);
  if (m === null) return NaN;
  return Number(m[1]) * (m[2] === "G" ? 1000 : m[2] === "M" ? 1 : 0.001);
}

/** A guest console driven by markers (v86 serial or QEMU stdio). */
class Console {
  text = "";
  constructor(private readonly send: (s: string) => void) {}
  feed(s: string): void {
    this.text += s;
  }
  async wait(what: string, from: number, ms: number): Promise<string> {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const i = this.text.indexOf(what, from);
      if (i >= 0) return this.text.slice(from, i);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`console: no '${what}' in ${ms} ms; tail: ${this.text.slice(-300)}`);
  }
  async exec(cmd: string, ms = 120_000): Promise<string> {
    const id = Math.floor(Math.random() * 1e6);
    const from = this.text.length;
    this.send(`${cmd}; echo @@B-$((40+2))-${id}@@\n`);
    return this.wait(`@@B-42-${id}@@`, from, ms);
  }
}

interface Result {
  name: string;
  up: number;
  down: number;
  boot: number;
  extra?: string;
}

/** Profiling of one nicvisor set-up's iperf3 runs (IPERF_PROFILE): its key, its CPU and its symbols. */
interface Profiling {
  key: string;
  cpu: V86Backend;
  syms: GuestSym[];
}

/** With IPERF_PROFILE: the set-up's CPU and the guest's symbols (its kallsyms lines read over the console). */
async function profiling(key: string, vm: GuestVm): Promise<Profiling | undefined> {
  if (PROFILE_DIR === undefined) return undefined;
  const t0 = performance.now();
  const ks = (await vm.exec(KALLSYMS_CMD, { timeoutMs: 300_000 })).output;
  const syms = guestSymbols(ks);
  console.log(`[${key}] ${syms.length} guest text symbols read in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { key, cpu: vm.machine.cpu as V86Backend, syms };
}

/** Counters of a nicvisor set-up, read before and after each direction's run. */
interface Snap {
  tx: number;
  rx: number;
  exits: number;
  msi: number;
  dmaReads: number;
  dmaWrites: number;
}

/** The machine's side of a {@link Snap}; `tx` and `rx` come from the NIC. */
function machineSnap(vm: GuestVm, tx: number, rx: number): Snap {
  const e = vm.machine.exits;
  return { tx, rx, exits: e.mmioReads + e.mmioWrites + e.portReads + e.portWrites, msi: e.msi, dmaReads: vm.machine.dmaLog.reads, dmaWrites: vm.machine.dmaLog.writes };
}

/** One direction's per-frame figures between two snaps. */
function perFrame(dir: string, a: Snap, b: Snap): string {
  const tx = (b.tx - a.tx) >>> 0;
  const rx = (b.rx - a.rx) >>> 0;
  const f = tx + rx || NaN;
  const per = (x: number): string => (x / f).toFixed(2);
  return `${dir}: ${tx + rx} frames (${tx} TX, ${rx} RX), per frame ${per(b.exits - a.exits)} exits, ${per(b.msi - a.msi)} MSIs, ${per(b.dmaReads - a.dmaReads)} DMA reads, ${per(b.dmaWrites - a.dmaWrites)} DMA writes`;
}

async function iperfBoth(run: (cmd: string) => Promise<string>, snap?: () => Snap, prof?: Profiling): Promise<{ up: number; down: number; extra: string }> {
  const counts: string[] = [];
  const one = async (dir: "up" | "down"): Promise<number> => {
    if (DIRS !== "both" && DIRS !== dir) return NaN;
    const cmd = `iperf3 -c ${HOST_IP} -t ${SECONDS} -f m${dir === "down" ? " -R" : ""}`;
    const label = dir === "up" ? "guest->host" : "host->guest";
    const s0 = snap?.();
    const count = (): void => void (snap !== undefined && s0 !== undefined && counts.push(perFrame(label, s0, snap())));
    if (prof === undefined || PROFILE_DIR === undefined) {
      const m = mbps(await run(cmd));
      count();
      return m;
    }
    const s = new GuestIpSampler(() => prof.cpu.guestIp(), interruptEntries(prof.syms), (a, n) => prof.cpu.memory.read(a, n));
    s.start();
    const file = join(PROFILE_DIR, `${prof.key}-${dir}.cpuprofile`);
    try {
      return mbps(await withHostProfile(file, () => run(cmd)));
    } finally {
      s.stop();
      count();
      console.log(`[${prof.key} ${dir}] host profile: ${file}\n${topGuestFunctions(s, prof.syms, 30).join("\n")}`);
    }
  };
  const up = await one("up");
  const down = await one("down");
  return { up, down, extra: counts.join("; ") };
}

async function nicvisor(img: Image): Promise<Result> {
  const tap = TapBackend.open({ name: "nvb-a%d", txThread: process.env["TAP_TX_THREAD"] !== "0" });
  plumb(tap.name);
  const t0 = performance.now();
  const vm = await GuestVm.boot({
    kernel: img.kernel,
    initrd: img.initrd,
    append: `${img.append} nv.modules=virtio_pci,virtio_net`,
    platform: (env) => new VirtioNetPlatform(env, { backend: tap }),
    ...(img.kernelElf !== undefined ? { kernelElf: img.kernelElf } : {}),
  });
  try {
    await vm.waitReady(300_000);
    const boot = performance.now() - t0;
    await vm.exec(`ip link set eth0 up && ip addr add ${GUEST_IP}/24 dev eth0`);
    const p = vm.machine.platform as VirtioNetPlatform;
    const prof = await profiling("a", vm);
    // TSO and GSO frames count once
    const snap = (): Snap => machineSnap(vm, p.nic.counters.txFrames, p.nic.counters.rxFrames);
    const r = await iperfBoth(async (c) => (await vm.exec(c, { timeoutMs: (SECONDS + 60) * 1000 })).output, snap, prof);
    return { name: "(a) nicvisor virtio-net on v86", ...r, boot, extra: `frames of up to 64 KiB (TSO/GSO); ${r.extra}` };
  } finally {
    await vm.dispose();
    tap.close();
  }
}

async function nicvisorVf(img: Image): Promise<Result> {
  // With a vnet header, as (a): the NIC hands its TSO packets over whole and cuts the host's GSO
  // frames itself (IGB_TAP_VNET=0 for a TAP without one, where the host kernel does both).
  const tap = TapBackend.open({ name: "nvb-d%d", vnetHdr: process.env["IGB_TAP_VNET"] !== "0", txThread: process.env["TAP_TX_THREAD"] !== "0" });
  plumb(tap.name);
  const t0 = performance.now();
  const vm = await GuestVm.boot({
    kernel: img.kernel,
    initrd: img.initrd,
    append: `${img.append} nv.modules=igbvf`,
    platform: (env) => new IgbVfPlatform(env, { backend: tap }),
    ...(img.kernelElf !== undefined ? { kernelElf: img.kernelElf } : {}),
  });
  try {
    await vm.waitReady(300_000);
    const boot = performance.now() - t0;
    await vm.exec(`ip link set eth0 up && ip addr add ${GUEST_IP}/24 dev eth0 && sleep 3`);
    const p = vm.machine.platform as IgbVfPlatform;
    const regs = p.host.core.regs;
    const prof = await profiling("d", vm);
    // the VF statistics registers are free-running (not clear-on-read); wire-size frames
    const snap = (): Snap => machineSnap(vm, regs.get("PVFGPTC", p.vf), regs.get("PVFGPRC", p.vf));
    const r = await iperfBoth(async (c) => (await vm.exec(c, { timeoutMs: (SECONDS + 60) * 1000 })).output, snap, prof);
    return { name: "(d) nicvisor 82576 VF (igbvf) on v86", ...r, boot, extra: `wire-size frames; ${r.extra}` };
  } finally {
    await vm.dispose();
    tap.close();
  }
}

async function v86Builtin(img: Image): Promise<Result> {
  const a = requireV86Assets();
  const tap = TapBackend.open({ name: "nvb-b%d", vnetHdr: false });
  plumb(tap.name);
  const buf = (u: Uint8Array): ArrayBuffer => u.slice().buffer;
  // The same engine and V8 tiers as nicvisor's machines get, so that a/b compares device models.
  const loader = await sharedEngineLoader(a.wasmPath);
  const t0 = performance.now();
  const emu = new (V86 as unknown as new (o: unknown) => {
    add_listener(e: string, f: (d: unknown) => void): void;
    bus: { send(e: string, d: unknown): void };
    serial0_send(s: string): void;
    destroy(): Promise<void>;
  })({
    wasm_path: a.wasmPath,
    ...(loader !== undefined ? { wasm_fn: loader } : {}),
    memory_size: 256 << 20,
    vga_memory_size: 8 << 20,
    bios: { buffer: buf(readFileSync(a.biosPath)) },
    ...(a.vgaBiosPath !== undefined ? { vga_bios: { buffer: buf(readFileSync(a.vgaBiosPath)) } } : {}),
    bzimage: { buffer: buf(img.kernel) },
    initrd: { buffer: buf(img.initrd) },
    cmdline: `acpi=off cryptomgr.notests noisapnp ${img.append} nv.modules=virtio_pci,virtio_net`,
    net_device: { type: "virtio" },
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    log_level: 0,
  });
  const con = new Console((s) => emu.serial0_send(s));
  emu.add_listener("serial0-output-byte", (b) => con.feed(String.fromCharCode(b as number)));
  emu.add_listener("net0-send", (d) => tap.transmit(new Uint8Array(d as Uint8Array)));
  tap.setReceiver((f) => {
    emu.bus.send("net0-receive", f);
    return true;
  });
  try {
    await con.wait(DEFAULT_READY_MARKER, 0, 300_000);
    const boot = performance.now() - t0;
    await con.exec(`ip link set eth0 up && ip addr add ${GUEST_IP}/24 dev eth0`);
    const { up, down } = await iperfBoth((c) => con.exec(c, (SECONDS + 60) * 1000));
    const r = { up, down };
    return { name: "(b) v86's built-in virtio-net on v86", ...r, boot };
  } finally {
    await emu.destroy().catch(() => undefined);
    tap.close();
  }
}

async function qemu(img: Image): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "nicvisor-iperf-"));
  const ifname = `nvbq${process.pid % 10000}`;
  writeFileSync(join(dir, "k"), img.kernel);
  writeFileSync(join(dir, "i"), img.initrd);
  const t0 = performance.now();
  const q: ChildProcessWithoutNullStreams = spawn("qemu-system-i386", [
    "-M", "pc", "-accel", "tcg", "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
    "-kernel", join(dir, "k"), "-initrd", join(dir, "i"), "-append", `cryptomgr.notests noisapnp ${img.append} nv.modules=virtio_pci,virtio_net`,
    "-netdev", `tap,id=n0,ifname=${ifname},script=no,downscript=no,vhost=off`, "-device", "virtio-net-pci,netdev=n0",
  ]);
  const con = new Console((s) => q.stdin.write(s));
  q.stdout.on("data", (d: Buffer) => con.feed(d.toString("latin1")));
  q.stderr.on("data", (d: Buffer) => con.feed(d.toString("latin1")));
  try {
    await con.wait(DEFAULT_READY_MARKER, 0, 300_000);
    const boot = performance.now() - t0;
    plumb(ifname);
    await con.exec(`ip link set eth0 up && ip addr add ${GUEST_IP}/24 dev eth0`);
    const { up, down } = await iperfBoth((c) => con.exec(c, (SECONDS + 60) * 1000));
    const r = { up, down };
    return { name: "(c) QEMU 7.2 TCG virtio-net-pci, tap vhost=off", ...r, boot };
  } finally {
    q.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const why = tapUnavailableReason();
  if (why !== undefined) return console.log(`SKIPPED: TAP unavailable: ${why}`);
  const img = await testImage();
  if ("missing" in img) return console.log(`SKIPPED: ${img.missing}`);
  sh("ip", ["netns", "add", NS]);
  const server = spawn("ip", ["netns", "exec", NS, "iperf3", "-s", "-B", HOST_IP], { stdio: "ignore" });
  const results: Record<string, Result> = {};
  try {
    const only = process.env["IPERF_ONLY"]; // e.g. IPERF_ONLY=ad runs set-ups (a) and (d) only
    for (const [key, run] of [["a", nicvisor], ["b", v86Builtin], ["c", qemu], ["d", nicvisorVf]] as const) {
      if (only !== undefined && !only.includes(key)) continue;
      try {
        const r = await run(img);
        results[key] = r;
        console.log(`${r.name}: guest->host ${r.up} Mbit/s, host->guest ${r.down} Mbit/s (boot ${(r.boot / 1000).toFixed(1)} s)${r.extra !== undefined ? `; ${r.extra}` : ""}`);
      } catch (e) {
        console.log(`${run.name}: failed: ${(e as Error).message}`);
      }
    }
  } finally {
    server.kill("SIGKILL");
    spawnSync("ip", ["netns", "del", NS]);
  }
  const { a, b, c, d } = results;
  const ratio = (x: number, y: number): string => (Number.isFinite(x / y) ? (x / y).toFixed(2) : "n/a");
  if (a !== undefined && b !== undefined) console.log(`ratio a/b (device model, same CPU engine): guest->host ${ratio(a.up, b.up)}, host->guest ${ratio(a.down, b.down)}`);
  if (a !== undefined && c !== undefined) console.log(`ratio a/c (nicvisor on v86 vs QEMU TCG): guest->host ${ratio(a.up, c.up)}, host->guest ${ratio(a.down, c.down)}`);
  if (a !== undefined && d !== undefined) console.log(`ratio d/a (82576 VF vs virtio-net, same engine and TAP): guest->host ${ratio(d.up, a.up)}, host->guest ${ratio(d.down, a.down)}`);
}

await main();
