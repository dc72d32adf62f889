/**
 * v86's engine state without guest RAM (`V86Backend.saveStateWithoutRam` /
 * `restoreStateWithoutRam`), on the real engine: the state leaves RAM out, loads over RAM written
 * beforehand without clearing it, and a state that carries RAM or is for another RAM size is
 * refused before v86 sees it.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CpuBackendError } from "../cpu/backend.js";
import { V86Backend, checkRamlessState } from "../cpu/v86-backend.js";
import { findV86Assets } from "../host/v86-assets.js";
import { skipTest } from "../../../test/skip.js";

describe("v86 state without RAM", () => {
  it("leaves RAM out, loads over RAM already written, refuses a state with RAM or for another size", async (ctx) => {
    const found = findV86Assets();
    if ("missing" in found) return skipTest(ctx, `SKIPPED: ${found.missing}`);
    const a = found.assets;
    const mk = (memBytes: number): Promise<V86Backend> =>
      V86Backend.create({ memBytes, bios: readFileSync(a.biosPath), ...(a.vgaBiosPath !== undefined ? { vgaBios: readFileSync(a.vgaBiosPath) } : {}), wasmPath: a.wasmPath, v86Version: a.v86Version });
    const src = await mk(32 << 20);
    const dst = await mk(32 << 20);
    const other = await mk(64 << 20);
    try {
      await src.start();
      await new Promise((r) => setTimeout(r, 300)); // SeaBIOS runs a little
      await src.pause();
      // A marker page high in RAM.
      const marker = new Uint8Array(4096).map((_, i) => (i * 7 + 1) & 0xff);
      expect(src.memory.write(20 << 20, marker)).toBe(true);
      const full = await src.saveState();
      const ramless = await src.saveStateWithoutRam();
      // The full state carries the non-zero pages (BIOS, marker); the RAM-less one none of them.
      expect(full.length - ramless.length).toBeGreaterThanOrEqual(4096 * 2);
      expect(() => checkRamlessState(ramless, 32 << 20)).not.toThrow();
      expect(() => checkRamlessState(full, 32 << 20)).toThrow(/slot 77 \(guest RAM\) is not empty/);
      expect(() => checkRamlessState(ramless, 64 << 20)).toThrow(/state is for 33554432 bytes of RAM/);
      const cut = ramless.slice(0, ramless.length - 1);
      expect(() => checkRamlessState(cut, 32 << 20)).toThrow(/length does not match/);
      await expect(dst.restoreStateWithoutRam(full)).rejects.toBeInstanceOf(CpuBackendError);
      await expect(other.restoreStateWithoutRam(ramless)).rejects.toBeInstanceOf(CpuBackendError);
      // Copy RAM as a migration would, then the engine state: RAM stays as written.
      const ram = src.memory.read(0, 32 << 20)!;
      for (let off = 0; off < ram.length; off += 1 << 20) expect(dst.memory.write(off, ram.slice(off, off + (1 << 20)))).toBe(true);
      await dst.restoreStateWithoutRam(ramless);
      expect(dst.memory.read(20 << 20, 4096)).toEqual(marker);
      expect(dst.memory.read(0xf0000, 0x10000)).toEqual(src.memory.read(0xf0000, 0x10000));
      // The CPU arrived (v86's state slots: 4 protected mode, 11 CPL, 37 EIP), and the destination runs.
      const info = (s: Uint8Array): unknown[] => (JSON.parse(new TextDecoder().decode(s.subarray(16, 16 + new DataView(s.buffer, s.byteOffset).getInt32(12, true)))) as { state: unknown[] }).state;
      const [before, after] = [info(ramless), info(await dst.saveStateWithoutRam())];
      for (const slot of [4, 11, 37]) expect(after[slot]).toEqual(before[slot]);
      let stopped = false;
      dst.onStop(() => (stopped = true));
      await dst.start();
      await new Promise((r) => setTimeout(r, 200));
      expect(stopped).toBe(false);
      expect(dst.running).toBe(true);
    } finally {
      await Promise.all([src.stop(), dst.stop(), other.stop()]);
    }
  }, 60_000);
});
