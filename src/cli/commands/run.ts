/**
 * `nicvisor run`: boot a Linux guest on nicvisor's machine (v86 CPU, nicvisor's PCI platform).
 * Interactive by default (the serial console on stdio); with `--exec CMD` it boots, waits for the
 * ready marker, runs CMD in the guest shell, prints its output and exits with its status.
 * @module
 */
import { readFileSync } from "node:fs";
import type { CliCommand, CliIo } from "../command.js";
import { UsageError } from "../command.js";
import { netPlatform, parseNetSpec, type NetSpec } from "../net-option.js";

const USAGE = `usage: nicvisor run [--kernel K --initrd I] [--append ARGS] [--mem MiB] [--exec CMD]
                    [--net virtio[,OPTS]|igb[,mac=M]|vf[,OPTS]|none] [--pcap FILE]
                    [--ready-marker TEXT] [--timeout SECONDS]

  --kernel K         bzImage to boot (default: the project's guest image)
  --initrd I         initramfs (required with --kernel)
  --append ARGS      extra kernel arguments (nicvisor adds its platform's own)
  --mem MiB          guest RAM (default 256)
  --exec CMD         run CMD once the guest is ready, print its output, exit with its status
  --net NIC          a NIC on the host stub's segment (10.0.2.2): virtio (options mac=M, mq=N, packed,
                     mtu=N, standby, no-FEATURE e.g. no-mrg-rxbuf, no-ctrl-vq, no-csum), igb
                     (the whole 82576 PF with its VFs) or vf (one 82576 VF, the PF kept by the
                     host PF agent; options mac=M as the admin MAC, trust, spoofchk=off); default none
  --pcap FILE        capture the NIC's segment to FILE (libpcap format)
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
}

/** Parses `nicvisor run` arguments. @throws UsageError */
export function parseRunArgs(argv: string[]): RunArgs {
  const out: RunArgs = { mem: 256, timeoutS: 180 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    const eq = a.indexOf("=");
    const key = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const val = (): string => {
      if (a.startsWith("--") && eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    switch (key) {
      case "--kernel": out.kernel = val(); break;
      case "--initrd": out.initrd = val(); break;
      case "--append": out.append = val(); break;
      case "--exec": out.exec = val(); break;
      case "--ready-marker": out.readyMarker = val(); break;
      case "--net": out.net = parseNetSpec(val()); break;
      case "--pcap": out.pcap = val(); break;
      case "--mem": {
        const n = Number(val());
        if (!Number.isInteger(n) || n < 32 || n > 2048) throw new UsageError("--mem must be an integer number of MiB in 32..2048");
        out.mem = n;
        break;
      }
      case "--timeout": {
        const n = Number(val());
        if (!Number.isFinite(n) || n <= 0) throw new UsageError("--timeout must be a positive number of seconds");
        out.timeoutS = n;
        break;
      }
      default:
        throw new UsageError(`unknown argument '${a}'`);
    }
  }
  if ((out.kernel === undefined) !== (out.initrd === undefined)) throw new UsageError("--kernel and --initrd go together");
  if (out.pcap !== undefined && (out.net === undefined || out.net.kind === "none")) throw new UsageError("--pcap needs a NIC (--net virtio, igb or vf)");
  return out;
}

/** The default image: the project's guest image, built from Debian packages on first use. */
async function defaultImage(io: CliIo): Promise<{ kernel: string; initrd: string; cmdline: string; vmlinux?: string }> {
  const { buildGuestImage } = await import("../../vmm/host/guest-image/index.js");
  const img = await buildGuestImage({ log: (l) => io.err(`guest-image: ${l}\n`) });
  return { kernel: img.kernel, initrd: img.initrd, cmdline: img.cmdline.join(" "), ...(img.vmlinux !== undefined ? { vmlinux: img.vmlinux } : {}) };
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const args = parseRunArgs(argv);
  const { GuestVm, DEFAULT_READY_MARKER } = await import("../../vmm/harness/runner.js");
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
  if (args.net?.kind === "virtio") append = `${append} nv.modules=virtio_pci,virtio_net`;
  if (args.net?.kind === "igb") append = `${append} nv.modules=igb`;
  if (args.net?.kind === "vf") append = `${append} nv.modules=igbvf`;
  const interactive = args.exec === undefined;
  const stdin = process.stdin;
  const opts: Parameters<typeof GuestVm.boot>[0] = {
    kernel,
    initrd: await readFileHuge(initrdPath),
    append,
    memMiB: args.mem,
    readyMarker: args.readyMarker ?? DEFAULT_READY_MARKER,
  };
  if (kernelElf !== undefined) opts.kernelElf = kernelElf;
  let pcapFile: import("../../vmm/host/net/pcap-file.js").PcapFile | undefined;
  if (args.net !== undefined) {
    const pcapPath = args.pcap;
    const { openPcapFile } = await import("../../vmm/host/net/pcap-file.js");
    const platform = await netPlatform(
      args.net,
      pcapPath === undefined
        ? undefined
        : (b, env) => {
            const f = openPcapFile(pcapPath, { clock: env.clock });
            pcapFile = f;
            return f.tap.wrap(b);
          },
    );
    if (platform !== undefined) opts.platform = platform;
  }
  if (interactive) opts.onConsole = (t) => io.out(t);
  const vm = await GuestVm.boot(opts);
  try {
    if (!interactive) {
      await vm.waitReady(args.timeoutS * 1000);
      const r = await vm.exec(args.exec ?? "", { timeoutMs: args.timeoutS * 1000 });
      io.out(r.output);
      return r.status;
    }
    // Interactive: stdin bytes go to the guest's serial port until the guest stops or stdin ends.
    return await new Promise<number>((resolve) => {
      const onData = (d: Buffer): void => {
        // Ctrl-] ends the session, as in telnet.
        if (d.includes(0x1d)) return finish(0);
        vm.machine.cpu.serialSend(d.toString("latin1"));
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
      vm.machine.onStop((r) => {
        io.err(`\nnicvisor run: guest stopped (${r.kind}${"detail" in r ? ": " + r.detail : ""})\n`);
        finish(r.kind === "stopped" || r.kind === "halted" || r.kind === "poweroff" ? 0 : 1);
      });
      stdin.resume();
    });
  } finally {
    await vm.dispose();
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
