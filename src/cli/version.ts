/**
 * The package's version, read from package.json next to the build (for `nicvisor version` and
 * the control socket's greeting).
 * @module
 */
import { readFileSync } from "node:fs";

/** The version in package.json, or "unknown". */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}
