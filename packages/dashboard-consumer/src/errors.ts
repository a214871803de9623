import { AgentTraceError } from '@agenttrace/common';

/**
 * Stable codes of the dashboard consumer's failures. Expected runtime trouble (Redis or Kafka
 * briefly gone, a webhook failing) is retried and reported through `onLog`; these errors reach
 * the caller only from `start()` or as the reason the service stopped.
 */
export type DashboardErrorCode =
  | 'REDIS_UNAVAILABLE' // Redis could not be reached within startTimeoutMs
  | 'KAFKA_UNAVAILABLE' // the consumer or producer could not connect
  | 'ALREADY_STARTED' // start() called twice
  | 'CLOSED' // start() after close()
  | 'METRICS_PORT_IN_USE' // the metrics HTTP server could not listen
  | 'DLQ_FAILED' // a dead-letter record could not be produced (retried until close)
  | 'REDIS_SCRIPT_FAILED' // Redis rejected the apply script (not a connection problem)
  | 'POSITIONS_MISMATCH'; // the offsets in Redis belong to another cluster or topic id (see resetPositions)

export class DashboardError extends AgentTraceError {
  override readonly code: DashboardErrorCode;

  constructor(code: DashboardErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}
