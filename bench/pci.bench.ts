/**
 * PCI core: config reads and writes as ECAM and conf1 reach them, and memory dispatch in a
 * topology of 1 PF + 8 VFs (a hit on the PF's BAR, a hit on VF 7's BAR, a miss). Each task runs a
 * batch of accesses; the table shows the median per access.
 *
 * Run: `node --import tsx bench/pci.bench.ts`
 */
import { Bench } from "tinybench";
import { SRIOV, SRIOV_CTRL } from "../src/pci/caps/sriov.js";
import { demoTopology } from "../src/pci/demo-topology.js";
import { Conf1Ports, PlatformMmio, defaultLayout } from "../src/vmm/machine-platform.js";

const BATCH = 1000;
const { root, device } = demoTopology();
// 8 VFs instead of the demo's 2.
const sr = device.sriov.offset;
root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI);
root.configWrite(1, 0, sr + SRIOV.NUM_VFS, 2, 8);
root.configWrite(1, 0, sr + SRIOV.CTRL, 2, SRIOV_CTRL.ARI | SRIOV_CTRL.VFE | SRIOV_CTRL.MSE);
const vf7 = device.sriov.vfs[7]!.barAddress(0);
if (vf7 === undefined || root.mmioRead(vf7 + 4, 4) !== 7) throw new Error("VF 7 is not where the bench expects it");

// The machine's own decoders in front of the root complex, as a guest reaches it.
const layout = defaultLayout(256 << 20);
const ecam = new PlatformMmio(root, layout);
const conf1 = new Conf1Ports(root);
const ecamAddr = layout.ecamBase + (1 << 20) + 0x10; // 01:00.0 BAR0
let sink = 0;

const bench = new Bench({ time: 500, warmupTime: 100 });
bench
  .add("config read, ECAM (01:00.0 reg 0x10)", () => {
    for (let i = 0; i < BATCH; i++) sink += ecam.read(ecamAddr, 4);
  })
  .add("config write, ECAM (01:00.0 Interrupt Line)", () => {
    for (let i = 0; i < BATCH; i++) ecam.write(ecamAddr + 0x2c, 1, i & 0xff);
  })
  .add("config read, conf1 (0xCF8 then 0xCFC)", () => {
    for (let i = 0; i < BATCH; i++) {
      conf1.write(0xcf8, 4, 0x80010010);
      sink += conf1.read(0xcfc, 4);
    }
  })
  .add("MMIO read, PF BAR0 hit", () => {
    for (let i = 0; i < BATCH; i++) sink += root.mmioRead(0xc0000010, 4);
  })
  .add("MMIO read, VF 7 BAR0 hit", () => {
    for (let i = 0; i < BATCH; i++) sink += root.mmioRead(vf7 + 0x10, 4);
  })
  .add("MMIO read, alternating PF / VF 7", () => {
    for (let i = 0; i < BATCH; i++) sink += root.mmioRead(i & 1 ? vf7 + 0x10 : 0xc0000010, 4);
  })
  .add("MMIO read, miss (all ones)", () => {
    for (let i = 0; i < BATCH; i++) sink += root.mmioRead(0xd0000000, 4);
  })
  .add("MMIO write, VF 7 BAR0 scratch", () => {
    for (let i = 0; i < BATCH; i++) root.mmioWrite(vf7 + 0x10, 4, i);
  });
await bench.run();
console.table(
  bench.tasks.map((t) => {
    const r = t.result;
    const ns = r.state === "completed" ? (r.latency.p50 * 1e6) / BATCH : NaN;
    return { task: t.name, "median ns per access": ns.toFixed(1) };
  }),
);
console.log(`(checksum ${sink})`);
