/**
 * `nicvisor lspci`: prints the config space of every function of the built-in demo topology (host
 * bridge, a root port, the PCI test device with two VFs enabled) in the format of `lspci -x`,
 * `-xxx` or `-xxxx`, which Debian's `lspci -F <file>` decodes.
 * @module
 */
import { UsageError, type CliCommand } from "../command.js";
import { demoTopology } from "../../pci/demo-topology.js";
import { dumpFunctions, formatLspciDump, type DumpLevel } from "../../pci/lspci.js";

const USAGE = `usage: nicvisor lspci [-x | -xxx | -xxxx]

Dumps the config space of the demo topology's functions as lspci does (default -xxxx):
  -x      the first 64 bytes
  -xxx    the first 256 bytes
  -xxxx   the whole config space (4096 bytes for PCI Express functions)

Decode it with Debian's lspci:  nicvisor lspci -xxxx > dump.txt && lspci -F dump.txt -vvv`;

/** The `lspci` command. */
export const command: CliCommand = {
  name: "lspci",
  summary: "dump the demo topology's config space in lspci -xxxx format (decode with lspci -F)",
  usage: USAGE,
  async run(argv, io) {
    let level: DumpLevel = 4;
    for (const a of argv) {
      if (a === "-x") level = 1;
      else if (a === "-xxx") level = 3;
      else if (a === "-xxxx") level = 4;
      else throw new UsageError(`unknown option ${a}`);
    }
    const { root } = demoTopology();
    io.out(formatLspciDump(dumpFunctions(root.enumerate()), level));
    return 0;
  },
};
