import type { RejectReason } from '@agenttrace/contract';

/** Header names on dead-letter records. */
export const DLQ_HEADER_REASON = 'agenttrace-dlq-reason';
export const DLQ_HEADER_DETAIL = 'agenttrace-dlq-detail';
export const DLQ_HEADER_TOPIC = 'agenttrace-dlq-source-topic';
export const DLQ_HEADER_PARTITION = 'agenttrace-dlq-source-partition';
export const DLQ_HEADER_OFFSET = 'agenttrace-dlq-source-offset';
export const DLQ_HEADER_CONSUMER = 'agenttrace-dlq-consumer';

/** Headers saying why a record was dead-lettered and where it came from. */
export function dlqHeaders(info: {
  reason: RejectReason | string;
  detail: string;
  topic: string;
  partition: number;
  offset: number;
  consumer: string;
}): Array<Record<string, string>> {
  return [
    { [DLQ_HEADER_REASON]: info.reason },
    { [DLQ_HEADER_DETAIL]: info.detail.slice(0, 1000) },
    { [DLQ_HEADER_TOPIC]: info.topic },
    { [DLQ_HEADER_PARTITION]: String(info.partition) },
    { [DLQ_HEADER_OFFSET]: String(info.offset) },
    { [DLQ_HEADER_CONSUMER]: info.consumer },
  ];
}

/** Header a truncated dead-letter copy carries: the byte length of the original value. */
export const DLQ_HEADER_TRUNCATED_FROM = 'agenttrace-dlq-truncated-from';

/** A record too large for the dead-letter topic is kept to this many bytes of its value. */
export const DLQ_TRUNCATE_BYTES = 64 * 1024;
