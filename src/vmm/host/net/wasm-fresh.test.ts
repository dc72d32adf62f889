import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

describe("generated net wasm module", () => {
  it("matches the AssemblyScript sources it was built from (run npm run build:wasm if not)", () => {
    const r = spawnSync(process.execPath, ["scripts/build-wasm.mjs", "--check"], { cwd: root, encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
