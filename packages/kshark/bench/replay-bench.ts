/**
 * Replay of one 10k-event session, from Redis (materialized by the real dashboard consumer) and
 * from Kafka (the session's partition, with other sessions' traffic on the same partition and
 * elsewhere in the topic). Anchor: a naive reader that scans the whole topic for the key.
 *
 *   scripts/bench kshark [--events 10000] [--other 40000] [--runs 5]
 *
 * Prints the figures; uses its own topic and Redis prefix and removes them afterwards.
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import Kafka from '@confluentinc/kafka-javascript';
import { rdkafkaConfig, redisKeys, resolveSettings } from '@agenttrace/common';
import { partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { SessionReader } from '@agenttrace/sessions';
import { createTopic, deleteTopic, eventually, kafkaConn, makeEvent, produceRaw, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '10000' },
    other: { type: 'string', default: '40000' },
    runs: { type: 'string', default: '5' },
    partitions: { type: 'string', default: '20' },
  },
});
const EVENTS = Number(values.events);
const OTHER = Number(values.other);
const RUNS = Number(values.runs);
const PARTITIONS = Number(values.partitions);

const topic = uniqueName('bench-kshark');
const prefix = `${uniqueName('bench-kshark')}:`;
const SID = 'sess_bench_big';
const CLI = join(repoRoot, 'packages', 'kshark', 'dist', 'cli.js');

function event(sessionId: string, seq: number, t: number): AgentEvent {
  const kind = seq % 4;
  return makeEvent({
    session_id: sessionId,
    emitter_id: `em_${sessionId}`,
    seq,
    timestamp: new Date(t).toISOString(),
    event_type: kind === 1 ? 'llm_call' : kind === 2 ? 'decision' : 'tool_call',
    payload:
      kind === 1
        ? { model: 'claude-sonnet-4-5', input: `prompt ${seq} `.repeat(20), output: `answer ${seq} `.repeat(15), input_tokens: 1200, output_tokens: 300, cost_usd: 0.0081, latency_ms: 900 }
        : kind === 2
          ? { action: 'continue', options: ['continue', 'stop'] }
          : { tool: `tool.${seq % 7}`, input: { id: seq, query: 'x'.repeat(120) }, output: { ok: true, rows: seq % 13, note: 'y'.repeat(160) }, latency_ms: 12 },
    context: kind === 2 ? { reasoning: 'the previous step succeeded, keep going', confidence: 0.9 } : {},
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

function cli(args: string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, env: { ...process.env } });
    out.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`kshark ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  }
  return out;
}

/** The anchor: read every partition of the topic from the start and keep the key's records. */
async function naiveFullScan(): Promise<number> {
  const consumer = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn()), 'group.id': uniqueName('bench-naive'), 'enable.auto.commit': false }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((res, rej) => consumer.connect({}, (err) => (err ? rej(err) : res())));
  consumer.assign(Array.from({ length: PARTITIONS }, (_, p) => ({ topic, partition: p, offset: -2 })));
  consumer.setDefaultConsumeTimeout(200);
  let total = 0;
  let kept = 0;
  const deadline = Date.now() + 120_000;
  while (total < EVENTS + OTHER && Date.now() < deadline) {
    const batch = await new Promise<Kafka.Message[]>((res, rej) => consumer.consume(5000, (err, m) => (err ? rej(err) : res(m))));
    for (const m of batch) {
      total++;
      if (m.key?.toString() === SID) {
        JSON.parse(m.value!.toString());
        kept++;
      }
    }
  }
  await new Promise<void>((res) => consumer.disconnect(() => res()));
  return kept;
}

async function main(): Promise<void> {
  const settings = resolveSettings({ topic, redisPrefix: prefix });
  const p = partitionForKey(SID, PARTITIONS);
  let consumer: DashboardConsumer | undefined;
  const redis = new Redis(stack.redisUrl);
  try {
    await createTopic(topic, PARTITIONS);
    // Other sessions: a quarter of them share the big session's partition, so the scan has to skip them.
    const t0 = Date.now() - 3_600_000;
    const others: AgentEvent[] = [];
    const sameP: string[] = [];
    for (let i = 0; sameP.length < 10 && i < 100_000; i++) if (partitionForKey(`sess_bench_o${i}`, PARTITIONS) === p) sameP.push(`sess_bench_o${i}`);
    const ids = [...sameP, ...Array.from({ length: 30 }, (_, i) => `sess_bench_x${i}`)];
    for (let i = 0; i < OTHER; i++) others.push(event(ids[i % ids.length]!, Math.floor(i / ids.length), t0 + i * 10));
    const big = Array.from({ length: EVENTS }, (_, i) => event(SID, i, t0 + i * 300));
    const mixed: AgentEvent[] = [];
    const step = Math.max(1, Math.floor(OTHER / Math.max(1, EVENTS)));
    let o = 0;
    for (const e of big) {
      mixed.push(e);
      for (let k = 0; k < step && o < others.length; k++) mixed.push(others[o++]!);
    }
    while (o < others.length) mixed.push(others[o++]!);
    const bytes = mixed.reduce((n, e) => n + JSON.stringify(e).length, 0);
    process.stdout.write(`producing ${mixed.length} events (${(bytes / 1e6).toFixed(1)} MB) to ${topic} (${PARTITIONS} partitions); the big session is on partition ${p}\n`);
    await produceRaw(topic, mixed.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));

    consumer = new DashboardConsumer({ kafka: { brokers: stack.brokers }, topic, group: uniqueName('bench-kshark'), redisUrl: stack.redisUrl, redisPrefix: prefix, dlqTopic: `${topic}.dlq`, alertsTopic: `${topic}.alerts`, metricsPort: false, alerts: false });
    await consumer.start();
    await eventually('Redis timeline', async () => (await redis.llen(redisKeys(prefix).events(SID))) === EVENTS, 120_000, 500);
    await consumer.close();
    consumer = undefined;

    const reader = new SessionReader(settings);
    const check = async (source: 'redis' | 'kafka') => {
      const r = await reader.read(SID, { source });
      if (r.events.length !== EVENTS) throw new Error(`${source} returned ${r.events.length} events, expected ${EVENTS}`);
    };
    await check('redis');
    await check('kafka');
    const redisRead = await time(() => check('redis'));
    const kafkaRead = await time(() => check('kafka'));
    await reader.close();

    const conn = ['--topic', topic, '--redis-prefix', prefix];
    const cliRedisJson = cli(['replay', SID, ...conn, '--source', 'redis', '--json']);
    const cliKafkaJson = cli(['replay', SID, ...conn, '--source', 'kafka', '--json']);
    const cliRedisPretty = cli(['replay', SID, ...conn, '--source', 'redis', '--no-interactive']);
    const cliKafkaPretty = cli(['replay', SID, ...conn, '--source', 'kafka', '--no-interactive']);
    const nodeStart = cli(['--version']);

    const naive: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 3); i++) {
      const t = performance.now();
      const kept = await naiveFullScan();
      naive.push(performance.now() - t);
      if (kept !== EVENTS) throw new Error(`naive scan kept ${kept}`);
    }

    process.stdout.write(`\nmachine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}; ${RUNS} runs each\n`);
    process.stdout.write(`session: ${EVENTS} events; topic: ${mixed.length} events in ${PARTITIONS} partitions\n\n`);
    process.stdout.write(`SessionReader.read, source redis            ${fmt(redisRead)}\n`);
    process.stdout.write(`SessionReader.read, source kafka            ${fmt(kafkaRead)}\n`);
    process.stdout.write(`kshark replay --json, source redis (CLI)    ${fmt(cliRedisJson)}\n`);
    process.stdout.write(`kshark replay --json, source kafka (CLI)    ${fmt(cliKafkaJson)}\n`);
    process.stdout.write(`kshark replay pretty, source redis (CLI)    ${fmt(cliRedisPretty)}\n`);
    process.stdout.write(`kshark replay pretty, source kafka (CLI)    ${fmt(cliKafkaPretty)}\n`);
    process.stdout.write(`kshark --version (process start only)       ${fmt(nodeStart)}\n`);
    process.stdout.write(`anchor: naive scan of the whole topic       ${fmt(naive)}\n`);
  } finally {
    await consumer?.close().catch(() => undefined);
    for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
}

await main();
process.exit(0);
