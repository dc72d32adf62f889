/**
 * The guest image for real-guest tests: built by the project's own builder
 * (src/vmm/host/guest-image) from Debian packages, cached under .cache/guest/.
 */
import { readFileSync } from "node:fs";
import { buildGuestImage, canBuildGuestImage } from "../../src/vmm/host/guest-image/index.js";

/** Kernel, initramfs and kernel arguments for a test guest, or the reason there is none. */
export type TestImage = { kernel: Uint8Array; kernelElf?: Uint8Array; initrd: Uint8Array; append: string; source: string } | { missing: string };

/** Builds (or finds in the cache) the guest image. */
export async function testImage(): Promise<TestImage> {
  const can = await canBuildGuestImage();
  if (!can.ok) return { missing: can.reason };
  const img = await buildGuestImage({ log: (l) => console.log(`guest-image: ${l}`) });
  return {
    kernel: new Uint8Array(readFileSync(img.kernel)),
    ...(img.vmlinux !== undefined ? { kernelElf: new Uint8Array(readFileSync(img.vmlinux)) } : {}),
    initrd: new Uint8Array(readFileSync(img.initrd)),
    append: img.cmdline.join(" "),
    source: `project image (Linux ${img.kernelVersion})`,
  };
}
