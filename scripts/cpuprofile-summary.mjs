// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function, and self time per
// layer of the source tree (src/devices = device models, src/guest = simulated drivers, src/vmm,
// src/pci, node internals / GC / other), so a bench's device time and driver time can be told apart.
//
// With a real guest (bench/iperf.ts IPERF_PROFILE=...) it also splits the time between v86's
// engine (its wasm), the guest code v86 generated (other wasm modules), v86's JS, nicvisor's device
// models, its VMM, the TAP backend (with the native syscalls it makes through koffi), GC and idle.
//
//   node scripts/cpuprofile-summary.mjs /tmp/vfprof/CPU.*.cpuprofile [--top=30]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const top = Number(args.find((a) => a.startsWith("--top="))?.slice(6) ?? 30);
for (const file of args.filter((a) => !a.startsWith("--"))) {
  const p = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
  }
  const fn = new Map();
  const layer = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const url = cf.url ?? "";
    const m = url.match(/\/(src|bench)\/(.*)$/);
    const where = m ? `${m[1]}/${m[2]}` : url === "" ? "" : url.replace(/^.*node_modules\//, "nm/");
    const key = `${cf.functionName || "(anon)"} ${where}:${cf.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    let l = "other (node, GC, idle)";
    if (m) l = m[1] === "bench" ? "bench" : m[2].split("/").slice(0, m[2].startsWith("devices/") || m[2].startsWith("guest/") ? 2 : 1).join("/");
    else if (url.includes("tinybench")) l = "tinybench";
    layer.set(l, (layer.get(l) ?? 0) + us);
    total += us;
  }
  const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5);
  // device models (and the test bed's glue) vs simulated drivers vs the bench loop vs GC, as shares of their sum
  const split = { device: 0, driver: 0, bench: 0, gc: 0 };
  for (const [k, us] of layer) {
    if (k.startsWith("devices") || k === "pci" || k === "vmm") split.device += us;
    else if (k.startsWith("guest")) split.driver += us;
    else if (k === "bench") split.bench += us;
  }
  for (const [k, us] of fn) if (k.startsWith("(garbage collector)")) split.gc += us;
  const sum = split.device + split.driver + split.bench + split.gc;
  console.log(`split: ${Object.entries(split).map(([k, us]) => `${k} ${((100 * us) / sum).toFixed(0)}%`).join(", ")}`);
  console.log(`\n${file}: ${(total / 1000).toFixed(0)} ms sampled`);
  console.log("-- self time by layer");
  for (const [k, us] of [...layer].sort((a, b) => b[1] - a[1])) console.log(`${pct(us)}%  ${k}`);
  // Engine split: native frames (koffi's calls show as `alias`) are charged to their JS caller.
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const part = (id) => {
    for (let q = id; q !== undefined; q = parent.get(q)) {
      const cf = byId.get(q).callFrame;
      const url = cf.url ?? "";
      if (q === id && ["(garbage collector)", "(idle)", "(program)"].includes(cf.functionName)) return cf.functionName;
      if (url === "") continue;
      if (/v86\.wasm/.test(url)) return "v86 engine (wasm)";
      if (url.startsWith("wasm://")) return "v86 generated guest code (wasm)";
      if (url.includes("node_modules/v86")) return "v86 JS";
      if (url.includes("/src/vmm/host/net/") || url.includes("koffi")) return "TAP backend (incl. syscalls)";
      if (url.includes("/src/devices/net/")) return "nicvisor net helpers (segment, checksum, switch)";
      if (url.includes("/src/devices/") || url.includes("/src/pci/")) return "nicvisor device models + PCI";
      if (url.includes("/src/vmm/")) return "nicvisor VMM";
      if (url.includes("/bench/")) return "bench";
      return "node / other JS";
    }
    return "native other";
  };
  const parts = new Map();
  for (const [id, us] of self) {
    const k = part(id);
    parts.set(k, (parts.get(k) ?? 0) + us);
  }
  console.log("-- engine split (self time)");
  for (const [k, us] of [...parts].sort((a, b) => b[1] - a[1])) console.log(`${pct(us)}%  ${k}`);
  console.log(`-- top ${top} functions by self time`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}%  ${k}`);
}
