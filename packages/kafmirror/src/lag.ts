/** Replication lag of one source partition. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** Source records not yet committed on the target. */
  records: number;
  /** Estimated age of the oldest of them, in ms (0 when caught up). */
  ms: number;
}

export interface LagSnapshot {
  time: number;
  partitions: PartitionLag[];
  totalRecords: number;
  maxMs: number;
  alerting: boolean;
}

/**
 * Age of the oldest record still waiting to be mirrored. It is not fetched (that would cost a
 * read per partition per sample); instead it is bounded: that record was produced after the last
 * record already mirrored (`lastMirroredTs`) and after the last moment the partition was seen
 * caught up (`caughtUpAt`). Using the later bound overestimates the true lag by at most one
 * sampling interval when a burst follows a quiet period. When neither bound is known (a backlog
 * never mirrored before), the caller reads the first waiting record's timestamp (`headTs`).
 */
export function timeLagMs(records: number, now: number, lastMirroredTs: number | undefined, caughtUpAt: number | undefined, headTs?: number): number {
  if (records <= 0) return 0;
  // The waiting record's own timestamp, when it was read, is the exact answer.
  if (headTs !== undefined) return Math.max(0, now - headTs);
  const bound = Math.max(lastMirroredTs ?? -Infinity, caughtUpAt ?? -Infinity);
  if (!Number.isFinite(bound)) return 0;
  return Math.max(0, now - bound);
}

export type AlarmTransition = 'alert' | 'recovered';

/** Raises once when the lag goes above the threshold and recovers once when it falls back. */
export class LagAlarm {
  readonly thresholdMs: number;
  #alerting = false;

  constructor(thresholdMs: number) {
    this.thresholdMs = thresholdMs;
  }

  get alerting(): boolean {
    return this.#alerting;
  }

  update(maxLagMs: number): AlarmTransition | undefined {
    if (!this.#alerting && maxLagMs > this.thresholdMs) {
      this.#alerting = true;
      return 'alert';
    }
    if (this.#alerting && maxLagMs <= this.thresholdMs) {
      this.#alerting = false;
      return 'recovered';
    }
    return undefined;
  }
}

/** Posts a JSON body; failures are returned, not thrown: an alert hook must never stop mirroring. */
export async function postWebhook(url: string, body: unknown, timeoutMs = 5_000): Promise<string | undefined> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message;
  }
}

/** Where a webhook goes, without a path or credentials that might hold a token. */
export function describeUrl(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}
