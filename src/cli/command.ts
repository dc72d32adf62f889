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
