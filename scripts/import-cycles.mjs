#!/usr/bin/env node
// Finds cycles among the static runtime imports of src/ (type-only imports are erased by the
// compiler and do not count; dynamic `import()` is lazy and does not count either). Prints each
// cycle as "a -> b -> a" and exits 1 when there is one. Used by test/import-cycles.test.ts.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(process.argv[2] ?? "src");

function files(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts") && !p.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Runtime import targets of one file (resolved .js -> .ts paths inside src). */
export function runtimeImports(file, text) {
  const out = [];
  // import ... from "x"; export ... from "x"; import "x";
  const re = /^\s*(import|export)\s+([\s\S]*?)\s*from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm;
  let m;
  while ((m = re.exec(text)) !== null) {
    const spec = m[3] ?? m[4];
    if (spec === undefined || !spec.startsWith(".")) continue;
    const clause = m[2] ?? "";
    if (m[1] !== undefined && /^type\s/.test(clause)) continue;
    // Only `import type ...` / `export type ...` is erased. Under verbatimModuleSyntax,
    // `import { type A } from "x"` still compiles to `import {} from "x"`: a runtime edge.
    out.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
  }
  return out;
}

const graph = new Map();
for (const f of files(root)) graph.set(f, runtimeImports(f, readFileSync(f, "utf8")).filter((t) => t !== f));

const cycles = [];
const state = new Map(); // 1 = on stack, 2 = done
const stack = [];
function visit(n) {
  state.set(n, 1);
  stack.push(n);
  for (const t of graph.get(n) ?? []) {
    if (!graph.has(t)) continue;
    if (state.get(t) === 1) cycles.push([...stack.slice(stack.indexOf(t)), t]);
    else if (state.get(t) === undefined) visit(t);
  }
  stack.pop();
  state.set(n, 2);
}
for (const n of graph.keys()) if (state.get(n) === undefined) visit(n);

for (const c of cycles) console.log(c.map((p) => relative(root, p)).join(" -> "));
console.log(`import-cycles: ${graph.size} files, ${cycles.length} cycles`);
process.exit(cycles.length === 0 ? 0 : 1);
