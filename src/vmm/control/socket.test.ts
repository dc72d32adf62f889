import { afterEach, describe, it, expect } from "vitest";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { connect } from "node:net";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlServer } from "./server.js";
import { registerMachineCommands } from "./commands.js";
import { connectControl, listenControl, ControlSocketError } from "./socket.js";
import { ControlCommandError } from "./protocol.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): { dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "nicvisor-ctl-"));
  dirs.push(dir);
  return { dir };
}

function machineServer(): { server: ControlServer; quits: number[] } {
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
  return { server, quits };
}

describe("control socket (Node transport)", () => {
  it("unix: a client and the server in one process; events arrive; the socket file is removed on close", async () => {
    const t = tempDir();
    const path = join(t.dir, "ctl.sock");
    const { server, quits } = machineServer();
    const l = await listenControl(server, `unix:${path}`);
    try {
      const c = await connectControl(`unix:${path}`);
      const events: string[] = [];
      c.onEvent((e) => events.push(e.event));
      expect(c.greeting.QMP.capabilities).toEqual([]);
      expect(await c.execute("query-status")).toEqual({ running: true, status: "running" });
      expect(await c.execute("stop")).toEqual({});
      expect(await c.execute("query-status")).toEqual({ running: false, status: "paused" });
      await expect(c.execute("nope")).rejects.toBeInstanceOf(ControlCommandError);
      expect(await c.execute("cont")).toEqual({});
      expect(await c.execute("quit")).toEqual({});
      expect(events).toEqual(["STOP", "RESUME", "SHUTDOWN"]);
      await new Promise((r) => setTimeout(r, 10));
      expect(quits).toEqual([1]);
      c.close();
    } finally {
      await l.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  it("tcp: on a loopback port the system picks; many clients at once", async () => {
    const { server } = machineServer();
    const l = await listenControl(server, { type: "tcp", host: "127.0.0.1", port: 0 });
    try {
      expect(l.address.type === "tcp" && l.address.port > 0).toBe(true);
      const clients = await Promise.all(Array.from({ length: 12 }, () => connectControl(l.address)));
      const answers = await Promise.all(clients.map((c) => c.execute("query-status")));
      expect(answers).toEqual(Array.from({ length: 12 }, () => ({ running: true, status: "running" })));
      expect(server.clientCount).toBe(12);
      for (const c of clients) c.close();
    } finally {
      await l.close();
    }
  });

  it("raw bytes: a request split over writes, a bad line, then a good one", async () => {
    const t = tempDir();
    const path = join(t.dir, "raw.sock");
    const { server } = machineServer();
    const l = await listenControl(server, `unix:${path}`);
    try {
      const sock = connect(path);
      let text = "";
      sock.on("data", (d) => (text += d.toString("utf8")));
      await new Promise((r) => sock.once("connect", r));
      sock.write('{"execute":"qmp_capa');
      sock.write('bilities"}\n{oops\n{"execute":"query-status"}\n');
      for (let i = 0; i < 200 && text.split("\n").length < 5; i++) await new Promise((r) => setTimeout(r, 5));
      const lines = text.trim().split("\n").map((x) => JSON.parse(x) as Record<string, unknown>);
      expect(lines).toHaveLength(4);
      expect(lines[0]).toHaveProperty("QMP");
      expect(lines[1]).toEqual({ return: {} });
      expect(lines[2]).toMatchObject({ error: { class: "GenericError" } });
      expect(lines[3]).toEqual({ return: { running: true, status: "running" } });
      sock.destroy();
    } finally {
      await l.close();
    }
  });

  it("a client that pipelines 500 requests gets 500 answers in order (reading pauses, nothing is closed)", async () => {
    const server = new ControlServer({ maxQueued: 8 });
    server.register("echo", async (a: { n: number }) => {
      await new Promise((r) => setTimeout(r, 0));
      return a.n;
    }, { parse: (a) => ({ n: a.n as number }) });
    const l = await listenControl(server, { type: "tcp", host: "127.0.0.1", port: 0 });
    try {
      const c = await connectControl(l.address);
      const answers = await Promise.all(Array.from({ length: 500 }, (_, n) => c.execute("echo", { n })));
      expect(answers).toEqual(Array.from({ length: 500 }, (_, n) => n));
      c.close();
    } finally {
      await l.close();
    }
  });

  it("replaces a stale socket file but never a live one or another file; refuses a non-loopback TCP host", async () => {
    const t = tempDir();
    const path = join(t.dir, "stale.sock");
    // A process killed while listening leaves its socket file behind.
    const dead = spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
    expect(dead.signal).toBe("SIGKILL");
    expect(existsSync(path)).toBe(true);
    const l = await listenControl(new ControlServer(), `unix:${path}`);
    // A live one is not taken over.
    await expect(listenControl(new ControlServer(), `unix:${path}`)).rejects.toThrow(/in use by another control socket/);
    const c = await connectControl(`unix:${path}`);
    c.close();
    await l.close();
    const file = join(t.dir, "plain");
    writeFileSync(file, "keep me");
    await expect(listenControl(new ControlServer(), `unix:${file}`)).rejects.toThrow(/exists and is not a socket/);
    expect(existsSync(file)).toBe(true);
    await expect(listenControl(new ControlServer(), "tcp:0.0.0.0:4444")).rejects.toThrow(/loopback only/);
  });

  it("says clearly when there is no socket, or nothing listens", async () => {
    const t = tempDir();
    const err = await connectControl(`unix:${join(t.dir, "absent.sock")}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlSocketError);
    expect((err as ControlSocketError).code).toBe("ENOENT");
    expect((err as Error).message).toMatch(/no control socket at .*absent\.sock \(is 'nicvisor run --control unix:.*' running\?\)/);
    // A port that was just free: nobody listens there.
    const l = await listenControl(new ControlServer(), { type: "tcp", host: "127.0.0.1", port: 0 });
    const addr = l.address;
    await l.close();
    await expect(connectControl(addr)).rejects.toThrow(/nothing listens on tcp:127\.0\.0\.1:\d+/);
  });
});
