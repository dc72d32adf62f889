/**
 * `nicvisor guest-image`: builds the test guest from Debian packages only: the i386
 * `linux-image-6.1.0-*-686` kernel, busybox-static, and i386 pciutils, ethtool, iproute2 and iperf3
 * with exactly the shared libraries their ELF files need, plus the NIC modules (virtio_pci,
 * virtio_net, failover, net_failover, igb, igbvf, pci-pf-stub, uio_pci_generic) and the network
 * stacking modules (8021q, bridge, bonding, veth, macvlan) with their dependencies, a modules.dep
 * and a modules.alias written as depmod would, and a hotplug helper that loads a new device's
 * driver by its modalias, as udev does on Debian (see ./init.ts).
 *
 * It needs root and apt on a Debian 12 host: `dpkg --add-architecture i386`, `apt-get update`,
 * `apt-get download`, `dpkg -x`; nothing else from the network. The result is cached under
 * `.cache/guest/<key>/`, where the key hashes the exact package files apt would fetch and this
 * builder's own inputs, so it is rebuilt only when one of them changes.
 * @module
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { newc, type CpioEntry } from "./cpio.js";
import { elfDeps } from "./elf.js";
import { AptCommandError, GuestImageError } from "./errors.js";
import { moduleClosure } from "./modules.js";
import { HOTPLUG_HELPER, HOTPLUG_SCRIPT, INIT, SHELL_RC, shellRc } from "./init.js";
import { bzImageSetupSize } from "../../direct-boot.js";

/** A built image. */
export interface GuestImage {
  /** Path of the bzImage. */
  kernel: string;
  /** Path of the initramfs (uncompressed newc cpio). */
  initrd: string;
  kernelVersion: string;
  /** Kernel command line fragments the image needs (the VMM adds its platform's own). */
  cmdline: string[];
  /**
   * Path of the bzImage's payload decompressed on the host (`vmlinux`, ELF), for direct boot
   * (`kernelElf`), which spares the guest its own decompressor. Absent when the payload's
   * compression is one the host cannot undo (only xz and gzip are handled).
   */
  vmlinux?: string;
}

/**
 * The decompressed kernel (vmlinux ELF) inside a bzImage, or undefined when the payload is neither
 * xz (decompressed with the host's `xz`) nor gzip. Uses the setup header's payload_offset and
 * payload_length (boot protocol 2.08+).
 */
export function extractVmlinux(bz: Uint8Array): Uint8Array | undefined {
  const setup = bzImageSetupSize(bz);
  if (setup === undefined) return undefined;
  const v = new DataView(bz.buffer, bz.byteOffset, bz.byteLength);
  const start = setup + v.getUint32(0x248, true);
  const payload = bz.subarray(start, start + v.getUint32(0x24c, true));
  let elf: Uint8Array | undefined;
  if (payload[0] === 0xfd && payload[1] === 0x37 && payload[2] === 0x7a && payload[3] === 0x58) {
    const r = spawnSync("xz", ["-dc", "--single-stream"], { input: payload, maxBuffer: 256 << 20 });
    if (r.status !== 0 || r.stdout.length === 0) return undefined;
    elf = new Uint8Array(r.stdout);
  } else if (payload[0] === 0x1f && payload[1] === 0x8b) {
    try {
      elf = new Uint8Array(gunzipSync(payload.subarray(0, payload.length - 4)));
    } catch {
      return undefined;
    }
  }
  if (elf === undefined || elf[0] !== 0x7f || elf[1] !== 0x45) return undefined;
  return elf;
}

/**
 * Kernel arguments for a fast boot under an emulated CPU: console on the first serial port, no
 * crypto self-tests (3.75 s here) and no ISA PnP probing.
 */
export const defaultKernelArgs: readonly string[] = ["console=ttyS0", "quiet", "cryptomgr.notests", "noisapnp"];

/** Tools in the image, as Debian i386 packages. */
const TOOL_PACKAGES = ["pciutils", "ethtool", "iproute2", "iperf3"];
/** Architecture-independent data packages. */
const DATA_PACKAGES = ["pci.ids"];
/** Executables copied from the tool packages (found under any bin/sbin directory). */
const TOOLS = ["lspci", "setpci", "ethtool", "ip", "iperf3"];
/** Kernel modules in the image (with their dependencies). */
export const GUEST_MODULES: readonly string[] = [
  "virtio_pci", "virtio_net", "failover", "net_failover", "igb", "igbvf", "e1000e", "pci-pf-stub", "uio_pci_generic",
  "8021q", "bridge", "bonding", "veth", "macvlan",
];
/** Bumped when the builder's output changes for the same packages. */
const BUILDER_VERSION = 5;

/** Options of {@link buildGuestImage}. */
export interface BuildOptions {
  /** Cache directory (default `<repo>/.cache/guest`). */
  cacheDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Rebuild even if the cache is current. */
  force?: boolean;
}

function repoCache(): string {
  return fileURLToPath(new URL("../../../../.cache/guest/", import.meta.url));
}

/** Runs an apt/dpkg command; returns its stdout, or throws {@link AptCommandError} unless `allowFail`. */
function run(cmd: string, args: string[], opts: { cwd?: string; allowFail?: boolean } = {}): string {
  return runFull(cmd, args, opts).stdout;
}

function runFull(cmd: string, args: string[], opts: { cwd?: string; allowFail?: boolean } = {}): { stdout: string; error: AptCommandError | undefined } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: "utf8", maxBuffer: 64 << 20, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.error !== undefined) throw new AptCommandError(`${cmd} ${args.join(" ")}`, null, r.error.message);
  let error: AptCommandError | undefined;
  if (r.status !== 0) {
    const tail = (r.stderr || r.stdout).trim().split("\n").slice(-8).join("\n");
    error = new AptCommandError(`${cmd} ${args.join(" ")}`, r.status, tail);
    if (opts.allowFail !== true) throw error;
  }
  return { stdout: r.stdout, error };
}

function haveCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/** Why an image cannot be built here, if it cannot. */
export async function canBuildGuestImage(opts: { cacheDir?: string } = {}): Promise<{ ok: true } | { ok: false; reason: string }> {
  const cache = opts.cacheDir ?? repoCache();
  if (readImage(join(cache, "current.json")) !== undefined) return { ok: true };
  if (process.getuid?.() !== 0) return { ok: false, reason: "building the guest image needs root (dpkg --add-architecture, apt-get update)" };
  for (const c of ["apt-get", "apt-cache", "dpkg"]) if (!haveCommand(c)) return { ok: false, reason: `${c} not found: the guest image is built from Debian packages` };
  return { ok: true };
}

function ensureI386(log: (l: string) => void): void {
  const archs = run("dpkg", ["--print-foreign-architectures"]).split(/\s+/);
  const probe = (): boolean => {
    const policy = run("apt-cache", ["policy", "busybox-static:i386"], { allowFail: true });
    return policy.includes("Candidate:") && !policy.includes("Candidate: (none)");
  };
  if (archs.includes("i386") && probe()) return;
  if (process.getuid?.() !== 0) throw new GuestImageError("not-root", "the i386 architecture is not set up and this is not root");
  if (!archs.includes("i386")) {
    log("adding the i386 architecture to dpkg");
    run("dpkg", ["--add-architecture", "i386"]);
  }
  log("apt-get update (i386 package lists)");
  // A mirror mid-sync once failed one list (bookworm-security); main is enough, so go on if the packages resolve.
  const update = runFull("apt-get", ["update", "-qq"], { allowFail: true });
  if (update.error !== undefined) log(`apt-get update reported an error; going on if the packages resolve:\n${update.error.stderrTail}`);
  if (!probe()) {
    throw update.error ?? new GuestImageError("apt", "apt has no i386 packages after 'apt-get update' (is the Debian mirror reachable?)");
  }
}

function kernelPackage(): string {
  const out = run("apt-cache", ["search", "--names-only", "^linux-image-6\\.1\\.0-[0-9]+-686$"]);
  const names = out.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => /^linux-image-6\.1\.0-\d+-686$/.test(n));
  if (names.length === 0) throw new GuestImageError("no-kernel", "no linux-image-6.1.0-*-686 package found (Debian bookworm i386)");
  names.sort((a, b) => Number(/-(\d+)-686$/.exec(a)![1]) - Number(/-(\d+)-686$/.exec(b)![1]));
  return names[names.length - 1]!;
}

/** The i386 packages to download: kernel, busybox, the tools and the libraries they depend on. */
function packageSet(kernel: string): string[] {
  const tools = TOOL_PACKAGES.map((p) => `${p}:i386`);
  const out = run("apt-cache", [
    "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", ...tools,
  ]);
  const libs = new Set<string>();
  for (const line of out.split("\n")) {
    const name = line.trim().replace(/^(Pre)?Depends:\s*/, "").replace(/^\|/, "");
    if (/^(lib|zlib)[a-z0-9.+-]+:i386$/.test(name) && !/-dev:i386$/.test(name)) libs.add(name);
  }
  return [`${kernel}:i386`, "busybox-static:i386", ...tools, ...DATA_PACKAGES, ...[...libs].sort()];
}

function sha(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function findFile(root: string, dirs: readonly string[], name: string): string | undefined {
  for (const d of dirs) {
    const p = join(root, d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** `<cache>/lookup.json`: which image the last resolution chose, and under what apt state. */
interface CacheLookup {
  version: 1;
  /** {@link builderKey} at the time. */
  builder: string;
  /** {@link aptFingerprint} at the time. */
  apt: string;
  /** The image's directory under the cache. */
  dir: string;
}

function readLookup(path: string): CacheLookup | undefined {
  try {
    const j = JSON.parse(readFileSync(path, "utf8")) as Partial<CacheLookup>;
    if (j.version !== 1 || typeof j.builder !== "string" || typeof j.apt !== "string" || typeof j.dir !== "string" || !/^[0-9a-f]{16}$/.test(j.dir)) return undefined;
    return j as CacheLookup;
  } catch {
    return undefined;
  }
}

/** A manifest (image.json or current.json) whose files still exist, or undefined. */
function readImage(path: string): GuestImage | undefined {
  try {
    const j = JSON.parse(readFileSync(path, "utf8")) as Partial<GuestImage>;
    if (typeof j.kernel !== "string" || typeof j.initrd !== "string" || typeof j.kernelVersion !== "string" || !Array.isArray(j.cmdline)) return undefined;
    if (!j.cmdline.every((a) => typeof a === "string") || !existsSync(j.kernel) || !existsSync(j.initrd)) return undefined;
    const img: GuestImage = { kernel: j.kernel, initrd: j.initrd, kernelVersion: j.kernelVersion, cmdline: j.cmdline };
    if (typeof j.vmlinux === "string" && existsSync(j.vmlinux)) img.vmlinux = j.vmlinux;
    return img;
  } catch {
    return undefined;
  }
}

/** Hash of everything of the builder's own that shapes the image. */
function builderKey(): string {
  return sha(JSON.stringify({ BUILDER_VERSION, INIT, HOTPLUG_SCRIPT, SHELL: shellRc(TOOLS), GUEST_MODULES, TOOLS, TOOL_PACKAGES, DATA_PACKAGES, defaultKernelArgs })).slice(0, 16);
}

/**
 * A hash of the apt state that decides which package versions apt picks: the downloaded lists
 * (name, size, mtime), the sources and dpkg's architectures.
 */
function aptFingerprint(): string {
  const h = createHash("sha256");
  for (const dir of ["/var/lib/apt/lists", "/etc/apt/sources.list.d"]) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      if (n === "lock") continue;
      try {
        const st = statSync(join(dir, n));
        if (st.isFile()) h.update(`${dir}/${n}\0${st.size}\0${st.mtimeMs}\n`);
      } catch {
        // Gone between readdir and stat: apt is updating; the next call sees the new state.
      }
    }
  }
  for (const f of ["/etc/apt/sources.list", "/var/lib/dpkg/arch"]) {
    try {
      h.update(f).update(readFileSync(f));
    } catch {
      h.update(`${f} absent`);
    }
  }
  return h.digest("hex");
}

const LIB_DIRS = ["lib/i386-linux-gnu", "usr/lib/i386-linux-gnu", "lib", "usr/lib"];
const BIN_DIRS = ["usr/bin", "usr/sbin", "bin", "sbin"];

/**
 * Builds (or finds in the cache) the guest image.
 * @example
 * ```ts
 * const img = await buildGuestImage({ log: console.log });
 * const vm = await GuestVm.boot({ kernel: readFileSync(img.kernel), initrd: readFileSync(img.initrd), append: img.cmdline.join(" ") });
 * ```
 */
export async function buildGuestImage(opts: BuildOptions = {}): Promise<GuestImage> {
  const log = opts.log ?? (() => {});
  const cache = opts.cacheDir ?? repoCache();
  const current = join(cache, "current.json");
  const canApt = haveCommand("apt-get") && haveCommand("dpkg");
  if (!canApt || process.getuid?.() !== 0) {
    // Without apt as root, a cached image is still usable.
    const cached = readImage(current);
    if (cached !== undefined) return cached;
    throw canApt
      ? new GuestImageError("not-root", "building the guest image needs root (dpkg --add-architecture, apt-get update)")
      : new GuestImageError("no-apt", "apt-get/dpkg not found: the guest image is built from Debian packages");
  }
  mkdirSync(cache, { recursive: true });
  return withBuildLock(cache, log, () => resolveAndBuild(cache, opts, log));
}

/**
 * Runs `fn` holding `<cache>/build.lock` (a directory holding the owner's pid), so that test files
 * started in parallel on a fresh machine do not run apt and write the same files at once. A lock
 * whose owner is gone is taken over; waiting gives up after 15 minutes.
 */
async function withBuildLock<T>(cache: string, log: (l: string) => void, fn: () => T): Promise<T> {
  const lock = join(cache, "build.lock");
  const deadline = Date.now() + 15 * 60_000;
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(join(lock, "pid"), "utf8"));
    } catch {
      // Just created, pid not written yet: wait.
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new GuestImageError("busy", `gave up waiting for another guest image build (${lock}, pid ${owner})`);
    if (!told) log(`waiting for another guest image build (pid ${owner})`);
    told = true;
    await new Promise((r) => setTimeout(r, 300));
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function resolveAndBuild(cache: string, opts: BuildOptions, log: (l: string) => void): GuestImage {
  const current = join(cache, "current.json");
  // Package versions change only with apt's lists: while those and the builder are unchanged, the
  // last resolution still holds and apt-cache (about 7 s of queries) need not run.
  const builder = builderKey();
  const lookupPath = join(cache, "lookup.json");
  if (opts.force !== true) {
    const hit = readLookup(lookupPath);
    if (hit !== undefined && hit.builder === builder && hit.apt === aptFingerprint()) {
      const img = readImage(join(cache, hit.dir, "image.json"));
      if (img !== undefined) {
        log(`guest image is current (${join(cache, hit.dir)}; apt lists unchanged)`);
        writeFileSync(current, JSON.stringify(img, null, 2));
        return img;
      }
    }
  }
  ensureI386(log);
  log("resolving packages with apt-cache");
  const kernel = kernelPackage();
  const pkgs = packageSet(kernel);
  const uris = run("apt-get", ["download", "--print-uris", ...pkgs]);
  const debs = uris.split("\n").map((l) => l.split(" ")[1]).filter((x): x is string => x !== undefined && x.endsWith(".deb")).sort();
  const key = sha(JSON.stringify({ builder, debs })).slice(0, 16);
  const outDir = join(cache, key);
  const manifest = join(outDir, "image.json");
  const remember = (img: GuestImage): GuestImage => {
    writeFileSync(current, JSON.stringify(img, null, 2));
    // apt's lists as they are now (apt-get update may just have run).
    const lookup: CacheLookup = { version: 1, builder, apt: aptFingerprint(), dir: key };
    writeFileSync(lookupPath, JSON.stringify(lookup, null, 2));
    return img;
  };
  if (opts.force !== true) {
    const img = readImage(manifest);
    if (img !== undefined) {
      log(`guest image is current (${outDir})`);
      return remember(img);
    }
  }
  const work = mkdtempSync(join(tmpdir(), "nicvisor-guest-"));
  try {
    log(`downloading ${pkgs.length} Debian i386 packages (${kernel}, busybox-static, ${TOOL_PACKAGES.join(", ")} and their libraries)`);
    const dl = join(work, "debs");
    mkdirSync(dl);
    run("apt-get", ["download", "-q", ...pkgs], { cwd: dl });
    const root = join(work, "root");
    mkdirSync(root);
    const files = readdirSync(dl).filter((f) => f.endsWith(".deb"));
    log(`unpacking ${files.length} packages`);
    for (const f of files) run("dpkg", ["-x", join(dl, f), root]);
    const image = assemble(root, log);
    mkdirSync(outDir, { recursive: true });
    const kernelPath = join(outDir, "vmlinuz");
    const initrdPath = join(outDir, "initrd.img");
    const tmp = `.${process.pid}.tmp`;
    writeFileSync(kernelPath + tmp, readFileSync(image.vmlinuz));
    writeFileSync(initrdPath + tmp, image.initrd);
    renameSync(kernelPath + tmp, kernelPath);
    renameSync(initrdPath + tmp, initrdPath);
    const result: GuestImage = { kernel: kernelPath, initrd: initrdPath, kernelVersion: image.version, cmdline: [...defaultKernelArgs] };
    const elf = extractVmlinux(new Uint8Array(readFileSync(kernelPath)));
    if (elf !== undefined) {
      const vmlinuxPath = join(outDir, "vmlinux");
      writeFileSync(vmlinuxPath + tmp, elf);
      renameSync(vmlinuxPath + tmp, vmlinuxPath);
      result.vmlinux = vmlinuxPath;
    } else {
      log("guest image: the kernel's payload could not be decompressed on the host (no xz?); guests will run its own decompressor");
    }
    writeFileSync(join(outDir, "packages.txt"), debs.join("\n") + "\n");
    writeFileSync(manifest, JSON.stringify(result, null, 2));
    remember(result);
    log(`guest image: kernel ${image.version} (${(statSync(kernelPath).size / 2 ** 20).toFixed(1)} MiB), initramfs ${(image.initrd.length / 2 ** 20).toFixed(1)} MiB, in ${outDir}`);
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Packs the initramfs from the unpacked packages. */
function assemble(root: string, log: (l: string) => void): { vmlinuz: string; version: string; initrd: Uint8Array } {
  const boot = join(root, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (vmlinuz === undefined) throw new GuestImageError("no-kernel", "the kernel package has no /boot/vmlinuz-*");
  const version = vmlinuz.slice("vmlinuz-".length);
  const modDir = join(root, "lib", "modules", version);
  const { files: mods, depLines, aliasLines } = moduleClosure(modDir, GUEST_MODULES);
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (d: string): void => {
    if (d === "" || d === "." || dirs.has(d)) return;
    addDir(dirname(d));
    dirs.add(d);
    entries.push({ name: d, mode: 0o40755 });
  };
  const addFile = (name: string, data: Uint8Array, mode = 0o100644): void => {
    addDir(dirname(name));
    entries.push({ name, mode, data });
  };
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root"]) addDir(d);
  entries.push({ name: "dev/console", mode: 0o20600, rdev: [5, 1] });
  addFile("init", new TextEncoder().encode(INIT), 0o100755);
  const bb = findFile(root, BIN_DIRS, "busybox");
  if (bb === undefined) throw new GuestImageError("missing-file", "busybox-static has no busybox binary");
  addFile("bin/busybox", readFileSync(bb), 0o100755);
  // The kernel's own module requests (request_module("rtnl-link-vlan"), ...) run /sbin/modprobe;
  // init's `busybox --install -s /bin` links the applets in /bin only.
  entries.push({ name: "sbin/modprobe", mode: 0o120777, data: new TextEncoder().encode("/bin/busybox") });
  addFile(HOTPLUG_HELPER.slice(1), new TextEncoder().encode(HOTPLUG_SCRIPT), 0o100755);
  addFile(SHELL_RC.slice(1), new TextEncoder().encode(shellRc(TOOLS)));
  addFile("etc/passwd", new TextEncoder().encode("root:x:0:0:root:/root:/bin/sh\n"));
  addFile("etc/group", new TextEncoder().encode("root:x:0:\n"));
  addFile("etc/hosts", new TextEncoder().encode("127.0.0.1 localhost\n10.0.2.2 host\n"));
  // Modules, with the modules.dep and modules.alias busybox modprobe reads.
  for (const m of mods) addFile(`lib/modules/${version}/${m}`, readFileSync(join(modDir, m)));
  addFile(`lib/modules/${version}/modules.dep`, new TextEncoder().encode(depLines.join("\n") + "\n"));
  addFile(`lib/modules/${version}/modules.alias`, new TextEncoder().encode(["# Aliases extracted from modules themselves.", ...aliasLines].join("\n") + "\n"));
  // Tools and exactly the libraries their ELF files need (breadth-first over DT_NEEDED).
  const libsWanted: string[] = [];
  const seenLibs = new Set<string>();
  const need = (data: Uint8Array): void => {
    const d = elfDeps(data);
    if (d === undefined) return;
    if (d.interpreter !== undefined && !seenLibs.has(d.interpreter)) {
      seenLibs.add(d.interpreter);
      const real = join(root, d.interpreter);
      if (!existsSync(real)) throw new GuestImageError("missing-file", `program interpreter ${d.interpreter} not in the packages`);
      addFile(d.interpreter.replace(/^\//, ""), readFileSync(realpathSync(real)), 0o100755);
    }
    for (const n of d.needed) if (!seenLibs.has(n)) (seenLibs.add(n), libsWanted.push(n));
  };
  for (const t of TOOLS) {
    const p = findFile(root, BIN_DIRS, t);
    if (p === undefined) throw new GuestImageError("missing-file", `tool ${t} not found in the unpacked packages`);
    const data = readFileSync(realpathSync(p));
    // In /usr/bin, ahead of busybox's applet links in PATH (busybox --install replaces files in
    // /bin); the console shell reaches them through SHELL_RC's functions, ahead of the applets.
    addFile(`usr/bin/${t}`, data, 0o100755);
    need(data);
  }
  for (let i = 0; i < libsWanted.length; i++) {
    const n = libsWanted[i]!;
    const p = findFile(root, LIB_DIRS, n);
    if (p === undefined) throw new GuestImageError("missing-file", `shared library ${n} (needed by the tools) not found in the downloaded packages`);
    const data = readFileSync(realpathSync(p));
    addFile(`lib/i386-linux-gnu/${n}`, data, 0o100755);
    need(data);
  }
  const ids = findFile(root, ["usr/share/misc", "usr/share/hwdata"], "pci.ids");
  if (ids !== undefined) addFile("usr/share/misc/pci.ids", readFileSync(ids));
  log(`writing initramfs: ${mods.length} modules, ${TOOLS.length} tools, ${libsWanted.length} libraries`);
  return { vmlinuz: join(boot, vmlinuz), version, initrd: newc(entries) };
}
