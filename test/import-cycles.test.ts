import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const script = new URL("../scripts/import-cycles.mjs", import.meta.url).pathname;
const run = (dir: string): { status: number | null; out: string } => {
  const r = spawnSync(process.execPath, [script, dir], { encoding: "utf8" });
  return { status: r.status, out: r.stdout };
};

describe("runtime import graph of src/", () => {
  it("has no cycle", () => {
    const r = run(new URL("../src", import.meta.url).pathname);
    expect(r.out).toMatch(/import-cycles: \d{3,} files, 0 cycles/);
    expect(r.status).toBe(0);
  });

  it("the checker finds a value cycle and ignores a type-only one", () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-cycles-"));
    try {
      mkdirSync(join(dir, "x"));
      writeFileSync(join(dir, "a.ts"), `import { b } from "./x/b.js";\nexport const a = 1 + b;\n`);
      writeFileSync(join(dir, "x", "b.ts"), `import { a } from "../a.js";\nexport const b = 2;\nexport const c = () => a;\n`);
      writeFileSync(join(dir, "c.ts"), `import type { D } from "./d.js";\nimport { type E } from "./d.js";\nexport type C = D | E;\n`);
      writeFileSync(join(dir, "d.ts"), `import { c } from "./e.js";\nexport type D = number; export type E = string; export const d = c;\n`);
      writeFileSync(join(dir, "e.ts"), `import type { C } from "./c.js";\nexport const c = 1 as unknown as C;\n`);
      const r = run(dir);
      expect(r.out).toContain("a.ts -> x/b.ts -> a.ts");
      expect(r.out).toMatch(/5 files, 1 cycles/);
      expect(r.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts `import { type X }` as a runtime edge (verbatimModuleSyntax keeps it as `import {}`)", () => {
    const dir = mkdtempSync(join(tmpdir(), "nv-cycles-"));
    try {
      writeFileSync(join(dir, "a.ts"), `import { type B } from "./b.js";\nexport type A = B;\nexport const a = 1;\n`);
      writeFileSync(join(dir, "b.ts"), `import { a } from "./a.js";\nexport type B = number;\nexport const b = a;\n`);
      const r = run(dir);
      expect(r.out).toMatch(/2 files, 1 cycles/);
      expect(r.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
