import { DEFAULT_ALERTS_TOPIC, DEFAULT_DLQ_TOPIC, DEFAULT_MAX_RECORD_BYTES, DEFAULT_TOPIC, type PriceTable } from '@agenttrace/contract';
import {
  DEFAULT_REDIS_PREFIX,
  OptionsError,
  hookToLogger,
  validateLogger,
  type Logger,
  kafkaConnectionFromEnv,
  resolvePrices,
  validateKafkaConnection,
  type KafkaConnectionOptions,
} from '@agenttrace/common';

/** Streaming alert rules. `false` turns a rule off. */
export interface AlertRuleOptions {
  /** Fire when a session's total cost goes above this many USD (default 10). */
  costThresholdUsd?: number | false;
  /** Fire when one tool is called more than this many times in a session (default 50). */
  maxSameToolCalls?: number | false;
  /** Fire when `count` errors happen within `windowMs` of event time in a session (default 5 in 60 s). */
  errorBurst?: { count: number; windowMs: number } | false;
  /** Fire when an active session has had no event for this long, ms (default 30 min). */
  idleMs?: number | false;
  /** How often idle sessions are looked for, ms (default 30 s). */
  idleCheckIntervalMs?: number;
}

/** One line of what the service is doing, for logs. Never holds credentials. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  [field: string]: unknown;
}

export interface DashboardConsumerOptions {
  /** Kafka connection; defaults from AGENTTRACE_BROKERS / AGENTTRACE_KAFKA_*. */
  kafka?: Partial<KafkaConnectionOptions>;
  /** Topic of agent events (default `agent-events`). */
  topic?: string;
  /** Consumer group (default `session-dashboard`). Its progress lives in Redis, Kafka only gets a hint. */
  group?: string;
  /** Static group membership id: a restarted instance with the same id takes its partitions back without a rebalance. */
  instanceId?: string;
  /** Redis URL (default redis://127.0.0.1:6379). */
  redisUrl?: string;
  /** Prefix of every Redis key (default `agenttrace:`). */
  redisPrefix?: string;
  /** Dead-letter topic for records that are not valid events (default `agent-events.dlq`). */
  dlqTopic?: string;
  /** Topic alerts are produced to (default `agent-alerts`). */
  alertsTopic?: string;
  /** Create the dead-letter and alerts topics when missing (default true). */
  ensureTopics?: boolean;
  /** Slack-compatible incoming-webhook URL alerts are POSTed to (default none). Never printed. */
  webhookUrl?: string;
  /** Retries of a failed webhook POST (default 4, exponential backoff). */
  webhookRetries?: number;
  /** Time one webhook POST may take, ms (default 5000). */
  webhookTimeoutMs?: number;
  /** Alert rules; `false` turns alerting off. */
  alerts?: AlertRuleOptions | false;
  /** Time a session's keys live after its last change, seconds (default 30 days). */
  ttlSeconds?: number;
  /** Where to start on a partition Redis has no offset for (default `earliest`). */
  startFrom?: 'earliest' | 'latest';
  /**
   * What to do when the offsets stored in Redis belong to another Kafka cluster or another
   * incarnation of the topic (their cluster id or topic id differs from what the brokers report):
   * by default start() refuses with POSITIONS_MISMATCH; `earliest` or `latest` drops those offsets
   * and starts every partition there instead; `committed` drops them and starts at the group's
   * committed offsets on this cluster (what `kafmirror failover` sets), earliest where there are none.
   */
  resetPositions?: 'earliest' | 'latest' | 'committed';
  /** Most records applied to Redis in one atomic step (default 2000). */
  batchSize?: number;
  /** Records larger than this go to the dead-letter topic (default 1 MiB). */
  maxRecordBytes?: number;
  /** Port of the /metrics and /healthz server (default 9466; 0 picks a free port; false turns it off). */
  metricsPort?: number | false;
  /** Address the metrics server listens on (default 127.0.0.1; use 0.0.0.0 in a container). */
  metricsHost?: string;
  /** How often consumed offsets are committed to Kafka as a hint for lag tools, ms (default 5000). */
  commitIntervalMs?: number;
  /** Kafka group session timeout, ms (default 10000). */
  sessionTimeoutMs?: number;
  /** How long start() waits for Redis and Kafka, ms (default 30000). */
  startTimeoutMs?: number;
  /** Backoff between Redis retries while it is unavailable, ms (default 100 doubling to 5000). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * How long a bad record may keep failing to reach the dead-letter topic (for other reasons than
   * its size) before it is given up on: logged, counted and skipped so the partition moves on, ms;
   * 0 never gives up (default 900000, like the archiver's).
   */
  dlqGiveUpMs?: number;
  /** Most alerts waiting for delivery; beyond it they stay in the Redis outbox for the next sweep (default 10000). */
  maxQueuedAlerts?: number;
  /** Length of the recent-alerts list in Redis (default 1000). */
  recentAlerts?: number;
  /** librdkafka consumer properties to override. */
  consumer?: Record<string, string | number | boolean>;
  /** Receives log lines; default: none. */
  onLog?: (entry: LogEntry) => void;
  /**
   * A pino-compatible logger (`logger.info(fields, msg)`, levels trace..fatal) receiving the same
   * lines as `onLog`; both may be given. Default: none.
   */
  logger?: Logger;
  /**
   * Model prices for LLM calls recorded with tokens but no cost (default: the table shipped in
   * @agenttrace/contract); `false` counts only the costs the events carry.
   */
  prices?: PriceTable | false;
}

export interface ResolvedAlertRules {
  costThresholdUsd: number | false;
  maxSameToolCalls: number | false;
  errorBurst: { count: number; windowMs: number } | false;
  idleMs: number | false;
  idleCheckIntervalMs: number;
}

export interface ResolvedDashboardOptions {
  kafka: KafkaConnectionOptions;
  topic: string;
  group: string;
  instanceId: string | undefined;
  redisUrl: string;
  redisPrefix: string;
  dlqTopic: string;
  alertsTopic: string;
  ensureTopics: boolean;
  webhookUrl: string | undefined;
  webhookRetries: number;
  webhookTimeoutMs: number;
  alerts: ResolvedAlertRules | false;
  ttlSeconds: number;
  startFrom: 'earliest' | 'latest';
  resetPositions: 'earliest' | 'latest' | 'committed' | undefined;
  batchSize: number;
  maxRecordBytes: number;
  metricsPort: number | false;
  metricsHost: string;
  commitIntervalMs: number;
  sessionTimeoutMs: number;
  startTimeoutMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  dlqGiveUpMs: number;
  maxQueuedAlerts: number;
  recentAlerts: number;
  consumer: Record<string, string | number | boolean>;
  onLog: ((entry: LogEntry) => void) | undefined;
  prices: PriceTable | false;
}

export const DEFAULT_GROUP = 'session-dashboard';
export const DEFAULT_METRICS_PORT = 9466;

export const ALERT_DEFAULTS: ResolvedAlertRules = {
  costThresholdUsd: 10,
  maxSameToolCalls: 50,
  errorBurst: { count: 5, windowMs: 60_000 },
  idleMs: 30 * 60_000,
  idleCheckIntervalMs: 30_000,
};

export const DASHBOARD_DEFAULTS = {
  topic: DEFAULT_TOPIC,
  group: DEFAULT_GROUP,
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: DEFAULT_REDIS_PREFIX,
  dlqTopic: DEFAULT_DLQ_TOPIC,
  alertsTopic: DEFAULT_ALERTS_TOPIC,
  ensureTopics: true,
  webhookRetries: 4,
  webhookTimeoutMs: 5000,
  ttlSeconds: 30 * 24 * 3600,
  startFrom: 'earliest' as const,
  batchSize: 2000,
  maxRecordBytes: DEFAULT_MAX_RECORD_BYTES,
  metricsPort: DEFAULT_METRICS_PORT,
  metricsHost: '127.0.0.1',
  commitIntervalMs: 5000,
  sessionTimeoutMs: 10_000,
  startTimeoutMs: 30_000,
  retryMinMs: 100,
  retryMaxMs: 5000,
  dlqGiveUpMs: 900_000,
  maxQueuedAlerts: 10_000,
  recentAlerts: 1000,
};

/** The onLog hook that also (or only) writes to a pino-compatible logger. */
function withLogger(onLog: ((entry: LogEntry) => void) | undefined, logger: Logger | undefined): ((entry: LogEntry) => void) | undefined {
  if (logger === undefined) return onLog;
  const write = hookToLogger(validateLogger(logger, 'options.logger'));
  return (entry) => {
    const { level, message, ...fields } = entry;
    write(level, message, fields);
    onLog?.(entry);
  };
}

function int(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionsError(`options.${name}`, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function str(name: string, v: unknown, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0) throw new OptionsError(`options.${name}`, `must be a non-empty string, got ${JSON.stringify(v)}`);
  if (pattern && !pattern.test(v)) throw new OptionsError(`options.${name}`, `has "${v}", which does not match ${String(pattern)}`);
  return v;
}

// Kafka's own rule for topic names; checking here gives a clear message instead of a broker error.
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;

function resolveAlerts(a: AlertRuleOptions | false | undefined): ResolvedAlertRules | false {
  if (a === false) return false;
  if (a !== undefined && (typeof a !== 'object' || a === null)) throw new OptionsError('options.alerts', 'must be an object or false');
  const o = a ?? {};
  const out: ResolvedAlertRules = { ...ALERT_DEFAULTS };
  if (o.costThresholdUsd !== undefined) {
    if (o.costThresholdUsd !== false && (typeof o.costThresholdUsd !== 'number' || !(o.costThresholdUsd >= 0) || !Number.isFinite(o.costThresholdUsd))) {
      throw new OptionsError('options.alerts.costThresholdUsd', `must be a non-negative number of USD or false, got ${JSON.stringify(o.costThresholdUsd)}`);
    }
    out.costThresholdUsd = o.costThresholdUsd;
  }
  if (o.maxSameToolCalls !== undefined) out.maxSameToolCalls = o.maxSameToolCalls === false ? false : int('alerts.maxSameToolCalls', o.maxSameToolCalls, 1);
  if (o.errorBurst !== undefined) {
    if (o.errorBurst === false) out.errorBurst = false;
    else {
      if (typeof o.errorBurst !== 'object' || o.errorBurst === null) throw new OptionsError('options.alerts.errorBurst', 'must be { count, windowMs } or false');
      out.errorBurst = { count: int('alerts.errorBurst.count', o.errorBurst.count, 2, 10_000), windowMs: int('alerts.errorBurst.windowMs', o.errorBurst.windowMs, 1) };
    }
  }
  if (o.idleMs !== undefined) out.idleMs = o.idleMs === false ? false : int('alerts.idleMs', o.idleMs, 1000);
  if (o.idleCheckIntervalMs !== undefined) out.idleCheckIntervalMs = int('alerts.idleCheckIntervalMs', o.idleCheckIntervalMs, 100);
  return out;
}

/** Applies defaults and validates; throws OptionsError naming the first bad option. */
export function resolveDashboardOptions(options: DashboardConsumerOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedDashboardOptions {
  if (typeof options !== 'object' || options === null) throw new OptionsError('options', 'must be an object');
  const o = options;
  const d = DASHBOARD_DEFAULTS;
  const kenv = kafkaConnectionFromEnv(env);
  const kafka = validateKafkaConnection({ ...kenv, ...(o.kafka ?? {}), clientId: o.kafka?.clientId ?? 'agenttrace-dashboard' }, 'options.kafka');
  if (o.redisUrl !== undefined && !/^rediss?:\/\//.test(String(o.redisUrl))) {
    throw new OptionsError('options.redisUrl', 'must start with redis:// or rediss://');
  }
  if (o.webhookUrl !== undefined) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(String(o.webhookUrl)).protocol);
    } catch {
      ok = false;
    }
    // The URL usually holds a secret token: the message must not repeat it.
    if (!ok) throw new OptionsError('options.webhookUrl', 'must be an http:// or https:// URL');
  }
  if (o.startFrom !== undefined && o.startFrom !== 'earliest' && o.startFrom !== 'latest') {
    throw new OptionsError('options.startFrom', `must be "earliest" or "latest", got ${JSON.stringify(o.startFrom)}`);
  }
  if (o.resetPositions !== undefined && o.resetPositions !== 'earliest' && o.resetPositions !== 'latest' && o.resetPositions !== 'committed') {
    throw new OptionsError('options.resetPositions', `must be "earliest", "latest" or "committed", got ${JSON.stringify(o.resetPositions)}`);
  }
  if (o.metricsPort !== undefined && o.metricsPort !== false) int('metricsPort', o.metricsPort, 0, 65535);
  if (o.onLog !== undefined && typeof o.onLog !== 'function') throw new OptionsError('options.onLog', 'must be a function');
  if (o.consumer !== undefined && (typeof o.consumer !== 'object' || o.consumer === null)) throw new OptionsError('options.consumer', 'must be an object of librdkafka properties');
  const retryMinMs = o.retryMinMs === undefined ? d.retryMinMs : int('retryMinMs', o.retryMinMs, 1, 60_000);
  const retryMaxMs = o.retryMaxMs === undefined ? d.retryMaxMs : int('retryMaxMs', o.retryMaxMs, retryMinMs, 600_000);
  return {
    kafka,
    topic: o.topic === undefined ? d.topic : str('topic', o.topic, TOPIC),
    group: o.group === undefined ? d.group : str('group', o.group),
    instanceId: o.instanceId === undefined ? undefined : str('instanceId', o.instanceId),
    redisUrl: o.redisUrl ?? d.redisUrl,
    redisPrefix: o.redisPrefix === undefined ? d.redisPrefix : str('redisPrefix', o.redisPrefix),
    dlqTopic: o.dlqTopic === undefined ? d.dlqTopic : str('dlqTopic', o.dlqTopic, TOPIC),
    alertsTopic: o.alertsTopic === undefined ? d.alertsTopic : str('alertsTopic', o.alertsTopic, TOPIC),
    ensureTopics: o.ensureTopics ?? d.ensureTopics,
    webhookUrl: o.webhookUrl,
    webhookRetries: o.webhookRetries === undefined ? d.webhookRetries : int('webhookRetries', o.webhookRetries, 0, 20),
    webhookTimeoutMs: o.webhookTimeoutMs === undefined ? d.webhookTimeoutMs : int('webhookTimeoutMs', o.webhookTimeoutMs, 100, 120_000),
    alerts: resolveAlerts(o.alerts),
    ttlSeconds: o.ttlSeconds === undefined ? d.ttlSeconds : int('ttlSeconds', o.ttlSeconds, 1),
    startFrom: o.startFrom ?? d.startFrom,
    resetPositions: o.resetPositions,
    batchSize: o.batchSize === undefined ? d.batchSize : int('batchSize', o.batchSize, 1, 50_000),
    maxRecordBytes: o.maxRecordBytes === undefined ? d.maxRecordBytes : int('maxRecordBytes', o.maxRecordBytes, 1024),
    metricsPort: o.metricsPort === undefined ? d.metricsPort : o.metricsPort,
    metricsHost: o.metricsHost === undefined ? d.metricsHost : str('metricsHost', o.metricsHost),
    commitIntervalMs: o.commitIntervalMs === undefined ? d.commitIntervalMs : int('commitIntervalMs', o.commitIntervalMs, 100),
    sessionTimeoutMs: o.sessionTimeoutMs === undefined ? d.sessionTimeoutMs : int('sessionTimeoutMs', o.sessionTimeoutMs, 1000, 3_600_000),
    startTimeoutMs: o.startTimeoutMs === undefined ? d.startTimeoutMs : int('startTimeoutMs', o.startTimeoutMs, 100),
    retryMinMs,
    retryMaxMs,
    dlqGiveUpMs: o.dlqGiveUpMs === undefined ? d.dlqGiveUpMs : int('dlqGiveUpMs', o.dlqGiveUpMs, 0, 7 * 24 * 3_600_000),
    maxQueuedAlerts: o.maxQueuedAlerts === undefined ? d.maxQueuedAlerts : int('maxQueuedAlerts', o.maxQueuedAlerts, 1),
    recentAlerts: o.recentAlerts === undefined ? d.recentAlerts : int('recentAlerts', o.recentAlerts, 1),
    consumer: o.consumer ?? {},
    onLog: withLogger(o.onLog, o.logger),
    prices: resolvePrices(o.prices, 'options.prices'),
  };
}
