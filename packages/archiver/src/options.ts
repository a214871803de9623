import { DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC } from '@agenttrace/contract';
import {
  OptionsError,
  combineHooks,
  hookToLogger,
  kafkaConnectionFromEnv,
  validateLogger,
  type Logger,
  s3OptionsFromEnv,
  validateKafkaConnection,
  type KafkaConnectionOptions,
  type S3Options,
} from '@agenttrace/common';
import type { ParquetCompression } from '@agenttrace/archive-format';

// The codec is part of the archive format; the archiver's options name it too.
export type { ParquetCompression };

export interface ArchiverOptions {
  /** Kafka connection; defaults from AGENTTRACE_BROKERS / AGENTTRACE_KAFKA_*. */
  kafka?: Partial<KafkaConnectionOptions>;
  /** Topic to archive (default `agent-events`). */
  topic?: string;
  /** Consumer group; offsets are committed here only after an object is durably in S3 (default `archiver`). */
  groupId?: string;
  /**
   * Static group membership (`group.instance.id`): a restarted archiver with the same id gets its
   * partitions back at once instead of waiting for the broker to time the old member out.
   */
  instanceId?: string;
  /** Dead-letter topic for records that are not valid events (default `agent-events.dlq`). */
  dlqTopic?: string;
  /** Bucket, key prefix and endpoint; defaults from AGENTTRACE_S3_*. */
  s3?: Partial<S3Options>;
  /** Roll a file after this many rows (default 200000). */
  rollRows?: number;
  /** Roll a file once its records' raw JSON reaches this many bytes (default 128 MiB; files are ~10x smaller). */
  rollBytes?: number;
  /** Roll a file this many ms after its first record arrived, so a quiet topic is archived promptly (default 300000). */
  rollAgeMs?: number;
  /** Rows per Parquet row group (default 100000). */
  rowGroupRows?: number;
  /** Parquet compression codec (default snappy). */
  compression?: ParquetCompression;
  /** Files larger than this go up with a multipart upload (default 64 MiB). */
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads (default 16 MiB; S3 requires at least 5 MiB). */
  multipartPartBytes?: number;
  /** Encoded bytes waiting for upload above which consumption pauses (default 256 MiB). */
  maxPendingUploadBytes?: number;
  /** Raw bytes buffered across all open files above which the biggest is rolled early (default 512 MiB). */
  maxBufferedBytes?: number;
  /** First and longest retry delay of S3 and DLQ operations, ms (defaults 200 and 30000). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * How long one bad record may keep failing to reach the dead-letter topic before the archiver
   * gives up on it (logged as an error and counted in agenttrace_archiver_dlq_given_up_total) so
   * the partition moves on, ms (default 900000 = 15 min; 0 = retry forever). A record the topic
   * rejects as too large is truncated instead (see docs/archiver.md) and given up on only when even
   * an empty value is refused.
   */
  dlqGiveUpMs?: number;
  /**
   * How long start() keeps retrying transient Kafka failures (broker unreachable, topic creation
   * timed out) with backoff before it fails, ms (default 300000 = 5 min).
   */
  startTimeoutMs?: number;
  /**
   * Worker threads that validate and encode (a partition always goes to the same one, so its files
   * stay in offset order); 0 = do it on the main thread (default: 2).
   */
  encodeWorkers?: number;
  /** Records fetched per consume call (default 10000). */
  consumeBatch?: number;
  /** Time close() waits for uploads before giving up (their ranges are replayed on restart), ms (default 60000). */
  closeTimeoutMs?: number;
  /** Serve Prometheus metrics on this port (127.0.0.1 unless metricsHost is set); 0 = any free port; omitted = no server. */
  metricsPort?: number;
  metricsHost?: string;
  /** Receives progress lines (file uploaded, offsets committed, retries). Default: nothing. */
  log?: (level: 'info' | 'warn' | 'error' | 'debug', message: string, fields?: Record<string, unknown>) => void;
  /**
   * A pino-compatible logger (`logger.info(fields, msg)`, levels trace..fatal) receiving the same
   * lines as `log`; both may be given. Default: none.
   */
  logger?: Logger;
  /** librdkafka consumer properties to override. */
  consumer?: Record<string, string | number | boolean>;
}

export interface ResolvedArchiverOptions {
  kafka: KafkaConnectionOptions;
  topic: string;
  groupId: string;
  instanceId: string | undefined;
  dlqTopic: string;
  s3: S3Options;
  rollRows: number;
  rollBytes: number;
  rollAgeMs: number;
  rowGroupRows: number;
  compression: ParquetCompression;
  multipartThresholdBytes: number;
  multipartPartBytes: number;
  maxPendingUploadBytes: number;
  maxBufferedBytes: number;
  retryMinMs: number;
  retryMaxMs: number;
  dlqGiveUpMs: number;
  startTimeoutMs: number;
  encodeWorkers: number;
  consumeBatch: number;
  closeTimeoutMs: number;
  metricsPort: number | undefined;
  metricsHost: string;
  log: NonNullable<ArchiverOptions['log']>;
  consumer: Record<string, string | number | boolean>;
}

const MIB = 1024 * 1024;

export const ARCHIVER_DEFAULTS = {
  topic: DEFAULT_TOPIC,
  groupId: 'archiver',
  dlqTopic: DEFAULT_DLQ_TOPIC,
  bucket: 'agenttrace',
  prefix: '',
  rollRows: 200_000,
  rollBytes: 128 * MIB,
  rollAgeMs: 300_000,
  rowGroupRows: 100_000,
  compression: 'snappy' as ParquetCompression,
  multipartThresholdBytes: 64 * MIB,
  multipartPartBytes: 16 * MIB,
  maxPendingUploadBytes: 256 * MIB,
  maxBufferedBytes: 512 * MIB,
  retryMinMs: 200,
  retryMaxMs: 30_000,
  dlqGiveUpMs: 900_000,
  startTimeoutMs: 30_000,
  encodeWorkers: 2,
  consumeBatch: 10_000,
  closeTimeoutMs: 60_000,
  metricsHost: '127.0.0.1',
} as const;

function int(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionsError(`options.${name}`, `must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

function name(option: string, value: string | undefined, fallback: string): string {
  const v = value ?? fallback;
  if (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(v)) {
    throw new OptionsError(`options.${option}`, `must be a Kafka name (letters, digits, . _ -), got "${String(v)}"`);
  }
  return v;
}

/** Applies defaults (flag > env > default is done by the caller) and validates, naming the option. */
export function resolveArchiverOptions(options: ArchiverOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedArchiverOptions {
  const kafka = validateKafkaConnection({ ...kafkaConnectionFromEnv(env), ...(options.kafka ?? {}) }, 'options.kafka');
  const s3env = s3OptionsFromEnv(env);
  const s3: S3Options = { ...s3env, ...(options.s3 ?? {}), bucket: options.s3?.bucket ?? s3env.bucket ?? ARCHIVER_DEFAULTS.bucket } as S3Options;
  if (typeof s3.bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s3.bucket)) {
    throw new OptionsError('options.s3.bucket', `must be an S3 bucket name, got "${String(s3.bucket)}"`);
  }
  const prefix = s3.prefix ?? ARCHIVER_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//')) {
    throw new OptionsError('options.s3.prefix', `must be a key prefix without leading or trailing "/", got "${String(prefix)}"`);
  }
  s3.prefix = prefix;
  const topic = name('topic', options.topic ?? env.AGENTTRACE_TOPIC, ARCHIVER_DEFAULTS.topic);
  const dlqTopic = name('dlqTopic', options.dlqTopic, ARCHIVER_DEFAULTS.dlqTopic);
  if (dlqTopic === topic) throw new OptionsError('options.dlqTopic', 'must differ from options.topic');
  const groupId = options.groupId ?? ARCHIVER_DEFAULTS.groupId;
  if (typeof groupId !== 'string' || groupId.length === 0 || groupId.length > 255) {
    throw new OptionsError('options.groupId', `must be a non-empty string, got "${String(groupId)}"`);
  }
  if (options.instanceId !== undefined && (typeof options.instanceId !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(options.instanceId))) {
    throw new OptionsError('options.instanceId', `must be letters, digits, . _ - (e.g. the pod name), got "${String(options.instanceId)}"`);
  }
  const compression = options.compression ?? ARCHIVER_DEFAULTS.compression;
  if (!['snappy', 'gzip', 'none'].includes(compression)) {
    throw new OptionsError('options.compression', `must be one of snappy, gzip, none, got "${String(compression)}"`);
  }
  const multipartPartBytes = int('multipartPartBytes', options.multipartPartBytes, ARCHIVER_DEFAULTS.multipartPartBytes, 5 * MIB, 5 * 1024 * MIB);
  const multipartThresholdBytes = int('multipartThresholdBytes', options.multipartThresholdBytes, ARCHIVER_DEFAULTS.multipartThresholdBytes, 5 * MIB);
  const retryMinMs = int('retryMinMs', options.retryMinMs, ARCHIVER_DEFAULTS.retryMinMs, 1, 600_000);
  const retryMaxMs = int('retryMaxMs', options.retryMaxMs, ARCHIVER_DEFAULTS.retryMaxMs, 1, 3_600_000);
  if (retryMaxMs < retryMinMs) throw new OptionsError('options.retryMaxMs', `must be at least options.retryMinMs (${retryMinMs})`);
  if (options.metricsHost !== undefined && (typeof options.metricsHost !== 'string' || options.metricsHost.length === 0)) {
    throw new OptionsError('options.metricsHost', 'must be a host name or address');
  }
  if (options.log !== undefined && typeof options.log !== 'function') throw new OptionsError('options.log', 'must be a function');
  return {
    kafka,
    topic,
    groupId,
    instanceId: options.instanceId,
    dlqTopic,
    s3,
    rollRows: int('rollRows', options.rollRows, ARCHIVER_DEFAULTS.rollRows, 1, 10_000_000),
    rollBytes: int('rollBytes', options.rollBytes, ARCHIVER_DEFAULTS.rollBytes, 1024, 4 * 1024 * MIB),
    rollAgeMs: int('rollAgeMs', options.rollAgeMs, ARCHIVER_DEFAULTS.rollAgeMs, 100, 24 * 3_600_000),
    rowGroupRows: int('rowGroupRows', options.rowGroupRows, ARCHIVER_DEFAULTS.rowGroupRows, 100, 10_000_000),
    compression,
    multipartThresholdBytes,
    multipartPartBytes,
    maxPendingUploadBytes: int('maxPendingUploadBytes', options.maxPendingUploadBytes, ARCHIVER_DEFAULTS.maxPendingUploadBytes, 1),
    maxBufferedBytes: int('maxBufferedBytes', options.maxBufferedBytes, ARCHIVER_DEFAULTS.maxBufferedBytes, 1024),
    retryMinMs,
    retryMaxMs,
    dlqGiveUpMs: int('dlqGiveUpMs', options.dlqGiveUpMs, ARCHIVER_DEFAULTS.dlqGiveUpMs, 0, 7 * 24 * 3_600_000),
    startTimeoutMs: int('startTimeoutMs', options.startTimeoutMs, ARCHIVER_DEFAULTS.startTimeoutMs, 0, 24 * 3_600_000),
    encodeWorkers: int('encodeWorkers', options.encodeWorkers, ARCHIVER_DEFAULTS.encodeWorkers, 0, 64),
    consumeBatch: int('consumeBatch', options.consumeBatch, ARCHIVER_DEFAULTS.consumeBatch, 1, 1_000_000),
    closeTimeoutMs: int('closeTimeoutMs', options.closeTimeoutMs, ARCHIVER_DEFAULTS.closeTimeoutMs, 0, 3_600_000),
    metricsPort: options.metricsPort === undefined ? undefined : int('metricsPort', options.metricsPort, 0, 0, 65_535),
    metricsHost: options.metricsHost ?? ARCHIVER_DEFAULTS.metricsHost,
    log: combineHooks(options.logger === undefined ? undefined : hookToLogger(validateLogger(options.logger, 'options.logger')), options.log) ?? (() => undefined),
    consumer: options.consumer ?? {},
  };
}
