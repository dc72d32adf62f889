/**
 * The scripts the guest image runs: `/init`, the hotplug helper that loads a new device's driver
 * by its modalias (what udev does on Debian), and the console shell's start-up file.
 * @module
 */

/** Printed by the image's init when its shell is up on ttyS0 (the harness waits for it). */
export const GUEST_READY_MARKER = "@@NICVISOR-READY@@";

/** Path of the hotplug helper in the image. */
export const HOTPLUG_HELPER = "/sbin/nv-hotplug";
/** Path of the console shell's start-up file (`$ENV`) in the image. */
export const SHELL_RC = "/etc/shrc";

/**
 * The hotplug helper. Busybox's `uevent` runs it for every kernel uevent, with the event's
 * variables in its environment; for a device that appears with a MODALIAS it loads the modules
 * whose `alias` patterns match it (busybox modprobe reads modules.alias), as udev's kmod builtin
 * does. A modalias nothing matches is not an error (`-q`).
 */
export const HOTPLUG_SCRIPT = `#!/bin/sh
# Run by busybox's uevent for each kernel uevent, with the event's variables in the environment.
[ "$ACTION" = add ] && [ -n "$MODALIAS" ] && exec /sbin/modprobe -q "$MODALIAS"
exit 0
`;

/**
 * The console shell's start-up file for `tools` (Debian executables in /usr/bin). Debian's
 * busybox is built to run its own applets before it searches PATH (FEATURE_SH_STANDALONE), so PATH
 * order cannot make `ip` mean iproute2's; a shell function comes before applets in the shell's
 * lookup, so each tool gets one.
 */
export function shellRc(tools: readonly string[]): string {
  const fns = tools.map((t) => `${t}() { /usr/bin/${t} "$@"; }\n`).join("");
  return `# Read by the console's interactive shell ($ENV). Busybox's shell runs its own applets before it\n# searches PATH: these functions make the Debian tools win over applets of the same name.\n${fns}`;
}

/**
 * `/init`: mounts proc, sysfs and devtmpfs, sets the hostname, brings lo up, loads the modules an
 * `nv.modules=a,b` kernel argument names, then (unless `nv.autoload=0`) starts the hotplug listener
 * and coldplugs: the drivers of the PCI devices already present, then of the virtio devices that
 * virtio_pci made, as udev's trigger does at boot. Prints the ready marker on ttyS0 and runs the
 * console shell there with echo off and {@link SHELL_RC} as its `$ENV`.
 */
export const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
hostname nicvisor-guest
ip link set lo up 2>/dev/null
autoload=1
# nv.modules=a,b,c on the kernel command line loads those modules before the marker;
# nv.autoload=0 leaves drivers to the user (no hotplug listener, no coldplug).
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    nv.modules=*) for m in $(echo "\${arg#nv.modules=}" | tr ',' ' '); do modprobe "$m"; done ;;
    nv.autoload=0) autoload=0 ;;
  esac
done
if [ $autoload = 1 ]; then
  uevent ${HOTPLUG_HELPER} </dev/null >/dev/null 2>/dev/kmsg &
  for bus in pci virtio; do
    set --
    for d in /sys/bus/$bus/devices/*; do
      [ -e "$d/driver" ] || [ ! -r "$d/modalias" ] || set -- "$@" "$(cat "$d/modalias")"
    done
    [ $# = 0 ] || modprobe -qa "$@"
  done
fi
export ENV=${SHELL_RC}
stty -echo -icanon -F /dev/ttyS0 2>/dev/null || stty -echo -F /dev/ttyS0
echo ${GUEST_READY_MARKER} > /dev/ttyS0
exec setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
`;
