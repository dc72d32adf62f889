/**
 * An embedder's first hour, as a test: the package is packed, installed into an empty project
 * with no optional dependencies (no v86, no koffi), and the examples of README.md and
 * docs/embedding.md are
 * type-checked there under `strict` at an ES2022 target (the package's own .d.ts files included:
 * no skipLibCheck) and run.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = new URL("..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "nicvisor-embed-"));
const project = join(work, "project");

/** The `<!-- example: name -->` code blocks of README.md and docs/embedding.md. */
function examples(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of ["README.md", "docs/embedding.md"]) {
    const md = readFileSync(join(repo, file), "utf8");
    for (const m of md.matchAll(/<!-- example: ([\w-]+) -->\n```ts\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  }
  return out;
}

function sh(cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 240_000, env: { ...process.env, npm_config_update_notifier: "false" } });
}
const out = (r: SpawnSyncReturns<string>): string => `status ${String(r.status)}\n${r.stdout}\n${r.stderr}`.slice(-6000);

beforeAll(() => {
  if (!existsSync(join(repo, "dist/index.js"))) throw new Error("dist/ is not built: run `npm run build` (npm test does) first");
  const pack = sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], repo);
  if (pack.status !== 0) throw new Error(`npm pack failed: ${out(pack)}`);
  const tgz = join(work, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
  mkdirSync(join(project, "src"), { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "embedder", private: true, type: "module" }, null, 2));
  const inst = sh("npm", ["install", tgz, "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund", "--offline"], project);
  if (inst.status !== 0) throw new Error(`npm install failed: ${out(inst)}`);
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the packed package in an empty project", () => {
  it("installs without its optional dependencies, and ships the docs and the license", () => {
    const nm = join(project, "node_modules");
    expect(existsSync(join(nm, "nicvisor/dist/index.js"))).toBe(true);
    expect(existsSync(join(nm, "v86"))).toBe(false);
    expect(existsSync(join(nm, "koffi"))).toBe(false);
    expect(existsSync(join(nm, "nicvisor/docs/embedding.md"))).toBe(true);
    expect(existsSync(join(nm, "nicvisor/LICENSE"))).toBe(true);
  });

  it("docs/embedding.md's examples type-check under strict ES2022 with the package's own types, and run", () => {
    const ex = examples();
    expect([...ex.keys()]).toEqual(["quickstart", "igb-vfs", "virtio-1000", "save-restore"]);
    for (const [name, code] of ex) writeFileSync(join(project, "src", `${name}.ts`), code);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: "ES2022",
          lib: ["ES2022"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          types: ["node"],
          typeRoots: [join(repo, "node_modules/@types")],
          skipLibCheck: false,
          outDir: "out",
          rootDir: "src",
        },
        include: ["src"],
      }),
    );
    const tsc = sh(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", project], project);
    expect(tsc.status, out(tsc)).toBe(0);
    for (const name of ex.keys()) {
      const run = sh(process.execPath, [join(project, "out", `${name}.js`)], project);
      expect(run.status, `${name}: ${out(run)}`).toBe(0);
      expect(run.stdout).toContain(name === "quickstart" ? "RESUMING" : `${name} ok`);
      if (name === "igb-vfs") expect(run.stdout).toMatch(/^01:10\.0 /m);
      if (name === "save-restore") expect(run.stdout).toMatch(/refused: nic\.regs\.TDLEN/);
    }
  }, 240_000);
});
