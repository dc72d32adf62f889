import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Real-guest suites boot a v86 VM; give them room, never assert on time.
    testTimeout: 30_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});
