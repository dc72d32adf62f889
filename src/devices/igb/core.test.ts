import { describe, it, expect } from "vitest";
import { HOT_REGS, IgbCore } from "./core.js";
import { FlatMemory, IrqRecorder, ManualClock } from "./testing.js";
import { B, R } from "./regs.js";
import { NVM_SUM, nvmValid } from "./nvm.js";
import { PHY_ID } from "./phy.js";

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

function make() {
  const mem = new FlatMemory(1 << 20);
  const irq = new IrqRecorder();
  const clock = new ManualClock();
  const traces: string[] = [];
  const core = new IgbCore({ mac: MAC, dma: () => mem, irq, clock, trace: (m) => traces.push(m) });
  return { core, mem, irq, clock, traces };
}

function nvmRead(core: IgbCore, addr: number): number {
  core.mmioWrite(R.EERD, 4, (addr << B.EERD_ADDR_SHIFT) | B.EERD_START);
  const v = core.mmioRead(R.EERD, 4);
  expect(v & B.EERD_DONE).toBe(B.EERD_DONE);
  return v >>> B.EERD_DATA_SHIFT;
}

function mdic(core: IgbCore, op: "r" | "w", reg: number, data = 0, phy = 1): number {
  const cmd = (op === "r" ? B.MDIC_OP_READ : B.MDIC_OP_WRITE) | (phy << B.MDIC_PHY_SHIFT) | (reg << B.MDIC_REG_SHIFT) | data;
  core.mmioWrite(R.MDIC, 4, cmd);
  return core.mmioRead(R.MDIC, 4);
}

describe("register table", () => {
  it("CTRL_DUP aliases CTRL and RST self-clears after resetting the device", () => {
    const { core } = make();
    core.mmioWrite(R.CTRL, 4, 0x40 | 0x1 | 0x100);
    expect(core.mmioRead(R.CTRL_DUP, 4)).toBe(0x141);
    core.mmioWrite(R.IMS, 4, 0x4);
    core.mmioWrite(R.CTRL, 4, B.CTRL_RST);
    expect(core.mmioRead(R.CTRL, 4) & B.CTRL_RST).toBe(0);
    expect(core.mmioRead(R.IMS, 4)).toBe(0);
  });

  it("a reset leaves RLPML and each pool's VMOLR.RLPML at the datasheet's 0x2600, so LPE alone lets 9728-byte frames in (igb's loopback test relies on it)", () => {
    const { core } = make();
    core.mmioWrite(R.RLPML, 4, 0);
    core.mmioWrite(R.CTRL, 4, B.CTRL_RST);
    expect(core.mmioRead(R.RLPML, 4)).toBe(0x2600);
    expect(core.mmioRead(R.VMOLR(3), 4)).toBe((0x80000000 | 0x2600) >>> 0); // STRCRC, RLPML 9728
  });

  it("STATUS is read-only and reports link up, 1000 full duplex", () => {
    const { core, traces } = make();
    const s = core.mmioRead(R.STATUS, 4);
    expect(s & (B.STATUS_LU | B.STATUS_FD | B.STATUS_SPEED_1000)).toBe(B.STATUS_LU | B.STATUS_FD | B.STATUS_SPEED_1000);
    core.mmioWrite(R.STATUS, 4, 0);
    expect(core.mmioRead(R.STATUS, 4)).toBe(s);
    expect(traces.some((t) => t.includes("read-only"))).toBe(true);
  });

  it("GIO master disable clears STATUS.GIO_MASTER_ENABLE", () => {
    const { core } = make();
    expect(core.mmioRead(R.STATUS, 4) & B.STATUS_GIO_MASTER_ENABLE).not.toBe(0);
    core.mmioWrite(R.CTRL, 4, B.CTRL_GIO_MASTER_DISABLE);
    expect(core.mmioRead(R.STATUS, 4) & B.STATUS_GIO_MASTER_ENABLE).toBe(0);
  });

  it("unknown offsets read 0 and writes are dropped and counted", () => {
    const { core } = make();
    core.mmioWrite(0x1ff00, 4, 0xdeadbeef);
    expect(core.mmioRead(0x1ff00, 4)).toBe(0);
    expect(core.regs.unknownWrites).toBe(1);
    expect(core.mmioRead(0x7fffffff, 4)).toBe(0);
  });

  it("statistics clear on read", () => {
    const { core } = make();
    core.bump("GPRC", 0, 5);
    expect(core.mmioRead(R.GPRC, 4)).toBe(5);
    expect(core.mmioRead(R.GPRC, 4)).toBe(0);
  });

  it("sub-dword accesses read and merge the right bytes", () => {
    const { core } = make();
    core.mmioWrite(R.RAL(3), 4, 0x11223344);
    expect(core.mmioRead(R.RAL(3) + 1, 1)).toBe(0x33);
    core.mmioWrite(R.RAL(3) + 2, 2, 0xaabb);
    expect(core.mmioRead(R.RAL(3), 4)).toBe(0xaabb3344);
  });

  it("legacy queue aliases reach the advanced queue registers", () => {
    const { core } = make();
    core.mmioWrite(0x2808, 4, 4096); // RDLEN(0) legacy
    expect(core.mmioRead(R.RDLEN(0), 4)).toBe(4096);
    core.mmioWrite(R.TDBAL(3), 4, 0x12345680);
    expect(core.mmioRead(0x3b00, 4)).toBe(0x12345680);
  });

  it("SWSM read takes the semaphore bit", () => {
    const { core } = make();
    expect(core.mmioRead(R.SWSM, 4) & B.SWSM_SMBI).toBe(0);
    expect(core.mmioRead(R.SWSM, 4) & B.SWSM_SMBI).toBe(B.SWSM_SMBI);
    core.mmioWrite(R.SWSM, 4, 0);
    expect(core.mmioRead(R.SWSM, 4) & B.SWSM_SMBI).toBe(0);
  });
});

describe("NVM", () => {
  it("EERD returns the MAC and words 0..0x3F sum to 0xBABA", () => {
    const { core } = make();
    const words = Array.from({ length: 0x40 }, (_, i) => nvmRead(core, i));
    expect(words[0]).toBe(0x5452);
    expect(words[1]).toBe(0x1200);
    expect(words[2]).toBe(0x5634);
    expect(words.reduce((a, b) => (a + b) & 0xffff, 0)).toBe(NVM_SUM);
    expect(nvmValid(core.nvm)).toBe(true);
  });

  it("reset loads RAL0/RAH0 from the NVM MAC (where Linux igb reads it)", () => {
    const { core } = make();
    core.mmioWrite(R.RAL(0), 4, 0);
    core.mmioWrite(R.CTRL, 4, B.CTRL_RST);
    expect(core.mmioRead(R.RAL(0), 4)).toBe(0x12005452);
    expect(core.mmioRead(R.RAH(0), 4)).toBe((0x5634 | B.RAH_AV) >>> 0);
  });

  it("EECD grants NVM access when requested", () => {
    const { core } = make();
    expect(core.mmioRead(R.EECD, 4) & (B.EECD_PRES | B.EECD_AUTO_RD)).toBe(B.EECD_PRES | B.EECD_AUTO_RD);
    core.mmioWrite(R.EECD, 4, core.mmioRead(R.EECD, 4) | 0x40);
    expect(core.mmioRead(R.EECD, 4) & 0x80).toBe(0x80);
  });
});

describe("PHY over MDIC", () => {
  it("reports the IGP3 PHY id, link up and autoneg complete", () => {
    const { core } = make();
    const id1 = mdic(core, "r", 2);
    const id2 = mdic(core, "r", 3);
    expect(id1 & B.MDIC_READY).not.toBe(0);
    expect(((id1 & 0xffff) << 16) | (id2 & 0xffff)).toBe(PHY_ID);
    const bmsr = mdic(core, "r", 1) & 0xffff;
    expect(bmsr & 0x24).toBe(0x24);
  });

  it("a wrong PHY address or an unsupported register sets MDIC.E", () => {
    const { core } = make();
    expect(mdic(core, "r", 2, 0, 5) & B.MDIC_ERROR).not.toBe(0);
    expect(mdic(core, "r", 0x1e) & B.MDIC_ERROR).not.toBe(0);
  });

  it("writes to control registers stick; reset and restart self-clear", () => {
    const { core } = make();
    mdic(core, "w", 9, 0x0600);
    expect(mdic(core, "r", 9) & 0xffff).toBe(0x0600);
    mdic(core, "w", 0, 0x1340);
    expect(mdic(core, "r", 0) & 0x0200).toBe(0);
  });

  it("link down raises LSC and STATUS follows", () => {
    const { core, irq } = make();
    core.mmioWrite(R.IMS, 4, B.ICR_LSC);
    core.setLink(false);
    expect(core.mmioRead(R.STATUS, 4) & B.STATUS_LU).toBe(0);
    expect(irq.pfVectors.length).toBe(1);
    expect(core.mmioRead(R.ICR, 4) & B.ICR_LSC).toBe(B.ICR_LSC);
  });
});

describe("interrupts", () => {
  it("legacy: ICS sets ICR, masked causes do not interrupt, ICR read clears and deasserts", () => {
    const { core, irq } = make();
    core.mmioWrite(R.ICS, 4, B.ICR_LSC);
    expect(irq.pfVectors.length).toBe(0);
    core.mmioWrite(R.IMS, 4, B.ICR_LSC);
    expect(irq.pfVectors).toEqual([0]);
    const icr = core.mmioRead(R.ICR, 4);
    expect(icr & B.ICR_LSC).toBe(B.ICR_LSC);
    expect(icr & B.ICR_INT_ASSERTED).not.toBe(0);
    expect(core.mmioRead(R.ICR, 4)).toBe(0);
    expect(irq.intx).toBe(false);
  });

  it("IMC masks; IAM auto-masks on ICR read", () => {
    const { core } = make();
    core.mmioWrite(R.IMS, 4, 0xff);
    core.mmioWrite(R.IMC, 4, 0x0f);
    expect(core.mmioRead(R.IMS, 4)).toBe(0xf0);
    core.mmioWrite(R.IAM, 4, 0x10);
    core.mmioWrite(R.ICS, 4, 0x10);
    core.mmioRead(R.ICR, 4);
    expect(core.mmioRead(R.IMS, 4)).toBe(0xe0);
  });

  it("MSI-X: EICS raises the vector, EIAC auto-clears, EIAM auto-masks", () => {
    const { core, irq } = make();
    core.mmioWrite(R.GPIE, 4, B.GPIE_MSIX_MODE | B.GPIE_EIAME | B.GPIE_NSICR);
    core.mmioWrite(R.EIAC, 4, 0x2);
    core.mmioWrite(R.EIAM, 4, 0x2);
    core.mmioWrite(R.EIMS, 4, 0x3);
    core.mmioWrite(R.EICS, 4, 0x2);
    expect(irq.pfVectors).toEqual([1]);
    expect(core.regs.get("EICR") & 0x2).toBe(0);
    expect(core.mmioRead(R.EIMS, 4)).toBe(0x1);
    core.mmioWrite(R.EICS, 4, 0x1);
    expect(irq.pfVectors).toEqual([1, 0]);
    expect(core.regs.get("EICR") & 0x1).toBe(1);
  });

  it("MSI-X: 'other' causes go to the IVAR_MISC vector", () => {
    const { core, irq } = make();
    core.mmioWrite(R.GPIE, 4, B.GPIE_MSIX_MODE);
    core.mmioWrite(R.IVAR_MISC, 4, (B.IVAR_VALID | 9) << 8);
    core.mmioWrite(R.EIMS, 4, 1 << 9);
    core.mmioWrite(R.IMS, 4, B.ICR_VMMB);
    core.mmioWrite(R.ICS, 4, B.ICR_VMMB);
    expect(irq.pfVectors).toEqual([9]);
  });

  it("EITR moderation holds the second message until the interval passes", () => {
    const { core, irq, clock } = make();
    core.mmioWrite(R.GPIE, 4, B.GPIE_MSIX_MODE);
    core.mmioWrite(R.EITR(0), 4, 100 << 2); // 100 us
    core.mmioWrite(R.EIMS, 4, 1);
    core.mmioWrite(R.EICS, 4, 1);
    expect(irq.pfVectors.length).toBe(1);
    core.mmioWrite(R.EICR, 4, 1);
    core.mmioWrite(R.EICS, 4, 1);
    expect(irq.pfVectors.length).toBe(1);
    clock.advance(50_000);
    expect(irq.pfVectors.length).toBe(1);
    clock.advance(60_000);
    expect(irq.pfVectors.length).toBe(2);
  });

  it("EITR keeps only the interval and CNT_IGNR bits", () => {
    const { core } = make();
    core.mmioWrite(R.EITR(3), 4, 0xffffffff);
    expect(core.mmioRead(R.EITR(3), 4)).toBe((B.EITR_INTERVAL_MASK | B.EITR_CNT_IGNR) >>> 0);
  });
});

describe("save/restore", () => {
  it("round-trips and rejects garbage with a typed error", () => {
    const { core } = make();
    core.mmioWrite(R.RAL(0), 4, 0x12345678);
    core.mmioWrite(R.MTA(5), 4, 0x80);
    const s = JSON.parse(JSON.stringify(core.save()));
    const b = make().core;
    b.restore(b.stateType.parse(s));
    expect(b.mmioRead(R.RAL(0), 4)).toBe(0x12345678);
    expect(b.mmioRead(R.MTA(5), 4)).toBe(0x80);
    expect(() => b.stateType.parse({ ...s, version: 3 })).toThrowError(expect.objectContaining({ name: "StateError", path: "igb.version" }));
    expect(() => b.stateType.parse({ ...s, regs: { ...s.regs, MTA: [1, 2] } })).toThrowError(expect.objectContaining({ name: "StateError", path: "igb.regs.MTA" }));
    expect(() => b.stateType.parse({ ...s, regs: { ...s.regs, RCTLL: 0 } })).toThrowError(expect.objectContaining({ path: "igb.regs.RCTLL" }));
    expect(b.mmioRead(R.RAL(0), 4)).toBe(0x12345678);
  });
});

describe("I/O BAR", () => {
  it("IOADDR/IODATA reach the register file; other offsets read all-ones", () => {
    const { core } = make();
    core.ioWrite(0, 4, R.RAL(2));
    core.ioWrite(4, 4, 0xcafe);
    expect(core.mmioRead(R.RAL(2), 4)).toBe(0xcafe);
    expect(core.ioRead(4, 4)).toBe(0xcafe);
    expect(core.ioRead(8, 4)).toBe(0xffffffff);
  });
});

describe("register table construction", () => {
  it("rejects a register declared twice or overlapping another", async () => {
    const { RegFile } = await import("./regfile.js");
    const row = (name: string, off: number) => ({ name, offset: () => off });
    expect(() => new RegFile({}, [row("A", 0), row("A", 4)], 64)).toThrowError(expect.objectContaining({ name: "RegTableError" }));
    expect(() => new RegFile({}, [row("A", 0), row("B", 0)], 64)).toThrowError(/overlaps/);
    expect(() => new RegFile({}, [{ name: "C", offset: () => 0, alias: "Z" }], 64)).toThrowError(/unknown/);
  });

  it("a non-integer offset reads 0 and drops the write", () => {
    const { core } = make();
    core.mmioWrite(Number.NaN, 4, 0xffffffff);
    expect(core.mmioRead(Number.NaN, 4)).toBe(0);
    expect(core.mmioRead(R.CTRL, 4) & B.CTRL_RST).toBe(0);
  });
});

describe("registers igb's ethtool register test patterns", () => {
  it("RDLEN/TDLEN keep bits 19:4, and FCRTL/FCRTH exist with 16-byte granularity", () => {
    const { core } = make();
    core.mmioWrite(0x2808, 4, 0xffffffff); // RDLEN(0), where ethtool tests it
    expect(core.mmioRead(0x2808, 4)).toBe(0x000ffff0);
    core.mmioWrite(0x3808, 4, 0x5a5a5a5a); // TDLEN(0)
    expect(core.mmioRead(0x3808, 4)).toBe(0x000a5a50);
    core.mmioWrite(R.FCRTH, 4, 0xffffffff);
    expect(core.mmioRead(R.FCRTH, 4)).toBe(0x0000fff0);
    core.mmioWrite(R.FCRTL, 4, 0xffffffff);
    expect(core.mmioRead(R.FCRTL, 4)).toBe(0x8000fff0);
  });
});

describe("IgbCore.hot", () => {
  it("holds the slot base of every register HOT_REGS names, and only those", () => {
    const core = new IgbCore({ mac: new Uint8Array(6), dma: () => new FlatMemory(4096), irq: new IrqRecorder() });
    expect(Object.keys(core.hot).sort()).toEqual([...HOT_REGS].sort());
    for (const n of HOT_REGS) expect(core.hot[n]).toBe(core.regs.slotOf(n));
  });
});
