import type { AgentTracer } from './tracer.js';
import { closeAllProducers } from './producer-pool.js';

/**
 * Flushes open tracers when the process is asked to stop (SIGTERM/SIGINT) or runs out of work
 * (beforeExit), within each tracer's shutdown timeout. Installed once, on first use.
 */
const open = new Set<AgentTracer>();
let installed = false;
let shuttingDown: Promise<void> | undefined;
let shutdownTimeoutMs = 10_000;

export function registerTracer(tracer: AgentTracer, timeoutMs = 10_000): void {
  open.add(tracer);
  shutdownTimeoutMs = Math.max(shutdownTimeoutMs, timeoutMs);
  if (installed) return;
  installed = true;
  process.once('SIGTERM', () => void onSignal('SIGTERM'));
  process.once('SIGINT', () => void onSignal('SIGINT'));
  process.on('beforeExit', () => {
    if (open.size > 0) void shutdownTracing();
  });
  process.on('exit', () => {
    let pending = 0;
    for (const t of open) pending += t.stats().pending;
    if (pending > 0) process.stderr.write(`agenttrace tracer: process exiting with ${pending} event(s) not yet delivered to Kafka\n`);
  });
}

export function unregisterTracer(tracer: AgentTracer): void {
  open.delete(tracer);
}

/** Closes every open tracer and the shared producers, bounded by the shutdown timeout. */
export function shutdownTracing(timeoutMs: number = shutdownTimeoutMs): Promise<void> {
  shuttingDown ??= (async () => {
    let timer: NodeJS.Timeout | undefined;
    const closing = Promise.allSettled([...open].map((t) => t.close(timeoutMs)));
    await Promise.race([closing, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await closeAllProducers();
  })().finally(() => {
    shuttingDown = undefined;
  });
  return shuttingDown;
}

async function onSignal(signal: NodeJS.Signals): Promise<void> {
  await shutdownTracing();
  // Let the process die of the signal as it would have without us, unless the agent handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}
