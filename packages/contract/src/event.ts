/** Version of the event contract this package describes. */
export const SCHEMA_VERSION = 1 as const;

/** Default topic agent events are produced to. */
export const DEFAULT_TOPIC = 'agent-events';

/** Default dead-letter topic for records that are not valid agent events. */
export const DEFAULT_DLQ_TOPIC = 'agent-events.dlq';

/** Default topic alerts are produced to. */
export const DEFAULT_ALERTS_TOPIC = 'agent-alerts';

export const EVENT_TYPES = [
  'session_start',
  'session_end',
  'tool_call',
  'llm_call',
  'decision',
  'delegation',
  'error',
  'custom',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export const EVENT_STATUSES = ['ok', 'error'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

/** An error as recorded in an event: enough to read it later, never the live object. */
export interface RecordedError {
  name?: string;
  message: string;
  stack?: string;
  code?: string | number;
}

/** What a step did. Typed fields are the ones readers filter and aggregate on. */
export interface EventPayload {
  tool?: string;
  input?: unknown;
  output?: unknown;
  latency_ms?: number;
  model?: string;
  input_tokens?: number;
  output_tokens?: number;
  cost_usd?: number;
  action?: string;
  subagent_id?: string;
  task?: unknown;
  name?: string;
  error?: RecordedError;
  [field: string]: unknown;
}

/** Why a step happened. */
export interface EventContext {
  parent_event_id?: string;
  reasoning?: unknown;
  model?: string;
  confidence?: number;
  [field: string]: unknown;
}

/** Fields replaced by S3 references (or kept inline because the upload failed). */
export interface OffloadInfo {
  /** Dotted paths of the replaced fields, e.g. `payload.input`. */
  fields: string[];
  /**
   * Set when an upload failed or timed out: the fields not uploaded stayed inline, or, over
   * Kafka's record limit, were replaced by a `$truncated` placeholder (not stored anywhere); this
   * says why.
   */
  failed?: string;
  /** Set by readers (restoreOffloads), never by the tracer: the fields fetched back from S3. */
  restored?: string[];
}

/** A reference to a value stored in S3: the object's bytes are the value's JSON text in UTF-8. */
export interface OffloadRef {
  $offload: {
    bucket: string;
    key: string;
    size: number;
    sha256: string;
    content_type?: string;
  };
}

export interface AgentEvent {
  schema_version: typeof SCHEMA_VERSION;
  event_id: string;
  session_id: string;
  agent_id: string;
  emitter_id: string;
  seq: number;
  timestamp: string;
  event_type: EventType;
  status: EventStatus;
  payload: EventPayload;
  context: EventContext;
  offload?: OffloadInfo;
}

export function isOffloadRef(value: unknown): value is OffloadRef {
  if (typeof value !== 'object' || value === null) return false;
  const ref = (value as { $offload?: unknown }).$offload;
  return typeof ref === 'object' && ref !== null && typeof (ref as { key?: unknown }).key === 'string';
}
