import { AgentTraceError } from '@agenttrace/common';

/**
 * Stable codes of the tracer's own failures. They reach the agent through `onError` (and a
 * rejected `flush()`/`close()` for delivery failures), never as an exception from a tracked call.
 */
export type TracerErrorCode =
  | 'DELIVERY_FAILED' // Kafka did not acknowledge the event within deliveryTimeoutMs
  | 'BUFFER_FULL' // the bounded in-memory buffer was full; the event was dropped
  | 'OFFLOAD_FAILED' // an oversized field could not be uploaded to S3; the event was sent marked
  | 'OFFLOAD_TIMEOUT' // an upload to S3 did not finish within offloadTimeoutMs (or S3's own timeout); the event was sent marked
  | 'SERIALIZE_FAILED' // the event could not be turned into JSON even after sanitizing
  | 'FLUSH_TIMEOUT' // flush()/close() gave up waiting
  | 'TRACER_CLOSED' // an event was recorded after close()
  | 'TOPIC_SETUP_FAILED' // the topic could not be checked or created
  | 'PRODUCER_ERROR'; // librdkafka reported an error (e.g. broker connection)

export class TracerError extends AgentTraceError {
  override readonly code: TracerErrorCode;
  /** Ids of the events concerned, when known. */
  readonly eventIds: string[];

  constructor(code: TracerErrorCode, message: string, options: { cause?: unknown; retryable?: boolean; eventIds?: string[] } = {}) {
    super(code, message, options);
    this.code = code;
    this.eventIds = options.eventIds ?? [];
  }
}
