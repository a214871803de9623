import { OptionsError, combineHooks, hookToLogger, loggerLevelEnabled, validateKafkaConnection, validateLogger, type KafkaConnectionOptions, type Logger } from '@agenttrace/common';

/** How a source topic is named on the target, like MirrorMaker 2's replication policies. */
export type NamingPolicy = 'keep' | 'prefix';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFn = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface ReplicatorOptions {
  source: KafkaConnectionOptions;
  target: KafkaConnectionOptions;
  /** Name of the source cluster, written into provenance headers and used by the prefix policy. */
  sourceAlias: string;
  /** Name of the target cluster: records whose provenance already names it are never mirrored back. */
  targetAlias: string;
  /** Topics to mirror by name (exactly one of topics / topicsRegex). */
  topics?: string[];
  /** Topics to mirror by pattern (anchored: the whole name must match). */
  topicsRegex?: string;
  naming?: NamingPolicy;
  /** Part of the transactional id: two instances with the same id fence each other. */
  instanceId?: string;
  /** Target topic holding the next source offset per partition (default kafmirror.offsets.<sourceAlias>). */
  offsetsTopic?: string;
  /** Target topic holding translated consumer-group offsets (default kafmirror.checkpoints.<sourceAlias>). */
  checkpointsTopic?: string;
  /** Consumer groups of the source whose offsets are translated for failover. */
  groups?: string[];
  checkpointIntervalMs?: number;
  /** How often new topics and partitions are looked for. */
  refreshIntervalMs?: number;
  /** Most records per transaction. */
  maxBatchRecords?: number;
  /**
   * How long a transaction stays open collecting more records (up to maxBatchRecords) before it
   * commits; 0 commits each batch as soon as it is written. Longer means fewer, larger
   * transactions (less overhead, fewer commit markers) at the cost of that much more lag.
   */
  batchLingerMs?: number;
  /** Where partitions without a stored offset start. */
  startFrom?: 'earliest' | 'latest';
  /** Replication factor of created target topics (-1 = the broker default). */
  replicationFactor?: number;
  createTopics?: boolean;
  /** Alert when a partition's time lag exceeds this (ms); undefined = no alerting. */
  lagThresholdMs?: number;
  /** Alerts and recoveries are also POSTed here as JSON. */
  webhookUrl?: string;
  /** How often lag is sampled (and alerting evaluated). */
  lagIntervalMs?: number;
  metricsPort?: number;
  metricsHost?: string;
  log?: LogFn;
  /** A pino-compatible logger (`logger.info(fields, msg)`, levels trace..fatal) receiving the same lines as `log`; both may be given. */
  logger?: Logger;
  /**
   * Log every transaction (records and timings) at debug level.
   * @deprecated Give a `logger` at debug level (pino's `level: 'debug'`, `kafmirror replicate
   * --verbose`): its level decides. Still honoured when given: true or false wins over the level.
   */
  debug?: boolean;
}

export const REPLICATOR_DEFAULTS = {
  naming: 'keep' as NamingPolicy,
  instanceId: 'default',
  groups: [] as string[],
  checkpointIntervalMs: 5_000,
  refreshIntervalMs: 30_000,
  maxBatchRecords: 5_000,
  batchLingerMs: 0,
  startFrom: 'earliest' as const,
  replicationFactor: -1,
  createTopics: true,
  lagIntervalMs: 1_000,
  metricsHost: '127.0.0.1',
};

export type ResolvedReplicatorOptions = Required<
  Omit<ReplicatorOptions, 'topics' | 'topicsRegex' | 'lagThresholdMs' | 'webhookUrl' | 'metricsPort' | 'log' | 'logger' | 'debug'>
> &
  Pick<ReplicatorOptions, 'topics' | 'topicsRegex' | 'lagThresholdMs' | 'webhookUrl' | 'metricsPort'> & {
    log: LogFn;
    topicPattern?: RegExp;
    /** Whether each transaction is logged at debug level: `debug` when given, else whether the logger writes debug lines. */
    debug: boolean;
  };

const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

export const noLog: LogFn = () => undefined;

function intIn(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new OptionsError(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
}

export function validateAlias(name: string, v: unknown): string {
  if (typeof v !== 'string' || !ALIAS.test(v)) throw new OptionsError(name, `must be a cluster alias of letters, digits, ".", "_" or "-", got "${String(v)}"`);
  return v;
}

/** Validates replicator options and fills in defaults; throws OptionsError naming the option. */
export function resolveReplicatorOptions(o: ReplicatorOptions): ResolvedReplicatorOptions {
  const source = validateKafkaConnection(o.source, 'options.source');
  const target = validateKafkaConnection(o.target, 'options.target');
  const sourceAlias = validateAlias('options.sourceAlias', o.sourceAlias);
  const targetAlias = validateAlias('options.targetAlias', o.targetAlias);
  if (sourceAlias === targetAlias) throw new OptionsError('options.targetAlias', `must differ from the source alias ("${sourceAlias}"): loop prevention tells clusters apart by alias`);
  if ((o.topics === undefined) === (o.topicsRegex === undefined)) throw new OptionsError('options.topics', 'or options.topicsRegex is required (exactly one of them)');
  let topicPattern: RegExp | undefined;
  if (o.topics !== undefined) {
    if (!Array.isArray(o.topics) || o.topics.length === 0) throw new OptionsError('options.topics', 'must be a non-empty list of topic names');
    for (const t of o.topics) if (typeof t !== 'string' || !TOPIC.test(t)) throw new OptionsError('options.topics', `has "${String(t)}", which is not a valid topic name`);
  } else {
    try {
      topicPattern = new RegExp(`^(?:${o.topicsRegex!})$`);
    } catch (err) {
      throw new OptionsError('options.topicsRegex', `is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const naming = o.naming ?? REPLICATOR_DEFAULTS.naming;
  if (naming !== 'keep' && naming !== 'prefix') throw new OptionsError('options.naming', `must be "keep" or "prefix", got "${String(naming)}"`);
  const sameCluster = [...source.brokers].sort().join(',') === [...target.brokers].sort().join(',');
  if (sameCluster && naming === 'keep') throw new OptionsError('options.naming', 'must be "prefix" when source and target are the same cluster: "keep" would write every topic onto itself');
  const instanceId = o.instanceId ?? REPLICATOR_DEFAULTS.instanceId;
  if (!ALIAS.test(instanceId)) throw new OptionsError('options.instanceId', `must be letters, digits, ".", "_" or "-", got "${instanceId}"`);
  const offsetsTopic = o.offsetsTopic ?? `kafmirror.offsets.${sourceAlias}`;
  const checkpointsTopic = o.checkpointsTopic ?? `kafmirror.checkpoints.${sourceAlias}`;
  for (const [k, v] of [['options.offsetsTopic', offsetsTopic], ['options.checkpointsTopic', checkpointsTopic]] as const) {
    if (!TOPIC.test(v)) throw new OptionsError(k, `is not a valid topic name: "${v}"`);
  }
  const groups = o.groups ?? REPLICATOR_DEFAULTS.groups;
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string' || g.length === 0)) throw new OptionsError('options.groups', 'must be a list of non-empty group ids');
  const checkpointIntervalMs = o.checkpointIntervalMs ?? REPLICATOR_DEFAULTS.checkpointIntervalMs;
  intIn('options.checkpointIntervalMs', checkpointIntervalMs, 100, 3_600_000);
  const refreshIntervalMs = o.refreshIntervalMs ?? REPLICATOR_DEFAULTS.refreshIntervalMs;
  intIn('options.refreshIntervalMs', refreshIntervalMs, 100, 3_600_000);
  const maxBatchRecords = o.maxBatchRecords ?? REPLICATOR_DEFAULTS.maxBatchRecords;
  intIn('options.maxBatchRecords', maxBatchRecords, 1, 100_000);
  const batchLingerMs = o.batchLingerMs ?? REPLICATOR_DEFAULTS.batchLingerMs;
  intIn('options.batchLingerMs', batchLingerMs, 0, 30_000);
  const startFrom = o.startFrom ?? REPLICATOR_DEFAULTS.startFrom;
  if (startFrom !== 'earliest' && startFrom !== 'latest') throw new OptionsError('options.startFrom', `must be "earliest" or "latest", got "${String(startFrom)}"`);
  const replicationFactor = o.replicationFactor ?? REPLICATOR_DEFAULTS.replicationFactor;
  if (replicationFactor !== -1) intIn('options.replicationFactor', replicationFactor, 1, 32);
  const lagIntervalMs = o.lagIntervalMs ?? REPLICATOR_DEFAULTS.lagIntervalMs;
  intIn('options.lagIntervalMs', lagIntervalMs, 50, 600_000);
  if (o.lagThresholdMs !== undefined) intIn('options.lagThresholdMs', o.lagThresholdMs, 1, 86_400_000);
  if (o.webhookUrl !== undefined) {
    let u: URL;
    try {
      u = new URL(o.webhookUrl);
    } catch {
      throw new OptionsError('options.webhookUrl', 'must be an http(s) URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OptionsError('options.webhookUrl', 'must be an http(s) URL');
    if (o.lagThresholdMs === undefined) throw new OptionsError('options.webhookUrl', 'needs options.lagThresholdMs (--lag-threshold): alerts are what it receives');
  }
  if (o.metricsPort !== undefined) intIn('options.metricsPort', o.metricsPort, 0, 65_535);
  if (o.debug !== undefined && typeof o.debug !== 'boolean') throw new OptionsError('options.debug', `must be true or false, got ${JSON.stringify(o.debug)}`);
  const logger = o.logger === undefined ? undefined : validateLogger(o.logger, 'options.logger');
  return {
    source,
    target,
    sourceAlias,
    targetAlias,
    topics: o.topics,
    topicsRegex: o.topicsRegex,
    topicPattern,
    naming,
    instanceId,
    offsetsTopic,
    checkpointsTopic,
    groups,
    checkpointIntervalMs,
    refreshIntervalMs,
    maxBatchRecords,
    batchLingerMs,
    startFrom,
    replicationFactor,
    createTopics: o.createTopics ?? REPLICATOR_DEFAULTS.createTopics,
    lagThresholdMs: o.lagThresholdMs,
    webhookUrl: o.webhookUrl,
    lagIntervalMs,
    metricsPort: o.metricsPort,
    metricsHost: o.metricsHost ?? REPLICATOR_DEFAULTS.metricsHost,
    log: combineHooks(logger === undefined ? undefined : hookToLogger(logger), o.log) ?? noLog,
    // A logger that does not say its level (and the log hook, which has none) keeps them off, as before.
    debug: o.debug ?? loggerLevelEnabled(logger, 'debug') ?? false,
  };
}

export interface FailoverOptions {
  target: KafkaConnectionOptions;
  sourceAlias: string;
  groups: string[];
  checkpointsTopic?: string;
  /** Only report what would be committed. */
  dryRun?: boolean;
}

export function resolveFailoverOptions(o: FailoverOptions): Required<FailoverOptions> {
  const target = validateKafkaConnection(o.target, 'options.target');
  const sourceAlias = validateAlias('options.sourceAlias', o.sourceAlias);
  if (!Array.isArray(o.groups) || o.groups.length === 0 || o.groups.some((g) => typeof g !== 'string' || !g)) {
    throw new OptionsError('options.groups', 'must name at least one consumer group');
  }
  const checkpointsTopic = o.checkpointsTopic ?? `kafmirror.checkpoints.${sourceAlias}`;
  if (!TOPIC.test(checkpointsTopic)) throw new OptionsError('options.checkpointsTopic', `is not a valid topic name: "${checkpointsTopic}"`);
  return { target, sourceAlias, groups: o.groups, checkpointsTopic, dryRun: o.dryRun ?? false };
}
