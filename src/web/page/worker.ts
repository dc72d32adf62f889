/**
 * The guest's worker: fetches the images, boots v86 with nicvisor's platform watched by a
 * {@link NicMonitor}, and answers the page (see messages.ts). v86 runs here, off the page's
 * thread: drawing a 150-row table is the page's business and never the guest's time.
 * @module
 */
import { Machine } from "../../vmm/machine.js";
import { FailoverVfPlatform } from "../../vmm/platforms.js";
import { buildTracePlatform } from "../../trace/platform.js";
import type { PlatformBus, PlatformEnv } from "../../vmm/machine-platform.js";
import { NicMonitor } from "../monitor.js";
import { watchedPlatform, type WatchedPlatform } from "../platform.js";
import { takeSnapshot } from "../snapshot.js";
import type { FromWorker, PageConfig, ToWorker } from "./messages.js";

const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);

let machine: Machine | undefined;
let monitor: NicMonitor | undefined;
let watched: WatchedPlatform | undefined;

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** The same platform without the recorder (`?watch=0`): to measure what watching costs. */
function unwatched(cfg: PageConfig, w: WatchedPlatform): (env: PlatformEnv) => PlatformBus {
  return (env) => (cfg.net.kind === "vf-failover" ? new FailoverVfPlatform(env) : buildTracePlatform(w.recorder.header.platform, env));
}

async function start(cfg: PageConfig, base: string, watch: boolean): Promise<void> {
  const url = (p: string): string => new URL(p, base).href;
  const f = cfg.files;
  post({ type: "status", state: "booting", text: "fetching the guest image" });
  const [bios, vgaBios, kernel, initrd, vmlinux] = await Promise.all([
    fetchBytes(url(f.bios)),
    f.vgaBios !== undefined ? fetchBytes(url(f.vgaBios)) : undefined,
    fetchBytes(url(f.kernel)),
    fetchBytes(url(f.initrd)),
    f.vmlinux !== undefined ? fetchBytes(url(f.vmlinux)) : undefined,
  ]);
  const mon = new NicMonitor({ root: () => w.platform()?.root });
  const w = watchedPlatform(cfg.net, { nicvisor: cfg.nicvisor, ramBytes: cfg.memMiB << 20, onEvent: mon.onEvent, log: (m) => console.warn(`nicvisor: ${m}`) });
  monitor = mon;
  watched = w;
  post({ type: "status", state: "booting", text: "starting v86", traceable: w.traceable && watch });
  const m = await Machine.create({
    bios,
    ...(vgaBios !== undefined ? { vgaBios } : {}),
    kernel,
    initrd,
    ...(vmlinux !== undefined ? { kernelElf: vmlinux } : {}),
    append: cfg.append,
    memMiB: cfg.memMiB,
    engine: { wasmPath: url(f.wasm), v86Version: cfg.v86Version },
    platform: watch ? w.factory : unwatched(cfg, w),
  });
  machine = m;
  // Serial bytes go to the page in batches; the ready marker ends a line.
  let out = "";
  let line = "";
  let ready = false;
  let tStart = 0;
  m.onSerial((b) => {
    const c = String.fromCharCode(b);
    out += c;
    if (ready) return;
    if (b !== 0x0a) line += c;
    else {
      if (line.includes(cfg.readyMarker)) {
        ready = true;
        const guestBootMs = performance.now() - tStart;
        post({ type: "status", state: "ready", text: `ready: booted in ${(guestBootMs / 1000).toFixed(1)} s`, guestBootMs });
      }
      line = "";
    }
  });
  setInterval(() => {
    if (out === "") return;
    post({ type: "serial", data: out });
    out = "";
  }, 50);
  m.onStop((r) => post({ type: "status", state: "stopped", text: `guest stopped: ${r.kind}${"detail" in r ? `: ${r.detail}` : ""}` }));
  post({ type: "status", state: "booting", text: "booting" });
  tStart = performance.now();
  await m.start();
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  switch (msg.type) {
    case "start":
      start(msg.config, msg.base, msg.watch).catch((e: Error) => post({ type: "status", state: "failed", text: `failed: ${e.message}` }));
      break;
    case "serial":
      machine?.cpu.serialSend(msg.data);
      break;
    case "snapshot": {
      const m = machine;
      const snap = monitor !== undefined && m !== undefined && monitor.events !== msg.known ? takeSnapshot(monitor, watched?.platform(), (a, n) => m.dma.read(a, n)) : undefined;
      post({ type: "snapshot", snapshot: snap });
      break;
    }
    case "switch": {
      const p = watched?.platform();
      if (!(p instanceof FailoverVfPlatform)) break;
      const r = p.failover.switchTo(p.failover.active === "passthrough" ? "emulated" : "passthrough");
      post({ type: "switched", result: r.ok ? { ok: true, from: r.from, to: r.to, blackoutUs: r.blackoutWallNs / 1e3, t: msg.t } : { ok: false, error: r.error.message, t: msg.t } });
      break;
    }
    case "trace":
    case "pcap": {
      const bytes = msg.type === "trace" ? (watched?.recorder.snapshot() ?? new Uint8Array(0)) : (monitor?.pcap() ?? new Uint8Array(0));
      post({ type: "file", name: msg.type, bytes }, [bytes.buffer]);
      break;
    }
  }
};
