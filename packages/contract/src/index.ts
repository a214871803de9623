export {
  SCHEMA_VERSION,
  DEFAULT_TOPIC,
  DEFAULT_DLQ_TOPIC,
  DEFAULT_ALERTS_TOPIC,
  EVENT_TYPES,
  EVENT_STATUSES,
  isOffloadRef,
} from './event.js';
export type {
  AgentEvent,
  EventType,
  EventStatus,
  EventPayload,
  EventContext,
  OffloadInfo,
  OffloadRef,
  RecordedError,
} from './event.js';
export { HEADER_SCHEMA_VERSION, HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON, eventHeaders } from './headers.js';
export { murmur2, partitionForKey } from './murmur2.js';
export { newEventId, eventIdTime } from './event-id.js';
export {
  agentEventSchema,
  validateEvent,
  parseEvent,
  nestingDepth,
  DEFAULT_MAX_RECORD_BYTES,
  DEFAULT_MAX_DEPTH,
} from './validate.js';
export type { ParseResult, ParseOptions, RejectReason } from './validate.js';
export { DEFAULT_PRICES, priceOf, costOf, parsePriceTable, loadPriceTable } from './prices.js';
export type { PriceTable, ModelPrice } from './prices.js';
