import { defineConfig } from 'vitest/config';

// Unit tests (pure logic) and integration tests (against the real local stack started by
// scripts/stack) live side by side under packages/*/test. Integration tests talk to the stack
// through AGENTTRACE_* environment variables (see scripts/test).
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.{ts,tsx}', 'reliability/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The machine has two cores and one Kafka broker; keep parallelism modest so timing-sensitive
    // integration tests are not starved.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
    setupFiles: ['test-support/loop-watchdog.ts'],
  },
});
