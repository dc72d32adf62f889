/**
 * The kernel modules of the guest image: the closure of the wanted modules over their
 * dependencies, and the modules.dep and modules.alias that depmod would have written for them
 * (Debian's kernel package ships neither: depmod writes them when the package is installed).
 * @module
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { GuestImageError } from "./errors.js";
import { moduleAliases, moduleDepends } from "./elf.js";

/** Modules picked for the image, with the index files busybox modprobe reads. */
export interface ModuleSet {
  /** The modules, as paths relative to the modules directory (`kernel/drivers/net/veth.ko`). */
  files: string[];
  /** modules.dep lines: `path: dependencies`, each module's dependencies in load order. */
  depLines: string[];
  /** modules.alias lines: `alias <pattern> <module name>`, from each module's `alias=` fields. */
  aliasLines: string[];
}

/** A module's name as the kernel and modprobe use it: the file name without `.ko`, `-` as `_`. */
export function moduleName(path: string): string {
  return (path.split("/").pop() ?? "").replace(/\.ko$/, "").replace(/-/g, "_");
}

/**
 * `wanted` and their dependencies, direct and indirect, found under `modDir/kernel`, with the
 * modules.dep and modules.alias lines for them. The dependencies come from each module's own
 * `.modinfo` `depends=` field, the aliases from its `alias=` fields, as depmod reads them.
 * @throws GuestImageError (`missing-file`) when a module is not there or is not an ELF module.
 */
export function moduleClosure(modDir: string, wanted: readonly string[]): ModuleSet {
  const byName = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(modDir, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith(".ko")) byName.set(moduleName(e.name), r);
    }
  };
  walk("kernel");
  const deps = new Map<string, string[]>();
  const aliases = new Map<string, string[]>();
  const visit = (name: string): string => {
    const file = byName.get(name.replace(/-/g, "_"));
    if (file === undefined) throw new GuestImageError("missing-file", `kernel module ${name} not found under ${modDir}`);
    if (deps.has(file)) return file;
    deps.set(file, []);
    const data = readFileSync(join(modDir, file));
    const d = moduleDepends(data);
    if (d === undefined) throw new GuestImageError("missing-file", `${file} is not an ELF kernel module`);
    aliases.set(file, moduleAliases(data) ?? []);
    deps.set(file, d.map(visit));
    return file;
  };
  for (const w of wanted) visit(w);
  const files = [...deps.keys()].sort();
  return {
    files,
    depLines: files.map((f) => `${f}: ${modulesDepOrder(deps, f).join(" ")}`.trimEnd()),
    aliasLines: files.flatMap((f) => (aliases.get(f) ?? []).map((a) => `alias ${a} ${moduleName(f)}`)),
  };
}

/**
 * The dependencies of `mod`, direct and indirect, in modules.dep order: modprobe (busybox's and
 * kmod's) loads them from the last to the first, so every module must come before (to the left
 * of) all the modules it needs. That is a reversed post-order walk. A plain walk that skips what
 * it has already listed breaks this when two modules share a dependency: Debian's 6.1.0-57 virtio
 * needs virtio_ring, and virtio_pci's line then loaded virtio first, which failed with "Unknown
 * symbol virtio_break_device" and left the guest without virtio-net.
 */
export function modulesDepOrder(deps: ReadonlyMap<string, readonly string[]>, mod: string): string[] {
  const post: string[] = [];
  const seen = new Set<string>([mod]);
  const walk = (m: string): void => {
    for (const d of deps.get(m) ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      walk(d);
      post.push(d);
    }
  };
  walk(mod);
  return post.reverse();
}
