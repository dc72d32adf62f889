import { describe, it, expect } from "vitest";
import { IgbCore } from "../../devices/igb/core.js";
import { FlatMemory, IrqRecorder, ManualClock } from "../../devices/igb/testing.js";
import { PHY_ID } from "../../devices/igb/phy.js";
import { SimIgbPf } from "./driver.js";
import { RecordingBackend } from "../../devices/net/testing.js";

describe("simulated igb PF driver", () => {
  it("probes (NVM checksum, MAC from RAL0, PHY id, link) and moves frames through queue 0", () => {
    const mac = new Uint8Array([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
    const mem = new FlatMemory(8 << 20);
    const clock = new ManualClock();
    const irq = new IrqRecorder();
    const up = new RecordingBackend();
    const core = new IgbCore({ mac, dma: () => mem, irq, clock, backend: up });
    let next = 0x1000;
    const pf = new SimIgbPf({
      bar: { read: (o) => core.mmioRead(o, 4), write: (o, _s, v) => core.mmioWrite(o, 4, v) },
      mem,
      alloc: (size, align) => {
        next = Math.ceil(next / align) * align;
        const a = next;
        next += size;
        return a;
      },
      delay: (us) => clock.advance(us * 1000),
    });
    const p = pf.probe();
    expect(p.nvmValid).toBe(true);
    expect(Array.from(p.mac)).toEqual(Array.from(mac));
    expect(p.phyId).toBe(PHY_ID);
    expect(p.linkUp).toBe(true);
    pf.open();
    const f = new Uint8Array(80);
    f.set([0x02, 1, 2, 3, 4, 5], 0);
    f.set(mac, 6);
    expect(pf.rings.send(f)).toBe(true);
    expect(up.sent.length).toBe(1);
    const r = new Uint8Array(80);
    r.set(mac, 0);
    expect(up.sink?.(r)).toBe(true);
    expect(pf.rings.receive().length).toBe(1);
    expect(irq.pfVectors).toContain(0); // RX queue 0 -> vector 0
    expect(irq.pfVectors).toContain(1); // TX queue 0 -> vector 1
  });
});
