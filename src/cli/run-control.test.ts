import { describe, it, expect, afterEach } from "vitest";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRunControl } from "./run-control.js";
import { connectControl } from "../vmm/control/socket.js";
import { registerCommands } from "../vmm/control/commands.js";
import { oneOf } from "../state/parse.js";
import type { Machine } from "../vmm/machine.js";
import type { StopReason } from "../vmm/cpu/backend.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The parts of a Machine the control server touches. */
function fakeMachine(): Machine & { log: string[] } {
  const cpu = { running: true };
  const log: string[] = [];
  const m = {
    cpu,
    log,
    stopReason: undefined as StopReason | undefined,
    platform: {},
    pause: async () => void ((cpu.running = false), log.push("pause")),
    start: async () => void ((cpu.running = true), log.push("start")),
  };
  return m as unknown as Machine & { log: string[] };
}

describe("startRunControl (what nicvisor run --control starts)", () => {
  it("serves the machine commands on the machine, plus the commands an embedder adds; close removes the socket", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-runctl-"));
    dirs.push(dir);
    const path = join(dir, "vm.sock");
    const m = fakeMachine();
    let quits = 0;
    let backing = "passthrough";
    const ctl = await startRunControl(m, { type: "unix", path }, () => quits++, (server) =>
      registerCommands(server, {
        "query-failover": () => ({ backing }),
        "failover-switch": { handler: (a: { to: string }) => void (backing = a.to), parse: (a) => ({ to: oneOf(a.to, "to", ["emulated", "passthrough"]) }) },
      }),
    );
    try {
      const c = await connectControl(`unix:${path}`);
      expect(c.greeting.QMP.version.nicvisor).toMatch(/^\d+\.\d+\.\d+/);
      expect(await c.execute("stop")).toEqual({});
      expect(await c.execute("query-status")).toEqual({ running: false, status: "paused" });
      expect(await c.execute("cont")).toEqual({});
      expect(m.log).toEqual(["pause", "start"]);
      expect(await c.execute("failover-switch", { to: "emulated" })).toEqual({});
      expect(await c.execute("query-failover")).toEqual({ backing: "emulated" });
      expect(await c.execute("quit")).toEqual({});
      for (let i = 0; i < 100 && quits === 0; i++) await new Promise((r) => setTimeout(r, 1));
      expect(quits).toBe(1);
      c.close();
    } finally {
      await ctl.close();
    }
    expect(existsSync(path)).toBe(false);
  });
});
