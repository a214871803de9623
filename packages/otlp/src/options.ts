import { OptionsError } from '@agenttrace/common';
import type { PublisherOptions } from '@agenttrace/tracer';

export interface ModelPrice {
  inputPerMillion: number;
  outputPerMillion: number;
}

export interface ReceiverOptions {
  /** Address to listen on (default 127.0.0.1). Anything beyond loopback requires `token`. */
  host?: string;
  /** Port (default 4318, the OTLP/HTTP port; 0 picks a free one). */
  port?: number;
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
