import { describe, it, expect } from "vitest";
import { ControlServer, ControlRegistryError, type ControlSession } from "./server.js";
import { ControlClientCore } from "./client.js";
import { registerCommands, registerMachineCommands, type MachineControlTarget } from "./commands.js";
import { CONTROL_MAX_LINE, ControlAddressError, ControlCommandError, LineSplitter, parseControlAddress } from "./protocol.js";
import { StateError, oneOf } from "../../state/parse.js";
import type { StopReason } from "../cpu/backend.js";

const enc = new TextEncoder();

/** A session on a fake transport that records the lines it is sent. */
function open(server: ControlServer): { lines: unknown[]; closed: { v: boolean }; s: ControlSession; send: (text: string) => void } {
  const lines: unknown[] = [];
  const closed = { v: false };
  const s = server.connect({ send: (l) => lines.push(JSON.parse(l)), close: () => (closed.v = true) })!;
  expect(s).toBeDefined();
  return { lines, closed, s, send: (text) => s.receive(enc.encode(text)) };
}

/** Lets queued handlers run (each request awaits its handler). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
};

/** A session past negotiation. */
async function ready(server: ControlServer): Promise<ReturnType<typeof open>> {
  const c = open(server);
  c.send('{"execute":"qmp_capabilities"}\n');
  await settle();
  expect(c.lines.splice(0)).toEqual([expect.objectContaining({ QMP: expect.anything() }), { return: {} }]);
  return c;
}

describe("control server: the QMP session", () => {
  it("greets in QMP's shape with no capabilities", () => {
    const c = open(new ControlServer({ version: "1.2.3" }));
    expect(c.lines).toEqual([{ QMP: { version: { nicvisor: "1.2.3", qemu: { major: 0, minor: 0, micro: 0 }, package: "nicvisor 1.2.3" }, capabilities: [] } }]);
  });

  it("refuses commands before qmp_capabilities, and qmp_capabilities after it, as CommandNotFound", async () => {
    const c = open(new ControlServer());
    c.send('{"execute":"query-commands","id":1}\n');
    await settle();
    expect(c.lines[1]).toEqual({ error: { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }, id: 1 });
    c.send('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n');
    await settle();
    expect(c.lines[2]).toEqual({ error: { class: "GenericError", desc: "Capability 'oob' not available" } });
    c.send('{"execute":"qmp_capabilities","arguments":{"enable":[]}}\n{"execute":"qmp_capabilities"}\n');
    await settle();
    expect(c.lines.slice(3)).toEqual([{ return: {} }, { error: { class: "CommandNotFound", desc: "Capabilities negotiation is already complete, command ignored" } }]);
  });

  it("answers an unknown command with CommandNotFound and echoes any id", async () => {
    const c = await ready(new ControlServer());
    c.send('{"execute":"no-such","id":{"x":[1]}}\n');
    await settle();
    expect(c.lines).toEqual([{ error: { class: "CommandNotFound", desc: "The command no-such has not been found" }, id: { x: [1] } }]);
  });

  it("answers each kind of malformed request with a GenericError that says what is wrong, and goes on", async () => {
    const server = new ControlServer();
    server.register("echo", (a) => a, { parse: (a) => a });
    const c = await ready(server);
    const bad: Array<[string, string]> = [
      ["{not json", "JSON parse error: "],
      ["[1,2]", "QMP input must be a JSON object"],
      ['"execute"', "QMP input must be a JSON object"],
      ['{"arguments":{}}', "QMP input lacks member 'execute'"],
      ['{"execute":7}', "QMP input member 'execute' must be a string"],
      ['{"execute":"echo","arguments":[1]}', "QMP input member 'arguments' must be an object"],
      ['{"execute":"echo","argument":{}}', "QMP input member 'argument' is unexpected"],
      ['{"execute":"query-commands","arguments":{"verbose":true}}', "Parameter 'verbose' is unexpected (query-commands takes no arguments)"],
    ];
    c.send(bad.map(([l]) => l).join("\n") + '\n{"execute":"echo","arguments":{"a":1}}\n');
    await settle();
    expect(c.lines).toHaveLength(bad.length + 1);
    bad.forEach(([, desc], i) => {
      const r = c.lines[i] as { error: { class: string; desc: string } };
      expect(r.error.class).toBe("GenericError");
      expect(r.error.desc.startsWith(desc)).toBe(true);
    });
    expect(c.lines[bad.length]).toEqual({ return: { a: 1 } });
  });

  it("refuses bad arguments through the command's parser, naming the parameter", async () => {
    const server = new ControlServer();
    server.register("failover-switch", (a: { to: string }) => ({ now: a.to }), {
      parse: (a) => ({ to: oneOf(a.to, "to", ["emulated", "passthrough"]) }),
    });
    const c = await ready(server);
    c.send('{"execute":"failover-switch","arguments":{"to":"nowhere"}}\n{"execute":"failover-switch"}\n{"execute":"failover-switch","arguments":{"to":"emulated"}}\n');
    await settle();
    expect(c.lines).toEqual([
      { error: { class: "GenericError", desc: `Invalid parameter 'to': expected one of emulated, passthrough, got "nowhere"` } },
      { error: { class: "GenericError", desc: "Invalid parameter 'to': expected one of emulated, passthrough, got undefined" } },
      { return: { now: "emulated" } },
    ]);
  });

  it("survives handlers that throw, reject, return what JSON cannot carry, or pick their own error class", async () => {
    const server = new ControlServer();
    server.register("boom", () => {
      throw new Error("sync failure");
    });
    server.register("later-boom", async () => {
      await Promise.resolve();
      throw new TypeError("async failure");
    });
    server.register("bigint", () => 1n);
    server.register("missing", () => {
      throw new ControlCommandError("DeviceNotFound", "no such VF");
    });
    server.register("throws-string", () => {
      throw "plain"; // eslint-disable-line @typescript-eslint/only-throw-error
    });
    server.register("nothing", () => undefined);
    const c = await ready(server);
    c.send(["boom", "later-boom", "bigint", "missing", "throws-string", "nothing"].map((n) => `{"execute":"${n}"}`).join("\n") + "\n");
    await settle();
    expect(c.lines).toEqual([
      { error: { class: "GenericError", desc: "sync failure" } },
      { error: { class: "GenericError", desc: "async failure" } },
      { error: { class: "GenericError", desc: expect.stringMatching(/^the result cannot be encoded as JSON: /) } },
      { error: { class: "DeviceNotFound", desc: "no such VF" } },
      { error: { class: "GenericError", desc: "plain" } },
      { return: {} },
    ]);
    expect(c.s.closed).toBe(false);
    expect(c.s.answered).toBe(7);
  });

  it("answers in request order even when an earlier handler is slower", async () => {
    const server = new ControlServer();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    server.register("slow", async () => {
      await gate;
      return "slow";
    });
    server.register("fast", () => "fast");
    const c = await ready(server);
    c.send('{"execute":"slow","id":1}\n{"execute":"fast","id":2}\n');
    await settle();
    expect(c.lines).toEqual([]);
    release();
    await settle();
    expect(c.lines).toEqual([{ return: "slow", id: 1 }, { return: "fast", id: 2 }]);
  });

  it("refuses a line over the cap (also one split across chunks) and then serves the next line", async () => {
    const server = new ControlServer({ maxLine: 64 });
    const c = await ready(server);
    const long = `{"execute":"query-commands","id":"${"x".repeat(100)}"}`;
    c.send(long.slice(0, 40));
    c.send(long.slice(40) + "\r\n" + '{"execute":"query-version","id":2}\r\n');
    await settle();
    expect(c.lines).toEqual([
      { error: { class: "GenericError", desc: "request line longer than 64 bytes, skipped" } },
      { return: expect.objectContaining({ nicvisor: "0" }), id: 2 },
    ]);
  });

  it("refuses a line over the default 1 MiB cap, and a line that is not UTF-8", async () => {
    const c = await ready(new ControlServer());
    const big = enc.encode(`{"execute":"query-version","id":"${"y".repeat(CONTROL_MAX_LINE)}"}\n`);
    for (let o = 0; o < big.length; o += 65536) c.s.receive(big.subarray(o, o + 65536));
    c.s.receive(Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d, 0x0a));
    c.send('{"execute":"query-version","id":3}\n');
    await settle();
    expect(c.lines).toEqual([
      { error: { class: "GenericError", desc: `request line longer than ${CONTROL_MAX_LINE} bytes, skipped` } },
      { error: { class: "GenericError", desc: "request line is not valid UTF-8" } },
      { return: expect.objectContaining({ nicvisor: "0" }), id: 3 },
    ]);
  });

  it("closes a session that queues more requests than allowed while one runs", async () => {
    const server = new ControlServer({ maxQueued: 4 });
    server.register("hang", () => new Promise(() => undefined));
    const c = await ready(server);
    c.send('{"execute":"hang"}\n' + '{"execute":"query-version"}\n'.repeat(10));
    await settle();
    expect(c.lines).toEqual([{ error: { class: "GenericError", desc: "too many requests waiting (at most 4); closing" } }]);
    expect(c.closed.v).toBe(true);
    expect(server.clientCount).toBe(0);
  });

  it("with a transport that has flow control, pauses reading instead of closing, and resumes once half are answered", async () => {
    const server = new ControlServer({ maxQueued: 4 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    server.register("hang", () => gate);
    const lines: unknown[] = [];
    const flow: string[] = [];
    const s = server.connect({ send: (l) => lines.push(JSON.parse(l)), close: () => flow.push("close"), pause: () => flow.push("pause"), resume: () => flow.push("resume") })!;
    s.receive(enc.encode('{"execute":"qmp_capabilities"}\n{"execute":"hang"}\n' + '{"execute":"query-version","id":1}\n'.repeat(10)));
    await settle();
    expect(flow).toEqual(["pause"]);
    release();
    await settle();
    expect(flow).toEqual(["pause", "resume"]);
    expect(lines).toHaveLength(1 + 1 + 1 + 10);
    expect(s.closed).toBe(false);
  });

  it("caps the clients, tells the one refused, and takes a new one when a place frees", () => {
    const server = new ControlServer({ maxClients: 3 });
    const sessions = [open(server), open(server), open(server)];
    const lines: string[] = [];
    let closed = false;
    expect(server.connect({ send: (l) => lines.push(l), close: () => (closed = true) })).toBeUndefined();
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([{ error: { class: "GenericError", desc: "too many clients (at most 3)" } }]);
    expect(closed).toBe(true);
    expect(server.refusedClients).toBe(1);
    sessions[0]!.s.detach();
    expect(server.clientCount).toBe(2);
    expect(open(server).s.closed).toBe(false);
  });

  it("serves many clients at once, each with its replies in order", async () => {
    const server = new ControlServer({ maxClients: 200 });
    server.register("double", async (a: { n: number }) => {
      await Promise.resolve();
      return a.n * 2;
    }, { parse: (a) => ({ n: a.n as number }) });
    const clients = await Promise.all(Array.from({ length: 200 }, () => ready(server)));
    clients.forEach((c, i) => c.send(`{"execute":"double","arguments":{"n":${i}},"id":"a"}\n{"execute":"double","arguments":{"n":${i + 1000}},"id":"b"}\n`));
    await settle();
    clients.forEach((c, i) => expect(c.lines).toEqual([{ return: i * 2, id: "a" }, { return: (i + 1000) * 2, id: "b" }]));
    expect(server.clientCount).toBe(200);
  });

  it("pushes events with QMP timestamps to negotiated sessions only", async () => {
    const server = new ControlServer({ now: () => 1_700_000_000_123.5 });
    const a = await ready(server);
    const b = open(server);
    server.emit("STOP");
    server.emit("FAILOVER", { to: "emulated" });
    expect(a.lines).toEqual([
      { event: "STOP", timestamp: { seconds: 1_700_000_000, microseconds: 123_500 } },
      { event: "FAILOVER", data: { to: "emulated" }, timestamp: { seconds: 1_700_000_000, microseconds: 123_500 } },
    ]);
    expect(b.lines).toHaveLength(1); // the greeting only
  });

  it("keeps a registry: query-commands lists it; a name taken or malformed is refused", async () => {
    const server = new ControlServer();
    server.register("x-one", () => 1, { help: "one" });
    expect(() => server.register("x-one", () => 2)).toThrow(ControlRegistryError);
    expect(() => server.register("qmp_capabilities", () => 2)).toThrow(ControlRegistryError);
    expect(() => server.register("bad name", () => 2)).toThrow(ControlRegistryError);
    expect(server.commands()).toContainEqual({ name: "x-one", help: "one" });
    const c = await ready(server);
    c.send('{"execute":"query-commands"}\n');
    await settle();
    expect(c.lines).toEqual([{ return: [{ name: "query-commands" }, { name: "query-version" }, { name: "x-one" }] }]);
    expect(server.unregister("x-one")).toBe(true);
    await expect(server.execute("x-one")).rejects.toMatchObject({ errorClass: "CommandNotFound" });
  });
});

describe("control server: machine commands", () => {
  function fakeMachine(): MachineControlTarget & { calls: string[]; running_: boolean; reason: StopReason | undefined } {
    const m = {
      calls: [] as string[],
      running_: true,
      reason: undefined as StopReason | undefined,
      running: () => m.running_,
      stopReason: () => m.reason,
      pause: async () => {
        m.calls.push("pause");
        m.running_ = false;
      },
      resume: async () => {
        m.calls.push("resume");
        m.running_ = true;
      },
      quit: () => m.calls.push("quit"),
    };
    return m;
  }

  it("query-status, stop, cont (idempotent, with STOP/RESUME events) and quit after its reply", async () => {
    const server = new ControlServer();
    const m = fakeMachine();
    registerMachineCommands(server, m);
    const c = await ready(server);
    const run = async (cmd: string): Promise<unknown[]> => {
      c.send(`{"execute":"${cmd}"}\n`);
      await settle();
      return c.lines.splice(0).map((l) => ("event" in (l as object) ? (l as { event: string }).event : l));
    };
    expect(await run("query-status")).toEqual([{ return: { running: true, status: "running" } }]);
    expect(await run("stop")).toEqual(["STOP", { return: {} }]);
    expect(await run("stop")).toEqual([{ return: {} }]);
    expect(await run("query-status")).toEqual([{ return: { running: false, status: "paused" } }]);
    expect(await run("cont")).toEqual(["RESUME", { return: {} }]);
    expect(await run("cont")).toEqual([{ return: {} }]);
    expect(m.calls).toEqual(["pause", "resume"]);
    c.send('{"execute":"quit"}\n');
    await Promise.resolve();
    await Promise.resolve();
    expect(m.calls).toEqual(["pause", "resume"]); // not before the reply
    await settle();
    expect(c.lines.map((l) => ("event" in (l as object) ? (l as { event: string }).event : l))).toEqual(["SHUTDOWN", { return: {} }]);
    expect(m.calls).toEqual(["pause", "resume", "quit"]);
  });

  it("a machine stopped for good reports shutdown and refuses cont", async () => {
    const server = new ControlServer();
    const m = fakeMachine();
    registerMachineCommands(server, m);
    m.reason = { kind: "halted", detail: "hlt with interrupts off" };
    await expect(server.execute("query-status")).resolves.toEqual({ running: false, status: "shutdown" });
    await expect(server.execute("cont")).rejects.toThrow("the guest has stopped for good (halted: hlt with interrupts off)");
  });

  it("registerCommands adds a table (bare handlers and described ones)", async () => {
    const server = new ControlServer();
    let backing = "passthrough";
    registerCommands(server, {
      "query-failover": () => ({ backing }),
      "failover-switch": {
        help: "switch the VF's backing",
        parse: (a) => {
          if (!("to" in a)) throw new StateError("to", "missing");
          return { to: oneOf(a.to, "to", ["emulated", "passthrough"]) };
        },
        handler: (a: { to: string }) => void (backing = a.to),
      },
    });
    await expect(server.execute("failover-switch", { to: "emulated" })).resolves.toEqual({});
    await expect(server.execute("query-failover")).resolves.toEqual({ backing: "emulated" });
    await expect(server.execute("failover-switch", {})).rejects.toThrow("Invalid parameter 'to': missing");
    expect(server.commands().find((c) => c.name === "failover-switch")?.help).toBe("switch the VF's backing");
  });
});

describe("control client core against the server core (in memory)", () => {
  it("greets, negotiates, matches replies, raises error replies and hands events on", async () => {
    const server = new ControlServer();
    server.register("add", (a: { x: number; y: number }) => a.x + a.y, { parse: (a) => ({ x: Number(a.x), y: Number(a.y) }) });
    let session: ControlSession | undefined;
    const client = new ControlClientCore((line) => session!.receive(enc.encode(line + "\n")));
    session = server.connect({ send: (l) => client.receive(enc.encode(l + "\n")), close: () => client.fail(new Error("closed")) });
    expect((await client.greeting).QMP.capabilities).toEqual([]);
    await expect(client.execute("qmp_capabilities")).resolves.toEqual({});
    const events: string[] = [];
    client.onEvent((e) => events.push(e.event));
    await expect(client.execute("add", { x: 2, y: 3 })).resolves.toBe(5);
    const err = await client.execute("nope").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlCommandError);
    expect(err).toMatchObject({ errorClass: "CommandNotFound" });
    server.emit("HELLO");
    expect(events).toEqual(["HELLO"]);
    session!.close();
    await expect(client.execute("add", { x: 1, y: 1 })).rejects.toThrow("closed");
  });

  it("a refused client's greeting rejects with the server's reason", async () => {
    const server = new ControlServer({ maxClients: 0 });
    const client = new ControlClientCore(() => undefined);
    server.connect({ send: (l) => client.receive(enc.encode(l + "\n")), close: () => undefined });
    await expect(client.greeting).rejects.toThrow("too many clients (at most 0)");
  });
});

describe("control protocol helpers", () => {
  it("parses unix: and tcp: addresses and says what is wrong with others", () => {
    expect(parseControlAddress("unix:/tmp/a b")).toEqual({ type: "unix", path: "/tmp/a b" });
    expect(parseControlAddress("tcp:127.0.0.1:4444")).toEqual({ type: "tcp", host: "127.0.0.1", port: 4444 });
    expect(parseControlAddress("tcp:[::1]:1")).toEqual({ type: "tcp", host: "::1", port: 1 });
    expect(() => parseControlAddress("unix:")).toThrow(/needs a path/);
    expect(() => parseControlAddress("tcp:host")).toThrow(/expected tcp:HOST:PORT/);
    expect(() => parseControlAddress("tcp:h:70000")).toThrow(/port must be in 1..65535/);
    expect(() => parseControlAddress("/tmp/x")).toThrow(ControlAddressError);
  });

  it("splits lines across chunks, drops CR, and skips an overlong line to its end", () => {
    const s = new LineSplitter(8);
    expect(s.push(enc.encode("ab"))).toEqual([]);
    expect(s.push(enc.encode("c\r\nde\n0123456789"))).toEqual(["abc", "de", { tooLong: true }]);
    expect(s.push(enc.encode("more\nok\n"))).toEqual(["ok"]);
  });
});
