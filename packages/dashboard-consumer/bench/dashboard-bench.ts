/**
 * Dashboard consumer benchmark (scripts/bench dashboard [--backlog N] [--rate R] [--seconds S] [--sessions K]).
 *
 * [--batch-size B]
 *
 * 1. Throughput: a backlog of N events is produced first, then the consumer (the built
 *    agenttrace-dashboard binary, as deployed) drains it into Redis; events/s = N / drain time.
 * 2. Freshness: with the consumer caught up, agents traced with @agenttrace/tracer call
 *    trackToolCall at a steady rate; for each call the time from trackToolCall returning to the
 *    event being readable in Redis (the change notification published in the same atomic step
 *    that made it readable) is recorded; p50/p95/p99 are printed next to the anchor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import Kafka from '@confluentinc/kafka-javascript';
import { rdkafkaConfig, redisKeys } from '@agenttrace/common';
import { AgentTracer } from '@agenttrace/tracer';
import { createTopic, deleteTopic, kafkaConn, makeEvent, repoRoot, sleep, stack, uniqueName, dropRedisPrefix } from '../../../test-support/stack.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const BACKLOG = arg('backlog', 200_000);
const RATE = arg('rate', 5000);
const SECONDS = arg('seconds', 20);
const SESSIONS = arg('sessions', 100);
const BATCH = arg('batch-size', 2000);
const bin = join(repoRoot, 'packages/dashboard-consumer/dist/cli.js');

function startConsumer(topic: string, group: string, prefix: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [bin, '--brokers', stack.brokers.join(','), '--topic', topic, '--group', group, '--redis-url', stack.redisUrl, '--redis-prefix', prefix,
      '--dlq-topic', `${topic}.dlq`, '--alerts-topic', `${topic}.alerts`, '--metrics-port', 'off', '--status-interval', '0', '--quiet', '--batch-size', String(BATCH)],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}


async function produceBacklog(topic: string, n: number, sessions: number): Promise<void> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn()), 'enable.idempotence': true, dr_cb: true, 'linger.ms': 20, 'batch.num.messages': 10_000, 'queue.buffering.max.messages': 200_000 });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(10);
  let acked = 0;
  producer.on('delivery-report', () => (acked += 1));
  // One representative event, re-stamped per record: the cost measured is the consumer's, not JSON building here.
  for (let i = 0; i < n; i++) {
    const sid = `sess_${i % sessions}`;
    const value = Buffer.from(JSON.stringify(makeEvent({ session_id: sid, agent_id: `agent_${i % 7}`, seq: Math.floor(i / sessions), payload: { tool: `tool_${i % 5}`, input: { customer_id: 'cus_1', amount: 4500 }, output: { ok: true }, latency_ms: 12 }, context: { reasoning: 'milestone 2 completion', confidence: 0.9 } })));
    for (;;) {
      try {
        producer.produce(topic, null, value, sid);
        break;
      } catch {
        await sleep(5);
      }
    }
  }
  while (acked < n) await sleep(50);
  await new Promise<void>((res) => producer.disconnect(() => res()));
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function throughput(redis: Redis): Promise<void> {
  const topic = uniqueName('bench-dash-tp');
  const group = uniqueName('bench-dash-g');
  const prefix = `${uniqueName('bench-dash')}:`;
  await createTopic(topic, 8);
  try {
    const t0 = Date.now();
    await produceBacklog(topic, BACKLOG, 2000);
    console.log(`backlog: ${BACKLOG} events produced in ${((Date.now() - t0) / 1000).toFixed(1)} s (8 partitions, 2000 sessions)`);
    const key = redisKeys(prefix).offsets(group, topic);
    const start = Date.now();
    const child = startConsumer(topic, group, prefix);
    let firstAt = 0;
    let done = 0;
    const deadline = start + 300_000;
    while (done < BACKLOG && Date.now() < deadline) {
      await sleep(50);
      const o = await redis.hgetall(key);
      done = Object.values(o).reduce((s, v) => s + Number(v), 0);
      if (done > 0 && firstAt === 0) firstAt = Date.now();
    }
    const end = Date.now();
    await stop(child);
    const total = (end - start) / 1000;
    const steady = (end - firstAt) / 1000;
    console.log(`throughput: ${done} events into Redis in ${total.toFixed(2)} s including process start and group join = ${Math.round(done / total)} events/s`);
    console.log(`throughput: from the first applied batch to the last: ${steady.toFixed(2)} s = ${Math.round(done / steady)} events/s (target >= 50000)`);
  } finally {
    await dropRedisPrefix(redis, prefix);
    await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`), deleteTopic(`${topic}.alerts`)]);
  }
}

async function freshness(redis: Redis): Promise<void> {
  const topic = uniqueName('bench-dash-fr');
  const group = uniqueName('bench-dash-g');
  const prefix = `${uniqueName('bench-dash')}:`;
  await createTopic(topic, 20);
  const keys = redisKeys(prefix);
  const sub = new Redis(stack.redisUrl);
  const child = startConsumer(topic, group, prefix);
  const tracers: AgentTracer[] = [];
  try {
    // Index i of session s returned at returned[s][i]; list position i+1 (position 0 is session_start).
    const returned = new Map<string, number[]>();
    const seen = new Map<string, number>();
    const latencies: number[] = [];
    await sub.subscribe(keys.updatesChannel());
    sub.on('message', (_ch: string, msg: string) => {
      const now = performance.now();
      const { session_id: sid, count } = JSON.parse(msg) as { session_id: string; count: number };
      const times = returned.get(sid);
      if (!times) return;
      const from = seen.get(sid) ?? 1;
      for (let pos = from; pos < count; pos++) {
        const t = times[pos - 1];
        if (t !== undefined) latencies.push(now - t);
      }
      seen.set(sid, Math.max(from, count));
    });
    let tracerErrors = 0;
    for (let s = 0; s < SESSIONS; s++) {
      const sid = `sess_fresh_${s}`;
      returned.set(sid, []);
      tracers.push(new AgentTracer({ sessionId: sid, agentId: 'bench-agent', kafka: { brokers: stack.brokers }, topic, ensureTopic: false, handleExit: false, onError: () => (tracerErrors += 1) }));
    }
    // Warm-up: connections, group join, first fetches.
    await sleep(4000);
    const total = RATE * SECONDS;
    const tick = 10;
    const perTick = Math.max(1, Math.round((RATE * tick) / 1000));
    const t0 = performance.now();
    let issued = 0;
    while (issued < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE) + perTick);
      const calls: Array<Promise<void>> = [];
      for (; issued < due; issued++) {
        const s = issued % SESSIONS;
        const sid = `sess_fresh_${s}`;
        const tr = tracers[s]!;
        calls.push(
          tr.trackToolCall('stripe.create_invoice', { customer_id: 'cus_1', amount: 4500 }, async () => ({ invoice_id: 'inv_1' }), { reasoning: 'bench' }).then(() => {
            returned.get(sid)!.push(performance.now());
          }),
        );
      }
      await Promise.all(calls);
      await sleep(tick);
    }
    const elapsed = (performance.now() - t0) / 1000;
    const deadline = Date.now() + 30_000;
    while (latencies.length < total && Date.now() < deadline) await sleep(100);
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`freshness: ${issued} trackToolCall calls over ${elapsed.toFixed(1)} s (${Math.round(issued / elapsed)}/s) from ${SESSIONS} sessions via @agenttrace/tracer; ${sorted.length} seen in Redis; tracer errors ${tracerErrors}`);
    console.log(`freshness (trackToolCall returned -> readable in Redis): p50 ${pct(sorted, 50).toFixed(1)} ms, p95 ${pct(sorted, 95).toFixed(1)} ms, p99 ${pct(sorted, 99).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`);
    console.log('targets: p50 <= 20 ms, p95 <= 100 ms; anchor (AgentFlow, published): p50 1060 ms, p95 1990 ms');
  } finally {
    await Promise.all(tracers.map((t) => t.close().catch(() => undefined)));
    sub.disconnect();
    await stop(child);
    await dropRedisPrefix(redis, prefix);
    await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`), deleteTopic(`${topic}.alerts`)]);
  }
}

const redis = new Redis(stack.redisUrl);
try {
  if (!process.argv.includes('--skip-throughput')) await throughput(redis);
  if (!process.argv.includes('--skip-freshness')) await freshness(redis);
} finally {
  redis.disconnect();
}
