/**
 * The `nicvisor` command line. Subcommands are loaded lazily so that `nicvisor lspci` does not pay
 * for loading v86.
 * @module
 */
import type { CliCommand, CliIo } from "./command.js";
import { UsageError } from "./command.js";
import { packageVersion } from "./version.js";

type Loader = () => Promise<CliCommand>;

/** name -> loader; summaries are duplicated here so `help` does not load every command. */
const registry: ReadonlyArray<{ name: string; summary: string; load: Loader }> = [
  {
    name: "lspci",
    summary: "dump the demo topology's config space in lspci -xxxx format (decode with lspci -F)",
    load: async () => (await import("./commands/lspci.js")).command,
  },
  {
    name: "demo",
    summary: "boot a Debian guest on nicvisor's PCI platform and show what its drivers see",
    load: async () => (await import("./commands/demo.js")).command,
  },
  {
    name: "guest-image",
    summary: "build the Debian i386 guest image (kernel + initramfs) from Debian packages",
    load: async () => (await import("./commands/guest-image.js")).command,
  },
  {
    name: "run",
    summary: "boot a Linux guest on nicvisor's PCI platform (console on stdio, or --exec CMD)",
    load: async () => (await import("./commands/run.js")).command,
  },
  {
    name: "replay",
    summary: "replay a driver trace (run --trace) against a fresh device model; report the first difference",
    load: async () => (await import("./commands/replay.js")).command,
  },
  {
    name: "web",
    summary: "serve a page in which the guest boots in the browser on nicvisor's NIC, watched from inside",
    load: async () => (await import("./commands/web.js")).command,
  },
  {
    name: "control",
    summary: "run one command on a running machine's control socket (nicvisor run --control)",
    load: async () => (await import("./commands/control.js")).command,
  },
];

function helpText(): string {
  const width = Math.max(8, ...registry.map((c) => c.name.length));
  const lines = registry.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    "usage: nicvisor <command> [options]",
    "",
    "commands:",
    ...lines,
    `  ${"help".padEnd(width)}  show this help, or a command's usage: nicvisor help <command>`,
    `  ${"version".padEnd(width)}  print the version`,
    "",
  ].join("\n");
}

/**
 * Runs the CLI with `argv` (without `node` and the script path) and resolves to the exit status.
 * @example
 * ```ts
 * const status = await main(["lspci", "-xxxx"], { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
 * ```
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const topic = name === "help" ? rest[0] : undefined;
    if (topic !== undefined) {
      const entry = registry.find((c) => c.name === topic);
      if (entry === undefined) {
        io.err(`nicvisor: unknown command '${topic}'\n`);
        return 2;
      }
      io.out((await entry.load()).usage + "\n");
      return 0;
    }
    io.out(helpText());
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version") {
    io.out(packageVersion() + "\n");
    return 0;
  }
  const entry = registry.find((c) => c.name === name);
  if (entry === undefined) {
    io.err(`nicvisor: unknown command '${name}'\n\n${helpText()}`);
    return 2;
  }
  const command = await entry.load();
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`nicvisor ${name}: ${e.message}\n\n${command.usage}\n`);
      return 2;
    }
    const err = e as Error;
    io.err(`nicvisor ${name}: ${err.name}: ${err.message}\n`);
    if (process.env["NICVISOR_DEBUG"]) io.err(`${err.stack ?? ""}\n`);
    return 1;
  }
}
