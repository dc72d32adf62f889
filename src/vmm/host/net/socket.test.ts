import { describe, it, expect } from "vitest";
import { connect } from "node:net";
import { createSocket } from "node:dgram";
import { connectStream, listenStream, openDgram, SocketBackendError } from "./socket.js";
import { HostStub } from "../../../devices/net/host-stub.js";
import { FrameRecorder, guestFrames } from "../../../devices/net/testing.js";
import { parseIpv4, parseIpv6, parseMac } from "../../../devices/net/frames.js";
import { parseFrame } from "../../../devices/net/parse.js";
import type { NetBackend } from "../../../devices/net/backend.js";

/** Waits (event loop turns, bounded) until `cond` holds. */
async function until(cond: () => boolean, maxWaits = 500): Promise<void> {
  for (let i = 0; i < maxWaits && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

const G = parseMac("52:54:00:12:34:56");
const GIP = parseIpv4("10.0.2.15");
const HIP = parseIpv4("10.0.2.2");

/** A simulated guest pings the host stub at the other end of `peer`; checks what comes back. */
async function pingThrough(peer: NetBackend, stub: HostStub): Promise<void> {
  const rec = new FrameRecorder().attach(peer);
  peer.transmit(guestFrames.arpRequest(G, GIP, HIP));
  await until(() => rec.frames.length === 1);
  const arp = rec.frames[0]!.frame;
  const a = parseFrame(arp);
  expect(arp[a.l3Offset + 7]).toBe(2);
  const hostMac = arp.slice(a.l3Offset + 8, a.l3Offset + 14);
  for (let seq = 1; seq <= 3; seq++) peer.transmit(guestFrames.echoRequest(G, hostMac, GIP, HIP, 7, seq));
  peer.transmit(guestFrames.neighborSolicitation(G, parseIpv6("fe80::1"), parseIpv6("fe80::2")));
  await until(() => rec.frames.length === 5);
  const seqs = rec.frames.slice(1, 4).map(({ frame }) => {
    const p = parseFrame(frame);
    expect(frame[p.l4Offset]).toBe(0);
    return (frame[p.l4Offset + 6]! << 8) | frame[p.l4Offset + 7]!;
  });
  expect(seqs).toEqual([1, 2, 3]);
  expect(stub.counters).toMatchObject({ arpReplies: 1, echoReplies: 3, neighborAdvertisements: 1 });
}

describe("socket backends (QEMU -netdev stream / dgram framing)", () => {
  it("stream: a host stub behind a server answers ARP, ping and NS from a client", async () => {
    const server = await listenStream({ port: 0 });
    const stub = new HostStub({ backend: server });
    const client = await connectStream({ port: server.port });
    try {
      await until(() => server.connected);
      await pingThrough(client, stub);
      expect(client.counters).toMatchObject({ txFrames: 5, rxFrames: 5, protocolErrors: 0 });
      expect(server.counters).toMatchObject({ rxFrames: 5, txFrames: 5, connections: 1 });
    } finally {
      client.close();
      server.close();
      client.close();
    }
  });

  it("stream: a second peer is refused while one is connected; a bad length prefix drops the connection", async () => {
    const server = await listenStream({ port: 0 });
    const first = await connectStream({ port: server.port });
    const second = await connectStream({ port: server.port });
    try {
      await until(() => server.connected && !second.connected);
      first.close();
      await until(() => !server.connected);
      const raw = connect({ host: "127.0.0.1", port: server.port });
      await new Promise<void>((r) => raw.once("connect", () => r()));
      await until(() => server.connected);
      raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      await until(() => server.counters.protocolErrors === 1 && !server.connected);
      raw.destroy();
    } finally {
      second.close();
      server.close();
    }
  });

  it("stream: a receiver without buffers pauses the socket and loses nothing; a client reconnects", async () => {
    const server = await listenStream({ port: 0 });
    const rec = new FrameRecorder();
    let refused = 0;
    server.setReceiver((f, m) => (rec.accept ? rec.sink(f, m) : (refused++, false)));
    rec.accept = false;
    const client = await connectStream({ port: server.port, reconnectMs: 10 });
    try {
      await until(() => server.connected);
      for (let i = 0; i < 5; i++) client.transmit(new Uint8Array(60 + i));
      await until(() => refused > 0); // the first frame arrived and was refused: the socket is paused
      expect(rec.frames.length).toBe(0);
      rec.accept = true;
      server.rxReady();
      await until(() => rec.frames.length === 5);
      expect(rec.frames.map((f) => f.frame.length)).toEqual([60, 61, 62, 63, 64]);
      expect(server.counters.rxDropped).toBe(0);
      server.disconnect();
      await until(() => server.counters.connections === 2 && server.connected && client.connected);
      client.transmit(new Uint8Array(70));
      await until(() => rec.frames.length === 6);
    } finally {
      client.close();
      server.close();
    }
  });

  it("dgram: a host stub answers a peer one frame per datagram, and foreign datagrams are dropped", async () => {
    const a = await openDgram({ localPort: 0 });
    const b = await openDgram({ localPort: 0, remotePort: a.localPort });
    a.setRemotePort(b.localPort);
    const stub = new HostStub({ backend: a });
    const intruder = createSocket("udp4");
    try {
      await pingThrough(b, stub);
      await new Promise<void>((r) => intruder.send(new Uint8Array(60), a.localPort, "127.0.0.1", () => r()));
      await until(() => a.counters.protocolErrors === 1);
      expect(a.counters.rxFrames).toBe(5);
    } finally {
      intruder.close();
      a.close();
      b.close();
    }
  });

  it("refuses non-loopback addresses", async () => {
    await expect(listenStream({ host: "0.0.0.0", port: 0 })).rejects.toThrow(SocketBackendError);
    await expect(openDgram({ host: "10.1.1.1", localPort: 0 })).rejects.toThrow(SocketBackendError);
  });
});
