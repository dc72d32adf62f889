/**
 * `nicvisor web` in Debian's chromium, driven by playwright-core (no browser download): the page
 * boots the project's Debian guest on v86 with nicvisor's 82576 in a worker; the test types into
 * its console (lspci, sriov_numvfs, a ping) and reads the answers there and in the views: two VFs
 * appear in the PCI tree, the rings' indexes move during the ping, the frames list the echoes, the
 * register log names registers. A screenshot goes to test-artifacts/. The boot time of the page and
 * of `nicvisor run` on the same machine, in the same run, are printed (not asserted). Chromium runs
 * with V8's baseline wasm tier only, as `nicvisor run` runs v86's generated code (docs/web.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { canBuildGuestImage } from "../src/vmm/host/guest-image/index.js";
import { skipTest } from "./skip.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = `${ROOT}dist/cli/bin.js`;
const ARTIFACTS = `${ROOT}test-artifacts`;

type Page = import("playwright-core").Page;
type Browser = import("playwright-core").Browser;

let skip: string | undefined;
let browser: Browser | undefined;

/** Starts `nicvisor web` on a free port; resolves with its URL once it serves. */
function startServer(net: string): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, "web", "--port", "0", "--net", net], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    const t = setTimeout(() => reject(new Error(`nicvisor web did not start within 240 s:\n${err}`)), 240_000);
    proc.stderr!.on("data", (b: Buffer) => {
      err += b.toString();
      const m = /serving (http:\/\/127\.0\.0\.1:\d+\/)/.exec(err);
      if (m !== null) {
        clearTimeout(t);
        resolve({ proc, url: m[1]! });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`nicvisor web exited with ${code}:\n${err}`));
    });
  });
}

/** Wall time of `nicvisor run --net igb --exec true`: process start to the command's answer. */
function nodeBootMs(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const p = spawn(process.execPath, [BIN, "run", "--net", "igb", "--exec", "true"], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    p.once("exit", (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`nicvisor run exited with ${code}: ${err}`))));
  });
}

/** Types `cmd` into the console, followed by a marker echo; resolves with what the command printed. */
async function type(p: Page, cmd: string, timeoutMs = 60_000): Promise<string> {
  const tag = `@@T${Math.floor(Math.random() * 1e6)}-`;
  const before = ((await p.evaluate(() => (globalThis as unknown as { nicvisor: { console(): string } }).nicvisor.console())) as string).length;
  await p.click("#console");
  // The marker's digits come from the shell's arithmetic, so the echoed command line never matches.
  await p.keyboard.type(`${cmd}; echo ${tag}$((40+2))@@\n`);
  const done = `${tag}42@@`;
  await p.waitForFunction((d) => (globalThis as unknown as { nicvisor: { console(): string } }).nicvisor.console().includes(d), done, { timeout: timeoutMs, polling: 200 });
  const text = (await p.evaluate(() => (globalThis as unknown as { nicvisor: { console(): string } }).nicvisor.console())) as string;
  const out = text.slice(before);
  return out.slice(out.indexOf("\n") + 1, out.indexOf(done));
}

/** An element as the callbacks evaluated in the page see it (the project's TypeScript has no DOM typings). */
interface El {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  readonly lastElementChild: El | null;
}

/** The rings view's indexes by ring name. */
function rings(p: Page): Promise<Record<string, string>> {
  return p.$$eval("[data-ring]", (els) => Object.fromEntries(els.map((e) => [(e as unknown as El).getAttribute("data-ring") ?? "", `${(e as unknown as El).getAttribute("data-device-index")}/${(e as unknown as El).getAttribute("data-driver-index")}`])));
}

/** Waits until the page has `n` elements matching `selector`. */
function count(p: Page, selector: string, n: number): Promise<unknown> {
  return p.waitForFunction(`document.querySelectorAll(${JSON.stringify(selector)}).length ${n === 0 ? "=== 0" : `=== ${n}`}`, undefined, { timeout: 20_000, polling: 300 });
}

/** Serves `net`, opens the page and waits for its guest's ready marker; resolves with the boot times. */
async function openPage(net: string): Promise<{ proc: ChildProcess; page: Page; bootMs: number; guestBootMs: number }> {
  const s = await startServer(net);
  const { chromium } = await import("playwright-core");
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    // V8's baseline tier only, as `nicvisor run` sets for v86's generated code (docs/web.md, boot time).
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--js-flags=--liftoff-only"],
  });
  const p = await browser.newPage({ viewport: { width: 1500, height: 1150 } });
  p.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await p.goto(s.url);
  await p.waitForFunction(() => ["ready", "failed", "stopped"].includes((globalThis as unknown as { nicvisor: { state: string } }).nicvisor.state), undefined, { timeout: 240_000, polling: 500 });
  const api = await p.evaluate(() => {
    const n = (globalThis as unknown as { nicvisor: { state: string; error?: string; bootMs?: number; guestBootMs?: number } }).nicvisor;
    return { state: n.state, error: n.error, bootMs: n.bootMs, guestBootMs: n.guestBootMs };
  });
  if (api.state !== "ready") throw new Error(`the page's guest did not boot: ${api.state} ${api.error ?? ""}`);
  return { proc: s.proc, page: p, bootMs: api.bootMs ?? NaN, guestBootMs: api.guestBootMs ?? NaN };
}

async function closePage(name: string, p: Page | undefined, proc: ChildProcess | undefined): Promise<void> {
  if (p !== undefined) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await p.screenshot({ path: `${ARTIFACTS}/web-page-${name}.png`, fullPage: true }).catch(() => undefined);
    await p.close().catch(() => undefined);
  }
  proc?.kill("SIGTERM");
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return void (skip = `${CHROMIUM} not installed (scripts/setup.sh installs Debian's chromium)`);
  if (!existsSync(`${ROOT}dist/web/page/page.js`)) return void (skip = "the page is not built (npm run build)");
  const can = await canBuildGuestImage();
  if (!can.ok) return void (skip = can.reason);
}, 600_000);

afterAll(async () => {
  await browser?.close();
});

describe("nicvisor web in chromium: Debian's igb on nicvisor's 82576, in the page", () => {
  let page: Page | undefined;
  let server: ChildProcess | undefined;
  beforeAll(async () => {
    if (skip !== undefined) return;
    const nodeMs = await nodeBootMs();
    const o = await openPage("igb");
    page = o.page;
    server = o.proc;
    console.log(`boot on this machine, same run: nicvisor run --net igb --exec true ${nodeMs.toFixed(0)} ms (process start to exit); the page in chromium --js-flags=--liftoff-only ${o.bootMs.toFixed(0)} ms from page load to the ready marker (${o.guestBootMs.toFixed(0)} ms from Machine.start in the worker)`);
  }, 600_000);
  afterAll(() => closePage("igb", page, server));

  it("the console runs lspci: the 82576 PF behind the root port", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const out = await type(page, "lspci");
    expect(out).toMatch(/^02:00\.0 Ethernet controller: Intel Corporation 82576 Gigabit Network Connection \(rev 01\)$/m);
    expect(out).toMatch(/^00:05\.0 PCI bridge: /m);
    // The PCI tree view shows the same function.
    await page.waitForSelector('[data-bdf="02:00.0"][data-label="Intel 82576 (PF)"]', { timeout: 10_000 });
  }, 120_000);

  it("writing sriov_numvfs makes two VFs appear in the PCI tree view; writing 0 takes them away", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    expect(await page.$$('[data-vf="true"]')).toHaveLength(0);
    // VFs without a driver (autoprobe off): this test is about the tree, igbvf is the guest tests'.
    await type(page, "echo 0 > /sys/bus/pci/devices/0000:02:00.0/sriov_drivers_autoprobe; echo 2 > /sys/bus/pci/devices/0000:02:00.0/sriov_numvfs");
    await count(page, '[data-vf="true"]', 2);
    const vfs = await page.$$eval('[data-vf="true"]', (els) => els.map((e) => `${(e as unknown as El).getAttribute("data-bdf")} ${(e as unknown as El).getAttribute("data-label")}`));
    expect(vfs).toEqual(["02:10.0 Intel 82576 Virtual Function", "02:10.2 Intel 82576 Virtual Function"]);
    expect(await type(page, "lspci -n -s 02:10")).toMatch(/02:10\.0 0200: 8086:10ca \(rev 01\)\n02:10\.2 0200: 8086:10ca \(rev 01\)/);
    await type(page, "echo 0 > /sys/bus/pci/devices/0000:02:00.0/sriov_numvfs");
    await count(page, '[data-vf="true"]', 0);
    await type(page, "echo 2 > /sys/bus/pci/devices/0000:02:00.0/sriov_numvfs");
    await count(page, '[data-vf="true"]', 2);
  }, 120_000);

  it("a ping through the PF moves the rings' indexes, lists the echoes as frames, and the log names the registers", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    await type(page, "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; sleep 4");
    await page.waitForFunction(`document.querySelectorAll('[data-ring$=" tx"]').length > 0`, undefined, { timeout: 20_000, polling: 300 });
    await new Promise((r) => setTimeout(r, 1000)); // one more snapshot
    const before = await rings(page);
    const out = await type(page, "ping -c 5 -i 0.3 10.0.2.2", 90_000);
    expect(out).toMatch(/5 packets transmitted, 5 packets received, 0% packet loss/);
    await new Promise((r) => setTimeout(r, 1000));
    const after = await rings(page);
    const moved = Object.keys(after).filter((k) => before[k] !== undefined && before[k] !== after[k]);
    expect(moved.some((k) => k.endsWith(" tx"))).toBe(true);
    expect(moved.some((k) => k.endsWith(" rx"))).toBe(true);
    const frames = await page.$$eval("#frames tr[data-dir]", (els) => els.map((e) => `${(e as unknown as El).getAttribute("data-dir")} ${(e as unknown as El).lastElementChild?.textContent ?? ""}`));
    expect(frames.some((f) => /^tx IPv4 10\.0\.2\.15 > 10\.0\.2\.2 ICMP echo request/.test(f))).toBe(true);
    expect(frames.some((f) => /^rx IPv4 10\.0\.2\.2 > 10\.0\.2\.15 ICMP echo reply/.test(f))).toBe(true);
    const regs = await page.$$eval("#log td:nth-child(6)", (els) => els.map((e) => (e as unknown as El).textContent ?? ""));
    expect(regs.some((r) => /^(TDT|RDT|EICR|EIMS|EICS)\(?\d*\)?$/.test(r))).toBe(true);
    const irq = await page.$$eval("#irq tr[data-source]", (els) => els.map((e) => (e as unknown as El).getAttribute("data-source") ?? ""));
    expect(irq.some((s) => /^02:00\.0 MSI-X \d+ \(vector 0x[0-9a-f]{2}\)$/.test(s))).toBe(true);
    console.log(`moved during the ping: ${moved.map((k) => `${k} ${before[k]} -> ${after[k]}`).join("; ")}`);
  }, 180_000);

  it("the pcap download holds the echoes; the trace download replays clean in nicvisor replay", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    const save = async (button: string): Promise<Uint8Array> => {
      const [dl] = await Promise.all([page!.waitForEvent("download", { timeout: 30_000 }), page!.click(button)]);
      return new Uint8Array(readFileSync((await dl.path())!));
    };
    const pcap = await save("#pcap");
    const dv = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
    expect(dv.getUint32(0, true)).toBe(0xa1b2c3d4);
    let echoes = 0;
    for (let o = 24; o + 16 <= pcap.length; o += 16 + dv.getUint32(o + 8, true)) {
      const f = pcap.subarray(o + 16, o + 16 + dv.getUint32(o + 8, true));
      if (f[12] === 0x08 && f[13] === 0x00 && f[23] === 1) echoes++; // IPv4, ICMP
    }
    expect(echoes).toBeGreaterThanOrEqual(10); // 5 requests and 5 replies at least
    const trace = await save("#trace-download");
    const file = `${mkdtempSync(`${tmpdir()}/nicvisor-web-`)}/igb.nvtrace`;
    writeFileSync(file, trace);
    const r = spawnSync(process.execPath, [BIN, "replay", file], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toMatch(/^clean: \d+ events replayed/m);
    expect(r.status).toBe(0);
    console.log(`the page's trace: ${trace.length} bytes; nicvisor replay: ${r.stdout.trim()}`);
  }, 120_000);
  it("a shipped trace loaded into the page steps forwards and back, the PCI tree and the log following; Live returns to the guest", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    await page.setInputFiles("#trace-file", `${ROOT}test/traces/igb-ping-sriov2-igbvf.nvtrace.gz`);
    await page.waitForSelector("#trace-steps:not(.hidden)", { timeout: 10_000 });
    const at = async (): Promise<number> => Number(/^event (\d+) of/.exec((await page!.textContent("#step-at")) ?? "")?.[1] ?? NaN);
    expect(await at()).toBe(0);
    await page.click("#step-fwd");
    await page.click("#step-fwd");
    expect(await at()).toBe(2);
    await page.click("#step-back");
    expect(await at()).toBe(1);
    await page.click("#step-last");
    await count(page, '[data-vf="true"]', 2); // the trace wrote sriov_numvfs 2
    // at the trace's last event (about 12,800 of them; the count moves when the trace is re-recorded)
    const end = /^event (\d+) of (\d+) · end$/.exec((await page.textContent("#step-at")) ?? "");
    expect(end?.[1]).toBe(end?.[2]);
    expect(Number(end?.[2])).toBeGreaterThan(10_000);
    const regs = await page.$$eval("#log td:nth-child(6)", (els) => els.map((e) => (e as unknown as El).textContent ?? ""));
    expect(regs.filter((r) => r !== "").length).toBeGreaterThan(10);
    await page.click("#step-first");
    await count(page, '[data-vf="true"]', 0);
    await page.click("#trace-live");
    await count(page, '[data-vf="true"]', 2); // the live guest's two VFs, from the test before
  }, 60_000);
});

describe("nicvisor web in chromium: the failover VF, switched from the page while a ping runs", () => {
  let page: Page | undefined;
  let server: ChildProcess | undefined;
  beforeAll(async () => {
    if (skip !== undefined) return;
    const o = await openPage("vf,failover");
    page = o.page;
    server = o.proc;
  }, 600_000);
  afterAll(() => closePage("vf-failover", page, server));

  it("each click on the switch button moves the VF between pass-through and emulation; the timeline lists each blackout; the ping loses nothing", async (ctx) => {
    if (skip !== undefined || page === undefined) return skipTest(ctx, `SKIPPED: ${skip}`);
    await page.waitForSelector("#failover:not(.hidden)", { timeout: 10_000 });
    expect(await page.textContent("#failover-state")).toMatch(/^serving: passthrough · 0 switches/);
    await type(page, "ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; sleep 3; ping -c 3 -W 2 10.0.2.2 >/dev/null");
    await page.click("#console");
    await page.keyboard.type("ping -c 30 -i 0.2 10.0.2.2 | tail -3; echo @@F-$((40+2))@@\n");
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 1200));
      await page.click("#switch");
    }
    await page.waitForFunction(`globalThis.nicvisor.console().includes("@@F-42@@")`, undefined, { timeout: 120_000, polling: 300 });
    const text = await page.evaluate(() => (globalThis as unknown as { nicvisor: { console(): string } }).nicvisor.console());
    expect(text).toMatch(/30 packets transmitted, 30 packets received, 0% packet loss/);
    const switches = await page.evaluate(() => (globalThis as unknown as { nicvisor: { switches: Array<{ ok: boolean; from?: string; to?: string; blackoutUs?: number }> } }).nicvisor.switches);
    expect(switches.map((s) => `${s.ok} ${s.from}>${s.to}`)).toEqual(["true passthrough>emulated", "true emulated>passthrough", "true passthrough>emulated", "true emulated>passthrough"]);
    for (const s of switches) expect(s.blackoutUs).toBeGreaterThan(0);
    await page.waitForFunction(`document.querySelectorAll("#timeline div").length === 4`, undefined, { timeout: 5_000, polling: 300 });
    expect(await page.textContent("#timeline")).toMatch(/passthrough → emulated, blackout \d+ µs/);
    await page.waitForFunction(`/serving: passthrough · 4 switches \\(0 failed\\)/.test(document.querySelector("#failover-state").textContent)`, undefined, { timeout: 5_000, polling: 300 });
    console.log(`failover from the page: blackouts ${switches.map((s) => `${s.blackoutUs?.toFixed(0)} µs`).join(", ")}`);
  }, 240_000);
});
