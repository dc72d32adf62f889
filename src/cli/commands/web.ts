/**
 * `nicvisor web`: serves, on localhost, the page in which the project's Debian guest boots on v86
 * with nicvisor's platform in the browser, with views of its NIC (see `src/web/page`). The server
 * only hands out files: the page bundle (built by `npm run build` into `dist/web/page`), v86's engine,
 * SeaBIOS, and the guest image from the local cache (built on first use, as `nicvisor run` does),
 * plus `config.json` saying which NIC and kernel arguments the page boots with.
 * @module
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { CliCommand, CliIo } from "../command.js";
import { UsageError, intArg, scanArgs } from "../command.js";
import { GUEST_MODULES } from "../net-option.js";
import { WEB_NETS, type WebNet } from "../../web/platform.js";

const USAGE = `usage: nicvisor web [--port N] [--net virtio|igb|vf|vf,failover] [--mem MiB] [--append ARGS]

  Serves a page on http://127.0.0.1:N/ in which the project's Debian guest boots on v86 with
  nicvisor's NIC, and shows it working: the serial console, the PCI tree as the guest enumerates
  it (VFs appear when the guest writes sriov_numvfs), each queue's ring indexes, the register
  accesses with names and decoded bits, interrupts per vector, the frames (with a pcap download),
  and for vf,failover a switch button with the blackout of each switch. The page can download the
  driver trace it records (nicvisor replay FILE) and step through a trace, forwards and back.

  --port N       TCP port on 127.0.0.1 (default 8086; 0 picks a free one)
  --net NIC      virtio, igb (the whole 82576 PF; make VFs with sriov_numvfs), vf (one VF, the PF
                 kept by the host PF agent) or vf,failover (the failover VF); default igb. The
                 NIC's network is the in-page host stub at 10.0.2.2 (give the guest 10.0.2.15/24)
  --mem MiB      guest RAM (default 256)
  --append ARGS  extra kernel arguments

  The guest image comes from the local cache (built from Debian packages on first use; needs
  root and apt the first time, as nicvisor guest-image). Stop with Ctrl-C.`;

interface WebArgs {
  port: number;
  net: WebNet;
  netName: string;
  mem: number;
  append: string;
}

/** Parses `nicvisor web` arguments. @throws UsageError */
export function parseWebArgs(argv: string[]): WebArgs {
  const out: WebArgs = { port: 8086, net: { kind: "igb" }, netName: "igb", mem: 256, append: "" };
  scanArgs(argv, (key, val, _inline, a) => {
    switch (key) {
      case "--port":
        out.port = intArg(val(), 0, 65535, "--port takes 0 to 65535");
        break;
      case "--net": {
        const v = val();
        const net = WEB_NETS[v];
        if (net === undefined) throw new UsageError(`--net ${v}: expected ${Object.keys(WEB_NETS).join(", ")}`);
        out.net = net;
        out.netName = v;
        break;
      }
      case "--mem":
        out.mem = intArg(val(), 64, 1024, "--mem must be an integer number of MiB in 64..1024");
        break;
      case "--append":
        out.append = val();
        break;
      default:
        throw new UsageError(`unknown argument '${a}'`);
    }
  });
  return out;
}

/** The page's files in the build: dist/web/page (scripts/build-web.mjs), next to dist/cli. */
function pageDir(): string {
  return fileURLToPath(new URL("../../web/page/", import.meta.url));
}

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".map": "application/json", ".json": "application/json", ".wasm": "application/wasm" };

async function web(argv: string[], io: CliIo): Promise<number> {
  const args = parseWebArgs(argv);
  const dir = pageDir();
  if (!existsSync(`${dir}page.js`)) {
    io.err(`nicvisor web: the page is not built (${dir}page.js is missing): run npm run build\n`);
    return 1;
  }
  const { requireV86Assets } = await import("../../vmm/host/v86-assets.js");
  const { buildGuestImage } = await import("../../vmm/host/guest-image/index.js");
  const { DEFAULT_READY_MARKER } = await import("../../vmm/harness/runner.js");
  const { packageVersion } = await import("../version.js");
  const v86 = requireV86Assets();
  io.err("nicvisor web: preparing the guest image\n");
  const img = await buildGuestImage({ log: (l) => io.err(`guest-image: ${l}\n`) });
  const modules = GUEST_MODULES[args.net.kind === "vf-failover" ? "vf" : args.net.kind];
  // URL path -> file: only these are served.
  const files = new Map<string, string>([
    ["/", `${dir}index.html`],
    ["/index.html", `${dir}index.html`],
    ["/page.js", `${dir}page.js`],
    ["/page.js.map", `${dir}page.js.map`],
    ["/worker.js", `${dir}worker.js`],
    ["/worker.js.map", `${dir}worker.js.map`],
    ["/files/v86.wasm", v86.wasmPath],
    ["/files/bios.bin", v86.biosPath],
    ["/files/bzImage", img.kernel],
    ["/files/initrd", img.initrd],
  ]);
  if (v86.vgaBiosPath !== undefined) files.set("/files/vgabios.bin", v86.vgaBiosPath);
  if (img.vmlinux !== undefined) files.set("/files/vmlinux", img.vmlinux);
  const config = JSON.stringify({
    net: args.net,
    netName: args.netName,
    memMiB: args.mem,
    append: `${img.cmdline.join(" ")} nv.modules=${modules} ${args.append}`.trim(),
    readyMarker: DEFAULT_READY_MARKER,
    nicvisor: packageVersion(),
    v86Version: v86.v86Version,
    files: {
      wasm: "files/v86.wasm",
      bios: "files/bios.bin",
      kernel: "files/bzImage",
      initrd: "files/initrd",
      ...(v86.vgaBiosPath !== undefined ? { vgaBios: "files/vgabios.bin" } : {}),
      ...(img.vmlinux !== undefined ? { vmlinux: "files/vmlinux" } : {}),
    },
  });
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    // The query is dropped: the page loads worker.js?use-scheduling-api (a flag for v86), the same file.
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (path === "/config.json") {
      res.writeHead(200, { "content-type": TYPES[".json"]!, "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : config);
      return;
    }
    const file = files.get(path);
    if (file === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`${path}: not here\n`);
      return;
    }
    let size: number;
    try {
      size = statSync(file).size;
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${(e as Error).message}\n`);
      return;
    }
    const ext = /\.[a-z]+$/.exec(path)?.[0] ?? "";
    res.writeHead(200, { "content-type": TYPES[path === "/" ? ".html" : ext] ?? "application/octet-stream", "content-length": size, "cache-control": "no-cache" });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    createReadStream(file).on("error", () => res.destroy()).pipe(res);
  };
  const server = createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(args.port, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : args.port;
  io.err(`nicvisor web: serving http://127.0.0.1:${port}/ (--net ${args.netName}, ${args.mem} MiB, Linux ${img.kernelVersion}); Ctrl-C stops\n`);
  io.err("nicvisor web: a Chromium started with --js-flags=--liftoff-only boots the guest several times faster (V8 then keeps v86's generated code on its baseline tier, as nicvisor run does; docs/web.md)\n");
  return await new Promise<number>((resolve) => {
    const stop = (): void => {
      server.close();
      server.closeAllConnections();
      resolve(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** The `web` command. */
export const command: CliCommand = {
  name: "web",
  summary: "serve a page in which the guest boots in the browser on nicvisor's NIC, watched from inside",
  usage: USAGE,
  run: web,
};
