/**
 * `nicvisor run`: boot a Linux guest on nicvisor's machine (v86 CPU, nicvisor's PCI platform).
 * Interactive by default (the serial console on stdio); with `--exec CMD` it boots, waits for the
 * ready marker, runs CMD in the guest shell, prints its output and exits with its status.
 * @module
 */
import { readFileSync } from "node:fs";
import type { CliCommand, CliIo } from "../command.js";
import { UsageError, intArg, scanArgs } from "../command.js";
import { GUEST_MODULES, netPlatform, parseNetSpec, type NetSpec } from "../net-option.js";
import { tracePlatformOf, tracedPlatform } from "../trace-option.js";
import { openNetdev, parseNetdevs, type NetdevSpec } from "../netdev-option.js";
import { ControlAddressError, formatControlAddress, parseControlAddress, type ControlAddress } from "../../vmm/control/protocol.js";
import { registerCommands } from "../../vmm/control/commands.js";
import { MigrationUriError, parseMigrationUri } from "../../vmm/migration/socket.js";
import { arr, bool, field, obj, oneOf, onlyKeys, str } from "../../state/parse.js";
import type { GuestBootOptions } from "../../vmm/harness/runner.js";
import type { MigrationCapability } from "../run-migrate.js";

const USAGE = `usage: nicvisor run [--kernel K --initrd I] [--append ARGS] [--mem MiB] [--exec CMD]
                    [--net virtio[,OPTS]|igb[,mac=M]|vf[,OPTS]|none] [--pcap FILE]
                    [--netdev tap|stream|dgram,id=ID,...] [--control unix:PATH|tcp:HOST:PORT]
                    [--switch-every MS] [--incoming URI | --migrate-to URI [--after S]]
                    [--migrate-transparent]
                    [--trace FILE] [--ready-marker TEXT] [--timeout SECONDS]

  --kernel K         bzImage to boot (default: the project's guest image)
  --initrd I         initramfs (required with --kernel)
  --append ARGS      extra kernel arguments (nicvisor adds its platform's own)
  --mem MiB          guest RAM (default 256)
  --exec CMD         run CMD once the guest is ready, print its output, exit with its status
  --net NIC          a NIC on the host stub's segment (10.0.2.2): virtio (options mac=M, mq=N, packed,
                     mtu=N, standby, no-FEATURE e.g. no-mrg-rxbuf, no-ctrl-vq, no-csum), igb
                     (the whole 82576 PF with its VFs), vf (one 82576 VF, the PF kept by the
                     host PF agent; options mac=M as the admin MAC, trust, spoofchk=off, failover for
                     the failover VF: pass-through or emulated backing, switched unseen) or
                     failover (QEMU's failover=on pair for net_failover: virtio-net STANDBY plus a
                     VF hidden until the guest takes STANDBY, unplugged before a migration and
                     plugged at the destination; option mac=M); default none;
                     with netdev=ID the NIC is on that --netdev's network instead of the host stub's
  --netdev SPEC      a host network, as QEMU 7.2 spells it (repeatable):
                       tap,id=ID[,ifname=NAME][,vnet_hdr=on|off]          (Linux, root)
                       stream,id=ID,server=on|off,addr.type=inet,addr.host=H,addr.port=P[,reconnect=S]
                       stream,id=ID,server=on|off,addr.type=unix,addr.path=PATH
                       dgram,id=ID,local.type=inet,local.host=H,local.port=P,
                             remote.type=inet,remote.host=H,remote.port=P
                       dgram,id=ID,remote.type=inet,remote.host=GROUP,remote.port=P  (multicast)
                     sockets are loopback only; the wire format is QEMU's, so QEMU can be the peer
  --control ADDR     serve the QMP-like control socket on unix:PATH or tcp:127.0.0.1:PORT
                     (query-status, stop, cont, quit, query-commands, migrate, query-migrate,
                     migrate-set-capabilities, query-migrate-capabilities;
                     with --net vf,failover also query-failover, failover-switch {"to": ...};
                     see nicvisor control)
  --switch-every MS  with --net vf,failover: switch the VF's backing every MS milliseconds
  --incoming URI     be a migration destination: wait on tcp:HOST:PORT or unix:PATH for the
                     guest (same --net and --mem as the source), then run it
  --migrate-to URI   migrate the guest to a destination (tcp:HOST:PORT or unix:PATH); the run
                     ends once it has moved (with --control: {"execute":"migrate",
                     "arguments":{"uri":URI}}, and query-migrate for the figures)
  --after S          with --migrate-to: seconds after the guest is ready (default 0)
  --migrate-transparent  with --net vf,failover: migrate with transparent failover (the VF is
                     switched to emulation before the stop and back to pass-through on the
                     destination); the capability x-transparent-failover of
                     migrate-set-capabilities on the control socket
  --pcap FILE        capture the NIC's segment to FILE (libpcap format)
  --trace FILE       record a driver trace of the NIC's platform to FILE (every config, BAR and
                     I/O access, DMA, interrupt, timer and frame, with guest virtual time; see
                     docs/trace.md), written when the run ends; replay it with nicvisor replay FILE.
                     With --net virtio, igb or vf
  --ready-marker T   what the guest's init prints when its shell is up (default @@NICVISOR-READY@@)
  --timeout S        seconds to wait for the ready marker and for CMD (default 180)`;

interface RunArgs {
  kernel?: string;
  initrd?: string;
  append?: string;
  mem: number;
  exec?: string;
  readyMarker?: string;
  timeoutS: number;
  net?: NetSpec;
  pcap?: string;
  trace?: string;
  netdevs?: Map<string, NetdevSpec>;
  control?: ControlAddress;
  switchEveryMs?: number;
  incoming?: string;
  migrateTo?: string;
  afterS?: number;
  migrateTransparent?: boolean;
}

/** A migration URI, checked at parse time. */
function migrationUri(flag: string, uri: string): string {
  try {
    parseMigrationUri(uri);
  } catch (e) {
    if (e instanceof MigrationUriError) throw new UsageError(`${flag} ${e.message}`);
    throw e;
  }
  return uri;
}

/** Parses `nicvisor run` arguments. @throws UsageError */
export function parseRunArgs(argv: string[]): RunArgs {
  const out: RunArgs = { mem: 256, timeoutS: 180 };
  const netdevs: string[] = [];
  scanArgs(argv, (key, val, inline, a) => {
    switch (key) {
      case "--kernel": out.kernel = val(); break;
      case "--initrd": out.initrd = val(); break;
      case "--append": out.append = val(); break;
      case "--exec": out.exec = val(); break;
      case "--ready-marker": out.readyMarker = val(); break;
      case "--net": out.net = parseNetSpec(val()); break;
      case "--pcap": out.pcap = val(); break;
      case "--trace": out.trace = val(); break;
      case "--netdev": netdevs.push(val()); break;
      case "--incoming":
        out.incoming = migrationUri("--incoming", val());
        break;
      case "--migrate-to":
        out.migrateTo = migrationUri("--migrate-to", val());
        break;
      case "--migrate-transparent":
        if (inline) throw new UsageError("--migrate-transparent takes no value");
        out.migrateTransparent = true;
        break;
      case "--after": {
        const v = Number(val());
        if (!Number.isFinite(v) || v < 0 || v > 86400) throw new UsageError("--after takes seconds, 0 to 86400");
        out.afterS = v;
        break;
      }
      case "--switch-every":
        out.switchEveryMs = intArg(val(), 1, 3_600_000, "--switch-every takes milliseconds, 1 to 3600000");
        break;
      case "--control": {
        try {
          out.control = parseControlAddress(val());
        } catch (e) {
          if (e instanceof ControlAddressError) throw new UsageError(`--control ${e.message}`);
          throw e;
        }
        break;
      }
      case "--mem":
        out.mem = intArg(val(), 32, 2048, "--mem must be an integer number of MiB in 32..2048");
        break;
      case "--timeout": {
        const n = Number(val());
        if (!Number.isFinite(n) || n <= 0) throw new UsageError("--timeout must be a positive number of seconds");
        out.timeoutS = n;
        break;
      }
      default:
        throw new UsageError(`unknown argument '${a}'`);
    }
  });
  if ((out.kernel === undefined) !== (out.initrd === undefined)) throw new UsageError("--kernel and --initrd go together");
  if (out.incoming !== undefined && out.migrateTo !== undefined) throw new UsageError("--incoming and --migrate-to exclude each other");
  if (out.afterS !== undefined && out.migrateTo === undefined) throw new UsageError("--after goes with --migrate-to");
  if (out.migrateTransparent === true && out.incoming !== undefined) throw new UsageError("--migrate-transparent is for the source (the destination learns it from the stream)");
  if (out.migrateTransparent === true && !(out.net?.kind === "vf" && out.net.failover)) throw new UsageError("--migrate-transparent needs --net vf,failover");
  if (out.exec !== undefined && out.migrateTo !== undefined) throw new UsageError("--exec and --migrate-to exclude each other (run the command on the destination)");
  if (out.incoming !== undefined && out.kernel !== undefined) throw new UsageError("--incoming takes the guest from the source: no --kernel/--initrd");
  if (out.pcap !== undefined && (out.net === undefined || out.net.kind === "none")) throw new UsageError("--pcap needs a NIC (--net virtio, igb, vf or failover)");
  if (out.trace !== undefined) {
    tracePlatformOf(out.net);
    if (out.incoming !== undefined) throw new UsageError("--trace records from power-on: not with --incoming");
  }
  if (netdevs.length > 0) out.netdevs = parseNetdevs(netdevs);
  const wanted = out.net !== undefined && out.net.kind !== "none" ? out.net.netdev : undefined;
  if (wanted !== undefined && out.netdevs?.get(wanted) === undefined) throw new UsageError(`--net: netdev=${wanted}: no --netdev with id=${wanted}`);
  for (const id of out.netdevs?.keys() ?? []) {
    if (id !== wanted) throw new UsageError(`--netdev id=${id} is not used by any NIC (add netdev=${id} to --net)`);
  }
  return out;
}

/** The default image: the project's guest image, built from Debian packages on first use. */
async function defaultImage(io: CliIo): Promise<{ kernel: string; initrd: string; cmdline: string; vmlinux?: string }> {
  const { buildGuestImage } = await import("../../vmm/host/guest-image/index.js");
  const img = await buildGuestImage({ log: (l) => io.err(`guest-image: ${l}\n`) });
  return { kernel: img.kernel, initrd: img.initrd, cmdline: img.cmdline.join(" "), ...(img.vmlinux !== undefined ? { vmlinux: img.vmlinux } : {}) };
}

/** The image and kernel arguments of a boot (not needed by an incoming migration). */
async function bootOptions(args: RunArgs, io: CliIo, readyMarker: string): Promise<GuestBootOptions> {
  let kernelPath = args.kernel;
  let initrdPath = args.initrd;
  let append = args.append ?? "";
  let kernelElf: Uint8Array | undefined;
  // The images go to the machine without another copy; the large ones are read onto huge pages.
  const { readFileHuge } = await import("../../vmm/host/memory.js");
  if (kernelPath === undefined || initrdPath === undefined) {
    const img = await defaultImage(io);
    kernelPath = img.kernel;
    initrdPath = img.initrd;
    append = `${img.cmdline} ${append}`.trim();
    if (img.vmlinux !== undefined) kernelElf = await readFileHuge(img.vmlinux);
  }
  const kernel = readFileSync(kernelPath);
  if (args.kernel !== undefined) {
    if (!/console=ttyS0/.test(append)) append = `console=ttyS0 ${append}`.trim();
    // Direct boot when the host can decompress the given bzImage (see MachineOptions.kernelElf).
    const { extractVmlinux } = await import("../../vmm/host/guest-image/index.js");
    kernelElf = extractVmlinux(kernel);
  }
  // The project image's init loads these before its ready marker (other images ignore the argument).
  if (args.net !== undefined && args.net.kind !== "none") append = `${append} nv.modules=${GUEST_MODULES[args.net.kind]}`;
  const opts: GuestBootOptions = {
    kernel,
    initrd: await readFileHuge(initrdPath),
    append,
    memMiB: args.mem,
    readyMarker,
  };
  if (kernelElf !== undefined) opts.kernelElf = kernelElf;
  return opts;
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseRunArgs(argv);
  const { GuestVm, DEFAULT_READY_MARKER } = await import("../../vmm/harness/runner.js");
  const interactive = args.exec === undefined;
  const stdin = process.stdin;
  let pcapFile: import("../../vmm/host/net/pcap-file.js").PcapFile | undefined;
  const netdevId = args.net !== undefined && args.net.kind !== "none" ? args.net.netdev : undefined;
  const netdevSpec = netdevId !== undefined ? args.netdevs?.get(netdevId) : undefined;
  const netdev = netdevSpec !== undefined ? await openNetdev(netdevSpec) : undefined;
  if (netdev !== undefined) io.err(`nicvisor run: netdev '${netdevId}': ${netdev.describe}\n`);
  let vm: import("../../vmm/harness/runner.js").GuestVm | undefined;
  let control: import("../run-control.js").RunControl | undefined;
  let switcher: ReturnType<typeof setInterval> | undefined;
  let summary: (() => void) | undefined;
  let recorder: import("../../trace/record.js").TraceRecorder | undefined;
  // Writes the trace once: when the run ends, or on SIGINT/SIGTERM (which end the process).
  let writeTrace = (): void => undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    writeTrace();
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  try {
    const readyMarker = args.readyMarker ?? DEFAULT_READY_MARKER;
    let platform: GuestBootOptions["platform"];
    if (args.net !== undefined) {
      const pcapPath = args.pcap;
      const { openPcapFile } = await import("../../vmm/host/net/pcap-file.js");
      const wrap =
        pcapPath === undefined
          ? undefined
          : (b: import("../../devices/net/backend.js").NetBackend, env: import("../../vmm/machine-platform.js").PlatformEnv) => {
              const f = openPcapFile(pcapPath, { clock: env.clock });
              pcapFile = f;
              return f.tap.wrap(b);
            };
      if (args.trace !== undefined) {
        const { TraceRecorder } = await import("../../trace/record.js");
        const { packageVersion } = await import("../version.js");
        recorder = new TraceRecorder({ platform: tracePlatformOf(args.net), ramBytes: args.mem << 20, ecamDiscovery: "acpi", nicvisor: packageVersion() });
        platform = await tracedPlatform(recorder, wrap, netdev?.backend);
        const { writeFileSync } = await import("node:fs");
        const rec = recorder;
        const path = args.trace;
        let written = false;
        writeTrace = () => {
          if (written) return;
          written = true;
          const bytes = rec.finish();
          writeFileSync(path, bytes);
          io.err(`nicvisor run: ${rec.count} trace events written to ${path} (${bytes.length} bytes${rec.cut ? "; cut at the size bound" : ""})\n`);
        };
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
      } else platform = await netPlatform(args.net, wrap, netdev?.backend);
    }
    const onConsole = interactive ? (t: string) => io.out(t) : undefined;
    const { RunMigration, receiveMigration, queryMigrate, MIGRATION_CAPABILITIES } = await import("../run-migrate.js");
    const mlog = (line: string): void => io.err(`nicvisor run: ${line}\n`);
    if (args.incoming !== undefined) {
      const incoming = await GuestVm.incoming({
        memMiB: args.mem,
        readyMarker,
        ...(platform !== undefined ? { platform } : {}),
        ...(onConsole !== undefined ? { onConsole } : {}),
      });
      vm = incoming;
      const info = await receiveMigration(incoming, args.incoming, mlog);
      if (info.status !== "completed") {
        io.err(`nicvisor run: incoming migration failed: ${info.error ?? "unknown error"}\n`);
        return 1;
      }
    } else {
      const opts = await bootOptions(args, io, readyMarker);
      if (platform !== undefined) opts.platform = platform;
      if (onConsole !== undefined) opts.onConsole = onConsole;
      vm = await GuestVm.boot(opts);
    }
    const machine = vm.machine;
    const migration = new RunMigration(vm, mlog);
    if (args.migrateTransparent === true) migration.setCapabilities([{ capability: "x-transparent-failover", state: true }]);
    // `quit` on the control socket ends the run with status 0, whatever the run is waiting for.
    let quit!: () => void;
    const quitted = new Promise<number>((resolve) => (quit = () => resolve(0)));
    if (args.control !== undefined) {
      const { startRunControl } = await import("../run-control.js");
      control = await startRunControl(machine, args.control, () => quit(), (server) =>
        registerCommands(server, {
          migrate: {
            help: 'migrate the guest: {"uri": "tcp:HOST:PORT" | "unix:PATH"}; the run ends once it has moved',
            parse: (a) => {
              onlyKeys(a, "arguments", ["uri"]);
              return { uri: str(a["uri"], "uri", 4096) };
            },
            handler: async (a: { uri: string }) => {
              await migration.start(a.uri);
              void migration.done?.then((i) => {
                if (i.status === "completed") quit();
              });
              return {};
            },
          },
          "query-migrate": { help: "status, bytes sent, iterations, dirty rate, expected and actual downtime", handler: () => queryMigrate(migration.query()) },
          "migrate-set-capabilities": {
            help: 'set migration capabilities: {"capabilities": [{"capability": "x-transparent-failover", "state": true}]}',
            parse: (a) => {
              onlyKeys(a, "arguments", ["capabilities"]);
              return arr(a["capabilities"], "capabilities", MIGRATION_CAPABILITIES.length * 4, (c, p) => {
                const o = obj(c, p);
                onlyKeys(o, p, ["capability", "state"]);
                return { capability: field(o, "capability", p, (v, vp) => oneOf(v, vp, MIGRATION_CAPABILITIES)), state: field(o, "state", p, bool) };
              });
            },
            handler: (caps: Array<{ capability: MigrationCapability; state: boolean }>) => {
              migration.setCapabilities(caps);
              return {};
            },
          },
          "query-migrate-capabilities": { help: "the migration capabilities and their states", handler: () => [...migration.capabilities].map(([capability, state]) => ({ capability, state })) },
        }),
      );
      io.err(`nicvisor run: control socket on ${formatControlAddress(control.listener.address)}\n`);
    }
    const { FailoverVfPlatform } = await import("../../vmm/platforms.js");
    if (machine.platform instanceof FailoverVfPlatform) {
      const fp = machine.platform;
      if (args.switchEveryMs !== undefined) {
        switcher = setInterval(() => {
          const r = fp.failover.switchTo(fp.failover.active === "passthrough" ? "emulated" : "passthrough");
          if (!r.ok) io.err(`nicvisor run: failover switch failed: ${r.error.message}\n`);
        }, args.switchEveryMs);
      }
      summary = () => {
        const st = fp.failover.stats();
        io.err(
          `nicvisor run: failover: ${st.switches} switches (${st.failures} failed), worst blackout ${(st.worstBlackoutWallNs / 1e6).toFixed(3)} ms, frames lost ${st.framesDropped}, frames queued ${st.framesQueued}, backing ${st.backing}\n`,
        );
      };
    } else if (args.switchEveryMs !== undefined) {
      io.err("nicvisor run: --switch-every needs --net vf,failover; ignored\n");
    }
    // Work on the ready guest that ends the run, unless the control socket says quit first.
    const guest = vm;
    const untilQuit = (work: () => Promise<number>): Promise<number> => {
      const w = guest.waitReady(args.timeoutS * 1000).then(work);
      w.catch(() => undefined);
      return Promise.race([w, quitted]);
    };
    if (args.migrateTo !== undefined) {
      const to = args.migrateTo;
      const code = await untilQuit(async () => {
        await new Promise((r) => setTimeout(r, (args.afterS ?? 0) * 1000));
        await migration.start(to);
        const i = await migration.done!;
        return i.status === "completed" ? 0 : 1;
      });
      if (code !== 0) io.err("nicvisor run: migration failed; the guest ran on here until the end of the run\n");
      return code;
    }
    if (!interactive) {
      return await untilQuit(async () => {
        const r = await guest.exec(args.exec ?? "", { timeoutMs: args.timeoutS * 1000 });
        io.out(r.output);
        return r.status;
      });
    }
    // Interactive: stdin bytes go to the guest's serial port until the guest stops, stdin ends or
    // the control socket says quit.
    return await new Promise<number>((resolve) => {
      const onData = (d: Buffer): void => {
        // Ctrl-] ends the session, as in telnet.
        if (d.includes(0x1d)) return finish(0);
        machine.cpu.serialSend(d.toString("latin1"));
      };
      const finish = (code: number): void => {
        stdin.off("data", onData);
        if (stdin.isTTY) stdin.setRawMode(false);
        stdin.pause();
        resolve(code);
      };
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.on("data", onData);
      stdin.once("end", () => finish(0));
      void quitted.then(finish);
      machine.onStop((r) => {
        io.err(`\nnicvisor run: guest stopped (${r.kind}${"detail" in r ? ": " + r.detail : ""})\n`);
        finish(r.kind === "stopped" || r.kind === "halted" || r.kind === "poweroff" ? 0 : 1);
      });
      stdin.resume();
    });
  } finally {
    if (switcher !== undefined) clearInterval(switcher);
    summary?.();
    await control?.close();
    await vm?.dispose();
    netdev?.backend.close?.();
    writeTrace();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (pcapFile !== undefined) {
      pcapFile.close();
      io.err(`nicvisor run: ${pcapFile.tap.counters.packets} frames captured to ${pcapFile.path}\n`);
    }
  }
}

/** The `run` command. */
export const command: CliCommand = {
  name: "run",
  summary: "boot a Linux guest on nicvisor's machine (v86); --exec runs one command and exits with its status",
  usage: USAGE,
  run,
};
