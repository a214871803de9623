import { OptionsError } from '@agenttrace/common';

/** Tuning of a SessionReader. Every field is optional; see SESSION_READER_DEFAULTS. */
export interface SessionReaderOptions {
  /** How long to wait for Redis to answer the first command before treating it as unavailable. */
  redisConnectTimeoutMs?: number;
  /** Timeout of Kafka metadata and offset lookups. */
  kafkaTimeoutMs?: number;
  /**
   * While scanning a partition, give up when no record arrives for this long although the end
   * offset has not been reached (e.g. the tail of the partition is an open transaction).
   */
  kafkaIdleTimeoutMs?: number;
  /** Upper bound on the events one read returns; a longer session is cut and a warning says so. */
  maxEvents?: number;
  /** How many offloaded payloads are fetched from S3 at once. */
  offloadConcurrency?: number;
  /** Records fetched per consume call when scanning Kafka. */
  kafkaBatchSize?: number;
  /** How often follow() polls its source when no notification arrives. */
  followPollMs?: number;
  /** Key prefix of the Parquet archive in the bucket (passed to the archiver's reader). */
  archivePrefix?: string;
  /** Upper bound on records read per partition when listing sessions from Kafka. */
  listScanPerPartition?: number;
  /** librdkafka client.id of the reader's clients. */
  clientId?: string;
}

export type ResolvedSessionReaderOptions = Required<SessionReaderOptions>;

export const SESSION_READER_DEFAULTS: ResolvedSessionReaderOptions = {
  redisConnectTimeoutMs: 3000,
  kafkaTimeoutMs: 10_000,
  kafkaIdleTimeoutMs: 5000,
  maxEvents: 1_000_000,
  offloadConcurrency: 16,
  kafkaBatchSize: 2000,
  followPollMs: 1000,
  archivePrefix: '',
  listScanPerPartition: 5000,
  clientId: 'agenttrace-sessions',
};

function positiveInt(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new OptionsError(`options.${name}`, `must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Applies defaults and validates; throws OptionsError naming the option. */
export function resolveSessionReaderOptions(options: SessionReaderOptions = {}): ResolvedSessionReaderOptions {
  const d = SESSION_READER_DEFAULTS;
  const out: ResolvedSessionReaderOptions = { ...d };
  for (const k of [
    'redisConnectTimeoutMs',
    'kafkaTimeoutMs',
    'kafkaIdleTimeoutMs',
    'maxEvents',
    'offloadConcurrency',
    'kafkaBatchSize',
    'followPollMs',
    'listScanPerPartition',
  ] as const) {
    if (options[k] !== undefined) out[k] = positiveInt(k, options[k]);
  }
  if (options.archivePrefix !== undefined) {
    if (typeof options.archivePrefix !== 'string') throw new OptionsError('options.archivePrefix', 'must be a string');
    out.archivePrefix = options.archivePrefix;
  }
  if (options.clientId !== undefined) {
    if (typeof options.clientId !== 'string' || options.clientId === '') throw new OptionsError('options.clientId', 'must be a non-empty string');
    out.clientId = options.clientId;
  }
  return out;
}
