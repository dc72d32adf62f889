/**
 * Real-guest tests of a VF-only guest: the guest gets one 82576 VF through a pass-through shim in
 * root port 00:06.0 (02:00.0 in the guest), while the host keeps the PF and its PF agent answers
 * the VF's mailbox. Debian's igbvf is the judge; traffic goes to the host stub (10.0.2.2).
 *
 * Debian's busybox shell runs its own applets before PATH, so iproute2 is called as /usr/bin/ip.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GuestVm } from "../../src/vmm/harness/runner.js";
import { IgbVfPlatform } from "../../src/vmm/platforms.js";
import { bootTestGuest, hostUntil, platformAs } from "./boot.js";
import { skipTest } from "../skip.js";

let vm: GuestVm | undefined;
let skip: string | undefined;
const agentLog: string[] = [];
const ip = "/usr/bin/ip";

const platformOf = (v: GuestVm): IgbVfPlatform => platformAs(v, IgbVfPlatform);

beforeAll(async () => {
  const g = await bootTestGuest((env) => new IgbVfPlatform(env, { log: (m) => agentLog.push(m) }), { append: "nv.modules=igbvf" });
  if ("skip" in g) return void (skip = g.skip);
  vm = g.vm;
}, 300_000);

afterAll(async () => {
  await vm?.dispose();
});

describe("a VF-only guest under Debian's igbvf, the PF kept by the host PF agent", () => {
  it("igbvf binds the pass-through VF, gets its MAC over the mailbox and brings the link up", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const r = await vm.exec(`${ip} link set eth0 up && sleep 3 && cat /sys/class/net/eth0/address /sys/class/net/eth0/carrier && readlink /sys/class/net/eth0/device/driver && lspci -n -s 02:00.0`, { timeoutMs: 60_000 });
    expect(r.output).toMatch(/^52:54:00:12:34:58\n1\n.*\/igbvf\n02:00\.0 0200: 8086:10ca/);
    const d = await vm.dmesg();
    expect(d).toMatch(/igbvf 0000:02:00\.0: Address: 52:54:00:12:34:58/);
    expect(d).toMatch(/igbvf 0000:02:00\.0: Link is Up 1000 Mbps Full Duplex/);
    // the VF completed the reset handshake with the agent, and the agent enabled its RX and TX
    expect(p.host.agent.vfs[0]!.cts).toBe(true);
    expect(p.host.core.regs.get("VFRE") & 1).toBe(1);
    expect(p.host.core.regs.get("VFTE") & 1).toBe(1);
  }, 120_000);

  it("pings the host stub with nothing lost", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const before = p.stub.counters.echoReplies;
    const r = await vm.exec(`${ip} addr add 10.0.2.15/24 dev eth0 && ping -c 20 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(r.output).toMatch(/20 packets transmitted, 20 packets received, 0% packet loss/);
    expect(p.stub.counters.echoReplies - before).toBe(20);
    expect(p.host.core.regs.get("PVFGPTC", 0)).toBeGreaterThanOrEqual(20);
  }, 120_000);

  it("carries 8000-byte frames at MTU 9000 (SET_LPE through the mailbox, header-split receive)", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const r = await vm.exec(`${ip} link set eth0 mtu 9000 && sleep 1 && ping -c 5 -i 0.2 -s 8000 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(r.output).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    expect(p.host.agent.vfs[0]!.rlpml).toBeGreaterThanOrEqual(9018);
    const back = await vm.exec(`${ip} link set eth0 mtu 1500 && sleep 1 && ping -c 3 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(back.output).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
  }, 180_000);

  it("a guest MAC change is allowed while the administrator has set none", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    const r = await vm.exec(`${ip} link set eth0 address 02:11:22:33:44:55 && cat /sys/class/net/eth0/address && ping -c 3 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(r.status, r.output).toBe(0);
    expect(r.output).toMatch(/^02:11:22:33:44:55\n[\s\S]*3 packets received/);
    expect(Array.from(p.host.agent.vfs[0]!.mac)).toEqual([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
  }, 120_000);

  it("an administrator MAC reaches the VF at its next reset, and the guest may not override it", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    // ip link set PF vf 0 mac 52:54:00:aa:bb:cc, on the host
    p.host.agent.setVfMac(0, Uint8Array.of(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc));
    const reload = await vm.exec(
      `rmmod igbvf && modprobe igbvf && sleep 1 && ${ip} link set eth0 up && ${ip} addr add 10.0.2.15/24 dev eth0 && sleep 3 && cat /sys/class/net/eth0/address && ping -c 5 -i 0.2 -W 2 10.0.2.2`,
      { timeoutMs: 90_000 },
    );
    expect(reload.output).toMatch(/^52:54:00:aa:bb:cc\n[\s\S]*5 packets transmitted, 5 packets received, 0% packet loss/);
    const nacksBefore = p.host.agent.vfs[0]!.nacks;
    const refused = await vm.exec(`${ip} link set eth0 address 02:66:77:88:99:aa; echo status=$?; cat /sys/class/net/eth0/address`, { timeoutMs: 60_000 });
    // igbvf returns -EADDRNOTAVAIL when the PF NACKs SET_MAC_ADDR, and keeps the administrator's MAC
    expect(refused.output).toMatch(/Cannot assign requested address[\s\S]*status=2\n52:54:00:aa:bb:cc\n/);
    expect(p.host.agent.vfs[0]!.nacks).toBe(nacksBefore + 1);
    expect(agentLog.join("\n")).toMatch(/VF 0: VF tried to override the administrator's MAC/);
    const still = await vm.exec(`ping -c 3 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
    expect(still.output).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
  }, 180_000);

  it("a snapshot of the running guest resumes on a fresh host NIC with the VF's state and keeps pinging", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const snap = await vm.snapshot();
    const copy = await GuestVm.restore(snap, { platform: (env) => new IgbVfPlatform(env) });
    try {
      const p = platformOf(copy);
      expect(Array.from(p.host.agent.vfs[0]!.mac)).toEqual([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
      expect(p.host.agent.vfs[0]!.adminMac).toBe(true);
      const r = await copy.exec(`ping -c 5 -i 0.2 -W 2 10.0.2.2`, { timeoutMs: 60_000 });
      expect(r.output).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
      expect(p.stub.counters.echoReplies).toBe(5);
    } finally {
      await copy.dispose();
    }
  }, 180_000);

  it("the VF leaves the guest by its slot's attention button and comes back on a hot-add, still pinging", async (ctx) => {
    if (skip !== undefined || vm === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const p = platformOf(vm);
    // Orderly removal, as a migration would start it: pciehp waits 5 s, igbvf unbinds, the slot
    // is powered off, then the host takes the function out.
    p.vfPort.pressAttentionButton();
    expect(await hostUntil(() => !p.vfPort.powered, 20_000)).toBe(true);
    const gone = await vm.exec("ls /sys/class/net; lspci -s 02:00.0", { timeoutMs: 30_000 });
    expect(gone.output).not.toMatch(/eth0|02:00\.0/);
    expect(await vm.dmesg()).toMatch(/pcieport 0000:00:06\.0: pciehp: Slot\(6\): Powering off due to button press/);
    expect(p.vfPort.unplug()).toEqual([p.shim]);
    await vm.exec("sleep 2", { timeoutMs: 30_000 });
    // Hot-add of the same VF: igbvf probes it again, and the administrator's MAC (kept by the
    // host's PF agent, set by the test above) comes back with it.
    const repliesBefore = p.stub.counters.echoReplies;
    p.vfPort.hotAdd(p.shim);
    const back = await vm.exec(
      `i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; ${ip} link set eth0 up && ${ip} addr add 10.0.2.15/24 dev eth0 && sleep 3 && cat /sys/class/net/eth0/address && ping -c 5 -i 0.2 -W 2 10.0.2.2`,
      { timeoutMs: 90_000 },
    );
    expect(back.output).toMatch(/^52:54:00:aa:bb:cc\n[\s\S]*5 packets transmitted, 5 packets received, 0% packet loss/);
    expect(p.stub.counters.echoReplies - repliesBefore).toBe(5);
    expect((await vm.dmesg()).match(/igbvf 0000:02:00\.0: Intel\(R\) 82576 Virtual Function/g)?.length).toBeGreaterThanOrEqual(2);
  }, 180_000);
});
