/**
 * What every real-guest test file does first: find v86 and SeaBIOS, build (or find) the guest
 * image, boot it on a platform and wait for the ready marker; or say why it cannot.
 */
import type { PlatformBus, PlatformEnv } from "../../src/vmm/machine-platform.js";
import { GuestVm } from "../../src/vmm/harness/runner.js";
import { findV86Assets } from "../../src/vmm/host/v86-assets.js";
import { testImage } from "./image.js";

/** A booted guest, or the reason there is none (for `SKIPPED: <reason>`). */
export type BootedGuest = { vm: GuestVm; bootMs: number; source: string } | { skip: string };

/** How to boot: extra kernel arguments, and whether to skip the guest's decompressor (default). */
export interface TestBootOptions {
  append?: string;
  direct?: boolean;
}

/** Boots the test image on `platform` (default: the machine's) and waits until its shell answers. */
export async function bootTestGuest(platform?: (env: PlatformEnv) => PlatformBus, o: TestBootOptions = {}): Promise<BootedGuest> {
  const assets = findV86Assets();
  if ("missing" in assets) return { skip: assets.missing };
  const img = await testImage();
  if ("missing" in img) return { skip: img.missing };
  const t0 = performance.now();
  const vm = await GuestVm.boot({
    kernel: img.kernel,
    initrd: img.initrd,
    append: `${img.append} ${o.append ?? ""}`.trim(),
    ...(platform !== undefined ? { platform } : {}),
    ...(img.kernelElf !== undefined && o.direct !== false ? { kernelElf: img.kernelElf } : {}),
  });
  await vm.waitReady(180_000);
  return { vm, bootMs: performance.now() - t0, source: img.source };
}

/** The machine's platform as the class the test booted it with. */
export function platformAs<T>(vm: GuestVm, cls: abstract new (...args: never[]) => T): T {
  const p = vm.machine.platform;
  if (!(p instanceof cls)) throw new Error(`expected a ${cls.name}`);
  return p;
}

/**
 * Waits until a host-side condition holds (a slot powered off, a counter moved), letting the
 * guest run meanwhile: v86 runs between event-loop turns. Returns whether it held within `ms`.
 */
export async function hostUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
  return cond();
}
