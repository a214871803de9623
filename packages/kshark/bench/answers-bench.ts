/**
 * The three questions at scale, timed as a user asks them (spawning the real kshark binary):
 * --sessions sessions of about --events-per-session events each (1M events in 10k sessions by
 * default), traced through AgentTracer into a 20-partition topic, with one incident session hidden
 * in the middle of the load (the demo's payment retry loop, 847 calls without backoff). The
 * dashboard consumer fills Redis and the archiver writes Parquet to S3, as in production.
 *
 *   scripts/bench answers [--sessions 10000] [--events-per-session 100] [--runs 3] [--concurrency 200] [--keep]
 *
 * --keep leaves the topic, the Redis prefix and the S3 prefix in place and prints the kshark flags
 * that reach them, to time other commands against the same data (remove them by hand afterwards).
 *
 * Each question is answered from Redis, from Kafka only, and from the archive, and each answer is
 * checked (the incident must be the one found). Targets (issue #16): <= 1 s each from Redis,
 * <= 1 s Kafka-only replay, <= 5 s from the archive. Uses its own topic, Redis prefix, S3 prefix
 * and cache directory, and removes them afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client, redisKeys, s3OptionsFromEnv } from '@agenttrace/common';
import { Archiver } from '@agenttrace/archiver';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { AgentTracer, shutdownTracing, type TracerError } from '@agenttrace/tracer';
import { runIncidentSession } from '../../../examples/invoice-agent/agent.js';
import { createTopic, deleteTopic, dropRedisPrefix, eventually, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10000' },
    'events-per-session': { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '200' },
    retries: { type: 'string', default: '847' },
    keep: { type: 'boolean', default: false },
  },
});
const SESSIONS = Number(values.sessions);
const PER_SESSION = Number(values['events-per-session']);
const RUNS = Number(values.runs);
const CONCURRENCY = Number(values.concurrency);
const RETRIES = Number(values.retries);
const PARTITIONS = 20;

const topic = uniqueName('bench-answers');
const redisPrefix = `${uniqueName('bench-answers')}:`;
const s3Prefix = uniqueName('bench-answers');
const cacheDir = mkdtempSync(join(tmpdir(), 'bench-answers-cache-'));
const CLI = join(repoRoot, 'packages', 'kshark', 'bin', 'kshark.js');
const MODEL = 'claude-sonnet-4-5';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One ordinary session: a loop of invoice-like steps until it has about PER_SESSION events. */
async function ordinarySession(i: number, onError: (e: TracerError) => void): Promise<void> {
  const tracer = new AgentTracer({ sessionId: `sess_ans_${String(i).padStart(6, '0')}`, agentId: 'invoice-agent', topic, onError, handleExit: false });
  // session_start + 5 events per round + session_end.
  const rounds = Math.max(1, Math.round((PER_SESSION - 2) / 5));
  for (let k = 0; k < rounds; k++) {
    await tracer.trackToolCall('crm.get_customer', { customer_id: `cus_${i}_${k}` }, () => ({ id: `cus_${i}_${k}`, plan: 'growth' }));
    await tracer.trackLlmCall({ model: MODEL, input: `Summarize the payment history of customer ${i}, round ${k}` }, () => ({ text: 'pays on time' }), {
      usage: () => ({ inputTokens: 900, outputTokens: 150 }),
      reasoning: 'Need the history before deciding on terms',
    });
    tracer.logDecision({ action: 'standard_terms', reasoning: 'No late payments', confidence: 0.9, options: ['apply_loyalty_discount', 'standard_terms'] });
    await tracer.trackToolCall('stripe.create_invoice', { customer_id: `cus_${i}_${k}`, amount: 1000 + k }, () => ({ invoice_id: `in_${i}_${k}` }));
    await tracer.trackToolCall('email.send', { to: `billing+${i}@example.com` }, () => ({ message_id: `m_${i}_${k}` }));
  }
  tracer.endSession({ status: 'ok' });
  await tracer.close();
}

interface Timed {
  ms: number[];
  stdout: string;
}

function runKshark(args: string[]): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, AGENTTRACE_CACHE_DIR: cacheDir } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: performance.now() - t0, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

async function timed(args: string[], runs = RUNS): Promise<Timed> {
  const ms: number[] = [];
  let stdout = '';
  for (let i = 0; i < runs; i++) {
    const r = await runKshark(args);
    if (r.code !== 0) throw new Error(`kshark ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    ms.push(r.ms);
    stdout = r.stdout;
  }
  return { ms, stdout };
}

async function main(): Promise<void> {
  const redis = new Redis(stack.redisUrl);
  const s3Options = { ...s3OptionsFromEnv(), prefix: s3Prefix };
  const s3 = createS3Client(s3Options as Parameters<typeof createS3Client>[0]);
  let consumer: DashboardConsumer | undefined;
  let archiver: Archiver | undefined;
  const rows: Array<[string, string, Timed, string]> = [];
  const incidentId = `sess_ans_incident_${Date.now().toString(36)}`;
  try {
    await createTopic(topic, PARTITIONS);
    consumer = new DashboardConsumer({ kafka: { brokers: stack.brokers }, topic, group: uniqueName('bench-answers'), redisUrl: stack.redisUrl, redisPrefix, dlqTopic: `${topic}.dlq`, alertsTopic: `${topic}.alerts`, metricsPort: false, alerts: false });
    archiver = new Archiver({ kafka: { brokers: stack.brokers }, topic, groupId: uniqueName('bench-answers-arch'), dlqTopic: `${topic}.dlq`, s3: { ...s3Options }, metricsPort: 0 });
    await consumer.start();
    await archiver.start();

    const errors = new Map<string, number>();
    const onError = (e: TracerError) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1);
    const t0 = performance.now();
    let next = 0;
    let incident: Promise<void> | undefined;
    const worker = async () => {
      while (next < SESSIONS) {
        const i = next++;
        if (i === Math.floor(SESSIONS / 2)) incident = runIncidentSession({ sessionId: incidentId, topic, seed: 42, onTracerError: onError, retries: RETRIES });
        await ordinarySession(i, onError);
        if (i % 1000 === 0) process.stderr.write(`traced ${i}/${SESSIONS} sessions\n`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await incident;
    await shutdownTracing();
    const traceSecs = (performance.now() - t0) / 1000;
    if (errors.size > 0) throw new Error(`the tracer reported ${[...errors].map(([k, n]) => `${k} x${n}`).join(', ')}`);

    await eventually('every session in Redis', async () => (await redis.zcard(redisKeys(redisPrefix).byStart())) === SESSIONS + 1, 1_800_000, 2000);
    const total = await eventually('every event applied', async () => {
      const s = consumer!.stats();
      return s.applied >= SESSIONS * 2 ? s.applied : undefined;
    }, 60_000, 500);
    // Closing the archiver uploads its open files; the archive then holds every event.
    await archiver.close();
    archiver = undefined;
    process.stdout.write(`traced ${SESSIONS + 1} sessions in ${traceSecs.toFixed(0)} s; Redis applied ${total} events\n`);

    const conn = ['--topic', topic, '--redis-prefix', redisPrefix, '--s3-prefix', s3Prefix];
    const check = (what: string, ok: boolean) => {
      if (!ok) throw new Error(`wrong answer: ${what}`);
      return 'right';
    };
    // What did the incident do?
    for (const source of ['redis', 'kafka', 'archive'] as const) {
      const r = await timed(['replay', incidentId, '--source', source, '--json', ...conn]);
      const doc = JSON.parse(r.stdout) as { events: unknown[] };
      rows.push(['what did the incident do', `kshark replay <incident> --source ${source} --json`, r, check(`replay from ${source}`, doc.events.length === RETRIES + 6)]);
    }
    // Kafka alone, with no Redis to ask for the session's offset index: the whole range from the
    // session's partition start is scanned (the worst case of a Kafka-only read).
    const noIndex = await timed(['replay', incidentId, '--source', 'kafka', '--json', ...conn, '--redis-url', 'redis://127.0.0.1:1']);
    rows.push(['what did the incident do, Redis unreachable', 'kshark replay <incident> --source kafka --json --redis-url <unreachable>', noIndex, check('replay from kafka without the index', (JSON.parse(noIndex.stdout) as { events: unknown[] }).events.length === RETRIES + 6)]);
    // A session that ended early in the load: from Kafka only, the scan stops where the session's
    // records end (the dashboard consumer vouches for the rest of the partition).
    const early = 'sess_ans_000100';
    const earlyRedis = JSON.parse((await timed(['replay', early, '--source', 'redis', '--json', ...conn], 1)).stdout) as { events: unknown[] };
    const earlyKafka = await timed(['replay', early, '--source', 'kafka', '--json', ...conn]);
    rows.push(['what did a session that ended early do', 'kshark replay <early session> --source kafka --json', earlyKafka, check('early session from kafka', (JSON.parse(earlyKafka.stdout) as { events: unknown[] }).events.length === earlyRedis.events.length)]);
    // Why did it choose this?
    for (const source of ['redis', 'kafka', 'archive'] as const) {
      const r = await timed(['replay', incidentId, '--type', 'decision', '--source', source, '--json', ...conn]);
      const doc = JSON.parse(r.stdout) as { events: Array<{ context?: { reasoning?: string } }> };
      rows.push(['why did it choose this', `kshark replay <incident> --type decision --source ${source} --json`, r, check(`decisions from ${source}`, doc.events.length > 0 && doc.events.every((e) => typeof e.context?.reasoning === 'string'))]);
    }
    // Which session made 847 calls?
    const top = await timed(['sessions', '--sort', 'max-tool-calls', '--limit', '5', '--json', ...conn]);
    rows.push(['which session made 847 calls', 'kshark sessions --sort max-tool-calls --json', top, check('ranking', (JSON.parse(top.stdout) as { sessions: Array<{ session_id: string }> }).sessions[0]?.session_id === incidentId)]);
    const redisPatterns = await timed(['patterns', '--json', ...conn]);
    rows.push(['which sessions loop (patterns)', 'kshark patterns --json', redisPatterns, check('patterns from redis', (JSON.parse(redisPatterns.stdout) as { retry_loops: Array<{ session_id: string }> }).retry_loops[0]?.session_id === incidentId)]);
    // The archive: the first run fetches the files into the cache, later runs read the cache.
    const cold = await timed(['patterns', '--source', 'archive', '--json', ...conn], 1);
    rows.push(['which sessions loop (patterns)', 'kshark patterns --source archive --json (cold cache)', cold, check('patterns from archive', (JSON.parse(cold.stdout) as { retry_loops: Array<{ session_id: string }> }).retry_loops[0]?.session_id === incidentId)]);
    const warm = await timed(['patterns', '--source', 'archive', '--json', ...conn]);
    rows.push(['which sessions loop (patterns)', 'kshark patterns --source archive --json (warm cache)', warm, check('patterns from archive', (JSON.parse(warm.stdout) as { retry_loops: Array<{ session_id: string }> }).retry_loops[0]?.session_id === incidentId)]);

    process.stdout.write(`\nmachine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}; load average ${loadavg()[0]!.toFixed(1)}\n`);
    process.stdout.write(`data: ${total} events in ${SESSIONS + 1} sessions, ${PARTITIONS} partitions; ${RUNS} runs each (median, min-max)\n\n`);
    process.stdout.write('| question | command | time | answer |\n|---|---|---|---|\n');
    for (const [q, cmd, t, answer] of rows) process.stdout.write(`| ${q} | \`${cmd}\` | ${(median(t.ms) / 1000).toFixed(2)} s (${(Math.min(...t.ms) / 1000).toFixed(2)}-${(Math.max(...t.ms) / 1000).toFixed(2)}) | ${answer} |\n`);
  } finally {
    await archiver?.close().catch(() => undefined);
    await consumer?.close().catch(() => undefined);
    if (values.keep) {
      process.stdout.write(`\nkept: incident ${incidentId}; kshark <command> --topic ${topic} --redis-prefix ${redisPrefix} --s3-prefix ${s3Prefix}\n`);
      await redis.quit();
      s3.destroy();
      return;
    }
    for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
    await dropRedisPrefix(redis, redisPrefix);
    await redis.quit();
    const bucket = s3Options.bucket!;
    for (;;) {
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: s3Prefix }));
      const keys = (list.Contents ?? []).map((c) => ({ Key: c.Key! }));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    s3.destroy();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
