/**
 * The shape of one `nicvisor` subcommand. Each lives in `src/cli/commands/<name>.ts` and exports
 * `command`; `src/cli/main.ts` holds the registry.
 * @module
 */

/** Where a command writes. Tests pass collectors; the CLI passes stdout/stderr. */
export interface CliIo {
  /** Writes to standard output (no newline added). */
  out(s: string): void;
  /** Writes to standard error (no newline added). */
  err(s: string): void;
}

/** One subcommand of the `nicvisor` CLI. */
export interface CliCommand {
  /** The word after `nicvisor`. */
  name: string;
  /** One line for `nicvisor help`. */
  summary: string;
  /** The usage text printed by `nicvisor help <name>` and on a usage error. */
  usage: string;
  /** Runs the command; resolves to the process exit status. */
  run(argv: string[], io: CliIo): Promise<number>;
}

/** A usage error: the CLI prints the message and the command's usage, and exits with status 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * Walks a command's `--flag value` / `--flag=value` arguments in order. `visit` gets the flag, a
 * function that takes its value (the text after `=`, else the next argument; a UsageError naming
 * the flag when there is none), whether `=` gave a value, and the argument as written.
 * @throws UsageError (from `value`, or whatever `visit` throws)
 */
export function scanArgs(argv: readonly string[], visit: (flag: string, value: () => string, inline: boolean, arg: string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const inline = eq > 0;
    visit(inline ? a.slice(0, eq) : a, () => {
      if (inline) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    }, inline, a);
  }
}

/** An integer argument in `[lo, hi]`. @throws UsageError with `message` */
export function intArg(text: string, lo: number, hi: number, message: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(message);
  return n;
}
