/**
 * A stand-in guest image for the VMM's own tests until the image builder
 * (src/vmm/host/guest-image) lands: a Debian i386 kernel and busybox-static already extracted with
 * `dpkg -x` under $NICVISOR_GUEST_ROOT (default /tmp/h3b/root), packed into a newc initramfs whose
 * init prints {@link READY_MARKER} and runs a shell on ttyS0 with echo off.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Printed by the init script when the shell is up. */
export const READY_MARKER = "@@NICVISOR-READY@@";

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
stty -echo -icanon -F /dev/ttyS0 2>/dev/null || stty -echo -F /dev/ttyS0
echo ${READY_MARKER} > /dev/ttyS0
exec setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
`;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Packs entries into a newc cpio archive. */
export function newc(entries: Array<{ name: string; mode: number; data?: Uint8Array }>): Uint8Array {
  const parts: Uint8Array[] = [];
  let ino = 1;
  const enc = new TextEncoder();
  const push = (name: string, mode: number, data: Uint8Array): void => {
    const hex = (v: number): string => v.toString(16).padStart(8, "0");
    const hdr = "070701" + [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0].map(hex).join("");
    const h = enc.encode(hdr + name + "\0");
    parts.push(h, new Uint8Array(pad4(h.length)), data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) push(e.name, e.mode, e.data ?? new Uint8Array(0));
  push("TRAILER!!!", 0, new Uint8Array(0));
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The stand-in image, or the reason it cannot be made. */
export function standinImage(): { kernel: Uint8Array; initrd: Uint8Array; append: string } | { missing: string } {
  const root = process.env["NICVISOR_GUEST_ROOT"] ?? "/tmp/h3b/root";
  const boot = join(root, "boot");
  const bb = join(root, "bin", "busybox");
  if (!existsSync(boot) || !existsSync(bb)) return { missing: `no extracted kernel/busybox under ${root}` };
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (vmlinuz === undefined) return { missing: `no vmlinuz in ${boot}` };
  const enc = new TextEncoder();
  const kver = readdirSync(join(root, "lib", "modules"))[0] ?? "";
  const mods = ["drivers/uio/uio.ko", "drivers/uio/uio_pci_generic.ko", "drivers/pci/pci-pf-stub.ko",
    "drivers/virtio/virtio.ko", "drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio_pci_modern_dev.ko", "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko", "net/core/failover.ko", "drivers/net/net_failover.ko", "drivers/net/virtio_net.ko"]
    .map((m) => join(root, "lib", "modules", kver, "kernel", m))
    .filter((p) => existsSync(p));
  const initrd = newc([
    { name: "lib", mode: 0o40755 },
    ...mods.map((p) => ({ name: "lib/" + (p.split("/").pop() ?? ""), mode: 0o100644, data: readFileSync(p) })),
    { name: "bin", mode: 0o40755 },
    { name: "dev", mode: 0o40755 },
    { name: "dev/console", mode: 0o20600 },
    { name: "bin/busybox", mode: 0o100755, data: readFileSync(bb) },
    { name: "init", mode: 0o100755, data: enc.encode(INIT) },
  ]);
  return {
    kernel: readFileSync(join(boot, vmlinuz)),
    initrd,
    append: "console=ttyS0 quiet",
  };
}
