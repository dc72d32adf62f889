/**
 * The switch scans only the receive-address entries that were valid at the register file's last
 * change (IgbCore.rarValid). Every way an entry changes must be seen by the very next frame: a
 * guest write, RegFile.set, a restore (applyNamed), a reset. Frames are injected straight from the
 * uplink and counted in the VF's statistics, with no other register access in between (a driver's
 * RDT write would refresh the cache and hide a missed change).
 */
import { describe, it, expect } from "vitest";
import { createIgbTestbed } from "../../vmm/pf-agent/testbed.js";
import { CountingBackend } from "../net/testing.js";
import { B, IGB_SIZES, R } from "./regs.js";

function setup() {
  const up = new CountingBackend();
  const tb = createIgbTestbed({ numVfs: 1, backend: up, driver: { ringSize: 256 } });
  const d = tb.vfs[0]!;
  expect(d.reset()).toBe(true);
  d.open();
  const f = new Uint8Array(60);
  f.set(d.mac, 0);
  f.set([0x02, 9, 9, 9, 9, 9], 6);
  // the RAR entry holding the VF's MAC
  const r = tb.core.regs;
  const lo = (d.mac[0]! | (d.mac[1]! << 8) | (d.mac[2]! << 16) | (d.mac[3]! << 24)) >>> 0;
  let entry = -1;
  for (let i = 0; i < IGB_SIZES.rar; i++) if (r.get("RAH", i) & B.RAH_AV && r.get("RAL", i) === lo) entry = i;
  expect(entry).toBeGreaterThanOrEqual(0);
  const got = () => r.get("PVFGPRC", 0);
  const send = () => {
    const before = got();
    up.sink!(f);
    return got() - before;
  };
  return { tb, r, entry, send };
}

describe("receive-address cache", () => {
  it("follows guest writes of RAH", () => {
    const { tb, entry, send, r } = setup();
    expect(send()).toBe(1);
    const rah = r.get("RAH", entry);
    tb.core.mmioWrite(R.RAH(entry), 4, rah & ~B.RAH_AV);
    expect(send()).toBe(0);
    tb.core.mmioWrite(R.RAH(entry), 4, rah);
    expect(send()).toBe(1);
  });

  it("sees an entry made valid by RegFile.set or by a restore of the registers by name", () => {
    const { tb, entry, send, r } = setup();
    const saved = r.saveNamed();
    const rah = r.get("RAH", entry);
    // each time: the entry is cleared by a guest write and a frame rebuilds the cache without it,
    // then the entry comes back by the path under test alone
    const clear = () => {
      tb.core.mmioWrite(R.RAH(entry), 4, rah & ~B.RAH_AV);
      expect(send()).toBe(0);
    };
    clear();
    r.set("RAH", entry, rah);
    expect(send()).toBe(1);
    clear();
    r.applyNamed(saved);
    expect(send()).toBe(1);
  });

  it("sees an entry moved by guest writes to a slot that was empty", () => {
    const { tb, entry, send, r } = setup();
    expect(send()).toBe(1);
    const free = Array.from({ length: IGB_SIZES.rar }, (_, i) => i).find((i) => (r.get("RAH", i) & B.RAH_AV) === 0);
    expect(free).toBeDefined();
    const lo = r.get("RAL", entry);
    const hi = r.get("RAH", entry);
    tb.core.mmioWrite(R.RAH(entry), 4, 0);
    expect(send()).toBe(0);
    tb.core.mmioWrite(R.RAL(free!), 4, lo);
    tb.core.mmioWrite(R.RAH(free!), 4, hi);
    expect(send()).toBe(1);
  });
});
