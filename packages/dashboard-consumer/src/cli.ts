#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import {
  AgentTraceError,
  CLI_EXIT,
  FlagValueError,
  OptionsError,
  addSettingsOptions,
  countFlag,
  errorMessage,
  exitCodeForError,
  exitCodesHelp,
  exitWhenDrained,
  guardCliOutput,
  loadConfigFile,
  sanitizeForTerminal,
  settingsFromFlags,
  settingsHelp,
  signalExitCode,
  type SettingsFlagName,
  type SettingsFlags,
} from '@agenttrace/common';
import { loadPriceTable, type PriceTable } from '@agenttrace/contract';
import { DashboardConsumer } from './consumer.js';
import { DEFAULT_GROUP, DEFAULT_METRICS_PORT, type AlertRuleOptions, type DashboardConsumerOptions, type LogEntry } from './options.js';

/** Documented exit codes: the dashboard's part of the table every agenttrace command shares (docs/cli.md). */
export const EXIT = {
  OK: CLI_EXIT.OK,
  FAILED: CLI_EXIT.FAILURE,
  USAGE: CLI_EXIT.USAGE,
  UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  AUTH_FAILED: CLI_EXIT.AUTH_FAILED,
  PORT_IN_USE: CLI_EXIT.PORT_IN_USE,
  POSITIONS_MISMATCH: CLI_EXIT.POSITIONS_MISMATCH,
  INTERRUPTED: CLI_EXIT.SIGINT,
} as const;

/** The shared connection flags the dashboard consumer takes (Kafka and Redis; no S3). */
const SETTINGS: readonly SettingsFlagName[] = ['brokers', 'topic', 'redisUrl', 'redisPrefix', 'config'];

interface Flags extends SettingsFlags {
  group?: string;
  dlqTopic?: string;
  alertsTopic?: string;
  metricsPort?: number | false;
  metricsHost?: string;
  instanceId?: string;
  from?: 'earliest' | 'latest';
  resetPositions?: 'earliest' | 'latest' | 'committed';
  ttlDays?: number;
  batchSize?: number;
  costThreshold?: number | false;
  maxToolCalls?: number | false;
  errorBurst?: { count: number; windowMs: number } | false;
  idleMinutes?: number | false;
  webhookUrl?: string;
  prices?: string;
  alerts?: boolean;
  statusInterval?: number;
  startTimeout?: number;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

const numberOrOff = (name: string, integer: boolean) => (v: string) => {
  if (v === 'off') return false;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new FlagValueError(`${name} must be ${integer ? 'a whole number' : 'a number'} or "off"`);
  return n;
};
const portOrOff = (v: string) => {
  if (v === 'off') return false;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new FlagValueError('must be a port from 0 to 65535, or "off"');
  return n;
};
const burst = (v: string) => {
  if (v === 'off') return false;
  const m = /^(\d+)\/(\d+)s?$/.exec(v);
  if (!m) throw new FlagValueError('must be COUNT/SECONDS (e.g. 5/60) or "off"');
  return { count: Number(m[1]), windowMs: Number(m[2]) * 1000 };
};

function envNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new OptionsError(name, `must be a whole number, got "${v}"`);
  return n;
}

/** flag > environment > config file ("dashboard" section) > default, like every agenttrace command. */
export function buildOptions(flags: Flags, env: NodeJS.ProcessEnv = process.env): DashboardConsumerOptions {
  const settings = settingsFromFlags(flags, env);
  const configPath = flags.config ?? env.AGENTTRACE_CONFIG;
  const file = configPath ? loadConfigFile(configPath) : {};
  const section = (typeof file.dashboard === 'object' && file.dashboard !== null ? file.dashboard : {}) as DashboardConsumerOptions;
  const alerts: AlertRuleOptions = { ...(section.alerts === false ? {} : (section.alerts ?? {})) };
  if (flags.costThreshold !== undefined) alerts.costThresholdUsd = flags.costThreshold;
  if (flags.maxToolCalls !== undefined) alerts.maxSameToolCalls = flags.maxToolCalls;
  if (flags.errorBurst !== undefined) alerts.errorBurst = flags.errorBurst;
  if (flags.idleMinutes !== undefined) alerts.idleMs = flags.idleMinutes === false ? false : flags.idleMinutes * 60_000;
  const alertsOff = flags.alerts === false || (section.alerts === false && flags.costThreshold === undefined && flags.maxToolCalls === undefined);
  const envPort = env.AGENTTRACE_METRICS_PORT === 'off' ? false : envNumber(env, 'AGENTTRACE_METRICS_PORT');
  const opts: DashboardConsumerOptions = {
    ...section,
    kafka: settings.kafka,
    topic: settings.topic,
    redisUrl: settings.redisUrl,
    redisPrefix: settings.redisPrefix,
    group: flags.group ?? env.AGENTTRACE_DASHBOARD_GROUP ?? section.group ?? DEFAULT_GROUP,
    dlqTopic: flags.dlqTopic ?? env.AGENTTRACE_DLQ_TOPIC ?? section.dlqTopic,
    alertsTopic: flags.alertsTopic ?? env.AGENTTRACE_ALERTS_TOPIC ?? section.alertsTopic,
    metricsPort: flags.metricsPort ?? envPort ?? section.metricsPort ?? DEFAULT_METRICS_PORT,
    metricsHost: flags.metricsHost ?? env.AGENTTRACE_METRICS_HOST ?? section.metricsHost,
    instanceId: flags.instanceId ?? env.AGENTTRACE_DASHBOARD_INSTANCE_ID ?? section.instanceId,
    startFrom: flags.from ?? section.startFrom,
    resetPositions: flags.resetPositions ?? section.resetPositions,
    ttlSeconds: flags.ttlDays !== undefined ? flags.ttlDays * 24 * 3600 : section.ttlSeconds,
    batchSize: flags.batchSize ?? section.batchSize,
    startTimeoutMs: flags.startTimeout !== undefined ? flags.startTimeout * 1000 : section.startTimeoutMs,
    webhookUrl: flags.webhookUrl ?? env.AGENTTRACE_ALERT_WEBHOOK_URL ?? section.webhookUrl,
    alerts: alertsOff ? false : alerts,
    prices: pricesFrom(flags.prices ?? env.AGENTTRACE_PRICES ?? (section.prices as unknown)),
  };
  for (const k of Object.keys(opts) as Array<keyof DashboardConsumerOptions>) if (opts[k] === undefined) delete opts[k];
  return opts;
}

/** `--prices FILE|off` (or a table inline in the config file): the model prices for LLM calls without a cost. */
function pricesFrom(value: unknown): PriceTable | false | undefined {
  if (value === undefined || value === false) return value;
  if (value === 'off') return false;
  if (typeof value !== 'string') return value as PriceTable;
  try {
    return loadPriceTable(value);
  } catch (err) {
    throw new OptionsError('--prices', `cannot be used: ${errorMessage(err)}`);
  }
}

function program(): Command {
  return addSettingsOptions(new Command('agenttrace-dashboard'), {
    only: SETTINGS,
    describe: { redisUrl: 'Redis the timelines are written to', config: 'JSON config file; dashboard options go in its "dashboard" object' },
  })
    .description(
      'Consume agent events and keep Redis current for live views (kshark top/replay, dashboards):\n' +
        'per-session timelines, metadata and indexes, exactly once; streaming alerts; Prometheus metrics.',
    )
    .option('--group <id>', `consumer group (env AGENTTRACE_DASHBOARD_GROUP; default ${DEFAULT_GROUP})`)
    .option('--dlq-topic <name>', 'dead-letter topic (env AGENTTRACE_DLQ_TOPIC; default agent-events.dlq)')
    .option('--alerts-topic <name>', 'alerts topic (env AGENTTRACE_ALERTS_TOPIC; default agent-alerts)')
    .option('--metrics-port <port|off>', `port of /metrics and /healthz, 0 = any free port (env AGENTTRACE_METRICS_PORT; default ${DEFAULT_METRICS_PORT})`, portOrOff)
    .option('--metrics-host <addr>', 'address the metrics server listens on (default 127.0.0.1; 0.0.0.0 in a container)')
    .option('--instance-id <id>', 'static group membership id: a restart takes its partitions back without a rebalance')
    .option('--from <where>', 'start of a partition Redis has no offset for: earliest or latest (default earliest)', (v: string) => {
      if (v !== 'earliest' && v !== 'latest') throw new FlagValueError('must be earliest or latest');
      return v;
    })
    .option('--reset-positions <where>', "when the offsets in Redis belong to another cluster or topic id: drop them and start at earliest, latest or committed (the group's offsets on this cluster, e.g. after kafmirror failover); default: refuse to start, exit 10", (v: string) => {
      if (v !== 'earliest' && v !== 'latest' && v !== 'committed') throw new FlagValueError('must be earliest, latest or committed');
      return v;
    })
    .option('--ttl-days <days>', 'days a session stays in Redis after its last event (default 30)', countFlag('--ttl-days'))
    .option('--batch-size <n>', 'most records per atomic Redis write (default 2000)', countFlag('--batch-size'))
    .option('--cost-threshold <usd|off>', 'alert when a session costs more than this (default 10)', numberOrOff('--cost-threshold', false))
    .option('--max-tool-calls <n|off>', 'alert when one tool is called more than n times in a session (default 50)', numberOrOff('--max-tool-calls', true))
    .option('--error-burst <count/seconds|off>', 'alert on this many errors within this many seconds (default 5/60)', burst)
    .option('--idle-minutes <n|off>', 'alert when an active session has no event for n minutes (default 30)', numberOrOff('--idle-minutes', false))
    .option('--prices <file|off>', 'model price table (JSON, USD per million tokens) for LLM calls recorded without a cost (env AGENTTRACE_PRICES; default: the shipped table, see docs/dashboard-consumer.md)')
    .option('--webhook-url <url>', 'Slack-compatible webhook for alerts (env AGENTTRACE_ALERT_WEBHOOK_URL; never printed)')
    .option('--no-alerts', 'turn every alert rule off')
    .option('--start-timeout <seconds>', 'how long startup waits for Redis and Kafka (default 30)', countFlag('--start-timeout'))
    .option('--status-interval <seconds>', 'print a status line this often, 0 = never (default 60)', countFlag('--status-interval', { zero: true }))
    .option('--json', 'print log and status lines as JSON')
    .option('--verbose', 'also print debug lines')
    .option('--quiet', 'print warnings and errors only')
    .addHelpText(
      'after',
      `
Examples:
  $ agenttrace-dashboard
  $ agenttrace-dashboard --brokers kafka-1:9092,kafka-2:9092 --redis-url redis://redis-1:6379 --metrics-host 0.0.0.0
  $ agenttrace-dashboard --cost-threshold 25 --max-tool-calls 100 --webhook-url "$SLACK_WEBHOOK"
  $ agenttrace-dashboard --config /etc/agenttrace.json --instance-id dashboard-1 --json

Run several instances with the same --group to share the partitions; each applies its records
to Redis exactly once, so rebalances and crashes neither lose nor duplicate events.

${exitCodesHelp('agenttrace-dashboard')}

${settingsHelp({ only: SETTINGS })}`,
    )
    .showHelpAfterError()
    .exitOverride();
}

/** Set once the consumer runs: a closed stdout (agenttrace-dashboard | head) then stops it as SIGTERM would. */
let stopOnBrokenPipe: (() => void) | undefined;

export async function main(argv: string[] = process.argv): Promise<number> {
  guardCliOutput({
    name: 'agenttrace-dashboard',
    onBrokenPipe: () => {
      if (!stopOnBrokenPipe) return false;
      stopOnBrokenPipe();
      return true;
    },
  });
  const cmd = program();
  try {
    cmd.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    throw err;
  }
  const flags = cmd.opts<Flags>();
  const json = flags.json === true;
  const minLevel = flags.verbose ? 0 : flags.quiet ? 2 : 1;
  const levels = { debug: 0, info: 1, warn: 2, error: 3 } as const;
  const print = (entry: LogEntry) => {
    if (levels[entry.level] < minLevel) return;
    if (json) {
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
      return;
    }
    const line = `agenttrace-dashboard: ${entry.level === 'info' ? '' : `${entry.level}: `}${sanitizeForTerminal(entry.message, { singleLine: true })}\n`;
    (entry.level === 'warn' || entry.level === 'error' ? process.stderr : process.stdout).write(line);
  };

  let consumer: DashboardConsumer;
  try {
    consumer = new DashboardConsumer({ ...buildOptions(flags), onLog: print });
  } catch (err) {
    process.stderr.write(`agenttrace-dashboard: ${errorMessage(err)}\n`);
    return err instanceof AgentTraceError ? EXIT.USAGE : EXIT.FAILED;
  }

  let stopping = false;
  let stopped!: () => void;
  const stop = new Promise<void>((r) => (stopped = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`agenttrace-dashboard: ${sig} again, exiting without a clean shutdown\n`);
      void exitWhenDrained(signalExitCode(sig));
      return;
    }
    stopping = true;
    print({ level: 'info', message: `${sig} received, shutting down` });
    stopped();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  stopOnBrokenPipe = () => {
    if (stopping) return;
    stopping = true;
    // Said on stderr: the info lines went to the stdout that is gone.
    if (!flags.quiet) process.stderr.write('agenttrace-dashboard: stdout closed, shutting down\n');
    stopped();
  };

  try {
    await consumer.start();
  } catch (err) {
    process.stderr.write(`agenttrace-dashboard: ${errorMessage(err)}\n`);
    // Unreachable Redis or Kafka 4, refused credentials 5, metrics port in use 9, positions of another cluster 10, else 1.
    const code = exitCodeForError(err);
    return code === EXIT.UNAVAILABLE || code === EXIT.AUTH_FAILED || code === EXIT.PORT_IN_USE || code === EXIT.POSITIONS_MISMATCH ? code : EXIT.FAILED;
  }
  print({ level: 'info', message: `started${consumer.metricsUrl ? `; metrics at ${consumer.metricsUrl}/metrics` : ''}`, metrics: consumer.metricsUrl });

  const statusEvery = (flags.statusInterval ?? 60) * 1000;
  const status =
    statusEvery > 0
      ? setInterval(() => {
          const s = consumer.stats();
          print({ level: 'info', message: `applied ${s.applied} events, ${s.deadLettered} dead-lettered, ${s.alertsFired} alerts; partitions ${s.assigned.join(',') || '-'}${s.paused ? '; PAUSED (Redis down)' : ''}`, ...s });
        }, statusEvery)
      : undefined;
  await stop;
  if (status) clearInterval(status);
  await consumer.close();
  const s = consumer.stats();
  print({ level: 'info', message: `stopped after applying ${s.applied} events (${s.duplicates} redelivered duplicates skipped, ${s.deadLettered} dead-lettered, ${s.alertsFired} alerts)`, ...s });
  return EXIT.OK;
}

// exitWhenDrained, not process.exit(): the last log lines reach a slow reader too.
main().then(
  (code) => exitWhenDrained(code),
  (err: unknown) => {
    process.stderr.write(`agenttrace-dashboard: unexpected failure: ${errorMessage(err)}\n`);
    return exitWhenDrained(EXIT.FAILED);
  },
);
