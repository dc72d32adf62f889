/**
 * A simulated igbvf guest driver, written from the documented behaviour of Linux igbvf: the reset
 * handshake over the mailbox (CTRL.RST, wait for RSTI/RSTD to clear, VF_RESET, read MAC), ring
 * setup with advanced descriptors, MSI-X vector mapping (RX 0, TX 1, mailbox 2), send and
 * receive, and the VF's mailbox requests. For in-process tests and benchmarks.
 * @module
 */
import type { DmaSpace } from "../../pci/interfaces.js";
import { B, D, MBX, VR } from "../../devices/igb/regs.js";

/** What the driver runs on. */
export interface VfDriverEnv {
  /** The VF's BAR0. */
  readonly bar: { read(offset: number, size: 4): number; write(offset: number, size: 4, value: number): void };
  /** Guest memory (the driver's DMA buffers live here). */
  readonly mem: DmaSpace;
  /** Allocates `size` bytes of guest memory aligned to `align`; returns the guest address. */
  readonly alloc: (size: number, align: number) => number;
  /** Waits `us` microseconds (lets the PF agent and timers run). */
  readonly delay: (us: number) => void;
  /**
   * The guest's own view of its RAM (guest physical address = index), as a guest CPU has it: when
   * given, the driver's descriptor and buffer accesses are plain loads and stores on it (as the
   * simulated virtio-net driver's are), instead of calls through `mem`. The device still goes
   * through its DMA space. Default: every access through `mem`.
   */
  readonly ram?: Uint8Array;
}

/** Driver options. */
export interface VfDriverOptions {
  /** Descriptors per ring (multiple of 8). Default 256. */
  readonly ringSize?: number;
  /** Receive buffer size in bytes (multiple of 1024). Default 2048. */
  readonly bufSize?: number;
}

/** Raised when the device does not respond as igbvf expects. */
export class VfDriverError extends Error {
  override readonly name = "VfDriverError";
}

/** Mailbox poll budget: igbvf waits up to 2000 x 500 us. */
const MBX_TRIES = 2000;
const MBX_DELAY_US = 500;

/**
 * The driver.
 * @example
 * const drv = new SimIgbvf(env);
 * drv.reset(); drv.open(); drv.send(frame); const got = drv.receive();
 */
export class SimIgbvf {
  /** The MAC the PF gave (or the driver chose). */
  mac = new Uint8Array(6);
  /** Mailbox replies that were NACKs. */
  nacks = 0;
  /** Frames sent / received. */
  txFrames = 0;
  rxFrames = 0;
  private readonly n: number;
  private readonly bsize: number;
  private v2p = 0;
  private txBase = 0;
  private rxBase = 0;
  private txBufs: number[] = [];
  private rxBufs: number[] = [];
  private txTail = 0;
  private txClean = 0;
  private rxNext = 0;
  private opened = false;
  /** Scratch for building a descriptor (the memory write copies it). */
  private readonly txDesc = new Uint8Array(16);
  private readonly txDescView = new DataView(this.txDesc.buffer);
  /** `env.ram` and a view of it (undefined: accesses go through `env.mem`). */
  private readonly ram: Uint8Array | undefined;
  private readonly ramView: DataView | undefined;

  constructor(private readonly env: VfDriverEnv, opts: VfDriverOptions = {}) {
    this.n = opts.ringSize ?? 256;
    this.bsize = opts.bufSize ?? 2048;
    this.ram = env.ram;
    this.ramView = env.ram === undefined ? undefined : new DataView(env.ram.buffer, env.ram.byteOffset, env.ram.byteLength);
    if (this.n < 8 || this.n % 8 !== 0 || this.n > 4096) throw new VfDriverError("ring size must be a multiple of 8, 8..4096");
    if (this.bsize < 1024 || this.bsize % 1024 !== 0 || this.bsize > 16384) throw new VfDriverError("buffer size must be 1..16 KiB in KiB steps");
  }

  private rd(off: number): number {
    return this.env.bar.read(off, 4) >>> 0;
  }
  private wr(off: number, v: number): void {
    this.env.bar.write(off, 4, v >>> 0);
  }

  // ---- mailbox (VF side) ----

  private readMbx(): number {
    const v = this.rd(VR.V2PMAILBOX);
    this.v2p |= v & B.V2P_R2C;
    return v | this.v2p;
  }

  /** Consumes an accumulated read-to-clear bit. */
  private takeBit(bit: number): boolean {
    const v = this.readMbx();
    if (v & bit) {
      this.v2p &= ~bit;
      return true;
    }
    return false;
  }

  private lock(): boolean {
    for (let i = 0; i < MBX_TRIES; i++) {
      this.wr(VR.V2PMAILBOX, B.V2P_VFU);
      if (this.rd(VR.V2PMAILBOX) & B.V2P_VFU) return true;
      this.env.delay(MBX_DELAY_US);
    }
    return false;
  }

  private write(words: number[]): boolean {
    if (!this.lock()) return false;
    this.takeBit(B.V2P_PFSTS);
    this.takeBit(B.V2P_PFACK);
    words.forEach((w, i) => this.wr(VR.VMBMEM + 4 * i, w));
    this.wr(VR.V2PMAILBOX, B.V2P_REQ);
    return true;
  }

  private poll(bit: number): boolean {
    for (let i = 0; i < MBX_TRIES; i++) {
      if (this.takeBit(bit)) return true;
      if (this.readMbx() & (B.V2P_RSTI | B.V2P_RSTD) && bit !== B.V2P_RSTD) return false;
      this.env.delay(MBX_DELAY_US);
    }
    return false;
  }

  private read(n: number): number[] | undefined {
    if (!this.lock()) return undefined;
    const words: number[] = [];
    for (let i = 0; i < n; i++) words.push(this.rd(VR.VMBMEM + 4 * i));
    this.wr(VR.V2PMAILBOX, B.V2P_ACK);
    return words;
  }

  /** Sends a request and waits for the PF's ack and reply; returns the reply, or undefined on timeout. */
  request(words: number[], replyWords = 1): number[] | undefined {
    if (!this.write(words)) return undefined;
    if (!this.poll(B.V2P_PFACK)) return undefined;
    if (!this.poll(B.V2P_PFSTS)) return undefined;
    const r = this.read(replyWords);
    if (r && (r[0] ?? 0) & MBX.MSGTYPE_NACK) this.nacks++;
    return r;
  }

  /** Reads an unsolicited PF message (PF_CONTROL_MSG) if one is pending. */
  readPfMessage(): number[] | undefined {
    if (!this.takeBit(B.V2P_PFSTS)) return undefined;
    return this.read(1);
  }

  // ---- reset ----

  /**
   * The igbvf reset: CTRL.RST, wait for the reset indication to clear, VF_RESET, read the MAC.
   * Returns true if the PF answered (ACK or NACK); the MAC stays zero on NACK.
   */
  reset(): boolean {
    this.opened = false;
    this.wr(VR.CTRL, B.CTRL_RST);
    let t = 200;
    while ((this.rd(VR.V2PMAILBOX) & (B.V2P_RSTI | B.V2P_RSTD)) !== 0 && t > 0) {
      t--;
      this.env.delay(5);
    }
    this.v2p = 0;
    if (t === 0) return false;
    const r = this.request([MBX.VF_RESET], 3);
    if (r === undefined) return false;
    const w0 = (r[0] ?? 0) >>> 0;
    if (w0 === (MBX.VF_RESET | MBX.MSGTYPE_ACK) >>> 0) {
      const lo = r[1] ?? 0;
      const hi = r[2] ?? 0;
      this.mac = Uint8Array.from([lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff]);
      return true;
    }
    if (w0 === (MBX.VF_RESET | MBX.MSGTYPE_NACK) >>> 0) {
      this.mac = new Uint8Array(6);
      return true;
    }
    return false;
  }

  /** SET_MAC_ADDR (primary). Returns true on ACK. */
  setMac(mac: Uint8Array): boolean {
    const r = this.request([MBX.VF_SET_MAC_ADDR, macLo(mac), macHi(mac)]);
    const ok = r !== undefined && ((r[0] ?? 0) & MBX.MSGTYPE_ACK) !== 0;
    if (ok) this.mac = Uint8Array.from(mac);
    return ok;
  }

  /** SET_MULTICAST with the 12-bit hashes of `addrs` (at most 30). */
  setMulticast(addrs: Uint8Array[]): boolean {
    const list = addrs.slice(0, MBX.MAX_MC).map((a) => (((a[4] ?? 0) >>> 4) | ((a[5] ?? 0) << 4)) & 0xfff);
    const words = [MBX.VF_SET_MULTICAST | (list.length << MBX.MSGINFO_SHIFT)];
    for (let i = 0; i < list.length; i += 2) words.push((list[i] ?? 0) | ((list[i + 1] ?? 0) << 16));
    const r = this.request(words);
    return r !== undefined && ((r[0] ?? 0) & MBX.MSGTYPE_ACK) !== 0;
  }

  /** SET_VLAN add/remove. */
  setVlan(vid: number, add: boolean): boolean {
    const r = this.request([MBX.VF_SET_VLAN | ((add ? 1 : 0) << MBX.MSGINFO_SHIFT), vid]);
    return r !== undefined && ((r[0] ?? 0) & MBX.MSGTYPE_ACK) !== 0;
  }

  /** SET_LPE (maximum frame size). */
  setLpe(size: number): boolean {
    const r = this.request([MBX.VF_SET_LPE, size]);
    return r !== undefined && ((r[0] ?? 0) & MBX.MSGTYPE_ACK) !== 0;
  }

  // ---- rings ----

  /** Sets up the rings and the MSI-X mapping, and enables both queues. */
  open(): void {
    const n = this.n;
    if (this.txBase === 0) {
      this.txBase = this.env.alloc(n * 16, 128);
      this.rxBase = this.env.alloc(n * 16, 128);
      for (let i = 0; i < n; i++) {
        this.txBufs.push(this.env.alloc(this.bsize, 64));
        this.rxBufs.push(this.env.alloc(this.bsize, 64));
      }
    }
    this.env.mem.write(this.txBase, new Uint8Array(n * 16));
    // TX
    this.wr(VR.TXDCTL(0), 0);
    this.wr(VR.TDBAL(0), this.txBase % 0x1_0000_0000);
    this.wr(VR.TDBAH(0), Math.floor(this.txBase / 0x1_0000_0000));
    this.wr(VR.TDLEN(0), n * 16);
    this.wr(VR.TDH(0), 0);
    this.wr(VR.TDT(0), 0);
    this.txTail = 0;
    this.txClean = 0;
    this.wr(VR.TXDCTL(0), B.TXDCTL_ENABLE | (8 << 16) | (1 << 8) | 16);
    // RX
    this.wr(VR.RXDCTL(0), 0);
    this.wr(VR.RDBAL(0), this.rxBase % 0x1_0000_0000);
    this.wr(VR.RDBAH(0), Math.floor(this.rxBase / 0x1_0000_0000));
    this.wr(VR.RDLEN(0), n * 16);
    this.wr(VR.SRRCTL(0), (this.bsize >>> 10) | B.SRRCTL_DESCTYPE_ONEBUF);
    this.wr(VR.RDH(0), 0);
    this.wr(VR.RDT(0), 0);
    this.wr(VR.RXDCTL(0), B.RXDCTL_ENABLE | (1 << 16) | (8 << 8) | 16);
    for (let i = 0; i < n; i++) this.postRx(i);
    this.rxNext = 0;
    this.wr(VR.RDT(0), n - 1);
    // MSI-X: RX queue 0 -> vector 0, TX queue 0 -> vector 1, mailbox -> vector 2
    this.wr(VR.IVAR0, (0 | B.IVAR_VALID) | ((1 | B.IVAR_VALID) << 8));
    this.wr(VR.IVAR_MISC, 2 | B.IVAR_VALID);
    this.wr(VR.EIAC, 0x7);
    this.wr(VR.EIAM, 0x7);
    this.wr(VR.EIMS, 0x7);
    this.opened = true;
  }

  private postRx(i: number): void {
    const a = this.rxBufs[i] ?? 0;
    const at = this.rxBase + i * 16;
    const v = this.ramView;
    if (v !== undefined && at + 16 <= v.byteLength) {
      v.setUint32(at, a % 0x1_0000_0000, true);
      v.setUint32(at + 4, Math.floor(a / 0x1_0000_0000), true);
      v.setUint32(at + 8, 0, true);
      v.setUint32(at + 12, 0, true);
      return;
    }
    const d = this.txDesc;
    const dv = this.txDescView;
    d.fill(0, 8);
    dv.setUint32(0, a % 0x1_0000_0000, true);
    dv.setUint32(4, Math.floor(a / 0x1_0000_0000), true);
    this.env.mem.write(at, d);
  }

  /** Copies `data` to guest address `a` (straight into `env.ram` when the driver has it). */
  private put(a: number, data: Uint8Array): void {
    const ram = this.ram;
    if (ram !== undefined && a >= 0 && a + data.length <= ram.length) ram.set(data, a);
    else this.env.mem.write(a, data);
  }

  /** The little-endian u32 at guest address `a`, or undefined if it cannot be read. */
  private get32(a: number): number | undefined {
    const v = this.ramView;
    if (v !== undefined && a >= 0 && a + 4 <= v.byteLength) return v.getUint32(a, true);
    const b = this.env.mem.read(a, 4);
    return b === undefined ? undefined : new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** Guest memory the device may write for this driver's receive side: the ring, then each buffer, as [address, length]. Empty before {@link open}. */
  rxRegions(): [number, number][] {
    if (this.rxBase === 0) return [];
    return [[this.rxBase, this.n * 16], ...this.rxBufs.map((b): [number, number] => [b, this.bsize])];
  }

  /** Free transmit descriptors. */
  txFree(): number {
    return this.n - 1 - ((this.txTail - this.txClean + this.n) % this.n);
  }

  /** Queues a frame (one descriptor, RS on each). Returns false if the ring is full or too large. */
  queue(frame: Uint8Array, opts: { vlan?: number } = {}): boolean {
    if (!this.opened) throw new VfDriverError("device not open");
    if (frame.length > this.bsize || frame.length === 0) return false;
    if (this.txFree() === 0 && this.reclaim() === 0) return false;
    const i = this.txTail;
    const a = this.txBufs[i] ?? 0;
    this.put(a, frame);
    let cmd = D.TXD_DTYP_DATA | D.TXD_CMD_DEXT | D.TXD_CMD_EOP | D.TXD_CMD_IFCS | D.TXD_CMD_RS | frame.length;
    const at = this.txBase + i * 16;
    const v = this.ramView;
    if (opts.vlan === undefined && v !== undefined && at + 16 <= v.byteLength) {
      // the guest CPU's four stores
      v.setUint32(at, a % 0x1_0000_0000, true);
      v.setUint32(at + 4, Math.floor(a / 0x1_0000_0000), true);
      v.setUint32(at + 8, cmd >>> 0, true);
      v.setUint32(at + 12, frame.length << D.TXD_PAYLEN_SHIFT, true);
      this.txTail = (this.txTail + 1) % this.n;
      return true;
    }
    // one scratch descriptor (the memory write copies it), as the per-frame path should not allocate
    const d = this.txDesc;
    const dv = this.txDescView;
    dv.setUint32(0, a % 0x1_0000_0000, true);
    dv.setUint32(4, Math.floor(a / 0x1_0000_0000), true);
    if (opts.vlan !== undefined) {
      // context descriptor slot 0 carries the VLAN tag
      cmd |= D.TXD_CMD_VLE;
      const c = new Uint8Array(16);
      const cv = new DataView(c.buffer);
      cv.setUint32(0, (opts.vlan << 16) | (14 << 9), true);
      cv.setUint32(8, D.TXD_DTYP_CTXT | D.TXD_CMD_DEXT, true);
      this.env.mem.write(this.txBase + i * 16, c);
      this.txTail = (this.txTail + 1) % this.n;
      return this.queueAfterCtx(d, dv, cmd, frame.length);
    }
    dv.setUint32(8, cmd >>> 0, true);
    dv.setUint32(12, frame.length << D.TXD_PAYLEN_SHIFT, true);
    this.put(at, d);
    this.txTail = (this.txTail + 1) % this.n;
    return true;
  }

  private queueAfterCtx(d: Uint8Array, dv: DataView, cmd: number, len: number): boolean {
    if (this.txFree() === 0) return false;
    dv.setUint32(8, cmd >>> 0, true);
    dv.setUint32(12, len << D.TXD_PAYLEN_SHIFT, true);
    this.env.mem.write(this.txBase + this.txTail * 16, d);
    this.txTail = (this.txTail + 1) % this.n;
    return true;
  }

  /**
   * Queues a frame with checksum offload or TSO, as igbvf does: a context descriptor (MAC/IP
   * header lengths, L4 type, MSS and L4 header length) then one data descriptor. `frame` must be
   * Ethernet + IPv4/IPv6 + TCP/UDP with the pseudo-header sum in the L4 checksum field (for TSO:
   * without the length, IPv4 total length 0), as Linux leaves it. Returns false if it does not fit.
   */
  queueOffload(frame: Uint8Array, o: { ipv4: boolean; tcp: boolean; maclen: number; iplen: number; mss?: number; l4len?: number }): boolean {
    if (!this.opened) throw new VfDriverError("device not open");
    if (this.txFree() < 2 && this.reclaim() === 0) return false;
    if (this.txFree() < 2 || frame.length === 0 || frame.length > 0xffff) return false;
    const tso = o.mss !== undefined;
    // the data descriptor's buffer holds the whole frame: frames above bufSize get a larger
    // buffer of their ring slot's, allocated once (a real driver maps skb fragments)
    const i = this.txTail;
    const c = new Uint8Array(16);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, o.iplen | (o.maclen << 9), true);
    cv.setUint32(8, (D.TXD_DTYP_CTXT | D.TXD_CMD_DEXT | (o.ipv4 ? D.CTX_TUCMD_IPV4 : 0) | (o.tcp ? D.CTX_TUCMD_L4T_TCP : 0)) >>> 0, true);
    cv.setUint32(12, tso ? (((o.mss ?? 0) << 16) | ((o.l4len ?? 0) << 8)) >>> 0 : 0, true);
    this.env.mem.write(this.txBase + i * 16, c);
    const a = frame.length <= this.bsize ? (this.txBufs[(i + 1) % this.n] ?? 0) : this.bigTxBuf((i + 1) % this.n, frame.length);
    this.env.mem.write(a, frame);
    // one scratch descriptor (the memory write copies it), as the per-frame path should not allocate
    const d = this.txDesc;
    const dv = this.txDescView;
    dv.setUint32(0, a % 0x1_0000_0000, true);
    dv.setUint32(4, Math.floor(a / 0x1_0000_0000), true);
    let cmd = D.TXD_DTYP_DATA | D.TXD_CMD_DEXT | D.TXD_CMD_EOP | D.TXD_CMD_IFCS | D.TXD_CMD_RS | frame.length;
    if (tso) cmd |= D.TXD_CMD_TSE;
    dv.setUint32(8, cmd >>> 0, true);
    const hdr = tso ? o.maclen + o.iplen + (o.l4len ?? 0) : 0;
    dv.setUint32(12, (((frame.length - hdr) << D.TXD_PAYLEN_SHIFT) | D.TXD_POPTS_TXSM | (o.ipv4 ? D.TXD_POPTS_IXSM : 0)) >>> 0, true);
    this.env.mem.write(this.txBase + ((i + 1) % this.n) * 16, d);
    this.txTail = (i + 2) % this.n;
    return true;
  }

  /** Per TX ring slot, a buffer for frames above bufSize, grown (allocated anew) only when too small. */
  private readonly bigTx = new Map<number, { addr: number; size: number }>();
  private bigTxBuf(slot: number, len: number): number {
    const b = this.bigTx.get(slot);
    if (b !== undefined && b.size >= len) return b.addr;
    const addr = this.env.alloc(len, 64);
    this.bigTx.set(slot, { addr, size: len });
    return addr;
  }

  /** Tells the device about queued frames (TDT write). */
  flush(): void {
    this.wr(VR.TDT(0), this.txTail);
  }

  /** Queues and flushes one frame. */
  send(frame: Uint8Array, opts: { vlan?: number } = {}): boolean {
    const ok = this.queue(frame, opts);
    if (ok) {
      this.flush();
      this.txFrames++;
    }
    return ok;
  }

  /** Reclaims completed transmit descriptors (DD set). Returns how many. */
  reclaim(): number {
    let k = 0;
    while (this.txClean !== this.txTail) {
      const st = this.get32(this.txBase + this.txClean * 16 + 12);
      if (st === undefined || (st & D.TXD_STA_DD) === 0) {
        // a context descriptor has no write-back: skip it if a later descriptor completed
        const next = (this.txClean + 1) % this.n;
        const cmd = this.get32(this.txBase + this.txClean * 16 + 8);
        const isCtx = cmd !== undefined && (cmd & D.TXD_DTYP_MASK) === D.TXD_DTYP_CTXT;
        if (isCtx && next !== this.txTail) {
          this.txClean = next;
          k++;
          continue;
        }
        break;
      }
      this.txClean = (this.txClean + 1) % this.n;
      k++;
    }
    return k;
  }

  /**
   * Calls `onFrame` for every received frame (at most one ring's worth), gives the buffers back
   * and returns the number of frames, as the simulated virtio-net driver's `drain` does: a frame
   * in one buffer is handed over as a view into guest memory, valid only during the call; a frame
   * across buffers is joined into one new array first. `status` is the last descriptor's status
   * dword, `vlan` its VLAN field (meaningful when `status` has VP).
   */
  drain(onFrame: (frame: Uint8Array, status: number, vlan: number) => void, max = this.n): number {
    let last = -1;
    let frames = 0;
    let parts: Uint8Array[] | undefined;
    const v = this.ramView;
    const ram = this.ram;
    for (let k = 0; k < Math.min(max, this.n); k++) {
      const i = this.rxNext;
      const at = this.rxBase + i * 16;
      let status: number;
      let len: number;
      let vlan: number;
      if (v !== undefined && at + 16 <= v.byteLength) {
        status = v.getUint32(at + 8, true);
        len = v.getUint16(at + 12, true);
        vlan = v.getUint16(at + 14, true);
      } else {
        const d = this.env.mem.read(at, 16);
        if (d === undefined) break;
        const dv = new DataView(d.buffer, d.byteOffset, 16);
        status = dv.getUint32(8, true);
        len = dv.getUint16(12, true);
        vlan = dv.getUint16(14, true);
      }
      if ((status & D.RXD_STAT_DD) === 0) break;
      const a = this.rxBufs[i] ?? 0;
      const n = Math.min(len, this.bsize);
      const buf = ram !== undefined && a + n <= ram.length ? ram.subarray(a, a + n) : this.env.mem.read(a, n);
      last = i;
      this.rxNext = (i + 1) % this.n;
      if ((status & D.RXD_STAT_EOP) !== 0 && parts === undefined) {
        onFrame(buf ?? new Uint8Array(0), status, vlan);
        this.postRx(i);
      } else {
        (parts ??= []).push(buf === undefined ? new Uint8Array(0) : buf.slice());
        this.postRx(i);
        if ((status & D.RXD_STAT_EOP) === 0) continue;
        let total = 0;
        for (const p of parts) total += p.length;
        const f = new Uint8Array(total);
        let o = 0;
        for (const p of parts) {
          f.set(p, o);
          o += p.length;
        }
        parts = undefined;
        onFrame(f, status, vlan);
      }
      frames++;
      this.rxFrames++;
    }
    if (last >= 0) this.wr(VR.RDT(0), last);
    return frames;
  }

  /** Collects received frames (at most one ring's worth, as copies) and gives the buffers back. */
  receive(max = this.n): { frame: Uint8Array; vlan?: number; status: number }[] {
    const out: { frame: Uint8Array; vlan?: number; status: number }[] = [];
    this.drain((f, status, vlan) => {
      const frame = f.slice();
      out.push(status & D.RXD_STAT_VP ? { frame, vlan, status } : { frame, status });
    }, max);
    return out;
  }

  /** Link state as igbvf reads it (STATUS.LU). */
  linkUp(): boolean {
    return (this.rd(VR.STATUS) & B.STATUS_LU) !== 0;
  }

  /**
   * igbvf's link check: a reset indication drops the link; otherwise the link is up when
   * STATUS.LU is set and the last PF message in the mailbox carries CTS. `"reset"` means the PF
   * NACKed without CTS: the driver must reset.
   */
  checkLink(): "up" | "down" | "reset" {
    const v = this.readMbx();
    if (v & (B.V2P_RSTI | B.V2P_RSTD)) {
      this.v2p &= ~B.V2P_RSTD;
      return "down";
    }
    if ((this.rd(VR.STATUS) & B.STATUS_LU) === 0) return "down";
    const m = this.read(1);
    if (m === undefined) return "down";
    const w = (m[0] ?? 0) >>> 0;
    if ((w & MBX.MSGTYPE_CTS) === 0) return w & MBX.MSGTYPE_NACK ? "reset" : "down";
    return "up";
  }
}

function macLo(m: Uint8Array): number {
  return ((m[0] ?? 0) | ((m[1] ?? 0) << 8) | ((m[2] ?? 0) << 16) | ((m[3] ?? 0) << 24)) >>> 0;
}
function macHi(m: Uint8Array): number {
  return (m[4] ?? 0) | ((m[5] ?? 0) << 8);
}
