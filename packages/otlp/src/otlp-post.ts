import { backoffMs, errorMessage } from '@agenttrace/common';
import { rejectedOf } from './export.js';

/**
 * One OTLP/HTTP request of the continuous exporter, retried until the backend accepts it, refuses
 * its content, or the caller gives up. The exporter commits offsets only after `ok`, so a retry
 * never loses anything; the spans carry stable ids, so a request the backend took but whose
 * answer was lost is the same spans again, not new ones.
 */

export type PostOutcome =
  | { kind: 'ok'; rejected: number; attempts: number }
  /** The backend refused the content itself (400, 413, 422...): sending it again cannot help. */
  | { kind: 'refused'; status: number; detail: string; attempts: number }
  /** The caller's signal ended the retries. */
  | { kind: 'aborted'; attempts: number };

/** What to do with an answer's status code. */
export type StatusClass = 'ok' | 'retry' | 'config' | 'refused';

/**
 * 2xx ok. 408, 429 and 5xx are the OTLP spec's retryable answers. 401, 403 and 404 are a wrong
 * token or URL: no record is at fault, so they are retried (and said loudly) rather than
 * dead-lettering every record while the setting is wrong. Other 4xx refuse the content.
 */
export function classifyStatus(status: number): StatusClass {
  if (status >= 200 && status <= 299) return 'ok';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  if (status === 401 || status === 403 || status === 404 || status === 407) return 'config';
  return 'refused';
}

/** A Retry-After header in ms (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  maxRetryAfterMs: number;
  /** Once aborted, a failed attempt is not retried (the outcome is `aborted`) and a wait ends: a request in progress still gets its answer. */
  stopRetrying?: AbortSignal;
  /** Said before each wait: why, and how long. */
  onRetry?: (info: { attempt: number; status: number | undefined; reason: string; waitMs: number; config: boolean }) => void;
}

function printable(body: Buffer): string {
  return body.toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 300);
}

/** Sleeps ms, or less when the signal aborts. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function postWithRetry(body: Uint8Array, o: PostOptions, signal: AbortSignal): Promise<PostOutcome> {
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) return { kind: 'aborted', attempts: attempt - 1 };
    let status: number | undefined;
    let reason: string;
    let hinted: number | undefined;
    try {
      const res = await fetch(o.url, {
        method: 'POST',
        body,
        headers: { ...o.headers, 'Content-Type': 'application/x-protobuf' },
        signal: AbortSignal.any([signal, AbortSignal.timeout(o.timeoutMs)]),
      });
      const answer = Buffer.from(await res.arrayBuffer());
      status = res.status;
      const cls = classifyStatus(res.status);
      if (cls === 'ok') {
        return { kind: 'ok', rejected: (res.headers.get('content-type') ?? '').includes('protobuf') ? rejectedOf(answer) : 0, attempts: attempt };
      }
      if (cls === 'refused') return { kind: 'refused', status: res.status, detail: printable(answer), attempts: attempt };
      reason = `answered ${res.status}${answer.length ? `: ${printable(answer).slice(0, 120)}` : ''}`;
      hinted = retryAfterMs(res.headers.get('retry-after'));
    } catch (err) {
      if (signal.aborted) return { kind: 'aborted', attempts: attempt };
      reason = `could not be reached: ${errorMessage(err)}`;
    }
    // Jitter (in backoffMs) keeps several exporters from retrying in step; a Retry-After is honoured as given.
    const waitMs = hinted !== undefined ? Math.min(hinted, o.maxRetryAfterMs) : backoffMs(attempt - 1, { minMs: o.retryMinMs, maxMs: o.retryMaxMs });
    if (o.stopRetrying?.aborted) return { kind: 'aborted', attempts: attempt };
    o.onRetry?.({ attempt, status, reason, waitMs, config: status !== undefined && classifyStatus(status) === 'config' });
    await wait(waitMs, o.stopRetrying ? AbortSignal.any([signal, o.stopRetrying]) : signal);
    if (o.stopRetrying?.aborted) return { kind: 'aborted', attempts: attempt };
  }
}
