/**
 * Reports when a test blocks the worker's event loop for long. vitest's worker talks to the main
 * process over an RPC with a fixed 60 s timeout; a test that keeps the loop busy that long makes
 * a green run exit 1 ("Timeout calling onTaskUpdate"). This names the culprit early.
 */
import { afterAll, beforeAll, expect } from 'vitest';

const STALL_MS = 5_000;
let timer: NodeJS.Timeout | undefined;

beforeAll(() => {
  let last = Date.now();
  timer = setInterval(() => {
    const now = Date.now();
    const stalled = now - last - 1000;
    if (stalled > STALL_MS) {
      const test = expect.getState().currentTestName ?? '(outside a test)';
      process.stderr.write(`[loop-watchdog] event loop blocked ~${Math.round(stalled / 1000)} s in ${expect.getState().testPath ?? '?'} › ${test}\n`);
    }
    last = now;
  }, 1000);
  timer.unref();
});

afterAll(() => clearInterval(timer));
