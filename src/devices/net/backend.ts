/**
 * The boundary between a network device model and the world: frames in and out, with optional
 * offload metadata. Implementations: the in-process L2 switch, the host stub, pcap taps, TAP and
 * QEMU-compatible sockets (the Linux-only ones live under `src/vmm/host`).
 * @module
 */

/**
 * Offload metadata travelling with a frame, modelled on `struct virtio_net_hdr`. A backend that
 * cannot take a frame with offloads pending must have them completed in software first
 * (checksum filled in, large frame segmented); see the helpers in `src/devices/net`.
 */
export interface FrameMeta {
  /** A partial checksum must be completed: `csumStart`/`csumOffset` as in virtio_net_hdr. */
  needsCsum?: { start: number; offset: number };
  /** The L4 checksum is known to be valid (receive side). */
  csumValid?: boolean;
  /** Segmentation still to do: TCPv4/TCPv6/UDP with this MSS and header length. */
  gso?: { type: "tcpv4" | "tcpv6" | "udp"; size: number; hdrLen: number; ecn?: boolean };
}

/** Receives frames. Returns `false` if the frame was dropped (for example: no receive buffers). */
export type FrameSink = (frame: Uint8Array, meta?: FrameMeta) => boolean;

/** How a receiver treats the frames it is given (see {@link NetBackend.setReceiver}). */
export interface ReceiverOptions {
  /**
   * The sink is done with a frame it takes (returns true) when it returns: it has placed the frame
   * (in guest memory) or copied what it keeps. The backend may then reuse the frame's bytes for the
   * next frame instead of allocating one per frame. A refused frame (false) stays the backend's,
   * untouched, until it is delivered. Default false: the sink may keep the frames it is given.
   * A wrapper that does not know its sink forwards it as false.
   */
  borrows?: boolean;
}

/**
 * One attachment point of a device to a network. The device calls {@link NetBackend.transmit}; the
 * backend delivers incoming frames to the sink installed with {@link NetBackend.setReceiver}.
 */
export interface NetBackend {
  /** The device sends a frame. The backend owns `frame` after the call (the device must not reuse it). */
  transmit(frame: Uint8Array, meta?: FrameMeta): void;
  /** Installs the device's receive path (replacing any earlier one). `undefined` detaches it. */
  setReceiver(sink: FrameSink | undefined, options?: ReceiverOptions): void;
  /** The device has new receive buffers: a backend that queued frames may deliver them now. */
  rxReady?(): void;
  /**
   * {@link NetBackend.transmit} is done with the frame when it returns (it has written or copied
   * it), so the device may reuse the frame's bytes for its next frame instead of allocating one.
   * Default false: the backend owns what it is given. A wrapper that does not know its inner
   * backend leaves this out.
   */
  readonly copiesOnTransmit?: boolean;
  /** Which offloads this backend accepts on transmit without software fallback. */
  readonly offloads?: { csum: boolean; tso4: boolean; tso6: boolean };
  /** Releases host resources (fds, sockets). Idempotent. */
  close?(): void;
}
