#!/usr/bin/env node
/**
 * Executable entry of the `nicvisor` command (the package's `bin`).
 * @module
 */
import type { CliIo } from "./command.js";
import { main } from "./main.js";

const io: CliIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };
const status = await main(process.argv.slice(2), io);
// Exit explicitly: a command may leave an engine's timers behind. On Linux, writes to pipes and
// files from process.stdout are synchronous, so nothing printed is lost.
process.exit(status);
