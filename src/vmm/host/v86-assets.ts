/**
 * Locates the files a v86 guest needs on this host: v86's wasm (from the installed npm package)
 * and SeaBIOS (Debian's `seabios` package: `/usr/share/seabios/bios.bin`, `vgabios-stdvga.bin`).
 * Node-only.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { CpuBackendError } from "../cpu/backend.js";

/** Where the v86 engine files are. */
export interface V86Assets {
  /** Path to `v86.wasm`. */
  wasmPath: string;
  /** The installed v86 package version (e.g. `0.5.462+g5f9a90f`). */
  v86Version: string;
  /** Path to SeaBIOS `bios.bin`. */
  biosPath: string;
  /** Path to the VGA BIOS, if found. */
  vgaBiosPath: string | undefined;
}

/** Directories searched for SeaBIOS, in order (after `$NICVISOR_SEABIOS_DIR`). */
export const SEABIOS_DIRS: readonly string[] = ["/usr/share/seabios", "/usr/share/qemu"];

/**
 * Finds v86's wasm and SeaBIOS. Returns `undefined` with a reason when something is missing.
 */
export function findV86Assets(env: Record<string, string | undefined> = process.env): { assets: V86Assets } | { missing: string } {
  let pkgDir: string;
  try {
    const req = createRequire(import.meta.url);
    pkgDir = dirname(req.resolve("v86/package.json"));
  } catch {
    return { missing: "npm package v86 is not installed" };
  }
  const wasmPath = join(pkgDir, "build", "v86.wasm");
  if (!existsSync(wasmPath)) return { missing: `${wasmPath} not found` };
  const version = (JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  const dirs = [env["NICVISOR_SEABIOS_DIR"], ...SEABIOS_DIRS].filter((d): d is string => d !== undefined && d !== "");
  for (const d of dirs) {
    const bios = join(d, "bios.bin");
    if (existsSync(bios)) {
      const vga = join(d, "vgabios-stdvga.bin");
      return { assets: { wasmPath, v86Version: version, biosPath: bios, vgaBiosPath: existsSync(vga) ? vga : undefined } };
    }
  }
  return { missing: "SeaBIOS not found (apt-get install seabios, or set NICVISOR_SEABIOS_DIR)" };
}

/** Like {@link findV86Assets} but throws a {@link CpuBackendError} naming what is missing. */
export function requireV86Assets(env?: Record<string, string | undefined>): V86Assets {
  const r = findV86Assets(env);
  if ("missing" in r) throw new CpuBackendError(r.missing);
  return r.assets;
}
