/**
 * The package as a user imports it: every subpath in package.json's `exports` resolves (through
 * the package's own name, to the built `dist/`) and carries the entry points the README and the
 * docs show. A class that a public signature hands out but no subpath exports would fail here.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string; exports: Record<string, unknown> };

/** What each subpath must export (a sample of the public API, by name). */
const EXPECTED: Record<string, string[]> = {
  ".": ["PciFunction", "ConfigSpace"],
  "./pci": ["PciFunction", "ConfigSpace", "SriovCap", "addSriov"],
  "./devices": ["VirtioNet", "VirtioPciTransport", "SplitQueue", "PackedQueue", "L2Switch", "HostStub", "igb", "createIgbModel", "createVirtioNetModel", "createTestDeviceModel", "MigrationControl", "StateError", "encodeStates", "decodeStates"],
  "./guest": ["SimVirtioNet", "SimIgbvf", "SimIgbPf"],
  "./testing": ["FlatMemory", "ManualClock", "IrqRecorder", "CountingBackend", "createVirtioNetTestbed", "createIgbTestbed"],
  "./vmm": ["GuestVm", "Machine", "PciPlatform", "createIgbHostVfModel", "v86CpuFactory", "ControlServer", "registerCommands", "IommuDomain", "IgbVfioDevice", "FailoverVf", "createFailoverVfModel", "FailoverVfPlatform", "V86Backend", "VirtioNetPlatform", "IgbVfPlatform", "IgbHostNic", "PfAgent", "loadKernelElf", "bzImageSetupPart", "buildAcpiTables"],
  "./trace": ["TraceRecorder", "recordPlatform", "replayTrace", "formatReplayResult", "decodeTrace", "encodeTrace", "TraceError", "createTraceBench", "buildTracePlatform"],
  "./vmm/host": ["buildGuestImage", "findV86Assets", "TapBackend", "listenControl", "connectControl"],
};

describe("package exports", () => {
  it("lists exactly the subpaths this test knows", () => {
    expect(Object.keys(pkg.exports).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [sub, names] of Object.entries(EXPECTED)) {
    it(`${pkg.name}${sub === "." ? "" : sub.slice(1)} exports ${names.join(", ")}`, async () => {
      const spec = sub === "." ? pkg.name : `${pkg.name}${sub.slice(1)}`;
      const mod = (await import(spec)) as Record<string, unknown>;
      for (const n of names) expect(mod[n], `${spec} ${n}`).toBeDefined();
    });
  }

  it("gives the 82576 model its own namespace under devices", async () => {
    const { igb } = (await import(`${pkg.name}/devices`)) as { igb: Record<string, unknown> };
    for (const n of ["IgbCore", "IgbPciDevice", "createIgbVfFunction", "igbRegisterTable", "HOT_REGS"]) expect(igb[n], n).toBeDefined();
  });
});
