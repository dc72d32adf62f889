/**
 * The word-wise fast paths of a function state's parser and of the reset check judge every bit as
 * the byte-by-byte rules do: a flipped read-only identity bit or fixed bit is refused naming its
 * byte, and an absent VF whose state differs from reset in any byte (Command and Status included)
 * is reported, Status.Interrupt aside.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { StateError } from "../state/parse.js";
import { demoTopology } from "./demo-topology.js";
import { differsFromReset, resetStateOf } from "./function-state.js";
import type { PciFunctionState } from "./function.js";
import { fromHex, toHex } from "./hex.js";
import { PCI, STS } from "./regs.js";

function flip(s: PciFunctionState, off: number, bit: number): PciFunctionState {
  const b = fromHex(s.config);
  b[off]! ^= 1 << bit;
  return { ...s, config: toHex(b) };
}

describe("function state: word-wise checks", () => {
  it("refuses a flipped identity or fixed bit anywhere in 4 KiB, naming its byte", () => {
    const { device } = demoTopology();
    const pf = device.pf;
    const cs = pf.config;
    const saved = pf.save();
    const seen = { identity: 0, fixed: 0, free: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: cs.size - 1 }), fc.integer({ min: 0, max: 7 }), (off, bit) => {
        const m = 1 << bit;
        const ro = cs.cmask[off]! & ~cs.wmask[off]! & ~cs.w1cmask[off]! & m;
        const fixed = ~(cs.wmask[off]! | cs.w1cmask[off]! | cs.dynamic[off]!) & m;
        const bar = off >= PCI.BAR0 && off < PCI.BAR0 + 24;
        let err: unknown;
        try {
          pf.stateType.parse(flip(saved, off, bit), "pf");
        } catch (e) {
          err = e;
        }
        if (err !== undefined) expect(err).toBeInstanceOf(StateError);
        const at = `pf.config[0x${off.toString(16)}]`;
        if (ro !== 0) {
          seen.identity++;
          expect((err as Error).message).toContain(`${at}: read-only byte`);
        } else if (fixed !== 0 && !bar) {
          seen.fixed++;
          expect((err as Error).message).toContain(`${at}: `);
          expect((err as Error).message).toContain("neither the guest nor the device can change");
        } else seen.free++;
      }),
      { numRuns: 3000 },
    );
    expect(seen.identity).toBeGreaterThan(0);
    expect(seen.fixed).toBeGreaterThan(100);
    expect(seen.identity + seen.fixed + seen.free).toBe(3000);
  });

  it("reports an absent VF that differs from reset in any byte but Status.Interrupt", () => {
    const { device } = demoTopology();
    const vf = device.sriov.vfs[0]!;
    const reset = resetStateOf(vf);
    expect(differsFromReset(vf, reset)).toBeUndefined();
    // Command and Status share a word with the bit that may differ.
    for (const off of [PCI.COMMAND, PCI.COMMAND + 1, PCI.STATUS, PCI.STATUS + 1]) {
      for (let bit = 0; bit < 8; bit++) {
        const why = differsFromReset(vf, flip(reset, off, bit));
        if (off === PCI.STATUS && 1 << bit === STS.INTERRUPT) expect(why).toBeUndefined();
        else expect(why).toContain(`config byte 0x${off.toString(16)} is`);
      }
    }
    let runs = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: vf.config.size - 1 }), fc.integer({ min: 0, max: 7 }), (off, bit) => {
        runs++;
        fc.pre(!(off === PCI.STATUS && 1 << bit === STS.INTERRUPT));
        expect(differsFromReset(vf, flip(reset, off, bit))).toContain(`config byte 0x${off.toString(16)} is`);
      }),
      { numRuns: 1000 },
    );
    expect(runs).toBeGreaterThanOrEqual(1000);
  });
});
