// Bundles `nicvisor web`'s page into dist/web/page, next to its index.html: page.js (src/web/page/main.ts,
// which draws) and worker.js (src/web/page/worker.ts: the guest, with the platform-neutral library
// and v86). Part of `npm run build`.
//
// Node-only code must stay out of the bundle: `node:` modules (and the three that v86 requires
// behind a `typeof require` check) are left as imports, and the build fails if one of them is
// imported statically (a dynamic import behind an is-this-Node check, as v86-backend.ts's file
// reader, never runs in a browser).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "web", "page");
mkdirSync(out, { recursive: true });
const t = Date.now();
const r = await build({
  entryPoints: { page: join(root, "src/web/page/main.ts"), worker: join(root, "src/web/page/worker.ts") },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outdir: out,
  external: ["node:*", "crypto", "fs", "perf_hooks"],
  sourcemap: true,
  minify: true,
  legalComments: "linked",
  logLevel: "warning",
  metafile: true,
});
copyFileSync(join(root, "src/web/page/index.html"), join(out, "index.html"));
let total = 0;
for (const f of ["page.js", "worker.js"]) {
  const js = readFileSync(join(out, f), "utf8");
  total += js.length;
  const staticNode = /(?:^|[;\n}])\s*import\s*(?:[\w${},*\s]+from\s*)?["'](?:node:[^"']+|crypto|fs|perf_hooks)["']/.exec(js);
  if (staticNode !== null) {
    console.error(`build-web: ${f} imports a Node module statically: ${staticNode[0].trim()}`);
    process.exit(1);
  }
}
const nodeInputs = Object.keys(r.metafile.inputs).filter((p) => /src\/vmm\/host\/|src\/cli\//.test(p));
if (nodeInputs.length > 0) {
  console.error(`build-web: Node-only modules reached the bundle: ${nodeInputs.join(", ")}`);
  process.exit(1);
}
console.log(`build-web: dist/web/page/page.js and worker.js, ${(total / 1024).toFixed(0)} KiB from ${Object.keys(r.metafile.inputs).length} modules in ${Date.now() - t} ms`);
