/**
 * A QEMU guest driven through its serial console (`-serial stdio`), for the tests and benchmarks
 * that set nicvisor beside QEMU 7.2 (qemu-interop.test.ts, bench/migrate.ts): it spawns
 * `qemu-system-i386` with the given arguments, keeps what the console and QEMU print, waits for a
 * text, and runs shell commands in the guest.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

/** The QEMU binary. */
export const QEMU = "qemu-system-i386";

export class QemuGuest {
  /** Everything the console and QEMU printed so far (latin1). */
  out = "";
  readonly proc: ChildProcessWithoutNullStreams;

  constructor(
    args: readonly string[],
    /** A name for error messages. */
    readonly name = "qemu",
  ) {
    this.proc = spawn(QEMU, [...args]);
    this.proc.stdout.on("data", (d: Buffer) => (this.out += d.toString("latin1")));
    this.proc.stderr.on("data", (d: Buffer) => (this.out += d.toString("latin1")));
  }

  /** Waits until the output shows `text` after position `from`; returns what came between. @throws on timeout or QEMU's exit */
  async wait(text: string, from: number, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const i = this.out.indexOf(text, from);
      if (i >= 0) return this.out.slice(from, i);
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited: ${this.out.slice(-800)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.name}: no '${text}' within ${timeoutMs} ms; tail: ${this.out.slice(-800)}`);
  }

  /**
   * Runs a shell command on the console and returns its output. The console may echo what is
   * typed, so the end marker is computed by the shell: the typed line holds $((40+2)), the output 42.
   */
  async exec(cmd: string, timeoutMs = 60_000): Promise<string> {
    const id = Math.floor(Math.random() * 1e6);
    const from = this.out.length;
    this.proc.stdin.write(`${cmd}; echo @@Q-$((40+2))-${id}@@\n`);
    return this.wait(`@@Q-42-${id}@@`, from, timeoutMs);
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}
