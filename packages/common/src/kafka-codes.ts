import type { KafkaConsumer } from '@confluentinc/kafka-javascript';

/**
 * The librdkafka error codes the project reacts to, named once. Negative codes are the client's
 * own (local) errors, positive ones are Kafka protocol errors as the broker returned them. Values
 * are those of the binding's `CODES.ERRORS`, copied so that reading them does not load the native
 * addon (the tracer's offload worker imports this package in a worker thread).
 */
export const KAFKA_CODES = {
  /** rebalance_cb: partitions are being assigned. */
  ASSIGN_PARTITIONS: -175,
  /** rebalance_cb: partitions are being revoked. */
  REVOKE_PARTITIONS: -174,
  /** produce(): the client's local queue (queue.buffering.max.messages/kbytes) is full. */
  QUEUE_FULL: -184,
  /** A request or connect ran out of time. */
  TIMED_OUT: -185,
  /** A record was not acknowledged within message.timeout.ms. */
  MSG_TIMED_OUT: -192,
  /** A broker's host name could not be resolved. */
  RESOLVE: -193,
  /** A transactional producer was fenced by a newer instance (local and broker codes). */
  FENCED: -144,
  PRODUCER_FENCED: 90,
  /** The record is larger than the producer's message.max.bytes (thrown by produce) or the topic's max.message.bytes (delivery report). */
  MSG_SIZE_TOO_LARGE: 10,
  /** CreateTopics: the topic exists already. */
  TOPIC_ALREADY_EXISTS: 36,
} as const;

/** The librdkafka code of an error, or of its cause when the project wrapped it (kafkaError keeps the client's error as `cause`). */
function codeOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null | undefined;
  if (typeof e?.code === 'number') return e.code;
  return typeof e?.cause?.code === 'number' ? e.cause.code : undefined;
}

function messageOf(err: unknown): string {
  return String((err as Error | null | undefined)?.message ?? '');
}

/** The client's local queue is full: wait for deliveries, then produce again. */
export function isQueueFull(err: unknown): boolean {
  return codeOf(err) === KAFKA_CODES.QUEUE_FULL || /queue full/i.test(messageOf(err));
}

/**
 * The record is too large: refused by produce() itself or in its delivery report by the broker.
 * Older versions of this check also took -193 for it; that is ERR__RESOLVE (a host name that
 * does not resolve), which says nothing about the record, so it is not counted here.
 */
export function isTooLarge(err: unknown): boolean {
  return codeOf(err) === KAFKA_CODES.MSG_SIZE_TOO_LARGE || /too large|MSG_SIZE_TOO_LARGE/i.test(messageOf(err));
}

/** CreateTopics refused because the topic exists (the code may sit on the error or its cause). */
export function isTopicAlreadyExists(err: unknown): boolean {
  return codeOf(err) === KAFKA_CODES.TOPIC_ALREADY_EXISTS || /already exists/i.test(messageOf(err));
}

/**
 * Makes consume(n) wait for the first record only and then take what is already fetched.
 * Otherwise each record restarts the wait and a steady trickle keeps one call collecting for
 * minutes. The binding has the switch but leaves it out of its type declarations.
 */
export function setTimeoutOnlyForFirstMessage(consumer: KafkaConsumer, on = true): void {
  (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(on);
}
