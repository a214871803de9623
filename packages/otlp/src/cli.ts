#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { AgentTraceError, OptionsError, addSettingsOptions, makeCliLogger, runCli, SETTINGS_HELP, describeKafka, errorMessage, sanitizeForTerminal, settingsFromFlags, type SettingsFlags } from '@agenttrace/common';
import { SessionNotFoundError, SessionReader } from '@agenttrace/sessions';
import { EXIT, EXIT_CODES_HELP } from './errors.js';
import { exportEvents } from './export.js';
import { OtlpForwarder } from './forwarder.js';
import type { ModelPrice } from './options.js';
import { OtlpReceiver } from './receiver.js';

interface ServeFlags extends SettingsFlags {
  dedupeRedis?: boolean;
  host: string;
  port: string;
  grpcPort: string;
  grpc: boolean;
  token?: string;
  maxBodyBytes?: string;
  pricing?: string;
}

function intFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new OptionsError(flag, `must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function pricingFile(path: string | undefined): Record<string, ModelPrice> | undefined {
  if (path === undefined) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, ModelPrice>;
  } catch (err) {
    throw new OptionsError('--pricing', `could not be read as JSON from ${path}: ${errorMessage(err)}`);
  }
}

async function serve(flags: ServeFlags): Promise<void> {
  const settings = settingsFromFlags(flags);
  const receiver = new OtlpReceiver({
    host: flags.host,
    port: intFlag(flags.port, '--port'),
    grpcPort: flags.grpc ? intFlag(flags.grpcPort, '--grpc-port') : undefined,
    token: flags.token,
    maxBodyBytes: intFlag(flags.maxBodyBytes, '--max-body-bytes'),
    pricing: pricingFile(flags.pricing),
    ...(flags.dedupeRedis ? { dedupeRedis: { url: settings.redisUrl, prefix: settings.redisPrefix } } : {}),
    publisher: {
      kafka: settings.kafka,
      topic: settings.topic,
      // Offload oversized fields only to a bucket that was asked for.
      ...(flags.s3Bucket !== undefined || process.env.AGENTTRACE_S3_BUCKET !== undefined ? { s3: settings.s3 } : {}),
    },
  });
  const addr = await receiver.listen();
  process.stderr.write(`agenttrace-otlp: listening on ${addr.url}${addr.grpc ? ` and OTLP/gRPC ${addr.grpc.url}` : ''} → Kafka ${describeKafka(settings.kafka)} topic ${settings.topic}${receiver.options.token ? ' (bearer token required)' : ''}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await receiver.close();
  const s = receiver.stats();
  const cpu = process.cpuUsage();
  process.stderr.write(
    `agenttrace-otlp: stopped; ${s.spansReceived} spans received, ${s.eventsAccepted} events written, ${s.duplicates} retried, ${s.droppedNonGenAi} non-GenAI dropped, ${s.rejected} rejected; cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s\n`,
  );
}

interface ExportFlags extends SettingsFlags {
  endpoint?: string;
  header?: string[];
  serviceName?: string;
  source: 'auto' | 'redis' | 'kafka' | 'archive';
}

function headerList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseHeaders(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list ?? []) {
    const i = h.indexOf('=');
    if (i <= 0) throw new OptionsError('--header', `must be name=value, got ${JSON.stringify(h.slice(0, 64))}`);
    out[h.slice(0, i).trim()] = decodeURIComponent(h.slice(i + 1).trim());
  }
  return out;
}

/**
 * The endpoint and headers of the OTLP commands: the flags, else the standard exporter variables,
 * so one environment serves both directions. Header values are never printed.
 */
function otlpTarget(flags: { endpoint?: string; header?: string[] }, env: NodeJS.ProcessEnv = process.env): { endpoint: string; headers: Record<string, string> } {
  const endpoint = flags.endpoint ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) throw new OptionsError('--endpoint', 'is required (or set OTEL_EXPORTER_OTLP_ENDPOINT)');
  const fromEnv = (name: string) => (env[name] ?? '').split(',').filter((h) => h.includes('='));
  // The traces-specific variable wins over the general one, and flags over both (later entries win).
  const headers = parseHeaders([...fromEnv('OTEL_EXPORTER_OTLP_HEADERS'), ...fromEnv('OTEL_EXPORTER_OTLP_TRACES_HEADERS'), ...(flags.header ?? [])]);
  return { endpoint, headers };
}

async function exportSession(sessionId: string, flags: ExportFlags): Promise<void> {
  const { endpoint, headers } = otlpTarget(flags);
  const reader = new SessionReader(settingsFromFlags(flags));
  try {
    const read = await reader.read(sessionId, { source: flags.source });
    const result = await exportEvents(read.events, { endpoint, headers, serviceName: flags.serviceName });
    process.stdout.write(`exported ${result.spans} spans of session ${sanitizeForTerminal(sessionId, { singleLine: true })} (${read.source}) in ${result.requests} request(s)${result.rejected ? `; the backend rejected ${result.rejected}` : ''}\n`);
    if (result.rejected > 0) process.exitCode = EXIT.FAILURE;
  } finally {
    await reader.close();
  }
}

/** The shared connection flags of forward: Kafka, and S3 for offloaded payloads (no Redis). */
type ForwardSettingsFlags = Pick<SettingsFlags, 'brokers' | 'topic' | 's3Endpoint' | 's3Bucket' | 'config'>;

interface ForwardFlags extends ForwardSettingsFlags {
  endpoint?: string;
  header?: string[];
  serviceName?: string;
  group: string;
  startFrom: string;
  batchSize?: string;
  maxInFlight?: string;
  lingerMs?: string;
  dlqTopic?: string;
  dlq: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

async function forward(flags: ForwardFlags): Promise<void> {
  const { endpoint, headers } = otlpTarget(flags);
  const settings = settingsFromFlags(flags);
  const log = makeCliLogger(flags);
  if (flags.startFrom !== 'earliest' && flags.startFrom !== 'latest') throw new OptionsError('--start-from', `must be earliest or latest, got ${JSON.stringify(flags.startFrom)}`);
  const forwarder = new OtlpForwarder({
    endpoint,
    headers,
    serviceName: flags.serviceName,
    kafka: settings.kafka,
    topic: settings.topic,
    group: flags.group,
    startFrom: flags.startFrom,
    batchSize: intFlag(flags.batchSize, '--batch-size'),
    maxInFlight: intFlag(flags.maxInFlight, '--max-in-flight'),
    lingerMs: intFlag(flags.lingerMs, '--linger-ms'),
    dlqTopic: flags.dlq ? flags.dlqTopic : false,
    // Offloaded fields are fetched back only from an S3 that was named (as serve offloads only to one).
    ...(flags.s3Endpoint ?? flags.s3Bucket ?? process.env.AGENTTRACE_S3_ENDPOINT ?? process.env.AGENTTRACE_S3_BUCKET ? { s3: settings.s3 } : {}),
    onLog: (level, message) => log(level, message),
  });
  // A signal during start() must stop the forwarder too, not be lost.
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSignal = (sig: string) => {
    log('info', `${sig} received; finishing the requests in flight`);
    stop();
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  let failed: unknown;
  const started = forwarder.start().catch((err: unknown) => {
    failed = err;
    stop();
  });
  await stopped;
  await started;
  await forwarder.close();
  if (failed !== undefined) throw failed;
  const s = forwarder.stats();
  log(
    'info',
    `stopped; ${s.consumed} records read, ${s.spansSent} spans sent in ${s.requests} requests, ${s.retries} retries, ${s.badRecords} bad records, ${s.refused} refused by the backend, ${s.deadLettered} dead-lettered, ${s.dropped} skipped, ${s.rejectedByBackend} rejected in partial success`,
  );
}

function program(): Command {
  const p = new Command('agenttrace-otlp')
    .description('OpenTelemetry bridge: receive OTLP/HTTP and OTLP/gRPC traces from any OTel-instrumented agent and write them as agent events to Kafka; send sessions, or the whole topic continuously, to any OTLP backend.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\nExamples:\n  agenttrace-otlp serve\n  agenttrace-otlp serve --port 4318 --grpc-port 4317\n  OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 python my_agent.py\n  agenttrace-otlp export sess_a1b2c3 --endpoint http://127.0.0.1:4318\n  agenttrace-otlp forward --endpoint http://127.0.0.1:4318\n  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_agent.py\n\n${EXIT_CODES_HELP}\n\n${SETTINGS_HELP}`);
  const serveCmd = p
    .command('serve', { isDefault: true })
    .description('Accept OTLP/HTTP (POST /v1/traces, protobuf or JSON, gzip) and OTLP/gRPC traces and produce GenAI spans as agent events; each request is answered only after Kafka acknowledged it.')
    .option('--host <address>', 'address to listen on; beyond loopback a token is required', '127.0.0.1')
    .option('--port <port>', 'OTLP/HTTP port to listen on', '4318')
    .option('--grpc-port <port>', 'OTLP/gRPC port to listen on (same host)', '4317')
    .option('--no-grpc', 'OTLP/HTTP only')
    .option('--token <token>', 'bearer token clients must send (or AGENTTRACE_OTLP_TOKEN)')
    .option('--max-body-bytes <n>', 'largest request body, compressed or not (default 16 MiB)')
    .option('--pricing <file>', 'JSON file {"model": {"inputPerMillion": n, "outputPerMillion": n}} for cost of LLM calls')
    .option('--dedupe-redis', 'remember written span ids in Redis (--redis-url, --redis-prefix): retries are recognised across restarts and receivers');
  addSettingsOptions(serveCmd);
  serveCmd.action(serve);

  const exportCmd = p
    .command('export')
    .description('Send one session to an OpenTelemetry backend as OTLP/HTTP spans (GenAI semantic conventions).')
    .argument('<session-id>', 'the session to export')
    .option('--endpoint <url>', 'OTLP/HTTP endpoint, base or full .../v1/traces (or OTEL_EXPORTER_OTLP_ENDPOINT)')
    .option('--header <name=value>', 'request header, repeatable (or OTEL_EXPORTER_OTLP_HEADERS)', headerList)
    .option('--service-name <name>', 'resource service.name of the spans', 'agenttrace')
    .option('--source <source>', 'where to read the session: auto, redis, kafka, archive', 'auto');
  addSettingsOptions(exportCmd);
  exportCmd.action(exportSession);

  const forwardCmd = p
    .command('forward')
    .description(
      'Follow the agent-events topic and send every event as an OTLP/HTTP span to a backend, continuously. Offsets are committed only after the backend answered 2xx, so a stop or crash loses nothing; resent spans keep their ids.',
    )
    .option('--endpoint <url>', 'OTLP/HTTP endpoint, base or full .../v1/traces (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT)')
    .option('--header <name=value>', 'request header, repeatable (or OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS); never printed', headerList)
    .option('--service-name <name>', 'resource service.name of the spans', 'agenttrace')
    .option('--group <id>', 'consumer group; its committed offsets say what the backend has', 'agenttrace-otlp-forward')
    .option('--start-from <where>', 'where a new group starts: earliest or latest', 'earliest')
    .option('--batch-size <n>', 'spans per request (default 512)')
    .option('--max-in-flight <n>', 'requests out at once; when all are, reading pauses (default 4)')
    .option('--linger-ms <ms>', 'how long a partly filled request waits for more spans (default 200)')
    .option('--dlq-topic <name>', 'dead-letter topic for records that are not events or that the backend refuses', 'agent-events.dlq')
    .option('--no-dlq', 'count and log such records instead of dead-lettering them')
    .option('--json', 'log one JSON object per line')
    .option('--quiet', 'log warnings and errors only')
    .option('--verbose', 'log debug lines too')
    .addHelpText(
      'after',
      `\nExamples:\n  agenttrace-otlp forward --endpoint http://127.0.0.1:4318\n  OTEL_EXPORTER_OTLP_ENDPOINT=https://cloud.langfuse.com/api/public/otel OTEL_EXPORTER_OTLP_HEADERS="Authorization=Basic%20..." agenttrace-otlp forward --group langfuse-export\n  agenttrace-otlp forward --endpoint http://tempo:4318 --start-from latest --no-dlq\n\nSIGTERM or SIGINT stops reading, lets the requests in progress get their answers (up to 15 s; a failed one\nis not retried but left for the next start), commits what the backend took and exits.\nRetries: 408, 429, 5xx and unreachable endpoints are retried with backoff, honouring Retry-After; 401, 403\nand 404 too (fix the token or URL: nothing is skipped meanwhile). Other 4xx refuse the content: the\nrequest is split until the refused spans are alone, and their records go to the dead-letter topic.`,
    );
  addSettingsOptions(forwardCmd, { only: ['brokers', 'topic', 's3Endpoint', 's3Bucket', 'config'] });
  forwardCmd.action(forward);
  return p;
}

function exitCodeFor(err: unknown): number {
  if (err instanceof OptionsError) return EXIT.USAGE;
  if (err instanceof SessionNotFoundError) return EXIT.NOT_FOUND;
  if (err instanceof AgentTraceError && err.retryable) return EXIT.UNAVAILABLE;
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' || (err as NodeJS.ErrnoException).code === 'EACCES') return EXIT.USAGE;
  return EXIT.FAILURE;
}

await runCli(program(), { name: 'agenttrace-otlp', exitCodeFor });
