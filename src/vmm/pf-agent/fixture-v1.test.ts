/**
 * Version 1 states saved by the old code from a running Debian guest (test/fixtures/state-v1,
 * `FailoverPlatform`): the PF agent's half of `igb-host` and the `l2-switch` load through the
 * version 2 parsers onto fresh instances, save again, and the result parses again.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../devices/igb/testing.js";
import { L2Switch } from "../../devices/net/switch.js";
import { PfAgentStateType } from "./agent-state.js";
import { IgbHostNic } from "./host-nic.js";
import { createIgbTestbed } from "./testbed.js";

const fixture = JSON.parse(readFileSync(new URL("../../../test/fixtures/state-v1/failover-platform.json", import.meta.url), "utf8")) as {
  platform: { devices: Record<string, Record<string, unknown>> };
};
const devices = fixture.platform.devices;

describe("v1 fixture (FailoverPlatform from a real guest)", () => {
  it("the PF agent's half loads through the upgrade onto a fresh agent, saves as version 2, and parses again", () => {
    const agentV1 = devices["igb-host"]!["agent"];
    expect((agentV1 as { version: number }).version).toBe(1);
    const tb = createIgbTestbed({ numVfs: 2 });
    const parsed = tb.agent.stateType.parse(agentV1);
    tb.agent.restore(parsed);
    expect(tb.agent.vfCount).toBe(2);
    expect(Array.from(tb.agent.mac)).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x57]);
    expect(Array.from(tb.agent.vfs[0]!.mac)).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x58]);
    expect(tb.agent.vfs[0]!.adminMac && tb.agent.vfs[0]!.cts).toBe(true);
    expect(tb.agent.vfs[0]!.mcHashes).toEqual([16, 16, 1411]);
    expect(tb.agent.vfs[1]!.cts).toBe(false);
    const again = JSON.parse(JSON.stringify(tb.agent.save())) as unknown;
    expect((again as { version: number }).version).toBe(2);
    expect(PfAgentStateType.parse(again)).toEqual(parsed);
  });

  it("the whole igb-host device loads onto a fresh host NIC and saves again", () => {
    const nic = new IgbHostNic({ pfMac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57), numVfs: 2, clock: new ManualClock() });
    nic.restore(nic.stateType.parse(devices["igb-host"], "igb-host"));
    expect(nic.agent.vfs[0]!.adminMac).toBe(true);
    const again = JSON.parse(JSON.stringify(nic.save())) as unknown;
    expect(nic.stateType.parse(again).agent).toEqual(nic.save().agent);
    // a NIC with another VF count refuses it, naming the field
    const three = new IgbHostNic({ pfMac: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x57), numVfs: 3, clock: new ManualClock() });
    expect(() => three.stateType.parse(devices["igb-host"], "igb-host")).toThrowError(expect.objectContaining({ path: "igb-host.agent.numVfs" }));
  });

  it("the L2 switch loads onto a fresh switch with the platform's three ports, saves as version 2, and parses again", () => {
    const v1 = devices["l2-switch"]!;
    expect(v1["version"]).toBe(1);
    const sw = new L2Switch({ clock: new ManualClock() });
    for (const name of ["igb-uplink", "host", "virtio"]) sw.port({ name });
    const parsed = sw.stateType.parse(v1);
    sw.restore(parsed);
    expect(sw.macTable()).toEqual(v1["entries"]);
    expect(sw.counters).toEqual(v1["counters"]);
    const again = JSON.parse(JSON.stringify(sw.save())) as unknown;
    expect((again as { version: number }).version).toBe(2);
    expect(sw.stateType.parse(again)).toEqual({ ...parsed, version: 2 });
    // with fewer ports, the port the table names is missing: refused, naming the field
    const small = new L2Switch({ clock: new ManualClock() });
    small.port();
    expect(() => small.stateType.parse(v1)).toThrowError(expect.objectContaining({ name: "StateError", path: "l2-switch.entries[1].port" }));
  });
});
