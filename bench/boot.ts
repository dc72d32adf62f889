/**
 * Boot-to-ready on nicvisor (v86 + nicvisor's platform and ACPI tables) and on QEMU 7.2 TCG
 * (`qemu-system-i386 -M pc` with its own ACPI), same kernel, initramfs and image command line, in
 * one run; then nicvisor's snapshot-restore-to-ready. nicvisor boots the kernel directly (the host
 * decompressed it: `kernelElf`) and, for comparison, also through the bzImage's own decompressor.
 * nicvisor is timed two ways: a fresh `nicvisor run` process per boot (what a user starting a VM
 * waits for, like each QEMU run here), and boots inside one process (what the test harness sees:
 * v86's engine is compiled once per process and every later boot reuses its optimized code).
 * Prints the medians and the ratios. Each machine adds only its platform's own arguments (nicvisor:
 * `acpi_rsdp=` and the memmap reservations; QEMU: none).
 *
 *   node --import tsx bench/boot.ts [runs=3]
 *
 * Needs SeaBIOS, v86, qemu-system-i386 (apt-get install qemu-system-x86) and the test guest image.
 * Wall-clock figures on a shared machine: compare within one run only.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { GuestVm, DEFAULT_READY_MARKER } from "../src/vmm/harness/runner.js";
import { findV86Assets } from "../src/vmm/host/v86-assets.js";
import { DEFAULT_HELPER_NICE } from "../src/vmm/host/threads.js";
import { transparentHugePageMode } from "../src/vmm/host/memory.js";
import { testImage } from "../test/guest/image.js";

const MEM_MIB = 256;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Spawns `cmd` and resolves to the ms until the ready marker appears on its stdout (then kills it). */
function spawnToMarker(cmd: string, args: string[], timeoutMs: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`${what}: no ready marker within ${timeoutMs} ms; tail: ${out.slice(-500)}`));
    }, timeoutMs);
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      if (out.includes(DEFAULT_READY_MARKER)) {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        p.kill("SIGKILL");
        resolve(ms);
      }
    });
    p.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Boots QEMU TCG and resolves to the ms until the ready marker appears on the serial console. */
function qemuBoot(kernel: string, initrd: string, append: string, timeoutMs: number): Promise<number> {
  const args = ["-M", "pc", "-accel", "tcg", "-m", String(MEM_MIB), "-smp", "1", "-kernel", kernel, "-initrd", initrd, "-append", append, "-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none", "-no-reboot"];
  return spawnToMarker("qemu-system-i386", args, timeoutMs, "QEMU");
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const assets = findV86Assets();
  const img = await testImage();
  if ("missing" in assets || "missing" in img) {
    console.log(`SKIPPED: ${"missing" in assets ? assets.missing : "missing" in img ? img.missing : ""}`);
    return;
  }
  // Platform-neutral arguments both get (nicvisor's Machine adds the same two after its ACPI ones).
  const append = `cryptomgr.notests noisapnp ${img.append}`;
  console.log(`image: ${img.source}\ncommand line (both, before platform args): ${append}\nruns: ${runs}`);
  // The host tuning every nicvisor boot here gets by default (docs/vmm.md, "Host tuning").
  const thp = transparentHugePageMode();
  const hugePages = thp === "madvise" || thp === "always" ? "on" : `unavailable (${thp ?? "no THP"})`;
  console.log(`nicvisor engine: one compiled v86.wasm per process, generated guest code on V8's baseline tier, helper threads at nice ${DEFAULT_HELPER_NICE}, guest RAM huge pages ${hugePages}; ${availableParallelism()} CPUs`);
  // 1. Fresh process per boot, as a user's `nicvisor run` starts: node, module loading, v86's wasm
  //    compiled anew (V8 shares compiled wasm only within one process), then the boot.
  const fresh: number[] = [];
  const bin = fileURLToPath(new URL("../dist/cli/bin.js", import.meta.url));
  if (existsSync(bin)) {
    for (let i = 0; i < runs; i++) fresh.push(await spawnToMarker(process.execPath, [bin, "run"], 300_000, "nicvisor run"));
  } else console.log(`no ${bin} (run npm run build): fresh-process boots skipped`);
  // 2. In one process (as the test harness boots): the engine's wasm and the guest code v86
  //    generates are compiled once and reused. Direct boots first, then the decompressing ones:
  //    interleaved, the decompressor's compile work spilled into the next direct boot (5.6 s vs 4 s).
  // Boots once, returns the ms to the ready marker; `ready` runs on the booted VM before disposal.
  const timedBoot = async (direct: boolean, ready?: (vm: GuestVm) => Promise<void>): Promise<number> => {
    const t0 = performance.now();
    const vm = await GuestVm.boot({ kernel: img.kernel, initrd: img.initrd, append: img.append, memMiB: MEM_MIB, ...(direct && img.kernelElf !== undefined ? { kernelElf: img.kernelElf } : {}) });
    try {
      await vm.waitReady(300_000);
      const ms = performance.now() - t0;
      await ready?.(vm);
      return ms;
    } finally {
      await vm.dispose();
    }
  };
  const nv: number[] = [];
  const nvDecomp: number[] = [];
  let snap: Awaited<ReturnType<GuestVm["snapshot"]>> | undefined;
  for (let i = 0; i < runs; i++) {
    nv.push(await timedBoot(true, async (vm) => {
      if (snap !== undefined) return;
      await vm.exec("true");
      snap = await vm.snapshot();
    }));
  }
  for (let i = 0; i < runs; i++) nvDecomp.push(await timedBoot(false));
  const rs: number[] = [];
  for (let i = 0; i < runs && snap !== undefined; i++) {
    const t0 = performance.now();
    const vm = await GuestVm.restore(snap);
    try {
      await vm.exec("true");
      rs.push(performance.now() - t0);
    } finally {
      await vm.dispose();
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "nicvisor-bench-"));
  const q: number[] = [];
  try {
    writeFileSync(join(dir, "k"), img.kernel);
    writeFileSync(join(dir, "i"), img.initrd);
    for (let i = 0; i < runs; i++) q.push(await qemuBoot(join(dir, "k"), join(dir, "i"), append, 300_000));
  } catch (e) {
    console.log(`QEMU: ${(e as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(", ");
  if (fresh.length > 0) console.log(`nicvisor (v86) boot-to-ready ms, fresh process (\`nicvisor run\`, direct boot): [${f(fresh)}] median ${median(fresh).toFixed(0)}`);
  console.log(`nicvisor (v86) boot-to-ready ms, in one process, direct boot: [${f(nv)}] median ${median(nv).toFixed(0)}${img.kernelElf === undefined ? " (no vmlinux: decompressor ran)" : ""}`);
  console.log(`nicvisor (v86) boot-to-ready ms, guest decompresses the bzImage: [${f(nvDecomp)}] median ${median(nvDecomp).toFixed(0)}`);
  console.log(`nicvisor snapshot restore to first command answered ms: [${f(rs)}] median ${median(rs).toFixed(0)}`);
  if (q.length > 0) {
    console.log(`QEMU TCG boot-to-ready ms: [${f(q)}] median ${median(q).toFixed(0)}`);
    if (fresh.length > 0) console.log(`ratio nicvisor (fresh process) / QEMU: ${(median(fresh) / median(q)).toFixed(2)}`);
    console.log(`ratio nicvisor (in one process, direct) / QEMU: ${(median(nv) / median(q)).toFixed(2)}`);
    console.log(`ratio nicvisor (decompressing) / QEMU: ${(median(nvDecomp) / median(q)).toFixed(2)}`);
  }
}

await main();
