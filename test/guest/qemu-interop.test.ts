/**
 * Interop with QEMU 7.2: a nicvisor guest (v86, nicvisor's virtio-net on a `-netdev stream`
 * compatible socket) and a QEMU guest (Debian's qemu-system-i386, TCG, virtio-net-pci on
 * `-netdev stream` connected to nicvisor's socket), same kernel and initramfs, share one segment on
 * loopback and ping each other.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { DEFAULT_READY_MARKER } from "../../src/vmm/harness/runner.js";
import { VirtioNetPlatform } from "../../src/vmm/platforms.js";
import { listenStream, type StreamBackend } from "../../src/vmm/host/net/socket.js";
import { bootTestGuest, platformAs } from "./boot.js";
import { testImage } from "./image.js";
import { skipTest } from "../skip.js";
import { QEMU, QemuGuest } from "./qemu-guest.js";


let vm: GuestVm | undefined;
let qemu: QemuGuest | undefined;
let sock: StreamBackend | undefined;
let skip: string | undefined;
let dir = "";

function qemuMissing(): string | undefined {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  if (r.status !== 0) return `${QEMU} is not installed (apt-get install qemu-system-x86)`;
  const m = /version (\d+)\.(\d+)/.exec(r.stdout);
  if (m === null || Number(m[1]) * 100 + Number(m[2]) < 702) return `${QEMU} is older than 7.2 (no -netdev stream)`;
  return undefined;
}

beforeAll(async () => {
  const missing = qemuMissing();
  if (missing !== undefined) return void (skip = missing);
  const img = await testImage();
  if ("missing" in img) return void (skip = img.missing);
  sock = await listenStream({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), "nicvisor-qemu-"));
  writeFileSync(join(dir, "vmlinuz"), img.kernel);
  writeFileSync(join(dir, "initrd"), img.initrd);
  qemu = new QemuGuest([
    "-M", "pc", "-accel", "tcg", "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
    "-kernel", join(dir, "vmlinuz"), "-initrd", join(dir, "initrd"),
    "-append", `${img.append} nv.modules=virtio_pci,virtio_net`,
    "-netdev", `stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${sock.port}`,
    "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:99",
  ], "QEMU");
  const backend = sock;
  const g = await bootTestGuest((env) => new VirtioNetPlatform(env, { backend }));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
  await qemu.wait(DEFAULT_READY_MARKER, 0, 180_000);
  const q = await qemu.exec("ip link set eth0 up && ip addr add 10.0.2.20/24 dev eth0 && echo QOK");
  if (!q.includes("QOK")) throw new Error(`QEMU guest network setup failed: ${q}`);
  const r = await vm.exec("modprobe virtio_pci && modprobe virtio_net && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0", { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`bringing up virtio_net failed: ${r.output}`);
}, 400_000);

afterAll(async () => {
  await vm?.dispose();
  qemu?.kill();
  sock?.close();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("a nicvisor guest and a QEMU 7.2 guest on one -netdev stream segment", () => {
  it("the nicvisor guest pings the QEMU guest with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const r = await vm.exec("ping -c 5 -i 0.3 -W 3 10.0.2.20", { timeoutMs: 60_000 });
    expect(r.output).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    expect(platformAs(vm, VirtioNetPlatform).nic.counters.txErrors).toBe(0);
  });

  it("the QEMU guest pings the nicvisor guest with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const out = await qemu!.exec("ping -c 5 -i 0.3 -W 3 10.0.2.15");
    expect(out).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
  });
});
