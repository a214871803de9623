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
  describeS3,
  durationFlag,
  errorMessage,
  exitCodeForError,
  exitCodesHelp,
  exitWhenDrained,
  guardCliOutput,
  loadConfigFile,
  makeCliLogger,
  makeCliLoggerObject,
  sanitizeForTerminal,
  settingsFromFlags,
  settingsHelp,
  signalExitCode,
  type SettingsFlagName,
  type SettingsFlags,
} from '@agenttrace/common';
import { Archiver } from './archiver.js';
import { ArchiverError } from './errors.js';
import type { ArchiverOptions, ParquetCompression } from './options.js';

// The archiver's part of the table every agenttrace command shares (docs/cli.md).
const EXIT_OK = CLI_EXIT.OK;
const EXIT_FAILED = CLI_EXIT.FAILURE;
const EXIT_USAGE = CLI_EXIT.USAGE;
const EXIT_CLOSE_TIMEOUT = CLI_EXIT.CLOSE_TIMEOUT;

/** The code of a start-up failure: unreachable Kafka or S3 (4), refused credentials (5), metrics port in use (9), else 1. */
function startFailureCode(err: unknown): number {
  const code = exitCodeForError(err);
  if (code === CLI_EXIT.UNAVAILABLE || code === CLI_EXIT.AUTH_FAILED || code === CLI_EXIT.PORT_IN_USE) return code;
  // Start-up retries what may pass (a broker down, a timeout) until --start-timeout: still failing then is "unreachable".
  if (err instanceof ArchiverError && err.code === 'CONSUMER_FAILED' && err.retryable) return CLI_EXIT.UNAVAILABLE;
  return EXIT_FAILED;
}

/** The shared connection flags the archiver takes (Kafka and S3; no Redis). */
const SETTINGS: readonly SettingsFlagName[] = ['brokers', 'topic', 's3Endpoint', 's3Bucket', 's3Prefix', 'config'];

const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const size = (flag: string) => (v: string): number => {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(v.trim());
  const unit = SIZE_UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) throw new FlagValueError(`${flag} must be a size like 134217728, 128MiB or 64m`);
  return Number(m[1]) * unit;
};

interface Flags extends SettingsFlags {
  group?: string;
  instanceId?: string;
  dlqTopic?: string;
  rollRows?: number;
  rollBytes?: number;
  rollAge?: number;
  rowGroupRows?: number;
  compression?: ParquetCompression;
  multipartThreshold?: number;
  closeTimeout?: number;
  startTimeout?: number;
  encodeWorkers?: number;
  dlqGiveUp?: number;
  metricsPort?: number;
  metricsHost?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

const program = addSettingsOptions(new Command('agenttrace-archiver'), {
  only: SETTINGS,
  describe: { topic: 'topic to archive', config: 'JSON config file; archiver settings under "archiver"' },
})
  .description(
    'Archive agent events from Kafka to Parquet files on S3, exactly once. Files are ' +
      '<prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/part-<partition>-<firstOffset>-<lastOffset>.parquet by the hour of ' +
      "each event's timestamp (UTC). Offsets are committed (consumer group archiver) only after the file covering " +
      'them is stored; invalid records go to the dead-letter topic. Runs until SIGTERM/SIGINT, then closes the ' +
      'open files, uploads them and commits.',
  )
  .option('--group <id>', 'consumer group (env AGENTTRACE_ARCHIVER_GROUP; default archiver)')
  .option('--instance-id <id>', 'static group member id, e.g. the pod name: a restart resumes at once (env AGENTTRACE_ARCHIVER_INSTANCE_ID)')
  .option('--dlq-topic <name>', 'dead-letter topic (default agent-events.dlq)')
  .option('--roll-rows <n>', 'roll a file after this many records (default 200000)', countFlag('--roll-rows'))
  .option('--roll-bytes <size>', 'roll a file when its raw JSON reaches this size (default 128MiB)', size('--roll-bytes'))
  .option('--roll-age <duration>', 'roll a file this long after its first record (default 5m)', durationFlag('--roll-age'))
  .option('--row-group-rows <n>', 'rows per Parquet row group (default 100000)', countFlag('--row-group-rows'))
  .addOption(new Option('--compression <codec>', 'Parquet compression (default snappy)').choices(['snappy', 'gzip', 'none']))
  .option('--multipart-threshold <size>', 'files above this size use multipart upload (default 64MiB, min 5MiB)', size('--multipart-threshold'))
  .option('--close-timeout <duration>', 'how long shutdown waits for uploads (default 60s)', durationFlag('--close-timeout'))
  .option('--start-timeout <duration>', 'how long start-up retries Kafka (broker down, topic creation timing out) before exit 4 (default 5m)', durationFlag('--start-timeout'))
  .option('--dlq-give-up <duration>', 'skip a bad record the dead-letter topic keeps refusing after this long, 0 = never (default 15m)', durationFlag('--dlq-give-up', { zero: true }))
  .option('--encode-workers <n>', 'worker threads that validate and encode, 0 = main thread (env AGENTTRACE_ARCHIVER_ENCODE_WORKERS; default 2)', countFlag('--encode-workers', { zero: true }))
  .option('--metrics-port <port>', 'serve Prometheus metrics on this port (0 = any free port)', countFlag('--metrics-port', { zero: true, max: 65535 }))
  .option('--metrics-host <host>', 'address of the metrics server (default 127.0.0.1)')
  .option('--json', 'log one JSON object per line')
  .option('-v, --verbose', 'also log each upload start and commit')
  .option('-q, --quiet', 'log only warnings and errors')
  .addHelpText(
    'after',
    `
Examples:
  $ agenttrace-archiver
  $ agenttrace-archiver --brokers kafka-1:9092 --s3-bucket agent-archive --s3-prefix prod --metrics-port 9464
  $ agenttrace-archiver --s3-endpoint http://127.0.0.1:4568 --roll-age 1m --roll-rows 50000 --json
  $ AGENTTRACE_CONFIG=archiver.json agenttrace-archiver      # {"brokers":"k:9092","archiver":{"rollAgeMs":60000}}

${exitCodesHelp('agenttrace-archiver')}

${settingsHelp({ only: SETTINGS })}`,
  );

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ConfigError('CONFIG_MALFORMED', `${name} must be an integer, got "${v}"`);
  return n;
}

function buildOptions(flags: Flags, env: NodeJS.ProcessEnv): ArchiverOptions {
  const settings = settingsFromFlags(flags, env);
  const configPath = flags.config ?? env.AGENTTRACE_CONFIG;
  const file = (configPath ? loadConfigFile(configPath).archiver : undefined) as Partial<ArchiverOptions> | undefined;
  if (file !== undefined && (typeof file !== 'object' || file === null)) throw new ConfigError('CONFIG_MALFORMED', `config file ${configPath}: "archiver" must be an object`);
  const pick = <T>(flag: T | undefined, fromEnv: T | undefined, fromFile: T | undefined): T | undefined => flag ?? fromEnv ?? fromFile;
  const opts: ArchiverOptions = {
    kafka: settings.kafka,
    topic: settings.topic,
    s3: settings.s3,
    groupId: pick(flags.group, env.AGENTTRACE_ARCHIVER_GROUP, file?.groupId),
    instanceId: pick(flags.instanceId, env.AGENTTRACE_ARCHIVER_INSTANCE_ID, file?.instanceId),
    dlqTopic: pick(flags.dlqTopic, env.AGENTTRACE_DLQ_TOPIC, file?.dlqTopic),
    rollRows: pick(flags.rollRows, envInt(env, 'AGENTTRACE_ARCHIVER_ROLL_ROWS'), file?.rollRows),
    rollBytes: pick(flags.rollBytes, envInt(env, 'AGENTTRACE_ARCHIVER_ROLL_BYTES'), file?.rollBytes),
    rollAgeMs: pick(flags.rollAge, envInt(env, 'AGENTTRACE_ARCHIVER_ROLL_AGE_MS'), file?.rollAgeMs),
    rowGroupRows: pick(flags.rowGroupRows, undefined, file?.rowGroupRows),
    compression: pick(flags.compression, env.AGENTTRACE_ARCHIVER_COMPRESSION as ParquetCompression | undefined, file?.compression),
    multipartThresholdBytes: pick(flags.multipartThreshold, envInt(env, 'AGENTTRACE_ARCHIVER_MULTIPART_THRESHOLD'), file?.multipartThresholdBytes),
    closeTimeoutMs: pick(flags.closeTimeout, envInt(env, 'AGENTTRACE_ARCHIVER_CLOSE_TIMEOUT_MS'), file?.closeTimeoutMs),
    encodeWorkers: pick(flags.encodeWorkers, envInt(env, 'AGENTTRACE_ARCHIVER_ENCODE_WORKERS'), file?.encodeWorkers),
    startTimeoutMs: pick(flags.startTimeout, envInt(env, 'AGENTTRACE_ARCHIVER_START_TIMEOUT_MS'), file?.startTimeoutMs),
    dlqGiveUpMs: pick(flags.dlqGiveUp, envInt(env, 'AGENTTRACE_ARCHIVER_DLQ_GIVE_UP_MS'), file?.dlqGiveUpMs),
    metricsPort: pick(flags.metricsPort, envInt(env, 'AGENTTRACE_ARCHIVER_METRICS_PORT'), file?.metricsPort),
    metricsHost: pick(flags.metricsHost, env.AGENTTRACE_ARCHIVER_METRICS_HOST, file?.metricsHost),
  };
  for (const k of Object.keys(opts) as Array<keyof ArchiverOptions>) if (opts[k] === undefined) delete opts[k];
  return opts;
}

/** Set once the archiver runs: a closed stdout (agenttrace-archiver --json | head) then stops it as SIGTERM would. */
let stopOnBrokenPipe: (() => void) | undefined;

async function main(): Promise<number> {
  guardCliOutput({
    name: 'agenttrace-archiver',
    onBrokenPipe: () => {
      if (!stopOnBrokenPipe) return false;
      stopOnBrokenPipe();
      return true;
    },
  });
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(process.argv);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return EXIT_OK;
    return EXIT_USAGE;
  }
  const flags = program.opts<Flags>();
  // The command's own lines and the archiver's (through its logger option) print the same way.
  const log = makeCliLogger(flags);
  let archiver: Archiver;
  try {
    archiver = new Archiver({ ...buildOptions(flags, process.env), logger: makeCliLoggerObject(flags) });
  } catch (err) {
    if (err instanceof OptionsError || err instanceof ConfigError) {
      process.stderr.write(`agenttrace-archiver: ${err.message}\nRun agenttrace-archiver --help for the options.\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const o = archiver.options;
  log('info', `archiving topic ${o.topic} from ${describeKafka(o.kafka)} to ${describeS3(o.s3)}`);
  // Start-up may retry Kafka for minutes: a signal meanwhile stops it cleanly instead of killing the process.
  let stoppedWhileStarting: string | undefined;
  const stopStarting = (signal: string) => () => {
    stoppedWhileStarting = signal;
    void archiver.close().catch(() => undefined);
  };
  const onTerm = stopStarting('SIGTERM');
  const onInt = stopStarting('SIGINT');
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);
  try {
    await archiver.start();
  } catch (err) {
    if (stoppedWhileStarting) {
      log('info', `${stoppedWhileStarting} received while starting; stopped`);
      return EXIT_OK;
    }
    process.stderr.write(`agenttrace-archiver: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    return startFailureCode(err);
  } finally {
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGINT', onInt);
  }
  if (archiver.metricsPort !== undefined) log('info', 'metrics server listening', { url: `http://${o.metricsHost}:${archiver.metricsPort}/metrics` });

  // A signal that came while start() was finishing has already begun closing the archiver: waiting
  // for another one would hang. It stops the archiver like a signal received while running.
  const outcome = await new Promise<{ signal?: string; failure?: Error }>((resolve) => {
    if (stoppedWhileStarting) {
      resolve({ signal: stoppedWhileStarting });
      return;
    }
    process.once('SIGTERM', () => resolve({ signal: 'SIGTERM' }));
    process.once('SIGINT', () => resolve({ signal: 'SIGINT' }));
    stopOnBrokenPipe = () => resolve({ signal: 'closed stdout' });
    void archiver.failed.then((failure) => resolve({ failure }));
  });
  stopOnBrokenPipe = undefined;
  if (outcome.signal) log('info', `${outcome.signal} received; closing open files`);
  // A second signal while closing means "now": exit without waiting for uploads (nothing
  // uncommitted is lost; those ranges are archived again on restart).
  process.once('SIGTERM', () => void exitWhenDrained(signalExitCode('SIGTERM')));
  process.once('SIGINT', () => void exitWhenDrained(signalExitCode('SIGINT')));
  try {
    await archiver.close();
  } catch (err) {
    if (err instanceof ArchiverError && err.code === 'CLOSE_TIMEOUT') {
      process.stderr.write(`agenttrace-archiver: ${err.message}\n`);
      return EXIT_CLOSE_TIMEOUT;
    }
    process.stderr.write(`agenttrace-archiver: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    return EXIT_FAILED;
  }
  const s = archiver.stats;
  if (flags.json) process.stdout.write(`${JSON.stringify({ files: s.files, rows: s.rows, bytes: s.bytes, dlq: s.dlq, uploadRetries: s.uploadRetries, committed: s.committed })}\n`);
  else log('info', `stopped: ${s.files} files, ${s.rows} events, ${s.dlq} dead-lettered`);
  if (outcome.failure) {
    process.stderr.write(`agenttrace-archiver: ${sanitizeForTerminal(outcome.failure.message, { singleLine: true })}\n`);
    return EXIT_FAILED;
  }
  return EXIT_OK;
}

// Everything is closed by then; exitWhenDrained waits for the output, then exits so that a
// lingering native handle does not keep the process alive.
main().then(
  (code) => exitWhenDrained(code),
  (err: unknown) => {
    // Expected failures carry a code and a message that says what to do; anything else is a bug.
    const msg = err instanceof AgentTraceError ? err.message : `unexpected failure: ${errorMessage(err)}`;
    process.stderr.write(`agenttrace-archiver: ${sanitizeForTerminal(msg, { singleLine: true })}\n`);
    return exitWhenDrained(EXIT_FAILED);
  },
);
