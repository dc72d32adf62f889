/**
 * Saved state of the virtio-pci transport and its parser: device status, feature negotiation,
 * selectors, the configuration vector and generation, the ISR, interrupts held while the device
 * was quiesced, and every queue. Checked against the transport's configuration (queue count and
 * sizes, MSI-X table size, the features the device offers and its feature rules) with the field
 * named in every error; `VirtioPciTransport.restore` applies the result and cannot fail.
 * @module
 */
import { StateError, arr, field, int, obj, onlyKeys, optField, str, u16, u32, u8 } from "../../state/parse.js";
import { parseQueueState, upgradeQueueV1, vector, type VirtqueueState } from "./queue-state.js";

/** Device status bits. */
export const STATUS = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, NEEDS_RESET: 0x40, FAILED: 0x80 } as const;
/** Bits a driver may set. */
export const VALID_STATUS_BITS = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK | STATUS.FEATURES_OK | STATUS.FAILED;

/** Transport feature bits. */
export const VIRTIO_F = { INDIRECT_DESC: 28, EVENT_IDX: 29, VERSION_1: 32, RING_PACKED: 34 } as const;

/** Saved transport state (part of a device's composed state; see `VirtioNetPciState`). */
export interface VirtioTransportState {
  /** device_status. */
  status: number;
  /** The driver's feature bits (hex, at most 16 digits). */
  driverFeatures: string;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  queueSelect: number;
  /** config_msix_vector (below the table size, or 0xFFFF). */
  configVector: number;
  configGeneration: number;
  /** ISR status bits (queue 1, configuration 2). */
  isr: number;
  queues: VirtqueueState[];
  /** MSI-X vectors raised while the device was quiesced, sent on return to running. */
  pendingVectors: number[];
  /** INTx ISR bits raised while quiesced. */
  pendingIsr: number;
  /** Why the device last went to NEEDS_RESET. */
  lastError?: string;
}

/** What a saved transport is checked against. */
export interface TransportConfig {
  /** The largest size of each queue. */
  queueSizes: readonly number[];
  /** MSI-X table entries. */
  msixVectors: number;
  /** The features the device offers (as the saved device state says). */
  offered: bigint;
  /** The device's own rules for a feature set (dependencies); a reason, or undefined. */
  checkFeatures?: (f: bigint) => string | undefined;
}

/** Whether `bit` is set in `f`. */
export function hasBit(f: bigint, bit: number): boolean {
  return ((f >> BigInt(bit)) & 1n) === 1n;
}

/** Why `f` cannot be accepted at FEATURES_OK against `offered`, or undefined when it can. */
export function featureProblem(f: bigint, offered: bigint, check?: (f: bigint) => string | undefined): string | undefined {
  const extra = f & ~offered;
  if (extra !== 0n) return `features 0x${extra.toString(16)} are not offered`;
  if (!hasBit(f, VIRTIO_F.VERSION_1)) return "VERSION_1 not negotiated";
  return check?.(f);
}

/** Reads a feature word saved as hex. */
export function featureHex(v: unknown, path: string): bigint {
  const s = str(v, path, 16);
  if (!/^[0-9a-f]{1,16}$/.test(s)) throw new StateError(path, "expected 1-16 lower-case hex digits");
  return BigInt(`0x${s}`);
}

const KEYS = [
  "status", "driverFeatures", "deviceFeatureSelect", "driverFeatureSelect", "queueSelect", "configVector", "configGeneration", "isr",
  "queues", "pendingVectors", "pendingIsr", "lastError",
] as const;

/** Parses a saved transport (current form) against `cfg`. */
export function parseTransportState(u: unknown, path: string, cfg: TransportConfig): VirtioTransportState {
  const o = obj(u, path);
  onlyKeys(o, path, KEYS);
  const status = field(o, "status", path, u8);
  if ((status & ~(VALID_STATUS_BITS | STATUS.NEEDS_RESET)) !== 0) throw new StateError(`${path}.status`, `undefined bits 0x${(status & ~(VALID_STATUS_BITS | STATUS.NEEDS_RESET)).toString(16)}`);
  if ((status & STATUS.DRIVER_OK) !== 0 && (status & STATUS.FEATURES_OK) === 0) throw new StateError(`${path}.status`, "DRIVER_OK without FEATURES_OK");
  const featuresOk = (status & STATUS.FEATURES_OK) !== 0;
  const features = field(o, "driverFeatures", path, featureHex);
  if (featuresOk) {
    const why = featureProblem(features, cfg.offered, cfg.checkFeatures);
    if (why !== undefined) throw new StateError(`${path}.driverFeatures`, `${why}, with FEATURES_OK set`);
  }
  const n = cfg.msixVectors;
  const layout = featuresOk && hasBit(features, VIRTIO_F.RING_PACKED) ? "packed" : "split";
  const queues = field(o, "queues", path, (v, p) =>
    arr(v, p, cfg.queueSizes.length, (x, q) => {
      const i = Number(/\[(\d+)\]$/.exec(q)![1]);
      return parseQueueState(x, q, { maxSize: cfg.queueSizes[i]!, layout, msixVectors: n, mayBeReady: featuresOk });
    }, true),
  );
  const pendingVectors = field(o, "pendingVectors", path, (v, p) => arr(v, p, n, (x, q) => int(x, q, 0, n - 1)));
  if (new Set(pendingVectors).size !== pendingVectors.length) throw new StateError(`${path}.pendingVectors`, "a vector is listed twice");
  const st: VirtioTransportState = {
    status,
    driverFeatures: features.toString(16),
    deviceFeatureSelect: field(o, "deviceFeatureSelect", path, u32),
    driverFeatureSelect: field(o, "driverFeatureSelect", path, u32),
    queueSelect: field(o, "queueSelect", path, u16),
    configVector: field(o, "configVector", path, (v, p) => vector(v, p, n)),
    configGeneration: field(o, "configGeneration", path, u8),
    isr: field(o, "isr", path, (v, p) => int(v, p, 0, 3)),
    queues,
    pendingVectors,
    pendingIsr: field(o, "pendingIsr", path, (v, p) => int(v, p, 0, 3)),
  };
  const lastError = optField<string | undefined>(o, "lastError", path, (v, p) => str(v, p, 200), undefined);
  if (lastError !== undefined) st.lastError = lastError;
  return st;
}

/**
 * Lifts a version-1 transport (`{ version: 1, ... }`, what the code before the portable state
 * saved) to the current form: no version of its own, queues upgraded, no interrupts pending.
 */
export function upgradeTransportV1(u: unknown, path: string): Record<string, unknown> {
  const o = obj(u, path);
  int(o.version, `${path}.version`, 1, 1);
  const { version: _v, ...rest } = o;
  const queues = Array.isArray(o.queues) ? o.queues.map((q, i) => upgradeQueueV1(q, `${path}.queues[${i}]`)) : o.queues;
  return { ...rest, queues, pendingVectors: [], pendingIsr: 0 };
}
