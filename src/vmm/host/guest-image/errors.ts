/**
 * The guest image builder's errors.
 * @module
 */

/** What went wrong in `buildGuestImage`. */
export type GuestImageErrorKind =
  /** Building needs root (dpkg --add-architecture, apt-get update) and there is no cached image. */
  | "not-root"
  /** apt-get, apt-cache or dpkg is not installed (not a Debian host). */
  | "no-apt"
  /** An apt or dpkg command failed ({@link AptCommandError}), or apt has no i386 packages. */
  | "apt"
  /** apt knows no `linux-image-6.1.0-*-686` package, or it holds no bzImage. */
  | "no-kernel"
  /** The unpacked packages lack a file the image needs (a tool, library, module, interpreter). */
  | "missing-file"
  /** Another process held the cache's build lock for longer than 15 minutes. */
  | "busy";

/** Building the image failed; `kind` says why. */
export class GuestImageError extends Error {
  override readonly name: string = "GuestImageError";
  /** Why the build failed. */
  readonly kind: GuestImageErrorKind;
  constructor(kind: GuestImageErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** An apt/dpkg command the builder ran failed; the message ends with the tail of its stderr. */
export class AptCommandError extends GuestImageError {
  override readonly name: string = "AptCommandError";
  /** The command line that failed. */
  readonly command: string;
  /** Exit status (null if it could not start or was killed by a signal). */
  readonly status: number | null;
  /** The last lines of its stderr (or stdout when stderr was empty). */
  readonly stderrTail: string;
  constructor(command: string, status: number | null, stderrTail: string) {
    super("apt", `'${command}' failed with status ${status}:\n${stderrTail}`);
    this.command = command;
    this.status = status;
    this.stderrTail = stderrTail;
  }
}
