import pRetry, { AbortError } from 'p-retry';
import { OptionsError } from './errors.js';

/** Exponential backoff limits: the first pause, the longest, and the growth per attempt. */
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
}

export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt; `Infinity` retries until success, `signal` or `shouldRetry` ends it. */
  retries: number;
  /** Aborting stops the retries at once (also during a pause); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** False ends the retries with this error (e.g. refused credentials: waiting does not fix them). */
  shouldRetry?: (err: Error, attempt: number) => boolean;
  /** Told of each failed attempt that will be retried (for logs and metrics); `attempt` counts from 1. */
  onFailedAttempt?: (err: Error, attempt: number) => void;
}

function checkBackoff(o: BackoffOptions, where: string): void {
  if (!(o.minMs >= 0)) throw new OptionsError(`${where}.minMs`, `must be a number of ms >= 0, got ${String(o.minMs)}`);
  if (!(o.maxMs >= o.minMs)) throw new OptionsError(`${where}.maxMs`, `must be at least minMs (${o.minMs}), got ${String(o.maxMs)}`);
  if (o.factor !== undefined && !(o.factor >= 1)) throw new OptionsError(`${where}.factor`, `must be >= 1, got ${String(o.factor)}`);
}

/**
 * The pause before retry number `attempt` (0-based): exponential from minMs, capped at maxMs,
 * with "equal jitter" (between half and all of it) so that clients failing together do not
 * retry together. For loops that must know the pause before taking it (a deadline to respect);
 * everything else uses `retry`.
 */
export function backoffMs(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(o.maxMs, o.minMs * (o.factor ?? 2) ** Math.min(Math.max(0, attempt), 30));
  return Math.round(base / 2 + random() * (base / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects: the caller looks at the signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, retrying failures with jittered exponential backoff (p-retry).
 * The attempt number (from 1) is passed to `fn`. Rejects with the last error when the retries
 * are used up or `shouldRetry` says no, and with the signal's reason when `signal` aborts.
 */
export function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  checkBackoff(options, 'retry options');
  if (!(options.retries >= 0)) throw new OptionsError('retry options.retries', `must be >= 0 or Infinity, got ${String(options.retries)}`);
  const forever = options.retries === Infinity;
  return pRetry(fn, {
    // p-retry computes one delay per retry up front: an infinite count would never return, so
    // "forever" repeats the last of 30 (which has reached maxMs long before).
    retries: forever ? 30 : options.retries,
    forever,
    minTimeout: options.minMs,
    maxTimeout: options.maxMs,
    factor: options.factor ?? 2,
    randomize: true,
    signal: options.signal,
    shouldRetry: (err) => options.shouldRetry?.(err, err.attemptNumber) ?? true,
    onFailedAttempt: (err) => options.onFailedAttempt?.(err, err.attemptNumber),
  });
}

/** Thrown from a retried function, ends the retries with `err` (p-retry's AbortError). */
export function stopRetrying(err: Error | string): Error {
  return new AbortError(err);
}
