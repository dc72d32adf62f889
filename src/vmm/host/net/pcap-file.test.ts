import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPcapFile } from "./pcap-file.js";
import { L2Switch } from "../../../devices/net/switch.js";
import { HostStub } from "../../../devices/net/host-stub.js";
import { FrameRecorder, ManualClock, guestFrames } from "../../../devices/net/testing.js";
import { parseIpv4, parseIpv6, parseMac } from "../../../devices/net/frames.js";
import { buildDhcpClientMessage } from "../../../devices/net/dhcp.js";
import { skipTest } from "../../../../test/skip.js";

function haveTshark(): boolean {
  return spawnSync("tshark", ["--version"], { encoding: "utf8" }).status === 0;
}

describe("pcap file + tshark", () => {
  it("tshark reads the capture of a simulated ping and finds ARP and echo request/reply pairs", (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), "nv-pcap-"));
    try {
      const clock = new ManualClock();
      const sw = new L2Switch({ clock });
      const stub = new HostStub({ backend: sw.port({ name: "host" }), dhcp: { dns: "10.0.2.3" } });
      const vm = sw.port({ name: "vm" });
      new FrameRecorder().attach(vm);
      const file = openPcapFile(join(dir, "ping.pcap"), { clock });
      file.tap.attachTo(sw);
      const g = parseMac("52:54:00:12:34:56");
      const gip = parseIpv4("10.0.2.15");
      vm.transmit(guestFrames.arpRequest(g, gip, parseIpv4("10.0.2.2")));
      for (let seq = 1; seq <= 3; seq++) {
        clock.advance(1e9);
        vm.transmit(guestFrames.echoRequest(g, stub.mac, gip, parseIpv4("10.0.2.2"), 0x1234, seq));
      }
      vm.transmit(guestFrames.neighborSolicitation(g, parseIpv6("fe80::5054:ff:fe12:3456"), parseIpv6("fe80::2")));
      vm.transmit(buildDhcpClientMessage(1, g, 0x1234));
      vm.transmit(buildDhcpClientMessage(3, g, 0x1234, parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2")));
      file.close();
      expect(statSync(file.path).size).toBeGreaterThan(24);
      if (!haveTshark()) return skipTest(ctx, "SKIPPED: tshark is not installed (apt-get install -y tshark)");
      const r = spawnSync(
        "tshark",
        ["-2", "-r", file.path, "-T", "fields", "-E", "separator=,", "-e", "arp.opcode", "-e", "icmp.type", "-e", "icmp.seq", "-e", "icmp.resp_in", "-e", "icmpv6.type", "-e", "_ws.expert", "-e", "ip.checksum.status", "-e", "icmp.checksum.status", "-e", "icmpv6.checksum.status", "-e", "dhcp.option.dhcp", "-e", "dhcp.ip.your", "-e", "dhcp.option.domain_name_server", "-o", "ip.check_checksum:TRUE"],
        { encoding: "utf8", env: { ...process.env, HOME: dir } },
      );
      expect(r.status).toBe(0);
      const rows = r.stdout.trim().split("\n").map((l) => l.split(","));
      expect(rows.length).toBe(14);
      expect(rows.filter((x) => x[0] === "1").length).toBe(1);
      expect(rows.filter((x) => x[0] === "2").length).toBe(1);
      const requests = rows.filter((x) => x[1] === "8");
      const replies = rows.filter((x) => x[1] === "0");
      expect(requests.map((x) => x[2])).toEqual(["1", "2", "3"]);
      expect(replies.map((x) => x[2])).toEqual(["1", "2", "3"]);
      // tshark pairs each request with its reply (icmp.resp_in points at the reply's frame).
      expect(requests.every((x) => x[3] !== "")).toBe(true);
      expect(rows.filter((x) => x[4] === "135").length).toBe(1);
      expect(rows.filter((x) => x[4] === "136").length).toBe(1);
      // No checksum or malformed-packet complaints.
      expect(rows.every((x) => (x[5] ?? "") === "")).toBe(true);
      // tshark verified the checksums it could (checksum status 1 = good, 0 = bad, 2 = unverified).
      const icmpRows = rows.filter((x) => x[1] !== "");
      expect(icmpRows.map((x) => [x[6], x[7]])).toEqual(Array(6).fill(["1", "1"]));
      expect(rows.filter((x) => x[4] !== "").map((x) => x[8])).toEqual(["1", "1"]);
      // DHCP as tshark decodes it: DISCOVER, OFFER, REQUEST, ACK, the lease for 10.0.2.15.
      expect(rows.slice(10).map((x) => [x[9], x[10]])).toEqual([["1", "0.0.0.0"], ["2", "10.0.2.15"], ["3", "0.0.0.0"], ["5", "10.0.2.15"]]);
      expect(rows[11]![11]).toBe("10.0.2.3");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
