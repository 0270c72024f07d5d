import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites share one Postgres and one Redis; each uses its own database and key prefix,
    // but running files one at a time keeps the 2-core machine's timings sane.
    fileParallelism: false
  }
})
