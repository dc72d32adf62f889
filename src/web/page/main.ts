/**
 * The page `nicvisor web` serves: the project's Debian guest on v86 with nicvisor's platform, in
 * the browser, and views of what its NIC does. The guest runs in a worker (worker.ts), which posts
 * snapshots of the views' models (`src/web/snapshot.ts`); this file only draws them, and steps
 * through a loaded trace. What the browser needs is injected: the server hands the images and the
 * engine over HTTP (`config.json` names them); timers are the engine's own.
 * @module
 */
import type { AccessEntry, VectorStats, FrameEntry } from "../monitor.js";
import type { PciNode } from "../pci-tree.js";
import type { NicRings, RingView } from "../rings.js";
import { takeSnapshot, type Snapshot } from "../snapshot.js";
import { TraceStepper, type StepView } from "../stepper.js";
import type { FromWorker, PageConfig, SwitchResult, ToWorker } from "./messages.js";

/** What the page exposes for tests and for curious people in the developer console. */
interface PageApi {
  state: "loading" | "booting" | "ready" | "stopped" | "failed";
  /** Page load to the guest's ready marker, in ms. */
  bootMs?: number;
  /** From `Machine.start()` to the ready marker, in ms (measured in the worker). */
  guestBootMs?: number;
  error?: string;
  console(): string;
  switches: SwitchResult[];
  /** Time spent drawing the views, by view, in ms. */
  drawMs: Record<string, number>;
}
const api: PageApi = { state: "loading", console: () => consoleText, switches: [], drawMs: {} };
(globalThis as { nicvisor?: PageApi }).nicvisor = api;

/** Runs `f`, adding its time to `api.drawMs[name]`. */
function timed(name: string, f: () => void): void {
  const t = performance.now();
  f();
  api.drawMs[name] = (api.drawMs[name] ?? 0) + performance.now() - t;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const hex = (v: number, w: number): string => `0x${(v >>> 0).toString(16).padStart(w, "0")}`;
const ms = (ns: number): string => `${(ns / 1e6).toFixed(3)} ms`;

function setStatus(text: string, cls = ""): void {
  const s = $("status");
  s.textContent = text;
  s.className = cls;
}

function download(name: string, bytes: Uint8Array, type: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// ---------------------------------------------------------------------------------------------
// Console: the guest's serial port.

let consoleText = "";
let consolePending = "";
let escape = "";
function serialByte(b: number): void {
  const c = String.fromCharCode(b);
  // Drop terminal escape sequences (colours, cursor moves) and carriage returns.
  if (escape !== "") {
    escape += c;
    if (escape.length > 16 || (escape.length > 1 && /[@-~]/.test(c) && c !== "[")) escape = "";
    return;
  }
  if (b === 0x1b) {
    escape = c;
    return;
  }
  if (b === 0x0d || b === 0x07) return;
  if (b === 0x08) {
    if (consolePending.length > 0) consolePending = consolePending.slice(0, -1);
    else {
      // Already drawn: take the character back from the console's text.
      flushConsole();
      consoleText = consoleText.slice(0, -1);
      const last = $("console").lastChild;
      if (last !== null && last.textContent !== null && last.textContent.length > 0) last.textContent = last.textContent.slice(0, -1);
    }
    return;
  }
  consolePending += c;
}
function flushConsole(): void {
  if (consolePending === "") return;
  const el = $("console");
  const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 30;
  // Appending keeps the browser's layout work to the new text; the console is cut back rarely.
  el.append(consolePending);
  consoleText += consolePending;
  consolePending = "";
  if (consoleText.length > 400_000) {
    consoleText = consoleText.slice(-300_000);
    el.textContent = consoleText;
  }
  if (atEnd) el.scrollTop = el.scrollHeight;
}

const KEYS: Record<string, string> = { Enter: "\r", Backspace: "\x7f", Tab: "\t", Escape: "\x1b", ArrowUp: "\x1b[A", ArrowDown: "\x1b[B", ArrowRight: "\x1b[C", ArrowLeft: "\x1b[D", Delete: "\x1b[3~", Home: "\x1b[H", End: "\x1b[F" };
function wireConsole(send: (s: string) => void): void {
  const el = $("console");
  el.addEventListener("keydown", (e) => {
    let s: string | undefined;
    if (e.ctrlKey && e.key.length === 1 && /[a-z@\[\]\\^_]/i.test(e.key)) s = String.fromCharCode(e.key.toUpperCase().charCodeAt(0) & 0x1f);
    else if (!e.ctrlKey && !e.metaKey && !e.altKey && e.key.length === 1) s = e.key;
    else s = KEYS[e.key];
    if (s === undefined) return;
    e.preventDefault();
    send(s);
  });
  el.addEventListener("paste", (e) => {
    e.preventDefault();
    send((e.clipboardData?.getData("text") ?? "").replace(/\r?\n/g, "\r"));
  });
}

// ---------------------------------------------------------------------------------------------
// Views.


// ---------------------------------------------------------------------------------------------
// Views.

function renderTree(nodes: PciNode[]): string {
  const li = (n: PciNode): string => {
    const bars = n.bars.map((b) => `BAR${b.index} ${b.kind} ${b.size >= 1024 ? `${b.size >> 10}K` : b.size} ${b.address !== undefined ? `@ ${hex(b.address, b.kind === "io" ? 4 : 8)}` : "(not decoded)"}`).join(", ");
    const slot = n.slot !== undefined ? ` · slot ${n.slot.number} ${n.slot.present ? "occupied" : "empty"}${n.slot.powered ? "" : ", power off"}` : "";
    const buses = n.buses !== undefined ? ` · buses ${n.buses[0]}-${n.buses[1]}` : "";
    return `<li><div class="fn${n.isVf ? " vf" : ""}" data-bdf="${n.bdf}" data-vf="${n.isVf}" data-label="${esc(n.label)}"><span class="bdf mono">${n.bdf}</span> ${esc(n.className)}: ${esc(n.label)} <span class="mono" style="color:var(--dim)">[${n.vendorId.toString(16).padStart(4, "0")}:${n.deviceId.toString(16).padStart(4, "0")}]</span>${buses}${slot}
      ${bars !== "" ? `<div class="bars">${bars}</div>` : ""}${n.caps.length > 0 ? `<div class="caps">${esc(n.caps.join(" · "))}</div>` : ""}</div>
      ${n.children.length > 0 ? `<ul>${n.children.map(li).join("")}</ul>` : ""}</li>`;
  };
  return `<ul class="tree">${nodes.map(li).join("")}</ul>`;
}

function drawRing(c: HTMLCanvasElement, r: RingView): void {
  const w = (c.width = c.clientWidth || 400);
  const h = (c.height = 14);
  const g = c.getContext("2d")!;
  g.clearRect(0, 0, w, h);
  if (r.size === 0) return;
  const cell = w / r.size;
  const style = getComputedStyle(document.body);
  // Which slots the device owns: 82576 head..tail; virtio split: the chains between used and avail
  // are the device's (drawn from the used index, one slot per chain).
  const start = r.layout === "igb" ? r.deviceIndex : (r.usedIndex ?? 0) % r.size;
  const owned = r.deviceOwned ?? 0;
  g.fillStyle = style.getPropertyValue("--drv");
  g.fillRect(0, 0, w, h);
  g.fillStyle = style.getPropertyValue("--dev");
  for (let i = 0; i < owned; i++) g.fillRect(((start + i) % r.size) * cell, 0, Math.max(1, cell - (cell > 3 ? 1 : 0)), h);
  g.fillStyle = "#fff";
  g.fillRect((r.deviceIndex % r.size) * cell, 0, 2, h);
}

function renderRings(nics: NicRings[]): void {
  const el = $("rings");
  const key = nics.map((n) => `${n.nic}:${n.rings.map((r) => r.name).join(",")}`).join("|");
  if (el.dataset["key"] !== key) {
    el.dataset["key"] = key;
    el.innerHTML =
      nics.length === 0 || nics.every((n) => n.rings.length === 0)
        ? `<div style="color:var(--dim)">no queue enabled yet</div>`
        : nics.map((n, i) => `<div><b>${esc(n.nic)}</b>${n.rings.map((r, j) => `<div class="ring" data-at="${i}/${j}" data-ring="${esc(r.name)}"><div class="nums mono"></div><canvas></canvas></div>`).join("")}</div>`).join("");
  }
  // Two NICs may have rings of the same name (the failover VF's two backings): found by position.
  for (const [i, n] of nics.entries()) {
    for (const [j, r] of n.rings.entries()) {
      const box = el.querySelector<HTMLElement>(`[data-at="${i}/${j}"]`);
      if (box === null) continue;
      box.dataset["deviceIndex"] = String(r.deviceIndex);
      box.dataset["driverIndex"] = String(r.driverIndex ?? "");
      box.dataset["usedIndex"] = String(r.usedIndex ?? "");
      const parts = [`${r.name}`, `size ${r.size}`];
      if (r.layout === "igb") parts.push(`head ${r.deviceIndex}`, `tail ${r.driverIndex}`, `device owns ${r.deviceOwned}`);
      else if (r.layout === "split") parts.push(`avail.idx ${r.driverIndex ?? "?"}`, `next avail ${r.deviceIndex}`, `used.idx ${r.usedIndex}`, `device owns ${r.deviceOwned ?? "?"}`);
      else parts.push(`next avail ${r.deviceIndex}`, `next used ${r.usedIndex}`, `wraps ${r.wraps?.map((x) => (x ? 1 : 0)).join("/")}`);
      if (r.pool !== undefined) parts.push(`pool ${r.pool}`);
      box.querySelector(".nums")!.textContent = parts.join(" · ");
      drawRing(box.querySelector("canvas")!, r);
    }
  }
}


function renderIrq(v: VectorStats[]): void {
  const el = $("irq");
  if (v.length === 0) {
    el.innerHTML = `<span style="color:var(--dim)">none yet</span>`;
    return;
  }
  el.innerHTML = `<table><tr><th>source</th><th>total</th><th>per second</th></tr>${v.map((x, i) => `<tr class="irq" data-source="${esc(x.label)}" data-total="${x.total}"><td>${esc(x.label)}</td><td>${x.total}</td><td><canvas data-i="${i}"></canvas></td></tr>`).join("")}</table>`;
  el.querySelectorAll<HTMLCanvasElement>("canvas").forEach((c) => {
    const b = v[Number(c.dataset["i"])]!.buckets;
    const w = (c.width = 180);
    const h = (c.height = 18);
    const g = c.getContext("2d")!;
    const max = Math.max(1, ...b);
    g.fillStyle = "#40a0e0";
    const bw = w / 60;
    b.forEach((n, i) => {
      const bh = Math.max(n > 0 ? 1 : 0, (n / max) * h);
      g.fillRect(w - (b.length - i) * bw, h - bh, Math.max(1, bw - 0.5), bh);
    });
  });
}

let logFns = "";
function renderLog(all: AccessEntry[]): void {
  const fnSel = $<HTMLSelectElement>("log-fn");
  const fns = [...new Set(all.map((a) => a.fn).filter((f) => f !== ""))].sort();
  if (fns.join() !== logFns) {
    const cur = fnSel.value;
    logFns = fns.join();
    fnSel.innerHTML = `<option value="">every function</option>${fns.map((f) => `<option${f === cur ? " selected" : ""}>${f}</option>`).join("")}`;
  }
  const fn = fnSel.value;
  const q = $<HTMLInputElement>("log-filter").value.trim().toLowerCase();
  const reads = $<HTMLInputElement>("log-reads").checked;
  const rows: AccessEntry[] = [];
  for (let i = all.length - 1; i >= 0 && rows.length < 150; i--) {
    const a = all[i]!;
    if ((fn === "" || a.fn === fn) && (reads || a.kind.endsWith("write")) && (q === "" || (a.name ?? a.where).toLowerCase().includes(q))) rows.push(a);
  }
  $("log").innerHTML = `<table><tr><th>#</th><th>guest ms</th><th>access</th><th>function</th><th>where</th><th>register</th><th>value</th><th>bits</th></tr>${rows
    .map((a) => `<tr class="${a.kind.endsWith("write") ? "w" : ""}"><td>${a.index}</td><td>${(a.t / 1e6).toFixed(2)}</td><td>${a.kind}</td><td>${a.fn}</td><td>${esc(a.where)}</td><td>${esc(a.name ?? "")}</td><td>${hex(a.value, a.size * 2)}</td><td>${esc(a.bits ?? "")}</td></tr>`)
    .join("")}</table>`;
}

function renderFrames(frames: FrameEntry[]): void {
  $("frames").innerHTML = `<table><tr><th>#</th><th>guest ms</th><th></th><th>frame</th></tr>${frames
    .slice()
    .reverse()
    .map((f) => `<tr data-dir="${f.dir}"><td>${f.index}</td><td>${(f.t / 1e6).toFixed(2)}</td><td>${f.dir === "tx" ? "guest →" : "→ guest"}${f.accepted === false ? ' <span class="drop">dropped</span>' : ""}</td><td>${esc(f.summary)}</td></tr>`)
    .join("")}</table>`;
}

function renderFailover(): void {
  const f = shown?.failover;
  if (f === undefined) return;
  $("failover").classList.remove("hidden");
  $("failover-state").textContent = `serving: ${f.active} · ${f.switches} switches (${f.failures} failed) · worst blackout ${ms(f.worstBlackoutWallNs)} · frames queued ${f.framesQueued}, lost ${f.framesDropped}`;
  $("switch").textContent = `Switch to ${f.active === "passthrough" ? "emulation" : "pass-through"}`;
  $("timeline").innerHTML = api.switches
    .slice()
    .reverse()
    .map((s) => `<div>${(s.t / 1000).toFixed(2)} s: ${s.ok ? `${s.from} → ${s.to}, blackout ${s.blackoutUs!.toFixed(0)} µs` : `failed: ${esc(s.error ?? "")}`}</div>`)
    .join("");
}

// ---------------------------------------------------------------------------------------------
// Drawing: the live guest's newest snapshot, or the trace being stepped through.

let live: Snapshot | undefined;
let shown: Snapshot | undefined;
let stepped: { stepper: TraceStepper; view: StepView } | undefined;
let drawnKey = "";

function draw(): void {
  timed("console", flushConsole);
  const s = stepped !== undefined ? takeSnapshot(stepped.view.monitor, stepped.view.platform, stepped.view.ram.read) : live;
  if (s === undefined) return;
  shown = s;
  // Tables change only with new events or a new filter.
  const key = `${s.events}/${$<HTMLSelectElement>("log-fn").value}/${$<HTMLInputElement>("log-filter").value}/${$<HTMLInputElement>("log-reads").checked}/${stepped?.view.position ?? "live"}`;
  if (key === drawnKey) return;
  drawnKey = key;
  timed("pci", () => {
    const tree = renderTree(s.tree);
    const el = $("pci-tree");
    if (el.dataset["html"] !== tree) {
      el.innerHTML = tree;
      el.dataset["html"] = tree;
    }
  });
  timed("rings", () => renderRings(s.rings));
  timed("irq", () => renderIrq(s.interrupts));
  timed("log", () => renderLog(s.accesses));
  timed("frames", () => renderFrames(s.frames));
  renderFailover();
  if (stepped !== undefined) {
    const v = stepped.view;
    const e = stepped.stepper.trace.events[v.position];
    $("step-at").textContent = `event ${v.position} of ${stepped.stepper.trace.events.length}${e !== undefined ? ` · next: ${e.kind}` : " · end"}${v.difference !== undefined ? ` · differs at ${v.difference.index}: ${v.difference.where}` : ""}`;
    $<HTMLInputElement>("trace-pos").value = String(v.position);
  }
}

function wireTrace(): void {
  const seek = (p: number): void => {
    if (stepped === undefined) return;
    stepped.view = stepped.stepper.seek(p);
    draw();
  };
  $<HTMLInputElement>("trace-file").onchange = async (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f === undefined) return;
    try {
      let bytes = new Uint8Array(await f.arrayBuffer());
      if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = new Uint8Array(await new Response(new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
      const stepper = new TraceStepper(bytes);
      stepped = { stepper, view: stepper.seek(0) };
      $("trace-steps").classList.remove("hidden");
      $<HTMLInputElement>("trace-pos").max = String(stepper.trace.events.length);
      draw();
    } catch (e) {
      setStatus(`${f.name}: ${(e as Error).message}`, "failed");
    }
  };
  $("step-first").onclick = () => seek(0);
  $("step-last").onclick = () => seek(Infinity);
  $("step-fwd").onclick = () => stepped !== undefined && seek(stepped.stepper.next(stepped.view.position));
  $("step-back").onclick = () => stepped !== undefined && seek(stepped.stepper.previous(stepped.view.position));
  $<HTMLInputElement>("trace-pos").onchange = (e) => seek(Number((e.target as HTMLInputElement).value));
  $("trace-live").onclick = () => {
    stepped = undefined;
    $("trace-steps").classList.add("hidden");
    $<HTMLInputElement>("trace-file").value = "";
    drawnKey = "";
    draw();
  };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const config = (await (await fetch("config.json")).json()) as PageConfig;
  $("nic").textContent = `--net ${config.netName} · ${config.memMiB} MiB`;
  // Measurement knob: ?watch=0 boots without the recorder (what watching costs the guest).
  const watch = new URLSearchParams(location.search).get("watch") !== "0";
  // v86 yields between slices through scheduler.postTask when its location names
  // "use-scheduling-api" (else a message round trip through a nested worker for every slice).
  const worker = new Worker(new URL(`worker.js${new URLSearchParams(location.search).get("yield") === "worker" ? "" : "?use-scheduling-api"}`, location.href), { type: "module" });
  const send = (m: ToWorker): void => worker.postMessage(m);
  let waiting = false;
  worker.onmessage = (ev: MessageEvent<FromWorker>) => {
    const m = ev.data;
    switch (m.type) {
      case "status":
        api.state = m.state;
        if (m.state === "ready") {
          api.bootMs = performance.now() - t0;
          if (m.guestBootMs !== undefined) api.guestBootMs = m.guestBootMs;
          setStatus(`${m.text} (${(api.bootMs / 1000).toFixed(1)} s from page load)`, "ready");
        } else setStatus(m.text, m.state === "failed" || m.state === "stopped" ? "failed" : "");
        if (m.state === "failed") api.error = m.text;
        if (m.traceable === true) $<HTMLButtonElement>("trace-download").disabled = false;
        break;
      case "serial":
        for (let i = 0; i < m.data.length; i++) serialByte(m.data.charCodeAt(i));
        break;
      case "snapshot":
        waiting = false;
        if (m.snapshot !== undefined) live = m.snapshot;
        break;
      case "switched":
        api.switches.push(m.result);
        drawnKey = "";
        break;
      case "file":
        if (m.name === "trace") download(`nicvisor-${config.netName}.nvtrace`, m.bytes, "application/octet-stream");
        else download(`nicvisor-${config.netName.replace(/\W/g, "-")}.pcap`, m.bytes, "application/vnd.tcpdump.pcap");
        break;
    }
  };
  worker.onerror = (e) => {
    api.state = "failed";
    api.error = e.message;
    setStatus(`failed: ${e.message}`, "failed");
  };
  wireConsole((s) => send({ type: "serial", data: s }));
  wireTrace();
  $("trace-download").onclick = () => send({ type: "trace" });
  $("pcap").onclick = () => (stepped !== undefined ? download("nicvisor-trace.pcap", stepped.view.monitor.pcap(), "application/vnd.tcpdump.pcap") : send({ type: "pcap" }));
  $("switch").onclick = () => send({ type: "switch", t: performance.now() });
  send({ type: "start", config, base: location.href, watch });
  api.state = "booting";
  setInterval(() => {
    if (!waiting && stepped === undefined) {
      waiting = true;
      send({ type: "snapshot", known: live?.events ?? -1 });
    }
    draw();
  }, 300);
  $("console").focus();
}

main().catch((e: Error) => {
  api.state = "failed";
  api.error = e.message;
  setStatus(`failed: ${e.message}`, "failed");
  console.error(e);
});
