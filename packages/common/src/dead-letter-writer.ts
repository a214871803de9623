import type { MessageHeader } from '@confluentinc/kafka-javascript';
import { DLQ_HEADER_TRUNCATED_FROM, DLQ_TRUNCATE_BYTES, dlqHeaders } from './dlq.js';
import { OptionsError, errorMessage } from './errors.js';
import { isTooLarge } from './kafka-codes.js';
import { retry, type BackoffOptions } from './retry.js';

/** The prefix of every header the dead-letter writer sets; a source record's own are dropped. */
export const DLQ_HEADER_PREFIX = 'agenttrace-dlq-';

/** A record that could not be processed, as it was read. */
export interface DeadLetterSource {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | string | null | undefined;
  value: Buffer | null | undefined;
  /** The source record's timestamp (ms), kept on the dead-letter copy; default now. */
  timestamp?: number;
  headers?: MessageHeader[];
}

/** One record handed to `send`. */
export interface DeadLetterRecord {
  topic: string;
  key: Buffer | string | null;
  value: Buffer | null;
  headers: MessageHeader[];
  timestamp: number | undefined;
}

export interface DeadLetterWriterOptions {
  /** The dead-letter topic. */
  topic: string;
  /** Who dead-letters (the consumer group), written to the provenance headers. */
  consumer: string;
  /** Produces one record and resolves when the broker acknowledged it; rejects with the client's error. */
  send: (record: DeadLetterRecord) => Promise<void>;
  /** Backoff between attempts while the DLQ fails for other reasons than size. */
  backoff: BackoffOptions;
  /**
   * Give up on a record that has failed (for other reasons than size) for this long, ms; 0 never
   * gives up on those (the caller's signal still ends the attempts).
   */
  giveUpAfterMs: number;
  /** The head of a value the DLQ topic refuses is kept to this many bytes; default DLQ_TRUNCATE_BYTES (64 KiB). */
  truncateBytes?: number;
  /** Told of each failed attempt that will be retried. */
  onRetry?: (err: Error, attempt: number) => void;
}

/** What became of one record. */
export type DeadLetterOutcome =
  | {
      status: 'sent';
      /** Bytes of the value the DLQ holds, and of the original: they differ when it was truncated. */
      keptBytes: number;
      originalBytes: number;
      truncated: boolean;
    }
  /** Not in the DLQ, by the give-up rule: the caller skips the record and says so. */
  | { status: 'given-up'; why: string; error: unknown }
  /** The caller's signal ended the attempts: nothing settled, the record must be read again. */
  | { status: 'aborted'; error: unknown };

/**
 * The next, smaller value length to try after the DLQ refused a record as too large: first the
 * head of the value (`truncateBytes`), then no value at all (the headers still name the source
 * partition, offset, reason and original size). `current` undefined means the whole value was
 * tried. Returns undefined when nothing smaller is left.
 */
export function nextDlqValueLength(originalLength: number, current: number | undefined, truncateBytes = DLQ_TRUNCATE_BYTES): number | undefined {
  if (current === undefined) {
    if (originalLength > truncateBytes) return truncateBytes;
    return originalLength > 0 ? 0 : undefined;
  }
  return current > 0 ? 0 : undefined;
}

/** A record's headers without any that pose as dead-letter headers (only the writer's are the truth). */
export function stripDlqHeaders(headers: MessageHeader[] | undefined): MessageHeader[] {
  const out: MessageHeader[] = [];
  for (const h of headers ?? []) {
    const kept = Object.entries(h).filter(([k]) => !k.toLowerCase().startsWith(DLQ_HEADER_PREFIX));
    if (kept.length > 0) out.push(Object.fromEntries(kept) as MessageHeader);
  }
  return out;
}

/**
 * Writes records that cannot be processed to the dead-letter topic, the same way for every
 * service:
 * - the source record's headers travel along minus any `agenttrace-dlq-*` header, then the
 *   provenance headers (reason, detail, source topic/partition/offset, consumer) are added;
 * - a value the DLQ refuses as too large is stepped down: whole, then its first `truncateBytes`
 *   (only when longer), then empty, the last two with `agenttrace-dlq-truncated-from`;
 * - the give-up rule: a record refused as too large even with an empty value, or failing for
 *   other reasons for `giveUpAfterMs`, is given up (status 'given-up'), never retried forever.
 *   Other failures are retried with jittered backoff until then, or until the signal aborts.
 */
export class DeadLetterWriter {
  readonly #o: DeadLetterWriterOptions & { truncateBytes: number };

  constructor(options: DeadLetterWriterOptions) {
    if (!options.topic) throw new OptionsError('options.topic', 'must name the dead-letter topic');
    if (!(options.giveUpAfterMs >= 0)) throw new OptionsError('options.giveUpAfterMs', `must be a number of ms >= 0, got ${String(options.giveUpAfterMs)}`);
    const truncateBytes = options.truncateBytes ?? DLQ_TRUNCATE_BYTES;
    if (!Number.isInteger(truncateBytes) || truncateBytes < 1) throw new OptionsError('options.truncateBytes', `must be an integer >= 1, got ${String(truncateBytes)}`);
    this.#o = { ...options, truncateBytes };
  }

  get topic(): string {
    return this.#o.topic;
  }

  /** The headers of the dead-letter copy of `source` (before any truncation). */
  headersFor(source: DeadLetterSource, reason: string, detail: string): MessageHeader[] {
    return [
      ...stripDlqHeaders(source.headers),
      ...dlqHeaders({ reason, detail, topic: source.topic, partition: source.partition, offset: source.offset, consumer: this.#o.consumer }),
    ];
  }

  /** Dead-letters one record: resolves with what became of it; rejects only on a bug (an error no rule covers). */
  async write(source: DeadLetterSource, reason: string, detail: string, signal?: AbortSignal): Promise<DeadLetterOutcome> {
    const o = this.#o;
    const base = this.headersFor(source, reason, detail);
    const whole = source.value ?? null;
    const original = whole?.byteLength ?? 0;
    let length: number | undefined;
    let firstFailureAt: number | undefined;
    let lastError: unknown;
    const expired = () => o.giveUpAfterMs > 0 && firstFailureAt !== undefined && Date.now() - firstFailureAt >= o.giveUpAfterMs;
    try {
      return await retry<DeadLetterOutcome>(
        async () => {
          for (;;) {
            const value = length === undefined || whole === null ? whole : whole.subarray(0, length);
            const headers = length === undefined ? base : [...base, { [DLQ_HEADER_TRUNCATED_FROM]: String(original) }];
            try {
              await o.send({ topic: o.topic, key: source.key ?? null, value, headers, timestamp: source.timestamp });
              return { status: 'sent', keptBytes: value?.byteLength ?? 0, originalBytes: original, truncated: length !== undefined };
            } catch (err) {
              if (isTooLarge(err)) {
                const next = nextDlqValueLength(original, length, o.truncateBytes);
                if (next === undefined) return { status: 'given-up', why: `the dead-letter topic refuses it as too large even without its value: ${errorMessage(err)}`, error: err };
                length = next;
                continue;
              }
              firstFailureAt ??= Date.now();
              lastError = err;
              throw err instanceof Error ? err : new Error(errorMessage(err));
            }
          }
        },
        {
          retries: Infinity,
          ...o.backoff,
          signal,
          shouldRetry: () => !expired(),
          onFailedAttempt: (err, attempt) => {
            if (!expired() && !signal?.aborted) o.onRetry?.(err, attempt);
          },
        },
      );
    } catch (err) {
      if (signal?.aborted) return { status: 'aborted', error: lastError ?? err };
      if (expired()) return { status: 'given-up', why: `still failing after ${Date.now() - firstFailureAt!} ms: ${errorMessage(lastError)}`, error: lastError };
      throw err;
    }
  }
}
