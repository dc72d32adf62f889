/**
 * Small in-memory stand-ins for the device's injected interfaces, for tests, benchmarks and the
 * simulated drivers: flat guest memory, a manual clock, and an interrupt recorder.
 * @module
 */
import type { IgbIrqPort } from "./irq.js";

export { FlatMemory, ManualClock } from "../testing.js";

/** Most interrupts an {@link IrqRecorder} keeps in its lists. */
const RECORD_CAP = 4096;

/** Records interrupts (the most recent 2048 to 4096 of each kind) and optionally forwards them. */
export class IrqRecorder implements IgbIrqPort {
  /** PF vectors raised, in order. */
  readonly pfVectors: number[] = [];
  /** VF vectors raised, in order, as [vf, vector]. */
  readonly vfVectors: [number, number][] = [];
  /** Interrupts raised in total (the vector lists keep only the most recent ones). */
  pfCount = 0;
  vfCount = 0;
  /** Current INTx level. */
  intx = false;
  /** Called on every VF interrupt (after recording). */
  onVf?: (vf: number, vector: number) => void;
  /** Called on every PF interrupt (after recording). */
  onPf?: (vector: number) => void;
  /** {@inheritDoc IgbIrqPort.pf} */
  pf(vector: number): void {
    this.pfCount++;
    if (this.pfVectors.length >= RECORD_CAP) this.pfVectors.splice(0, RECORD_CAP / 2);
    this.pfVectors.push(vector);
    this.intx = true;
    this.onPf?.(vector);
  }
  /** {@inheritDoc IgbIrqPort.pfIntx} */
  pfIntx(level: boolean): void {
    this.intx = level;
  }
  /** {@inheritDoc IgbIrqPort.vf} */
  vf(vf: number, vector: number): void {
    this.vfCount++;
    if (this.vfVectors.length >= RECORD_CAP) this.vfVectors.splice(0, RECORD_CAP / 2);
    this.vfVectors.push([vf, vector]);
    this.onVf?.(vf, vector);
  }
}
