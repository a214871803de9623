import { DEFAULT_DLQ_TOPIC, DEFAULT_MAX_RECORD_BYTES, DEFAULT_TOPIC } from '@agenttrace/contract';
import { OptionsError, errorMessage, validateKafkaConnection, type KafkaConnectionOptions, type S3Options } from '@agenttrace/common';
import type { PublisherOptions } from '@agenttrace/tracer';
import { traceEndpoint } from './export.js';

export interface ModelPrice {
  inputPerMillion: number;
  outputPerMillion: number;
}

export interface ReceiverOptions {
  /** Address to listen on (default 127.0.0.1). Anything beyond loopback requires `token`. */
  host?: string;
  /** Port (default 4318, the OTLP/HTTP port; 0 picks a free one). */
  port?: number;
  /** Port of OTLP/gRPC on the same host (4317 is the standard one; 0 picks a free one); default: no gRPC. */
  grpcPort?: number;
  /** Bearer token clients must send (`Authorization: Bearer ...`); default AGENTTRACE_OTLP_TOKEN. */
  token?: string;
  /** Largest request body accepted, compressed and decompressed, in bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /** Largest number of spans in one request (default 50000). */
  maxSpansPerRequest?: number;
  /** Span ids remembered in memory to answer retried exports without producing twice (default 1,000,000). */
  dedupeWindow?: number;
  /**
   * Remember acknowledged span ids in Redis instead of memory: retries are then recognised across
   * receiver restarts and by every receiver sharing the Redis. Keys `<prefix>otlp:span:<event id>`.
   */
  dedupeRedis?: { url: string; prefix?: string; ttlSeconds?: number };
  /** Sessions whose next seq is remembered (default 200,000). */
  maxTrackedSessions?: number;
  /** Agent id for steps that name none and have no agent ancestor (default: resource service.name, else this; `otel`). */
  defaultAgentId?: string;
  /** Prices per million tokens by model, for llm_call events that carry tokens but no cost. */
  pricing?: Record<string, ModelPrice>;
  /** Seconds a client is told to wait when Kafka is unavailable (Retry-After, default 5). */
  retryAfterSeconds?: number;
  /** How events are produced: Kafka, topic, S3 offload, redaction (the tracer's options). */
  publisher?: PublisherOptions;
}

export interface ResolvedReceiverOptions {
  host: string;
  port: number;
  grpcPort: number | undefined;
  token: string | undefined;
  maxBodyBytes: number;
  maxSpansPerRequest: number;
  dedupeWindow: number;
  dedupeRedis: { url: string; prefix: string; ttlSeconds: number } | undefined;
  maxTrackedSessions: number;
  defaultAgentId: string;
  pricing: Record<string, ModelPrice>;
  retryAfterSeconds: number;
  publisher: PublisherOptions;
}

export const RECEIVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 4318,
  maxBodyBytes: 16 * 1024 * 1024,
  maxSpansPerRequest: 50_000,
  dedupeWindow: 1_000_000,
  maxTrackedSessions: 200_000,
  defaultAgentId: 'otel',
  retryAfterSeconds: 5,
  /** OTel exporters give up after 10 s by default: answer before that. */
  deliveryTimeoutMs: 8_000,
} as const;

function int(name: string, value: unknown, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionsError(`options.${name}`, `must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function resolveReceiverOptions(options: ReceiverOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedReceiverOptions {
  if (typeof options !== 'object' || options === null) throw new OptionsError('options', 'must be an object');
  const host = options.host ?? RECEIVER_DEFAULTS.host;
  if (typeof host !== 'string' || host.length === 0) throw new OptionsError('options.host', `must be a non-empty string, got ${JSON.stringify(host)}`);
  const token = options.token ?? (env.AGENTTRACE_OTLP_TOKEN || undefined);
  if (token !== undefined && (typeof token !== 'string' || token.length < 16 || /\s/.test(token))) {
    throw new OptionsError('options.token', 'must be at least 16 characters without spaces');
  }
  if (!isLoopback(host) && token === undefined) {
    throw new OptionsError('options.host', `is ${JSON.stringify(host)}, beyond loopback: a token is required (options.token, --token or AGENTTRACE_OTLP_TOKEN)`);
  }
  const defaultAgentId = options.defaultAgentId ?? RECEIVER_DEFAULTS.defaultAgentId;
  if (typeof defaultAgentId !== 'string' || defaultAgentId.length === 0 || defaultAgentId.length > 256) {
    throw new OptionsError('options.defaultAgentId', 'must be a non-empty string of at most 256 characters');
  }
  const pricing = options.pricing ?? {};
  for (const [model, p] of Object.entries(pricing)) {
    const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (typeof p !== 'object' || p === null || !ok(p.inputPerMillion) || !ok(p.outputPerMillion)) {
      throw new OptionsError(`options.pricing[${JSON.stringify(model)}]`, 'must be { inputPerMillion, outputPerMillion } with non-negative numbers');
    }
  }
  let dedupeRedis: ResolvedReceiverOptions['dedupeRedis'];
  if (options.dedupeRedis !== undefined) {
    const d = options.dedupeRedis;
    if (typeof d !== 'object' || d === null || typeof d.url !== 'string' || !/^rediss?:\/\//.test(d.url)) {
      throw new OptionsError('options.dedupeRedis.url', 'must be a redis:// or rediss:// URL');
    }
    dedupeRedis = { url: d.url, prefix: d.prefix ?? 'agenttrace:', ttlSeconds: int('dedupeRedis.ttlSeconds', d.ttlSeconds, 24 * 3600, 60) };
  }
  return {
    host,
    dedupeRedis,
    port: int('port', options.port, RECEIVER_DEFAULTS.port, 0, 65535),
    grpcPort: options.grpcPort === undefined ? undefined : int('grpcPort', options.grpcPort, 0, 0, 65535),
    token,
    maxBodyBytes: int('maxBodyBytes', options.maxBodyBytes, RECEIVER_DEFAULTS.maxBodyBytes, 1024),
    maxSpansPerRequest: int('maxSpansPerRequest', options.maxSpansPerRequest, RECEIVER_DEFAULTS.maxSpansPerRequest, 1),
    dedupeWindow: int('dedupeWindow', options.dedupeWindow, RECEIVER_DEFAULTS.dedupeWindow, 0),
    maxTrackedSessions: int('maxTrackedSessions', options.maxTrackedSessions, RECEIVER_DEFAULTS.maxTrackedSessions, 1),
    defaultAgentId,
    pricing,
    retryAfterSeconds: int('retryAfterSeconds', options.retryAfterSeconds, RECEIVER_DEFAULTS.retryAfterSeconds, 1, 3600),
    publisher: { deliveryTimeoutMs: RECEIVER_DEFAULTS.deliveryTimeoutMs, ...(options.publisher ?? {}), kafka: { clientId: 'agenttrace-otlp', ...(options.publisher?.kafka ?? {}) } },
  };
}

// ---------------------------------------------------------------------------------------------
// The continuous exporter (`agenttrace-otlp forward`).

export interface ForwarderOptions {
  /** The backend's OTLP/HTTP endpoint: a base URL (`/v1/traces` is appended) or the full trace URL. Required. */
  endpoint: string;
  /** Request headers (authorization, tenant); never printed. */
  headers?: Record<string, string>;
  /** resource service.name of the spans (default `agenttrace`). */
  serviceName?: string;
  /** The Kafka cluster to read. */
  kafka: KafkaConnectionOptions;
  /** Topic of agent events (default `agent-events`). */
  topic?: string;
  /** Consumer group: its committed offsets say what the backend already accepted (default `agenttrace-otlp-forward`). */
  group?: string;
  /** Where a group with no committed offset starts (default `earliest`). */
  startFrom?: 'earliest' | 'latest';
  /** Spans per OTLP request (default 512). */
  batchSize?: number;
  /** How long a partly filled request waits for more spans, in ms (default 200). */
  lingerMs?: number;
  /** Requests sent and not yet answered at once; when all are out, fetching stops (default 4). */
  maxInFlight?: number;
  /** Timeout of one request, in ms (default 10000). */
  requestTimeoutMs?: number;
  /** First retry delay after a failed request, in ms; doubles up to retryMaxMs (defaults 500 and 30000). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** The longest Retry-After honoured, in ms (default 300000); a longer one is cut to this. */
  maxRetryAfterMs?: number;
  /** Dead-letter topic for records that are not events or that the backend refuses (default `agent-events.dlq`); false: count and log them only. */
  dlqTopic?: string | false;
  /** Largest record accepted, in bytes (default the contract's limit). */
  maxRecordBytes?: number;
  /** How long close() lets requests in flight finish before abandoning them, in ms (default 15000). */
  drainTimeoutMs?: number;
  /** Kafka group session timeout, in ms (default 10000). */
  sessionTimeoutMs?: number;
  /**
   * S3 to fetch offloaded fields back from before sending (the references name bucket and key):
   * endpoint, region, credentials. Default: none, fields are sent as their `$offload` reference.
   */
  s3?: Pick<S3Options, 'endpoint' | 'region' | 'credentials' | 'timeoutMs'>;
  /** Log hook (default: none). */
  onLog?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;
}

export interface ResolvedForwarderOptions {
  endpoint: string;
  headers: Record<string, string>;
  serviceName: string;
  kafka: KafkaConnectionOptions;
  topic: string;
  group: string;
  startFrom: 'earliest' | 'latest';
  batchSize: number;
  lingerMs: number;
  maxInFlight: number;
  requestTimeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  maxRetryAfterMs: number;
  dlqTopic: string | false;
  maxRecordBytes: number;
  drainTimeoutMs: number;
  sessionTimeoutMs: number;
  s3: Pick<S3Options, 'endpoint' | 'region' | 'credentials' | 'timeoutMs'> | undefined;
  onLog: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;
}

export const FORWARDER_DEFAULTS = {
  serviceName: 'agenttrace',
  topic: DEFAULT_TOPIC,
  group: 'agenttrace-otlp-forward',
  startFrom: 'earliest',
  batchSize: 512,
  lingerMs: 200,
  maxInFlight: 4,
  requestTimeoutMs: 10_000,
  retryMinMs: 500,
  retryMaxMs: 30_000,
  maxRetryAfterMs: 300_000,
  dlqTopic: DEFAULT_DLQ_TOPIC,
  maxRecordBytes: DEFAULT_MAX_RECORD_BYTES,
  drainTimeoutMs: 15_000,
  sessionTimeoutMs: 10_000,
} as const;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function resolveForwarderOptions(options: ForwarderOptions): ResolvedForwarderOptions {
  if (typeof options !== 'object' || options === null) throw new OptionsError('options', 'must be an object');
  const d = FORWARDER_DEFAULTS;
  if (typeof options.endpoint !== 'string' || options.endpoint.length === 0) throw new OptionsError('options.endpoint', 'is required: the OTLP/HTTP endpoint of the backend');
  let endpoint: string;
  try {
    endpoint = traceEndpoint(options.endpoint);
  } catch (err) {
    throw new OptionsError('options.endpoint', errorMessage(err).replace(/^--endpoint /, ''));
  }
  const headers = options.headers ?? {};
  for (const [k, v] of Object.entries(headers)) {
    // The value is never echoed: it is usually a credential.
    if (!HEADER_NAME.test(k)) throw new OptionsError('options.headers', `has an invalid header name ${JSON.stringify(k.slice(0, 64))}`);
    if (typeof v !== 'string' || /[\r\n\0]/.test(v)) throw new OptionsError(`options.headers[${JSON.stringify(k)}]`, 'must be a string without line breaks');
  }
  const serviceName = options.serviceName ?? d.serviceName;
  if (typeof serviceName !== 'string' || serviceName.length === 0) throw new OptionsError('options.serviceName', 'must be a non-empty string');
  const str = (name: string, v: unknown, dflt: string): string => {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(v)) throw new OptionsError(`options.${name}`, `must be a Kafka name (letters, digits, . _ -), got ${JSON.stringify(v)}`);
    return v;
  };
  const startFrom = options.startFrom ?? d.startFrom;
  if (startFrom !== 'earliest' && startFrom !== 'latest') throw new OptionsError('options.startFrom', `must be "earliest" or "latest", got ${JSON.stringify(startFrom)}`);
  const dlqTopic = options.dlqTopic === false ? false : str('dlqTopic', options.dlqTopic, d.dlqTopic);
  if (options.onLog !== undefined && typeof options.onLog !== 'function') throw new OptionsError('options.onLog', 'must be a function');
  if (options.s3 !== undefined && (typeof options.s3 !== 'object' || options.s3 === null)) throw new OptionsError('options.s3', 'must be an object { endpoint?, region?, credentials? }');
  const retryMinMs = int('retryMinMs', options.retryMinMs, d.retryMinMs, 1, 600_000);
  const retryMaxMs = int('retryMaxMs', options.retryMaxMs, d.retryMaxMs, retryMinMs, 3_600_000);
  return {
    endpoint,
    headers: { ...headers },
    serviceName,
    kafka: validateKafkaConnection({ clientId: 'agenttrace-otlp-forward', ...options.kafka }, 'options.kafka'),
    topic: str('topic', options.topic, d.topic),
    group: str('group', options.group, d.group),
    startFrom,
    batchSize: int('batchSize', options.batchSize, d.batchSize, 1, 100_000),
    lingerMs: int('lingerMs', options.lingerMs, d.lingerMs, 0, 60_000),
    maxInFlight: int('maxInFlight', options.maxInFlight, d.maxInFlight, 1, 256),
    requestTimeoutMs: int('requestTimeoutMs', options.requestTimeoutMs, d.requestTimeoutMs, 100, 600_000),
    retryMinMs,
    retryMaxMs,
    maxRetryAfterMs: int('maxRetryAfterMs', options.maxRetryAfterMs, d.maxRetryAfterMs, 0, 3_600_000),
    dlqTopic,
    maxRecordBytes: int('maxRecordBytes', options.maxRecordBytes, d.maxRecordBytes, 1024),
    drainTimeoutMs: int('drainTimeoutMs', options.drainTimeoutMs, d.drainTimeoutMs, 0, 600_000),
    sessionTimeoutMs: int('sessionTimeoutMs', options.sessionTimeoutMs, d.sessionTimeoutMs, 6_000, 300_000),
    s3: options.s3,
    onLog: options.onLog ?? (() => undefined),
  };
}
