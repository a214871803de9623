#!/usr/bin/env node
import { Command, Option } from 'commander';
import {
  AgentTraceError,
  CLI_EXIT,
  ConfigError,
  FlagValueError,
  OptionsError,
  addSettingsOptions,
  countFlag,
  describeKafka,
  durationFlag,
  errorMessage,
  exitCodesHelp,
  exitWhenDrained,
  guardCliOutput,
  loggerLevelEnabled,
  makeCliLogger,
  makeCliLoggerObject,
  parseDurationMs,
  sanitizeForTerminal,
} from '@agenttrace/common';
import { loadKafmirrorConfig, resolveCluster, type KafmirrorConfigFile } from './clusters.js';
import { EXIT_CODES, exitCodeFor } from './errors.js';
import { failover } from './failover.js';
import { nativeTeardowns } from './kafka-io.js';
import type { LagSnapshot } from './lag.js';
import type { NamingPolicy, ReplicatorOptions } from './options.js';
import { Replicator } from './replicator.js';

const list = (v: string | string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);

const EXIT_HELP = `
${exitCodesHelp('kafmirror')}`;

const CLUSTER_HELP = `
Clusters:
  --source/--target take a broker list (host:port,...) or an alias from the config file:
    {"clusters": {"us-east-1": {"brokers": ["k1.use1:9092"]}, "eu-west-1": {"brokers": ["k1.euw1:9092"]}}}
  Without the flag: AGENTTRACE_SOURCE_BROKERS / AGENTTRACE_TARGET_BROKERS. SASL and TLS come from
  AGENTTRACE_SOURCE_KAFKA_* / AGENTTRACE_TARGET_KAFKA_* (SECURITY_PROTOCOL, SASL_MECHANISM,
  SASL_USERNAME, SASL_PASSWORD, SSL_CA_LOCATION, ...). Credentials are never printed.`;

interface ReplicateFlags {
  source?: string;
  target?: string;
  sourceAlias?: string;
  targetAlias?: string;
  topics?: string;
  topicsRegex?: string;
  naming?: NamingPolicy;
  groups?: string;
  lagThreshold?: number;
  webhook?: string;
  metricsPort?: number;
  metricsHost?: string;
  instanceId?: string;
  checkpointInterval?: number;
  refreshInterval?: number;
  progressInterval?: number;
  maxBatch?: number;
  batchLinger?: number;
  startFrom?: 'earliest' | 'latest';
  replicationFactor?: number;
  createTopics?: boolean;
  config?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

interface FailoverFlags {
  target?: string;
  source?: string;
  targetAlias?: string;
  group?: string[];
  checkpointsTopic?: string;
  dryRun?: boolean;
  config?: string;
  json?: boolean;
}

function fileValue<T>(file: KafmirrorConfigFile, name: string, type: 'string' | 'number' | 'boolean' | 'list'): T | undefined {
  const v = file.kafmirror?.[name];
  if (v === undefined) return undefined;
  const ok = type === 'list' ? typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')) : typeof v === type;
  if (!ok) throw new ConfigError('CONFIG_MALFORMED', `config file: kafmirror.${name} must be a ${type === 'list' ? 'list of strings' : type}`);
  return v as T;
}

/** Builds replicator options with the precedence flag > environment > config file > default. */
function replicateOptions(flags: ReplicateFlags, env: NodeJS.ProcessEnv): ReplicatorOptions {
  const configPath = flags.config ?? env.AGENTTRACE_CONFIG;
  const file = loadKafmirrorConfig(configPath);
  const pick = <T>(...vals: Array<T | undefined>): T | undefined => vals.find((v) => v !== undefined);
  const source = resolveCluster('source', pick(flags.source, fileValue<string>(file, 'source', 'string')), pick(flags.sourceAlias, env.AGENTTRACE_SOURCE_ALIAS), env, file);
  const target = resolveCluster('target', pick(flags.target, fileValue<string>(file, 'target', 'string')), pick(flags.targetAlias, env.AGENTTRACE_TARGET_ALIAS), env, file);
  const fileThreshold = fileValue<string>(file, 'lagThreshold', 'string');
  const envThreshold = env.AGENTTRACE_KAFMIRROR_LAG_THRESHOLD;
  if (flags.topics !== undefined && flags.topicsRegex !== undefined) throw new OptionsError('--topics', 'and --topics-regex cannot be combined');
  // The first level (flag, environment, file) that names topics either way decides.
  const levels: Array<[string | string[] | undefined, string | undefined]> = [
    [flags.topics, flags.topicsRegex],
    [env.AGENTTRACE_KAFMIRROR_TOPICS, env.AGENTTRACE_KAFMIRROR_TOPICS_REGEX],
    [fileValue<string | string[]>(file, 'topics', 'list'), fileValue<string>(file, 'topicsRegex', 'string')],
  ];
  const [topicList, topicsRegex] = levels.find(([t, r]) => t !== undefined || r !== undefined) ?? [undefined, undefined];
  const topics = topicsRegex === undefined ? list(topicList) : undefined;
  const opts: ReplicatorOptions = {
    source: source.conn,
    target: target.conn,
    sourceAlias: source.alias,
    targetAlias: target.alias,
    topics,
    topicsRegex,
    naming: pick(flags.naming, env.AGENTTRACE_KAFMIRROR_NAMING as NamingPolicy | undefined, fileValue<NamingPolicy>(file, 'naming', 'string')),
    groups: list(pick<string | string[]>(flags.groups, env.AGENTTRACE_KAFMIRROR_GROUPS, fileValue<string | string[]>(file, 'groups', 'list'))),
    lagThresholdMs: pick(
      flags.lagThreshold,
      envThreshold !== undefined ? parseDurationMs(envThreshold, 'AGENTTRACE_KAFMIRROR_LAG_THRESHOLD') : undefined,
      fileThreshold !== undefined ? parseDurationMs(fileThreshold, 'kafmirror.lagThreshold') : undefined,
    ),
    webhookUrl: pick(flags.webhook, env.AGENTTRACE_KAFMIRROR_WEBHOOK, fileValue<string>(file, 'webhook', 'string')),
    metricsPort: pick(flags.metricsPort, fileValue<number>(file, 'metricsPort', 'number')),
    metricsHost: pick(flags.metricsHost, fileValue<string>(file, 'metricsHost', 'string')),
    instanceId: pick(flags.instanceId, env.AGENTTRACE_KAFMIRROR_INSTANCE_ID, fileValue<string>(file, 'instanceId', 'string')),
    checkpointIntervalMs: flags.checkpointInterval,
    refreshIntervalMs: flags.refreshInterval,
    maxBatchRecords: pick(flags.maxBatch, fileValue<number>(file, 'maxBatch', 'number')),
    batchLingerMs: flags.batchLinger,
    startFrom: pick(flags.startFrom, fileValue<'earliest' | 'latest'>(file, 'startFrom', 'string')),
    replicationFactor: pick(flags.replicationFactor, fileValue<number>(file, 'replicationFactor', 'number')),
    createTopics: flags.createTopics === false ? false : fileValue<boolean>(file, 'createTopics', 'boolean'),
  };
  if (opts.topics === undefined && opts.topicsRegex === undefined) throw new OptionsError('--topics', 'or --topics-regex is required');
  for (const k of Object.keys(opts) as Array<keyof ReplicatorOptions>) if (opts[k] === undefined) delete opts[k];
  return opts;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function progressLine(snap: LagSnapshot | undefined, records: number, rate: number, perPartition: boolean): string {
  const head = `mirrored ${fmt(records)} records (${fmt(Math.round(rate))}/s)`;
  if (!snap) return `${head} | lag: not sampled yet`;
  const worst = [...snap.partitions].sort((a, b) => b.ms - a.ms || b.records - a.records)[0];
  let line = `${head} | lag ${fmt(snap.totalRecords)} records, max ${secs(snap.maxMs)}${worst && worst.records > 0 ? ` (${worst.topic}[${worst.partition}])` : ''}${snap.alerting ? ' | ALERT: above threshold' : ''}`;
  if (perPartition) line += ` | ${snap.partitions.map((p) => `${p.topic}[${p.partition}]=${p.records}/${secs(p.ms)}`).join(' ')}`;
  return sanitizeForTerminal(line, { singleLine: true });
}

/** Set while replicate runs: a closed stdout then stops it gracefully instead of exiting at once. */
let stopOnBrokenPipe: (() => void) | undefined;

async function runReplicate(flags: ReplicateFlags): Promise<number> {
  const tty = process.stdout.isTTY === true && !flags.json;
  let progressShown = false;
  const clearProgress = () => {
    if (tty && progressShown) {
      process.stdout.write('\r\x1b[K');
      progressShown = false;
    }
  };
  // The command's own lines and the replicator's (through its logger option) print the same way;
  // --verbose is the logger's level, which also decides the per-transaction debug lines.
  const log = makeCliLogger(flags, clearProgress);
  const logger = makeCliLoggerObject(flags, clearProgress);
  let replicator: Replicator;
  try {
    // debug is passed as well because the replicator reads that option as given, not resolved.
    replicator = new Replicator({ ...replicateOptions(flags, process.env), logger, debug: loggerLevelEnabled(logger, 'debug') === true });
  } catch (err) {
    if (err instanceof OptionsError || err instanceof ConfigError || err instanceof FlagValueError) {
      process.stderr.write(`kafmirror: ${err.message}\nRun kafmirror replicate --help for the options.\n`);
      return EXIT_CODES.usage;
    }
    throw err;
  }
  const o = replicator.options;
  log('info', `connecting: source "${o.sourceAlias}" ${describeKafka(o.source)}, target "${o.targetAlias}" ${describeKafka(o.target)}`);
  try {
    await replicator.start();
  } catch (err) {
    process.stderr.write(`kafmirror: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    return exitCodeFor(err);
  }
  if (replicator.metricsPort !== undefined) log('info', 'metrics server listening', { url: `http://${o.metricsHost}:${replicator.metricsPort}/metrics` });

  const interval = flags.progressInterval ?? 5_000;
  let lastRecords = 0;
  let lastTime = Date.now();
  const progress = setInterval(() => {
    const now = Date.now();
    const { records } = replicator.stats;
    const rate = ((records - lastRecords) * 1000) / Math.max(1, now - lastTime);
    lastRecords = records;
    lastTime = now;
    const snap = replicator.lag();
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ time: new Date(now).toISOString(), type: 'progress', records, ratePerSec: Math.round(rate), lagRecords: snap?.totalRecords, maxLagMs: snap?.maxMs, alerting: snap?.alerting, partitions: snap?.partitions })}\n`);
    } else if (tty) {
      process.stdout.write(`\r\x1b[K${progressLine(snap, records, rate, false).slice(0, (process.stdout.columns ?? 120) - 1)}`);
      progressShown = true;
    } else if (!flags.quiet) {
      process.stdout.write(`${new Date(now).toISOString()} ${progressLine(snap, records, rate, true)}\n`);
    }
  }, interval);

  const outcome = await new Promise<{ signal?: string; failure?: Error }>((resolve) => {
    const onSignal = (signal: string) => resolve({ signal });
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    // kafmirror replicate | head: nobody reads the progress any more; stop as on SIGTERM.
    stopOnBrokenPipe = () => onSignal('closed stdout');
    replicator.onFailure((failure) => resolve({ failure }));
  });
  stopOnBrokenPipe = undefined;
  clearInterval(progress);
  clearProgress();
  // A second signal while closing stops at once; the open transaction is aborted by the next start.
  process.once('SIGINT', () => void exitWhenDrained(CLI_EXIT.SIGINT));
  process.once('SIGTERM', () => void exitWhenDrained(CLI_EXIT.SIGTERM));
  if (outcome.signal) log('info', `${outcome.signal}: stopping after the transaction in flight`);
  await replicator.close();
  const s = replicator.stats;
  log('info', 'stopped', { records: s.records, transactions: s.transactions, skipped: s.skipped });
  if (outcome.failure) {
    process.stderr.write(`kafmirror: ${sanitizeForTerminal(errorMessage(outcome.failure), { singleLine: true })}\n`);
    return exitCodeFor(outcome.failure);
  }
  return EXIT_CODES.ok;
}

async function runFailover(flags: FailoverFlags): Promise<number> {
  let target: ReturnType<typeof resolveCluster>;
  let sourceAlias: string;
  try {
    const file = loadKafmirrorConfig(flags.config ?? process.env.AGENTTRACE_CONFIG);
    target = resolveCluster('target', flags.target, flags.targetAlias, process.env, file);
    sourceAlias = flags.source ?? process.env.AGENTTRACE_SOURCE_ALIAS ?? '';
    if (!sourceAlias) throw new OptionsError('--source', 'is required: the alias of the failed source cluster (names the checkpoints topic kafmirror.checkpoints.<alias>)');
    if (!flags.group || flags.group.length === 0) throw new OptionsError('--group', 'is required (repeat it or separate groups by commas)');
  } catch (err) {
    if (err instanceof AgentTraceError) {
      process.stderr.write(`kafmirror: ${err.message}\nRun kafmirror failover --help for the options.\n`);
      return EXIT_CODES.usage;
    }
    throw err;
  }
  const groups = flags.group.flatMap((g) => list(g) ?? []);
  try {
    const results = await failover({
      target: target.conn,
      targetAlias: target.alias,
      sourceAlias,
      groups,
      dryRun: flags.dryRun ?? false,
      ...(flags.checkpointsTopic ? { checkpointsTopic: flags.checkpointsTopic } : {}),
    });
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ target: target.alias, source: sourceAlias, dryRun: flags.dryRun ?? false, groups: results })}\n`);
    } else {
      for (const r of results) {
        process.stdout.write(`${r.committed ? 'committed' : 'would commit (dry run)'} offsets of group "${sanitizeForTerminal(r.group, { singleLine: true })}" on target "${target.alias}":\n`);
        for (const c of r.offsets) {
          process.stdout.write(
            `  ${sanitizeForTerminal(c.targetTopic, { singleLine: true })}[${c.partition}] offset ${c.targetOffset}  (source offset ${c.sourceOffset}, checkpoint of ${new Date(c.time).toISOString()})\n`,
          );
        }
      }
    }
    return EXIT_CODES.ok;
  } catch (err) {
    process.stderr.write(`kafmirror: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    return exitCodeFor(err);
  }
}

function buildProgram(setResult: (p: Promise<number>) => void): Command {
  const program = new Command('kafmirror')
    .description('Mirror agent events from one Kafka cluster to another exactly once, with lag alerts and consumer-group failover.')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  $ kafmirror replicate --source us-east-1 --target eu-west-1 --topics agent-events --lag-threshold 10s --config clusters.json
  $ kafmirror failover --source us-east-1 --target eu-west-1 --group session-dashboard --config clusters.json
${EXIT_HELP}`,
    );

  // --source/--target are kafmirror's own (it talks to two clusters); --config is the shared flag.
  const replicate = program
    .command('replicate')
    .description(
      'Copy topics from the source to the target cluster, exactly once: each batch and the source offsets it reached are ' +
        'committed in one transaction on the target (offsets topic kafmirror.offsets.<source-alias>). Records keep key, ' +
        'value, headers, timestamp and partition, and gain kafmirror-source-* provenance headers; records that came from ' +
        'the target are skipped. Runs until SIGTERM/SIGINT.',
    )
    .option('--source <brokers|alias>', 'source cluster (env AGENTTRACE_SOURCE_BROKERS)')
    .option('--target <brokers|alias>', 'target cluster (env AGENTTRACE_TARGET_BROKERS)')
    .option('--source-alias <name>', 'name of the source in provenance headers and prefixes (default: the alias, or "source")')
    .option('--target-alias <name>', 'name of the target for loop prevention (default: the alias, or "target")')
    .option('--topics <list>', 'topics to mirror, comma separated (env AGENTTRACE_KAFMIRROR_TOPICS)')
    .option('--topics-regex <regex>', 'mirror every topic whose whole name matches, including ones created later')
    .addOption(new Option('--naming <policy>', 'target topic names: keep them, or prefix them with "<source-alias>." (default keep)').choices(['keep', 'prefix']))
    .option('--groups <list>', 'consumer groups whose offsets are translated for failover, comma separated')
    .option('--lag-threshold <duration>', 'alert when the lag of a partition exceeds this, e.g. 10s', durationFlag('--lag-threshold'))
    .option('--webhook <url>', 'POST alerts and recoveries as JSON to this URL (needs --lag-threshold)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on /metrics (0 = any free port)', countFlag('--metrics-port', { zero: true, max: 65535 }))
    .option('--metrics-host <host>', 'address of the metrics server (default 127.0.0.1)')
    .option('--instance-id <id>', 'part of the transactional id; a second process with the same id fences this one (default "default")')
    .option('--checkpoint-interval <duration>', 'how often group offsets are translated (default 5s)', durationFlag('--checkpoint-interval'))
    .option('--refresh-interval <duration>', 'how often new topics and partitions are looked for (default 30s)', durationFlag('--refresh-interval'))
    .option('--progress-interval <duration>', 'how often progress and lag are printed (default 5s)', durationFlag('--progress-interval'))
    .option('--max-batch <n>', 'most records per transaction (default 5000)', countFlag('--max-batch'))
    .option('--batch-linger <duration>', 'keep a transaction open this long for more records (default 0: commit each batch at once)', durationFlag('--batch-linger', { zero: true }))
    .addOption(new Option('--start-from <where>', 'where partitions without stored offsets start (default earliest)').choices(['earliest', 'latest']))
    .option('--replication-factor <n>', 'replication factor of created topics (default: the target broker default)', countFlag('--replication-factor'))
    .option('--no-create-topics', 'do not create or grow target topics');
  addSettingsOptions(replicate, { only: ['config'], describe: { config: 'JSON config file with "clusters" and a "kafmirror" section (env AGENTTRACE_CONFIG)' } })
    .option('--json', 'logs (stderr) and progress (stdout) as one JSON object per line')
    .option('-q, --quiet', 'log only warnings and errors, no progress lines')
    .option('-v, --verbose', 'also log debug details')
    .addHelpText(
      'after',
      `
Examples:
  $ kafmirror replicate --source us-east-1 --target eu-west-1 --topics agent-events --lag-threshold 10s --config clusters.json
  $ kafmirror replicate --source 127.0.0.1:9092 --source-alias primary --target 127.0.0.1:24092 --target-alias dr \\
      --topics-regex 'agent-.*' --naming prefix --groups session-dashboard,archiver --metrics-port 9465
  $ AGENTTRACE_SOURCE_BROKERS=k1:9092 AGENTTRACE_TARGET_BROKERS=k2:9092 kafmirror replicate --topics agent-events --json
${CLUSTER_HELP}

Lag is printed every --progress-interval (one updating line on a terminal, per-partition lines otherwise)
and exported on /metrics as agenttrace_kafmirror_lag_records and agenttrace_kafmirror_lag_seconds.
${EXIT_HELP}`,
    )
    .action((flags: ReplicateFlags) => setResult(runReplicate(flags)));

  const failoverCmd = program
    .command('failover')
    .description(
      'Commit the translated offsets of consumer groups on the target cluster (from kafmirror.checkpoints.<source-alias>), ' +
        'so their consumers, pointed at the target, continue where they stopped on the source. The source is not contacted. ' +
        'Stop the group\'s consumers on the target first.',
    )
    .option('--source <alias>', 'alias of the failed source cluster, as used by replicate (env AGENTTRACE_SOURCE_ALIAS)')
    .option('--target <brokers|alias>', 'target (DR) cluster (env AGENTTRACE_TARGET_BROKERS)')
    .option('--target-alias <name>', 'name of the target in messages')
    .option('--group <id...>', 'consumer group(s) to fail over; repeat or separate by commas')
    .option('--checkpoints-topic <name>', 'checkpoints topic (default kafmirror.checkpoints.<source-alias>)')
    .option('--dry-run', 'print the offsets without committing them');
  addSettingsOptions(failoverCmd, { only: ['config'], describe: { config: 'JSON config file with "clusters" (env AGENTTRACE_CONFIG)' } })
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ kafmirror failover --source us-east-1 --target eu-west-1 --group session-dashboard --config clusters.json
  $ kafmirror failover --source primary --target 127.0.0.1:24092 --group session-dashboard,archiver --dry-run --json
${CLUSTER_HELP}
${EXIT_HELP}`,
    )
    .action((flags: FailoverFlags) => setResult(runFailover(flags)));
  return program;
}

async function main(): Promise<number> {
  guardCliOutput({
    name: 'kafmirror',
    onBrokenPipe: () => {
      if (!stopOnBrokenPipe) return false;
      stopOnBrokenPipe();
      return true;
    },
  });
  let result: Promise<number> | undefined;
  const program = buildProgram((p) => (result = p));
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return EXIT_CODES.ok;
    return EXIT_CODES.usage;
  }
  if (!result) {
    program.outputHelp({ error: true });
    return EXIT_CODES.usage;
  }
  return result;
}

/**
 * Exits only once no librdkafka client is still being torn down in the background: exiting under
 * a running rd_kafka_destroy can end the process with SIGSEGV instead of its exit code.
 * It ends through exitWhenDrained, so a reader slower than kafmirror still gets every line.
 */
async function exit(code: number): Promise<never> {
  if (!(await nativeTeardowns())) process.stderr.write('kafmirror: a Kafka client was still closing after 30 s; exiting anyway\n');
  return exitWhenDrained(code);
}

main().then(
  (code) => exit(code),
  (err: unknown) => {
    process.stderr.write(`kafmirror: unexpected failure: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    return exit(EXIT_CODES.failed);
  },
);
