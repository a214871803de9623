import { DLQ_TRUNCATE_BYTES } from '@agenttrace/common';

/** librdkafka's local queue is full (-184): wait for deliveries, then produce again. */
export function isQueueFull(err: unknown): boolean {
  const code = (err as { code?: number } | undefined)?.code;
  return code === -184 || /queue full/i.test(String((err as Error | undefined)?.message));
}

/**
 * The next, smaller value length to try after the DLQ refused a record as too large: first the
 * head of the value (DLQ_TRUNCATE_BYTES), then no value at all (headers still name the source
 * partition, offset, reason and original size). `current` undefined means the whole value was
 * tried. Returns undefined when nothing smaller is left.
 */
export function nextDlqValueLength(originalLength: number, current: number | undefined): number | undefined {
  if (current === undefined) {
    if (originalLength > DLQ_TRUNCATE_BYTES) return DLQ_TRUNCATE_BYTES;
    return originalLength > 0 ? 0 : undefined;
  }
  return current > 0 ? 0 : undefined;
}
