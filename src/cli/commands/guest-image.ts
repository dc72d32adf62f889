/**
 * `nicvisor guest-image`: builds (or finds in the cache) the Debian i386 guest image and prints
 * where it is.
 * @module
 */
import { UsageError, type CliCommand } from "../command.js";
import { buildGuestImage } from "../../vmm/host/guest-image/index.js";

const USAGE = `usage: nicvisor guest-image [--force] [--cache DIR]

Builds the test guest from Debian packages (needs root and apt): the i386 686 kernel, busybox-static,
pciutils, ethtool, iproute2, iperf3 with their libraries, and the NIC modules. Cached under
.cache/guest/ and rebuilt only when a package or the builder changes.

  --force      rebuild even if the cached image is current
  --cache DIR  cache directory (default .cache/guest in the repository)`;

/** The `guest-image` command. */
export const command: CliCommand = {
  name: "guest-image",
  summary: "build the Debian i386 guest image (kernel + initramfs) from Debian packages",
  usage: USAGE,
  async run(argv, io) {
    const opts: { force?: boolean; cacheDir?: string; log: (l: string) => void } = { log: (l) => io.out(`guest-image: ${l}\n`) };
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === "--force") opts.force = true;
      else if (a === "--cache" && argv[i + 1] !== undefined) opts.cacheDir = argv[++i]!;
      else throw new UsageError(`unknown option ${a}`);
    }
    const img = await buildGuestImage(opts);
    io.out(`kernel  ${img.kernel}\ninitrd  ${img.initrd}\nversion ${img.kernelVersion}\nappend  ${img.cmdline.join(" ")}\n`);
    return 0;
  },
};
