/**
 * Skipping a test for a reason found at run time (a tool or the guest image is missing): the
 * reason is printed as `SKIPPED: <reason>` and vitest records the test as skipped, never as passed.
 */
import type { TestContext } from "vitest";

/** Prints `message` (which starts with "SKIPPED: ") and marks the running test as skipped. */
export function skipTest(ctx: TestContext, message: string): void {
  console.log(message);
  ctx.skip(message.replace(/^SKIPPED: /, ""));
}
