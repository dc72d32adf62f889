/**
 * Real-guest PCIe native hotplug: Debian's pciehp drives the root port 00:03.0 slot while the host
 * removes and re-inserts the PCI test device (the path the failover work will take with VFs).
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { GuestVm } from "../../src/vmm/harness/runner.js";
import { TestDevicePlatform } from "../../src/vmm/platforms.js";
import type { PlatformEnv } from "../../src/vmm/machine-platform.js";
import { bootTestGuest, hostUntil, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;

const PF = "/sys/bus/pci/devices/0000:01:00.0";

beforeAll(async () => {
  const g = await bootTestGuest((env: PlatformEnv) => new TestDevicePlatform(env));
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
}, 240_000);

afterAll(async () => {
  await vm?.dispose();
});

/** Polls the guest until `cond` (a shell test) holds; returns whether it did within `ms`. */
async function until(v: GuestVm, cond: string, ms: number): Promise<boolean> {
  const r = await v.exec(`i=0; while ! ( ${cond} ) && [ $i -lt ${Math.ceil(ms / 100)} ]; do sleep 0.1; i=$((i+1)); done; ${cond}`, { timeoutMs: ms + 20_000 });
  return r.status === 0;
}

/** The test device's ids and its BAR0 scratch register as the guest reads them after (re-)enumeration. */
async function guestView(v: GuestVm, p: TestDevicePlatform): Promise<{ ids: string; reg: number; model: number }> {
  const ids = (await v.exec(`cat ${PF}/vendor ${PF}/device`)).output.trim().split(/\s+/).join(" ");
  const base = p.device.pf.barAddress(0);
  if (base === undefined) throw new Error("BAR0 not decoded after enumeration");
  const out = (await v.exec(`devmem 0x${base.toString(16)} 32`)).output.trim();
  return { ids, reg: Number(out), model: p.root.mmioRead(base, 4) };
}

describe("PCIe native hotplug with Debian's pciehp", () => {
  it("sees a surprise removal and a hot-add, and enumerates the re-inserted device afresh", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, TestDevicePlatform);
    expect(await until(vm, `[ -e ${PF} ]`, 1000)).toBe(true);
    const before = await guestView(vm, p);
    expect(before.ids).toBe("0x1b36 0x0005");
    expect(before.reg).toBe(before.model);

    // Surprise removal: presence and link drop, the port's MSI tells pciehp.
    expect(p.port.unplug()).toEqual([p.device.pf]);
    expect(await until(vm, `[ ! -e ${PF} ]`, 10_000)).toBe(true);
    let d = await vm.dmesg();
    expect(d).toMatch(/pcieport 0000:00:03\.0: pciehp: Slot\(3\): Link Down/);
    expect(d).toMatch(/pcieport 0000:00:03\.0: pciehp: Slot\(3\): Card not present/);
    // pciehp ends the removal by powering the empty slot off, then sets the indicators: each
    // Slot Control write is a command with its own completion interrupt. A card inserted while
    // those are still being handled is seen as plain presence, so give pciehp a moment.
    expect(await hostUntil(() => !p.port.powered, 10_000)).toBe(true);
    await vm.exec("sleep 2", { timeoutMs: 30_000 });

    // Hot-add. The slot has an attention button, so pciehp enables the button event rather than
    // presence detect: the card goes in and the button is pressed (QEMU raises both on
    // device_add). pciehp reads presence with it, powers the slot, and enumerates the device.
    p.port.hotAdd(p.device.pf);
    expect(await until(vm, `[ -e ${PF} ]`, 20_000)).toBe(true);
    d = await vm.dmesg();
    expect(d).toMatch(/pcieport 0000:00:03\.0: pciehp: Slot\(3\): Attention button pressed\n.*pciehp: Slot\(3\) Powering on due to button press\n.*pciehp: Slot\(3\): Card present/);
    expect(p.port.powered).toBe(true);
    expect(d).toMatch(/pci 0000:01:00\.0: \[1b36:0005\] type 00 class/);
    const after = await guestView(vm, p);
    expect(after.ids).toBe("0x1b36 0x0005");
    expect(after.reg).toBe(after.model);
    expect(d).not.toMatch(/pciehp.*(Cannot|failed|error)/i);
  }, 120_000);

  it("powers the slot off after an attention-button press, before the host takes the device out", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformAs(vm, TestDevicePlatform);
    expect(await until(vm, `[ -e ${PF} ]`, 10_000)).toBe(true);
    expect(p.port.powered).toBe(true);
    expect(await vm.dmesg()).not.toMatch(/Powering off due to button press/);
    p.port.pressAttentionButton();
    // pciehp waits 5 s for a second press (cancel), then removes the device and powers the slot off.
    expect(await until(vm, `[ ! -e ${PF} ]`, 15_000)).toBe(true);
    expect(await vm.dmesg()).toMatch(/pcieport 0000:00:03\.0: pciehp: Slot\(3\): Powering off due to button press/);
    expect(p.port.reachable()).toEqual([]);
    expect(p.port.occupied).toBe(true);
    // An orderly removal: the slot is already off, so taking the card out raises no link event.
    expect(p.port.unplug()).toEqual([p.device.pf]);
    expect(p.port.occupied).toBe(false);
  }, 120_000);
});
