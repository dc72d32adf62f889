import { describe, it, expect, afterEach } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../main.js";
import { parseControlArgs } from "./control.js";
import { ControlServer } from "../../vmm/control/server.js";
import { registerMachineCommands } from "../../vmm/control/commands.js";
import { listenControl } from "../../vmm/control/socket.js";
import { oneOf } from "../../state/parse.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function cli(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const status = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { status, out, err };
}

describe("nicvisor control", () => {
  it("parses its arguments and refuses bad ones", () => {
    expect(parseControlArgs(["unix:/tmp/s", "query-status"])).toEqual({ address: { type: "unix", path: "/tmp/s" }, command: "query-status", timeoutS: 30 });
    expect(parseControlArgs(["--timeout", "5", "tcp:127.0.0.1:4", "failover-switch", '{"to":"emulated"}'])).toEqual({
      address: { type: "tcp", host: "127.0.0.1", port: 4 }, command: "failover-switch", args: { to: "emulated" }, timeoutS: 5,
    });
    expect(() => parseControlArgs(["unix:/tmp/s"])).toThrow(/needs an ADDRESS and a COMMAND/);
    expect(() => parseControlArgs(["/tmp/s", "stop"])).toThrow(/expected unix:PATH or tcp:HOST:PORT/);
    expect(() => parseControlArgs(["unix:/s", "x", "{bad"])).toThrow(/JSON-ARGUMENTS is not JSON/);
    expect(() => parseControlArgs(["unix:/s", "x", "[1]"])).toThrow(/must be a JSON object/);
    expect(() => parseControlArgs(["unix:/s", "x", "{}", "more"])).toThrow(/too many arguments/);
  });

  it("against a server: prints the return as JSON (exit 0), an error's desc on stderr (exit 1), a usage error (exit 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-ctl-cli-"));
    dirs.push(dir);
    const path = join(dir, "vm.sock");
    const server = new ControlServer();
    let running = true;
    const quits: number[] = [];
    registerMachineCommands(server, {
      running: () => running,
      stopReason: () => undefined,
      pause: async () => void (running = false),
      resume: async () => void (running = true),
      quit: () => quits.push(1),
    });
    server.register("failover-switch", (a: { to: string }) => ({ backing: a.to }), { parse: (a) => ({ to: oneOf(a.to, "to", ["emulated", "passthrough"]) }) });
    const l = await listenControl(server, `unix:${path}`);
    try {
      expect(await cli(["control", `unix:${path}`, "query-status"])).toEqual({ status: 0, out: '{"running":true,"status":"running"}\n', err: "" });
      expect(await cli(["control", `unix:${path}`, "stop"])).toEqual({ status: 0, out: "{}\n", err: "" });
      expect((await cli(["control", `unix:${path}`, "query-status"])).out).toBe('{"running":false,"status":"paused"}\n');
      expect(await cli(["control", `unix:${path}`, "failover-switch", '{"to":"emulated"}'])).toEqual({ status: 0, out: '{"backing":"emulated"}\n', err: "" });
      expect(await cli(["control", `unix:${path}`, "failover-switch", '{"to":"sideways"}'])).toEqual({
        status: 1, out: "", err: `nicvisor control: failover-switch: Invalid parameter 'to': expected one of emulated, passthrough, got "sideways" (GenericError)\n`,
      });
      expect(await cli(["control", `unix:${path}`, "no-such"])).toEqual({ status: 1, out: "", err: "nicvisor control: no-such: The command no-such has not been found (CommandNotFound)\n" });
      const usage = await cli(["control", `unix:${path}`]);
      expect(usage.status).toBe(2);
      expect(usage.err).toMatch(/needs an ADDRESS and a COMMAND[\s\S]*usage: nicvisor control/);
      expect(await cli(["control", `unix:${path}`, "quit"])).toEqual({ status: 0, out: "{}\n", err: "" });
      // quit acts on a later turn, after its reply.
      for (let i = 0; i < 100 && quits.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
    } finally {
      await l.close();
    }
    expect(quits).toEqual([1]);
  });

  it("says clearly that no socket is there, or that nothing listens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nicvisor-ctl-cli-"));
    dirs.push(dir);
    const r = await cli(["control", `unix:${join(dir, "none.sock")}`, "query-status"]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/^nicvisor control: no control socket at .*none\.sock \(is 'nicvisor run --control unix:.*none\.sock' running\?\)\n$/);
    const l = await listenControl(new ControlServer(), { type: "tcp", host: "127.0.0.1", port: 0 });
    const a = l.address;
    await l.close();
    const t = await cli(["control", `tcp:127.0.0.1:${a.type === "tcp" ? a.port : 0}`, "query-status"]);
    expect(t.status).toBe(1);
    expect(t.err).toMatch(/nothing listens on tcp:127\.0\.0\.1:\d+/);
  });

  it("is listed in nicvisor help", async () => {
    expect((await cli(["help"])).out).toMatch(/control\s+run one command on a running machine's control socket/);
  });
});
