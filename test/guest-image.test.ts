/**
 * The guest image builder's parts (newc writer/reader, ELF DT_NEEDED and .modinfo readers) on
 * made-up and hostile input, and the built image itself: every ELF's libraries and interpreter are
 * in it, modules.dep covers each module's own `depends=`, modules.alias each module's `alias=`,
 * init prints the harness's marker and starts the hotplug helper.
 */
import { describe, it, expect, beforeAll } from "vitest";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AptCommandError, CpioFormatError, GUEST_MODULES, GUEST_READY_MARKER, GuestImageError, HOTPLUG_HELPER, HOTPLUG_SCRIPT, SHELL_RC,
  buildGuestImage, canBuildGuestImage, defaultKernelArgs, elfDeps, moduleAliases, moduleDepends, moduleInfo, moduleName, modulesDepOrder,
  newc, parseNewc, shellRc,
} from "../src/vmm/host/guest-image/index.js";
import type { CpioEntry, CpioReadEntry, GuestImage } from "../src/vmm/host/guest-image/index.js";
import { DEFAULT_READY_MARKER } from "../src/vmm/harness/runner.js";
import { skipTest } from "./skip.js";

const enc = new TextEncoder();

/** A minimal ELF32 relocatable object with a `.modinfo` section holding `fields` (NUL-separated). */
function fakeModule(fields: string[]): Uint8Array {
  const modinfo = enc.encode(fields.map((f) => f + "\0").join(""));
  const shstr = enc.encode("\0.modinfo\0.shstrtab\0");
  const modinfoOff = 52;
  const shstrOff = modinfoOff + modinfo.length;
  const shoff = (shstrOff + shstr.length + 3) & ~3;
  const b = new Uint8Array(shoff + 3 * 40);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  v.setUint16(16, 1, true); // ET_REL
  v.setUint16(18, 3, true); // EM_386
  v.setUint32(0x20, shoff, true);
  v.setUint16(0x2e, 40, true);
  v.setUint16(0x30, 3, true);
  v.setUint16(0x32, 2, true);
  b.set(modinfo, modinfoOff);
  b.set(shstr, shstrOff);
  const sh = (i: number, name: number, type: number, off: number, size: number): void => {
    const p = shoff + i * 40;
    v.setUint32(p, name, true);
    v.setUint32(p + 4, type, true);
    v.setUint32(p + 0x10, off, true);
    v.setUint32(p + 0x14, size, true);
  };
  sh(1, 1, 1, modinfoOff, modinfo.length);
  sh(2, 10, 3, shstrOff, shstr.length);
  return b;
}

describe("newc cpio", () => {
  const entry = fc.record({
    name: fc.stringMatching(/^[a-z0-9_.-]{1,12}(\/[a-z0-9_.-]{1,12}){0,3}$/),
    mode: fc.constantFrom(0o40755, 0o100644, 0o100755, 0o120777, 0o20600),
    data: fc.uint8Array({ maxLength: 70 }),
    rdev: fc.tuple(fc.nat(255), fc.nat(255)),
  });

  it("reads back what it writes, every header 4-byte aligned, for any entries", () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), (es) => {
        const out = parseNewc(newc(es.map((e): CpioEntry => ({ name: e.name, mode: e.mode, data: e.data, rdev: e.rdev }))));
        expect(out.map((e) => ({ name: e.name, mode: e.mode, data: [...e.data], rdev: e.rdev }))).toEqual(es.map((e) => ({ ...e, data: [...e.data] })));
      }),
    );
  });

  it("is what GNU cpio lists and extracts", (ctx) => {
    if (spawnSync("cpio", ["--version"]).status !== 0) return skipTest(ctx, "SKIPPED: no cpio binary to cross-check with");
    const archive = newc([
      { name: "bin", mode: 0o40755 },
      { name: "bin/hello", mode: 0o100755, data: enc.encode("#!/bin/sh\necho hi\n") },
      { name: "bin/sh", mode: 0o120777, data: enc.encode("busybox") },
      { name: "odd", mode: 0o100644, data: new Uint8Array([1, 2, 3]) },
    ]);
    const list = spawnSync("cpio", ["-t", "--quiet"], { input: archive, encoding: "utf8" });
    expect(list.status).toBe(0);
    expect(list.stdout.trim().split("\n")).toEqual(["bin", "bin/hello", "bin/sh", "odd"]);
    const dir = mkdtempSync(join(tmpdir(), "nv-cpio-"));
    try {
      const x = spawnSync("cpio", ["-id", "--quiet", "--no-absolute-filenames"], { input: archive, cwd: dir });
      expect(x.status).toBe(0);
      expect(readFileSync(join(dir, "bin/hello"), "utf8")).toBe("#!/bin/sh\necho hi\n");
      expect([...readFileSync(join(dir, "odd"))]).toEqual([1, 2, 3]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects truncated or corrupted archives with CpioFormatError only", () => {
    const good = newc([{ name: "a", mode: 0o100644, data: enc.encode("hello") }]);
    expect(() => parseNewc(good.subarray(0, good.length - 20))).toThrow(CpioFormatError);
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.nat(255), (at, byte) => {
        const b = good.slice();
        b[at] = byte;
        try {
          parseNewc(b);
        } catch (e) {
          expect(e).toBeInstanceOf(CpioFormatError);
        }
      }),
    );
  });
});

describe("ELF readers", () => {
  it("finds the host's own ls's libc and loader like readelf does", (ctx) => {
    const ls = ["/usr/bin/ls", "/bin/ls"].find((p) => existsSync(p));
    if (ls === undefined) return skipTest(ctx, "SKIPPED: no /bin/ls to read");
    const d = elfDeps(new Uint8Array(readFileSync(ls)));
    expect(d?.needed).toContain("libc.so.6");
    expect(d?.interpreter).toMatch(/ld-linux/);
    const re = spawnSync("readelf", ["-d", ls], { encoding: "utf8" });
    if (re.status === 0) {
      const fromReadelf = [...re.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
      expect(d?.needed).toEqual(fromReadelf);
    }
  });

  it("reads a module's depends= and treats an empty one as none", () => {
    expect(moduleDepends(fakeModule(["license=GPL", "depends=i2c-algo-bit,dca", "vermagic=6.1.0-50-686"]))).toEqual(["i2c-algo-bit", "dca"]);
    expect(moduleDepends(fakeModule(["license=GPL", "depends="]))).toEqual([]);
    expect(moduleDepends(fakeModule(["license=GPL"]))).toEqual([]);
  });

  it("reads a module's alias= fields in order, as depmod puts them in modules.alias", () => {
    const igbvf = fakeModule(["alias=pci:v00008086d00001520sv*sd*bc*sc*i*", "depends=", "alias=pci:v00008086d000010CAsv*sd*bc*sc*i*", "license=GPL v2"]);
    expect(moduleAliases(igbvf)).toEqual(["pci:v00008086d00001520sv*sd*bc*sc*i*", "pci:v00008086d000010CAsv*sd*bc*sc*i*"]);
    expect(moduleInfo(igbvf)).toEqual(["alias=pci:v00008086d00001520sv*sd*bc*sc*i*", "depends=", "alias=pci:v00008086d000010CAsv*sd*bc*sc*i*", "license=GPL v2"]);
    expect(moduleAliases(fakeModule(["license=GPL", "depends=llc"]))).toEqual([]);
    expect(moduleAliases(new Uint8Array(64))).toBeUndefined();
    expect(moduleName("kernel/drivers/pci/pci-pf-stub.ko")).toBe("pci_pf_stub");
  });

  it("orders modules.dep so that loading from the last entry to the first meets every dependency", () => {
    // Debian 6.1.0-57's virtio modules: virtio needs virtio_ring, and virtio_pci needs both.
    const real = new Map([
      ["virtio_pci", ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"]],
      ["virtio", ["virtio_ring"]],
    ]);
    expect(modulesDepOrder(real, "virtio_pci")).toEqual(["virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring"]);
    // Any acyclic graph (module i depends only on modules numbered above i).
    fc.assert(fc.property(fc.array(fc.uniqueArray(fc.nat(11), { maxLength: 4 }), { minLength: 12, maxLength: 12 }), (raw) => {
      const deps = new Map(raw.map((ds, i) => [`m${i}`, ds.filter((d) => d > i).map((d) => `m${d}`)]));
      const closure = (m: string, acc = new Set<string>()): Set<string> => {
        for (const d of deps.get(m) ?? []) if (!acc.has(d)) (acc.add(d), closure(d, acc));
        return acc;
      };
      const order = modulesDepOrder(deps, "m0");
      expect(new Set(order)).toEqual(closure("m0"));
      expect(order.length).toBe(new Set(order).size);
      const loaded = new Set<string>();
      for (const m of [...order].reverse()) {
        for (const d of deps.get(m) ?? []) expect(loaded.has(d), `${m} before ${d}`).toBe(true);
        loaded.add(m);
      }
    }));
  });

  it("never throws on garbage or truncated ELF files", () => {
    const real = fakeModule(["depends=virtio,virtio_ring"]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(real.length), fc.nat(real.length - 1), fc.nat(255), (junk, cut, at, byte) => {
        const mangled = real.slice(0, cut);
        if (at < mangled.length) mangled[at] = byte;
        for (const b of [junk, mangled, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 1, 1, ...junk)]) {
          const d = elfDeps(b);
          expect(d === undefined || Array.isArray(d.needed)).toBe(true);
          const m = moduleDepends(b);
          expect(m === undefined || Array.isArray(m)).toBe(true);
          const a = moduleAliases(b);
          expect(a === undefined || Array.isArray(a)).toBe(true);
        }
      }),
    );
  });
});

describe("builder API", () => {
  it("init's marker is the one the harness waits for, and errors are typed", () => {
    expect(GUEST_READY_MARKER).toBe(DEFAULT_READY_MARKER);
    expect(defaultKernelArgs).toContain("console=ttyS0");
    const e = new AptCommandError("apt-get download foo:i386", 100, "E: Unable to locate package foo:i386");
    expect(e).toBeInstanceOf(GuestImageError);
    expect([e.name, e.kind, e.command, e.status]).toEqual(["AptCommandError", "apt", "apt-get download foo:i386", 100]);
    expect(e.message).toContain("E: Unable to locate package foo:i386");
    expect(new GuestImageError("no-kernel", "x").name).toBe("GuestImageError");
  });

  it("the hotplug helper runs modprobe -q with the modalias of an added device, and nothing else", (ctx) => {
    if (spawnSync("sh", ["-c", "true"]).status !== 0) return skipTest(ctx, "SKIPPED: no host sh to run the helper with");
    const dir = mkdtempSync(join(tmpdir(), "nv-hotplug-"));
    try {
      const log = join(dir, "log");
      writeFileSync(join(dir, "modprobe"), `#!/bin/sh\necho "$*" >> ${log}\n`, { mode: 0o755 });
      const helper = join(dir, "helper");
      expect(HOTPLUG_SCRIPT).toContain("/sbin/modprobe");
      writeFileSync(helper, HOTPLUG_SCRIPT.replace("/sbin/modprobe", join(dir, "modprobe")), { mode: 0o755 });
      const ev = (env: Record<string, string>): number | null => spawnSync("sh", [helper], { env: { PATH: process.env.PATH ?? "", ...env } }).status;
      const alias = "pci:v00008086d000010CAsv00008086sd00000000bc02sc00i00";
      expect(ev({ ACTION: "add", MODALIAS: alias })).toBe(0);
      expect(ev({ ACTION: "remove", MODALIAS: alias })).toBe(0);
      expect(ev({ ACTION: "bind", MODALIAS: alias })).toBe(0);
      expect(ev({ ACTION: "add" })).toBe(0);
      expect(ev({ ACTION: "add", MODALIAS: "virtio:d00000001v00001AF4" })).toBe(0);
      expect(readFileSync(log, "utf8")).toBe(`-q ${alias}\n-q virtio:d00000001v00001AF4\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the console shell's start-up file puts a function for each tool ahead of busybox's applets", (ctx) => {
    const rc = shellRc(["ip", "lspci"]);
    expect(rc).toContain('ip() { /usr/bin/ip "$@"; }');
    expect(rc).toContain('lspci() { /usr/bin/lspci "$@"; }');
    if (spawnSync("sh", ["-c", "true"]).status !== 0) return skipTest(ctx, "SKIPPED: no host sh to source it with");
    const r = spawnSync("sh", ["-c", `${shellRc(["ip"]).replace("/usr/bin/ip", "echo iproute2")}\nip -V`], { encoding: "utf8" });
    expect(r.stdout).toBe("iproute2 -V\n");
  });

  it("a cache directory with a bogus manifest is not taken for an image", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-gi-"));
    try {
      writeFileSync(join(dir, "current.json"), JSON.stringify({ kernel: join(dir, "nope"), initrd: join(dir, "nope"), kernelVersion: "x", cmdline: [] }));
      const can = await canBuildGuestImage({ cacheDir: dir });
      // As root with apt it can still build; otherwise it must say why, not claim an image.
      if (process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"]).status === 0) expect(can.ok).toBe(true);
      else expect(can.ok).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the cache", () => {
  const asRootWithApt = (): boolean => process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;

  /** A cache directory whose lookup points at the real cached image (built first if need be). */
  async function cacheCopy(): Promise<string | undefined> {
    if (!asRootWithApt() || !(await canBuildGuestImage()).ok) return undefined;
    await buildGuestImage();
    const real = join(process.cwd(), ".cache/guest");
    const lookup = JSON.parse(readFileSync(join(real, "lookup.json"), "utf8")) as { dir: string };
    const dir = mkdtempSync(join(tmpdir(), "nv-gi-cache-"));
    mkdirSync(join(dir, lookup.dir));
    writeFileSync(join(dir, lookup.dir, "image.json"), readFileSync(join(real, lookup.dir, "image.json")));
    writeFileSync(join(dir, "lookup.json"), JSON.stringify(lookup));
    return dir;
  }

  it("answers from lookup.json without apt while apt's lists are unchanged", async (ctx) => {
    const dir = await cacheCopy();
    if (dir === undefined) return skipTest(ctx, "SKIPPED: needs root, apt and a buildable image");
    try {
      const lines: string[] = [];
      const img = await buildGuestImage({ cacheDir: dir, log: (l) => lines.push(l) });
      expect(lines.join("\n")).toMatch(/apt lists unchanged/);
      expect(lines.join("\n")).not.toMatch(/resolving packages/);
      expect(JSON.parse(readFileSync(join(dir, "current.json"), "utf8"))).toEqual(img);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  it("takes over a build lock whose owner is gone, and waits for a live one", async (ctx) => {
    const dir = await cacheCopy();
    if (dir === undefined) return skipTest(ctx, "SKIPPED: needs root, apt and a buildable image");
    try {
      const dead = spawnSync("true").pid;
      mkdirSync(join(dir, "build.lock"));
      writeFileSync(join(dir, "build.lock", "pid"), String(dead));
      await buildGuestImage({ cacheDir: dir });
      expect(existsSync(join(dir, "build.lock"))).toBe(false);

      mkdirSync(join(dir, "build.lock"));
      writeFileSync(join(dir, "build.lock", "pid"), String(process.pid));
      const lines: string[] = [];
      let done = false;
      const p = buildGuestImage({ cacheDir: dir, log: (l) => lines.push(l) }).then((img) => ((done = true), img));
      while (!lines.some((l) => l.startsWith("waiting for another guest image build"))) await new Promise((r) => setTimeout(r, 50));
      expect(done).toBe(false);
      rmSync(join(dir, "build.lock"), { recursive: true });
      expect((await p).kernelVersion).toMatch(/-686$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});

describe("the built image", () => {
  let img: GuestImage | undefined;
  let files: Map<string, CpioReadEntry> | undefined;
  let skip: string | undefined;
  beforeAll(async () => {
    const can = await canBuildGuestImage();
    if (!can.ok) return void (skip = can.reason);
    img = await buildGuestImage({ log: (l) => console.log(`guest-image: ${l}`) });
    files = new Map(parseNewc(new Uint8Array(readFileSync(img.initrd))).map((e) => [e.name, e]));
  }, 600_000);

  it("is Debian's 686 bzImage with an initramfs whose /init prints the harness's marker", (ctx) => {
    if (skip !== undefined || img === undefined || files === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(img.kernelVersion).toMatch(/^6\.1\.0-\d+-686$/);
    const k = readFileSync(img.kernel);
    expect(k.subarray(0x202, 0x206).toString("latin1")).toBe("HdrS");
    const init = files.get("init");
    expect(init?.mode).toBe(0o100755);
    const text = new TextDecoder().decode(init?.data);
    expect(text).toContain(`echo ${DEFAULT_READY_MARKER}`);
    expect(text).toContain("nv.modules=");
    expect(text).toContain(`uevent ${HOTPLUG_HELPER}`);
    expect(text).toContain(`export ENV=${SHELL_RC}`);
    expect(files.get("dev/console")?.rdev).toEqual([5, 1]);
    const helper = files.get(HOTPLUG_HELPER.slice(1));
    expect(helper?.mode).toBe(0o100755);
    expect(new TextDecoder().decode(helper?.data)).toBe(HOTPLUG_SCRIPT);
    expect(new TextDecoder().decode(files.get(SHELL_RC.slice(1))?.data)).toContain('ip() { /usr/bin/ip "$@"; }');
    // The kernel's own module requests run /sbin/modprobe.
    const modprobe = files.get("sbin/modprobe");
    expect(modprobe?.mode).toBe(0o120777);
    expect(new TextDecoder().decode(modprobe?.data)).toBe("/bin/busybox");
    expect(files.has("usr/share/misc/pci.ids")).toBe(true);
  });

  it("holds every library and loader its ELF files need, transitively", (ctx) => {
    if (skip !== undefined || files === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    for (const t of ["lspci", "setpci", "ethtool", "ip", "iperf3"]) expect(files.has(`usr/bin/${t}`)).toBe(true);
    expect(files.has("lib/ld-linux.so.2")).toBe(true);
    let checked = 0;
    for (const [name, e] of files) {
      if (name.endsWith(".ko")) continue;
      const d = elfDeps(e.data);
      if (d === undefined) continue;
      checked++;
      if (d.interpreter !== undefined) expect(files.has(d.interpreter.replace(/^\//, "")), `${name}: ${d.interpreter}`).toBe(true);
      for (const n of d.needed) expect(files.has(`lib/i386-linux-gnu/${n}`), `${name} needs ${n}`).toBe(true);
    }
    expect(checked).toBeGreaterThan(6);
  });

  it("ships a modules.dep that lists each module's depends= and every wanted module", (ctx) => {
    if (skip !== undefined || img === undefined || files === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const base = `lib/modules/${img.kernelVersion}/`;
    const dep = new TextDecoder().decode(files.get(`${base}modules.dep`)?.data);
    const lines = new Map(dep.trim().split("\n").map((l) => {
      const [mod = "", rest = ""] = l.split(":");
      return [mod, rest.trim() === "" ? [] : rest.trim().split(" ")];
    }));
    const modName = (p: string): string => (p.split("/").pop() ?? "").replace(/\.ko$/, "").replace(/-/g, "_");
    const names = new Set([...lines.keys()].map(modName));
    for (const m of GUEST_MODULES) expect(names, m).toContain(m.replace(/-/g, "_"));
    for (const [mod, deps] of lines) {
      const e = files.get(base + mod);
      expect(e, mod).toBeDefined();
      for (const d of deps) expect(files.has(base + d), `${mod} -> ${d}`).toBe(true);
      const own = moduleDepends(e!.data) ?? [];
      for (const d of own) expect(deps.map(modName), `${mod} depends=${d}`).toContain(d.replace(/-/g, "_"));
    }
    expect(lines.get([...lines.keys()].find((k) => modName(k) === "igb") ?? "")?.map(modName)).toContain("i2c_algo_bit");
    // The stacking modules and what Debian's 6.1 builds them on.
    const depsOf = (m: string): string[] => lines.get([...lines.keys()].find((k) => modName(k) === m) ?? "")?.map(modName) ?? [];
    expect(new Set(depsOf("8021q"))).toEqual(new Set(["garp", "mrp", "stp", "llc"]));
    expect(new Set(depsOf("bridge"))).toEqual(new Set(["stp", "llc"]));
    expect(depsOf("bonding")).toContain("tls");
    for (const m of ["veth", "macvlan", "garp", "mrp", "stp", "llc", "tls"]) expect(names, m).toContain(m);
    // modprobe loads a line's dependencies from the last to the first, then the module: each one's
    // own depends= (read from the module file) must already be in by then.
    for (const [mod, deps] of lines) {
      const loaded = new Set<string>();
      for (const d of [...deps].reverse().concat(mod)) {
        for (const need of moduleDepends(files.get(base + d)!.data) ?? []) expect(loaded, `${mod}: ${d} loads before ${need}`).toContain(need.replace(/-/g, "_"));
        loaded.add(modName(d));
      }
    }
  });
});

describe("the built image's modules.alias", () => {
  it("holds every alias= of every module in the image, under the module's name, and nothing else", async (ctx) => {
    const can = await canBuildGuestImage();
    if (!can.ok) return skipTest(ctx, `SKIPPED: ${can.reason}`);
    const img = await buildGuestImage({});
    const files = new Map(parseNewc(new Uint8Array(readFileSync(img.initrd))).map((e) => [e.name, e]));
    const base = `lib/modules/${img.kernelVersion}/`;
    const text = new TextDecoder().decode(files.get(`${base}modules.alias`)?.data);
    const lines = text.trim().split("\n").filter((l) => !l.startsWith("#"));
    for (const l of lines) expect(l, l).toMatch(/^alias \S+ [a-z0-9_]+$/);
    const got = new Set(lines);
    const want = new Set<string>();
    for (const [name, e] of files) {
      if (!name.startsWith(base) || !name.endsWith(".ko")) continue;
      for (const a of moduleAliases(e.data) ?? []) want.add(`alias ${a} ${moduleName(name)}`);
    }
    expect(got).toEqual(want);
    // What the switch tests need: igbvf for the 82576 VF, virtio_pci and virtio_net for virtio-net,
    // and the link kinds the kernel asks for by name (request_module("rtnl-link-vlan")).
    for (const l of [
      "alias pci:v00008086d000010CAsv*sd*bc*sc*i* igbvf",
      "alias pci:v00008086d000010C9sv*sd*bc*sc*i* igb",
      "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci",
      "alias virtio:d00000001v* virtio_net",
      "alias rtnl-link-vlan 8021q",
      "alias rtnl-link-bridge bridge",
      "alias rtnl-link-bond bonding",
      "alias rtnl-link-veth veth",
      "alias rtnl-link-macvlan macvlan",
    ]) expect(got, l).toContain(l);
  }, 600_000);
});

describe("direct boot from the built image", () => {
  it("keeps the bzImage's payload decompressed as an i386 vmlinux whose entry is its physical load address", async (ctx) => {
    const { canBuildGuestImage, buildGuestImage, extractVmlinux } = await import("../src/vmm/host/guest-image/index.js");
    const { parseKernelElf } = await import("../src/vmm/direct-boot.js");
    const can = await canBuildGuestImage();
    if (!can.ok) return skipTest(ctx, `SKIPPED: ${can.reason}`);
    const img = await buildGuestImage({});
    expect(img.vmlinux).toBeDefined();
    const { readFileSync } = await import("node:fs");
    const elf = new Uint8Array(readFileSync(img.vmlinux!));
    const k = parseKernelElf(elf);
    // Debian's 686 kernel: CONFIG_PHYSICAL_START 16 MiB.
    expect(k.entry).toBe(0x1000000);
    expect(k.lo).toBe(0x1000000);
    expect(k.hi).toBeLessThan(64 << 20);
    expect(Buffer.from(extractVmlinux(new Uint8Array(readFileSync(img.kernel)))!).equals(Buffer.from(elf))).toBe(true);
    expect(extractVmlinux(new Uint8Array(1024))).toBeUndefined();
  });
});
