import { DEFAULT_TOPIC, type PriceTable } from '@agenttrace/contract';
import {
  OptionsError,
  resolvePrices,
  kafkaConnectionFromEnv,
  s3OptionsFromEnv,
  validateKafkaConnection,
  type KafkaConnectionOptions,
  type S3Options,
} from '@agenttrace/common';
import type { TracerError } from './errors.js';
import type { RedactOptions } from './redact.js';

export interface TracerOptions {
  /** The agent session; every event of the session goes to Kafka with this key. */
  sessionId: string;
  /** The agent doing the work (sub-agents get their own id through `delegate`). */
  agentId: string;
  /** Kafka connection; defaults from AGENTTRACE_BROKERS / AGENTTRACE_KAFKA_*. */
  kafka?: Partial<KafkaConnectionOptions>;
  /** Topic to produce to (default `agent-events`, or AGENTTRACE_TOPIC). */
  topic?: string;
  /** Create the topic when missing (default true). */
  ensureTopic?: boolean;
  /** Partitions when the topic is created (default 20). */
  topicPartitions?: number;
  /** Retention when the topic is created, ms (default 7 days). */
  topicRetentionMs?: number;
  /** S3 for oversized fields; defaults from AGENTTRACE_S3_*. Without it, oversized fields stay inline, marked. */
  s3?: Partial<S3Options>;
  /** Events larger than this many bytes have their biggest fields offloaded to S3 (default 10240). */
  maxEventBytes?: number;
  /** Hard limit for an event sent inline when offload is impossible (default 900 KiB, below Kafka's 1 MiB). */
  maxRecordBytes?: number;
  /** A delivery not acknowledged within this many ms is reported as failed (default 60000). */
  deliveryTimeoutMs?: number;
  /**
   * Bound on the S3 uploads of one oversized event, ms (default 10000). The session's later events
   * wait behind it at most this long; past it the upload is aborted and the event is sent marked
   * (fields inline, or a `$truncated` placeholder that says the value was not stored) and reported
   * (OFFLOAD_TIMEOUT). After a timeout S3 is not tried again for this long.
   */
  offloadTimeoutMs?: number;
  /** Most events this tracer holds before handing them to the producer; beyond it events are dropped and reported (default 10000). */
  maxQueuedEvents?: number;
  /** Redaction applied before anything leaves the process; `false` turns it off. */
  redact?: RedactOptions | false;
  /** Receives the tracer's own failures. Default: one line on stderr per failure kind and minute. */
  onError?: (error: TracerError) => void;
  /** Emit session_start at construction and session_end at close() (default true). */
  sessionEvents?: boolean;
  /** Flush on SIGTERM/SIGINT and on normal exit (default true). */
  handleExit?: boolean;
  /** Time a shutdown flush may take before giving up, ms (default 10000). */
  shutdownTimeoutMs?: number;
  /** librdkafka producer properties to override (batching, compression, ...). */
  producer?: Record<string, string | number | boolean>;
  /**
   * Model prices for the cost of LLM calls whose usage gives none (default: the table shipped in
   * @agenttrace/contract, `DEFAULT_PRICES`); `false` records no cost unless the call gives one.
   */
  prices?: PriceTable | false;
}

export interface ResolvedTracerOptions {
  sessionId: string;
  agentId: string;
  kafka: KafkaConnectionOptions;
  topic: string;
  ensureTopic: boolean;
  topicPartitions: number;
  topicRetentionMs: number;
  s3: S3Options | undefined;
  maxEventBytes: number;
  maxRecordBytes: number;
  deliveryTimeoutMs: number;
  offloadTimeoutMs: number;
  maxQueuedEvents: number;
  redact: RedactOptions | false;
  onError: ((error: TracerError) => void) | undefined;
  sessionEvents: boolean;
  handleExit: boolean;
  shutdownTimeoutMs: number;
  producer: Record<string, string | number | boolean>;
  prices: PriceTable | false;
}

export const TRACER_DEFAULTS = {
  topic: DEFAULT_TOPIC,
  ensureTopic: true,
  topicPartitions: 20,
  topicRetentionMs: 7 * 24 * 3600 * 1000,
  maxEventBytes: 10 * 1024,
  maxRecordBytes: 900 * 1024,
  deliveryTimeoutMs: 60_000,
  offloadTimeoutMs: 10_000,
  maxQueuedEvents: 10_000,
  sessionEvents: true,
  handleExit: true,
  shutdownTimeoutMs: 10_000,
} as const;

function positiveInt(name: string, value: unknown, dflt: number, min = 1): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new OptionsError(`options.${name}`, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function idString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new OptionsError(`options.${name}`, `must be a non-empty string of at most 256 characters, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Validates options at construction; every message names the option. */
export function resolveTracerOptions(options: TracerOptions, env: NodeJS.ProcessEnv = process.env): ResolvedTracerOptions {
  if (typeof options !== 'object' || options === null) throw new OptionsError('options', 'must be an object');
  const sessionId = idString('sessionId', options.sessionId);
  const agentId = idString('agentId', options.agentId);
  const fromEnv = kafkaConnectionFromEnv(env);
  const kafka = validateKafkaConnection({ ...fromEnv, ...(options.kafka ?? {}), clientId: options.kafka?.clientId ?? 'agenttrace-tracer' }, 'options.kafka');
  const topic = options.topic ?? env.AGENTTRACE_TOPIC ?? TRACER_DEFAULTS.topic;
  if (typeof topic !== 'string' || !/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) {
    throw new OptionsError('options.topic', `must be a valid Kafka topic name, got ${JSON.stringify(topic)}`);
  }
  const s3env = s3OptionsFromEnv(env);
  const s3merged = { ...s3env, ...(options.s3 ?? {}) };
  let s3: S3Options | undefined;
  if (s3merged.bucket) s3 = s3merged as S3Options;
  else if (options.s3 !== undefined) throw new OptionsError('options.s3.bucket', 'is required when options.s3 is given (or set AGENTTRACE_S3_BUCKET)');
  const maxEventBytes = positiveInt('maxEventBytes', options.maxEventBytes, TRACER_DEFAULTS.maxEventBytes, 256);
  const maxRecordBytes = positiveInt('maxRecordBytes', options.maxRecordBytes, TRACER_DEFAULTS.maxRecordBytes, 1024);
  if (maxRecordBytes < maxEventBytes) throw new OptionsError('options.maxRecordBytes', `must be >= options.maxEventBytes (${maxEventBytes})`);
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new OptionsError('options.onError', 'must be a function');
  if (options.redact !== undefined && options.redact !== false && (typeof options.redact !== 'object' || options.redact === null)) {
    throw new OptionsError('options.redact', 'must be an object or false');
  }
  return {
    sessionId,
    agentId,
    kafka,
    topic,
    ensureTopic: options.ensureTopic ?? TRACER_DEFAULTS.ensureTopic,
    topicPartitions: positiveInt('topicPartitions', options.topicPartitions, TRACER_DEFAULTS.topicPartitions),
    topicRetentionMs: positiveInt('topicRetentionMs', options.topicRetentionMs, TRACER_DEFAULTS.topicRetentionMs),
    s3,
    maxEventBytes,
    maxRecordBytes,
    deliveryTimeoutMs: positiveInt('deliveryTimeoutMs', options.deliveryTimeoutMs, TRACER_DEFAULTS.deliveryTimeoutMs, 1000),
    offloadTimeoutMs: positiveInt('offloadTimeoutMs', options.offloadTimeoutMs, TRACER_DEFAULTS.offloadTimeoutMs, 100),
    maxQueuedEvents: positiveInt('maxQueuedEvents', options.maxQueuedEvents, TRACER_DEFAULTS.maxQueuedEvents),
    redact: options.redact ?? {},
    onError: options.onError,
    sessionEvents: options.sessionEvents ?? TRACER_DEFAULTS.sessionEvents,
    handleExit: options.handleExit ?? TRACER_DEFAULTS.handleExit,
    shutdownTimeoutMs: positiveInt('shutdownTimeoutMs', options.shutdownTimeoutMs, TRACER_DEFAULTS.shutdownTimeoutMs, 100),
    producer: options.producer ?? {},
    prices: resolvePrices(options.prices, 'options.prices'),
  };
}
