import { describe, expect, it } from "vitest";
import { parseWebArgs } from "./web.js";
import { UsageError } from "../command.js";

describe("nicvisor web's arguments", () => {
  it("defaults to igb on port 8086 with 256 MiB, and takes each NIC the page supports", () => {
    expect(parseWebArgs([])).toEqual({ port: 8086, net: { kind: "igb" }, netName: "igb", mem: 256, append: "" });
    expect(parseWebArgs(["--net", "vf,failover", "--port=0", "--mem", "128"])).toMatchObject({ port: 0, net: { kind: "vf-failover" }, netName: "vf,failover", mem: 128 });
    expect(parseWebArgs(["--net=virtio"]).net).toEqual({ kind: "virtio" });
    expect(parseWebArgs(["--net", "vf"]).net).toEqual({ kind: "vf" });
  });

  it("refuses what it cannot serve, naming the argument", () => {
    const bad: Array<[string[], RegExp]> = [
      [["--net", "failover"], /--net failover: expected virtio, igb, vf, vf,failover/],
      [["--port", "70000"], /--port takes 0 to 65535/],
      [["--mem", "8"], /--mem must be/],
      [["--port"], /--port needs a value/],
      [["--bogus"], /unknown argument '--bogus'/],
    ];
    for (const [argv, msg] of bad) {
      expect(() => parseWebArgs(argv)).toThrow(UsageError);
      expect(() => parseWebArgs(argv)).toThrow(msg);
    }
  });
});
