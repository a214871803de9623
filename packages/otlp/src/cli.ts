#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { AgentTraceError, OptionsError, runCli, SETTINGS_HELP, SETTINGS_OPTIONS, describeKafka, errorMessage, sanitizeForTerminal, settingsFromFlags } from '@agenttrace/common';
import { SessionNotFoundError, SessionReader } from '@agenttrace/sessions';
import { EXIT, EXIT_CODES_HELP } from './errors.js';
import { exportEvents } from './export.js';
import type { ModelPrice } from './options.js';
import { OtlpReceiver } from './receiver.js';

interface ServeFlags {
  dedupeRedis?: boolean;
  redisUrl?: string;
  redisPrefix?: string;
  host: string;
  port: string;
  token?: string;
  maxBodyBytes?: string;
  pricing?: string;
  brokers?: string;
  topic?: string;
  s3Endpoint?: string;
  s3Bucket?: string;
  s3Prefix?: string;
  config?: string;
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
  process.stderr.write(`agenttrace-otlp: listening on ${addr.url} → Kafka ${describeKafka(settings.kafka)} topic ${settings.topic}${receiver.options.token ? ' (bearer token required)' : ''}\n`);
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

interface ExportFlags {
  endpoint?: string;
  header?: string[];
  serviceName?: string;
  source: 'auto' | 'redis' | 'kafka' | 'archive';
  brokers?: string;
  topic?: string;
  redisUrl?: string;
  redisPrefix?: string;
  s3Endpoint?: string;
  s3Bucket?: string;
  s3Prefix?: string;
  config?: string;
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

async function exportSession(sessionId: string, flags: ExportFlags): Promise<void> {
  // The standard exporter variables work here too, so one environment serves both directions.
  const endpoint = flags.endpoint ?? process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) throw new OptionsError('--endpoint', 'is required (or set OTEL_EXPORTER_OTLP_ENDPOINT)');
  const envHeaders = (process.env.OTEL_EXPORTER_OTLP_HEADERS ?? '').split(',').filter((h) => h.includes('='));
  const reader = new SessionReader(settingsFromFlags(flags));
  try {
    const read = await reader.read(sessionId, { source: flags.source });
    const result = await exportEvents(read.events, { endpoint, headers: parseHeaders([...envHeaders, ...(flags.header ?? [])]), serviceName: flags.serviceName });
    process.stdout.write(`exported ${result.spans} spans of session ${sanitizeForTerminal(sessionId, { singleLine: true })} (${read.source}) in ${result.requests} request(s)${result.rejected ? `; the backend rejected ${result.rejected}` : ''}\n`);
    if (result.rejected > 0) process.exitCode = EXIT.FAILURE;
  } finally {
    await reader.close();
  }
}

function program(): Command {
  const p = new Command('agenttrace-otlp')
    .description('OpenTelemetry bridge: receive OTLP/HTTP traces from any OTel-instrumented agent and write them as agent events to Kafka.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\nExamples:\n  agenttrace-otlp serve\n  agenttrace-otlp export sess_a1b2c3 --endpoint http://127.0.0.1:4318\n  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_agent.py\n\n${EXIT_CODES_HELP}\n\n${SETTINGS_HELP}`);
  const serveCmd = p
    .command('serve', { isDefault: true })
    .description('Accept POST /v1/traces (protobuf or JSON, gzip) and produce GenAI spans as agent events.')
    .option('--host <address>', 'address to listen on; beyond loopback a token is required', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '4318')
    .option('--token <token>', 'bearer token clients must send (or AGENTTRACE_OTLP_TOKEN)')
    .option('--max-body-bytes <n>', 'largest request body, compressed or not (default 16 MiB)')
    .option('--pricing <file>', 'JSON file {"model": {"inputPerMillion": n, "outputPerMillion": n}} for cost of LLM calls')
    .option('--dedupe-redis', 'remember written span ids in Redis (--redis-url, --redis-prefix): retries are recognised across restarts and receivers');
  for (const [f, d] of SETTINGS_OPTIONS) serveCmd.option(f, d);
  serveCmd.action(serve);

  const exportCmd = p
    .command('export')
    .description('Send one session to an OpenTelemetry backend as OTLP/HTTP spans (GenAI semantic conventions).')
    .argument('<session-id>', 'the session to export')
    .option('--endpoint <url>', 'OTLP/HTTP endpoint, base or full .../v1/traces (or OTEL_EXPORTER_OTLP_ENDPOINT)')
    .option('--header <name=value>', 'request header, repeatable (or OTEL_EXPORTER_OTLP_HEADERS)', headerList)
    .option('--service-name <name>', 'resource service.name of the spans', 'agenttrace')
    .option('--source <source>', 'where to read the session: auto, redis, kafka, archive', 'auto');
  for (const [f, d] of SETTINGS_OPTIONS) exportCmd.option(f, d);
  exportCmd.action(exportSession);
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
