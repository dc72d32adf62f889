import { describe, it, expect } from "vitest";
import { UsageError } from "./command.js";
import { openNetdev, parseNetdevSpec, parseNetdevs } from "./netdev-option.js";
import { parseNetSpec } from "./net-option.js";
import { parseRunArgs } from "./commands/run.js";
import { listenStream, type StreamBackend, type DgramBackend } from "../vmm/host/net/socket.js";

describe("--netdev: every form QEMU 7.2 spells", () => {
  it("tap", () => {
    expect(parseNetdevSpec("tap,id=n0")).toEqual({ type: "tap", id: "n0" });
    expect(parseNetdevSpec("tap,id=n0,ifname=nvtap7,vnet_hdr=on,script=no,downscript=no")).toEqual({ type: "tap", id: "n0", ifname: "nvtap7", vnetHdr: true });
    expect(parseNetdevSpec("type=tap,id=x.1,vnet_hdr=off")).toEqual({ type: "tap", id: "x.1", vnetHdr: false });
  });
  it("stream over inet and unix, server and client", () => {
    expect(parseNetdevSpec("stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555")).toEqual({
      type: "stream", id: "n0", server: true, addr: { type: "inet", host: "127.0.0.1", port: 5555 },
    });
    expect(parseNetdevSpec("stream,id=n0,server=off,addr.type=inet,addr.host=::1,addr.port=1,reconnect=2")).toEqual({
      type: "stream", id: "n0", server: false, addr: { type: "inet", host: "::1", port: 1 }, reconnectS: 2,
    });
    expect(parseNetdevSpec("stream,id=n0,addr.type=unix,addr.path=/tmp/a,,b.sock")).toEqual({
      type: "stream", id: "n0", server: false, addr: { type: "unix", path: "/tmp/a,b.sock" },
    });
  });
  it("dgram unicast and multicast", () => {
    expect(parseNetdevSpec("dgram,id=d,local.type=inet,local.host=127.0.0.1,local.port=7000,remote.type=inet,remote.host=127.0.0.1,remote.port=7001")).toEqual({
      type: "dgram", id: "d", host: "127.0.0.1", localPort: 7000, remotePort: 7001,
    });
    expect(parseNetdevSpec("dgram,id=m,remote.type=inet,remote.host=230.0.0.1,remote.port=1234")).toEqual({ type: "dgram-multicast", id: "m", group: "230.0.0.1", port: 1234 });
    expect(parseNetdevSpec("dgram,id=m,remote.type=inet,remote.host=239.1.2.3,remote.port=1234,local.type=inet,local.host=127.0.0.2")).toEqual({
      type: "dgram-multicast", id: "m", group: "239.1.2.3", port: 1234, localHost: "127.0.0.2",
    });
  });
});

describe("--netdev: every error names what is wrong", () => {
  const cases: Array<[string, RegExp]> = [
    ["user,id=n0", /unknown type 'user'/],
    ["", /unknown type ''/],
    ["tap", /Parameter 'id' is missing/],
    ["tap,id=", /Parameter 'id' is missing/],
    ["tap,id=0bad", /Parameter 'id' expects an identifier/],
    ["tap,id=n0,id=n1", /Parameter 'id' given twice/],
    ["tap,id=n0,bogus", /'bogus' is not key=value/],
    ["tap,id=n0,vnet_hdr=maybe", /Parameter 'vnet_hdr' expects 'on' or 'off'/],
    ["tap,id=n0,ifname=a-name-far-too-long", /Parameter 'ifname' expects an interface name of 1..15 bytes/],
    ["tap,id=n0,script=/etc/qemu-ifup", /Parameter 'script': nicvisor runs no scripts/],
    ["tap,id=n0,fd=3", /Parameter 'fd' is not supported/],
    ["tap,id=n0,colour=red", /Invalid parameter 'colour'/],
    ["stream,id=n0,server=on", /Parameter 'addr.type' is missing/],
    ["stream,id=n0,addr.type=fd,addr.str=3", /Parameter 'addr.type' expects 'inet' or 'unix', got 'fd'/],
    ["stream,id=n0,addr.type=inet,addr.port=5", /Parameter 'addr.host' is missing/],
    ["stream,id=n0,addr.type=inet,addr.host=127.0.0.1", /Parameter 'addr.port' is missing/],
    ["stream,id=n0,addr.type=inet,addr.host=127.0.0.1,addr.port=70000", /Parameter 'addr.port' expects a port number in 1..65535, got '70000'/],
    ["stream,id=n0,addr.type=inet,addr.host=127.0.0.1,addr.port=x", /Parameter 'addr.port' expects a port number/],
    ["stream,id=n0,addr.type=inet,addr.host=10.0.0.1,addr.port=5", /Parameter 'addr.host': only loopback addresses/],
    ["stream,id=n0,addr.type=unix", /Parameter 'addr.path' is missing/],
    ["stream,id=n0,server=yesplease,addr.type=unix,addr.path=/x", /Parameter 'server' expects 'on' or 'off'/],
    ["stream,id=n0,server=on,addr.type=unix,addr.path=/x,reconnect=1", /Parameter 'reconnect' is only for a client/],
    ["stream,id=n0,addr.type=unix,addr.path=/x,reconnect=-1", /Parameter 'reconnect' expects seconds/],
    ["stream,id=n0,addr.type=unix,addr.path=/x,addr.host=127.0.0.1", /Invalid parameter 'addr.host'/],
    ["dgram,id=d", /Parameter 'remote.type' is missing/],
    ["dgram,id=d,remote.type=unix,remote.path=/x", /Parameter 'remote.type' expects 'inet' \(unix and fd dgram sockets are not supported\), got 'unix'/],
    ["dgram,id=d,remote.type=inet,remote.host=127.0.0.1,remote.port=5", /Parameter 'local.type' is missing/],
    ["dgram,id=d,remote.type=inet,remote.host=127.0.0.1,remote.port=5,local.type=inet,local.host=127.0.0.1", /Parameter 'local.port' is missing/],
    ["dgram,id=d,remote.type=inet,remote.host=127.0.0.1,remote.port=5,local.type=inet,local.host=127.0.0.2,local.port=6", /'local.host' and 'remote.host' must be the same/],
    ["dgram,id=d,remote.type=inet,remote.host=8.8.8.8,remote.port=5", /Parameter 'remote.host': only loopback addresses or an IPv4 multicast group/],
    ["dgram,id=m,remote.type=inet,remote.host=230.0.0.1,remote.port=5,local.type=inet,local.host=::1", /a multicast group is joined on an IPv4 loopback address/],
    ["dgram,id=m,remote.type=inet,remote.host=230.0.0.1,remote.port=5,local.port=9", /Parameter 'local.port' is not used with a multicast group/],
    ["dgram,id=m,remote.type=inet,remote.host=230.0.0.1,remote.port=5,ttl=3", /Invalid parameter 'ttl'/],
  ];
  for (const [spec, re] of cases) {
    it(`'${spec}'`, () => {
      expect(() => parseNetdevSpec(spec)).toThrow(UsageError);
      expect(() => parseNetdevSpec(spec)).toThrow(re);
    });
  }
  it("duplicate ids across --netdev options", () => {
    expect(() => parseNetdevs(["tap,id=a", "tap,id=a"])).toThrow(/Duplicate ID 'a' for netdev/);
  });
});

describe("--net ...,netdev=ID with nicvisor run", () => {
  it("attaches a NIC to a netdev by id, on virtio, igb and vf", () => {
    expect(parseNetSpec("virtio,netdev=n0")).toMatchObject({ kind: "virtio", netdev: "n0" });
    expect(parseNetSpec("igb,netdev=n0")).toEqual({ kind: "igb", netdev: "n0" });
    expect(parseNetSpec("vf,trust,netdev=n0")).toMatchObject({ kind: "vf", netdev: "n0", trust: true });
    expect(() => parseNetSpec("virtio,netdev=")).toThrow(/netdev= is not a netdev id/);
    const a = parseRunArgs(["--net", "virtio,netdev=n0", "--netdev", "stream,id=n0,addr.type=unix,addr.path=/tmp/x"]);
    expect(a.netdevs?.get("n0")).toMatchObject({ type: "stream" });
  });
  it("refuses a NIC naming a netdev that is not there, and a netdev no NIC uses", () => {
    expect(() => parseRunArgs(["--net", "virtio,netdev=n1", "--netdev", "tap,id=n0"])).toThrow(/netdev=n1: no --netdev with id=n1/);
    expect(() => parseRunArgs(["--net", "virtio", "--netdev", "tap,id=n0"])).toThrow(/--netdev id=n0 is not used by any NIC/);
    expect(() => parseRunArgs(["--netdev", "tap,id=n0,x=1"])).toThrow(/Invalid parameter 'x'/);
  });
  it("parses --control addresses and refuses bad ones", () => {
    expect(parseRunArgs(["--control", "unix:/tmp/c.sock"]).control).toEqual({ type: "unix", path: "/tmp/c.sock" });
    expect(parseRunArgs(["--control=tcp:127.0.0.1:4444"]).control).toEqual({ type: "tcp", host: "127.0.0.1", port: 4444 });
    expect(() => parseRunArgs(["--control", "/tmp/c.sock"])).toThrow(/--control '\/tmp\/c.sock': expected unix:PATH or tcp:HOST:PORT/);
  });
});

describe("openNetdev: specs become the library's backends", () => {
  it("a stream client reaches a server; a stream server listens; dgram binds; a missing server is an error naming the netdev", async () => {
    const peer = await listenStream({ port: 0 });
    const client = await openNetdev({ type: "stream", id: "c", server: false, addr: { type: "inet", host: "127.0.0.1", port: peer.port } });
    expect(client.describe).toBe(`stream client of 127.0.0.1:${peer.port}`);
    for (let i = 0; i < 200 && !peer.connected; i++) await new Promise((r) => setTimeout(r, 5));
    expect(peer.connected).toBe(true);
    client.backend.close?.();
    peer.close();
    const server = await openNetdev({ type: "stream", id: "s", server: true, addr: { type: "inet", host: "127.0.0.1", port: peer.port } });
    expect((server.backend as StreamBackend).port).toBe(peer.port);
    server.backend.close?.();
    const d = await openNetdev({ type: "dgram", id: "d", host: "127.0.0.1", localPort: 0, remotePort: 9 });
    expect((d.backend as DgramBackend).localPort).toBeGreaterThan(0);
    d.backend.close?.();
    await expect(openNetdev({ type: "stream", id: "gone", server: false, addr: { type: "inet", host: "127.0.0.1", port: peer.port } })).rejects.toThrow(/^netdev 'gone': /);
  });
});
