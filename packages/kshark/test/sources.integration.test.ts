import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { Archiver, listArchiveFiles } from '@agenttrace/archiver';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';
import { CLI, kshark, sampleSession } from './fixtures.js';

const PARTITIONS = 3;
const record = (e: AgentEvent): RawRecord => ({ key: e.session_id, value: JSON.stringify(e) });
const connFor = (topic: string, prefix: string, s3Prefix = '') => [
  '--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl,
  '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket, ...(s3Prefix ? ['--s3-prefix', s3Prefix] : []),
];

describe('Redis source, materialized by the real dashboard consumer', () => {
  const topic = uniqueName('kshark-redis');
  const prefix = `${uniqueName('kshark-redis')}:`;
  const conn = connFor(topic, prefix);
  const SID = 'sess_redis_target';
  let consumer: DashboardConsumer;

  beforeAll(async () => {
    await createTopic(topic, PARTITIONS);
    consumer = new DashboardConsumer({
      kafka: { brokers: stack.brokers },
      topic,
      group: uniqueName('kshark-dash'),
      redisUrl: stack.redisUrl,
      redisPrefix: prefix,
      dlqTopic: `${topic}.dlq`,
      alertsTopic: `${topic}.alerts`,
      metricsPort: false,
      sessionTimeoutMs: 6000,
      alerts: { costThresholdUsd: 0.001 },
    });
    await consumer.start();
    await produceRaw(topic, [...sampleSession(SID, Date.now() - 10_000), ...sampleSession('sess_redis_other', Date.now() - 5000)].map(record));
    const redis = new Redis(stack.redisUrl);
    try {
      await eventually('timeline in Redis', async () => (await redis.llen(redisKeys(prefix).events(SID))) === 10 && (await redis.llen(redisKeys(prefix).events('sess_redis_other'))) === 10, 30_000);
    } finally {
      await redis.quit();
    }
  });

  afterAll(async () => {
    await consumer?.close();
    for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
    const redis = new Redis(stack.redisUrl);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('auto picks Redis and replays the same events as the Kafka source', async () => {
    const viaRedis = await kshark(['replay', SID, ...conn, '--json']);
    expect(viaRedis.code).toBe(0);
    const viaKafka = await kshark(['replay', SID, ...conn, '--json', '--source', 'kafka']);
    const a = JSON.parse(viaRedis.stdout) as { source: string; partition: number; events: AgentEvent[] };
    const b = JSON.parse(viaKafka.stdout) as { source: string; partition: number; events: AgentEvent[] };
    expect(a.source).toBe('redis');
    expect(b.source).toBe('kafka');
    expect(a.partition).toBe(b.partition);
    expect(a.events.map((e) => e.event_id)).toEqual(b.events.map((e) => e.event_id));
    expect(a.events).toHaveLength(10);
  });

  it('kshark sessions lists from Redis with filters', async () => {
    const r = await kshark(['sessions', ...conn, '--json', '--sort', 'start']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { source: string; sessions: Array<{ session_id: string; event_count: number; status: string; cost_usd: number }> };
    expect(doc.source).toBe('redis');
    expect(doc.sessions.map((s) => s.session_id)).toEqual(['sess_redis_other', SID]);
    expect(doc.sessions[1]).toMatchObject({ event_count: 10, status: 'error' });
    expect(doc.sessions[1]!.cost_usd).toBeCloseTo(0.0081, 6);
    const none = await kshark(['sessions', ...conn, '--json', '--min-cost', '1']);
    expect((JSON.parse(none.stdout) as { sessions: unknown[] }).sessions).toEqual([]);
  });

  it('kshark top --once shows the sessions and the alerts the consumer fired', async () => {
    const r = await kshark(['top', ...conn, '--once']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(SID);
    expect(r.stdout).toMatch(/alert cost_threshold .*sess_redis_(target|other) has cost \$0\.01/);
  });

  it('--follow streams new events through the Redis timeline', async () => {
    const sid = 'sess_redis_follow';
    await produceRaw(topic, [0, 1].map((seq) => record(makeEvent({ session_id: sid, emitter_id: 'em', seq }))));
    const redis = new Redis(stack.redisUrl);
    await eventually('follow session in Redis', async () => (await redis.llen(redisKeys(prefix).events(sid))) === 2, 30_000);
    await redis.quit();
    const child = spawn(process.execPath, [CLI, 'replay', sid, ...conn, '--jsonl', '--follow'], { env: { ...process.env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    try {
      await eventually('initial events', () => out.trim().split('\n').filter(Boolean).length >= 2, 20_000);
      await produceRaw(topic, [2, 3, 4].map((seq) => record(makeEvent({ session_id: sid, emitter_id: 'em', seq }))));
      await eventually('followed events', () => out.trim().split('\n').length >= 5, 20_000);
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(0);
    expect(out.trim().split('\n').map((l) => (JSON.parse(l) as AgentEvent).seq)).toEqual([0, 1, 2, 3, 4]);
    // Served by the Redis timeline, not by the Kafka fallback.
    expect(err).toBe('');
  });
});

describe('archive source, written by the real archiver', () => {
  const topic = uniqueName('kshark-archive');
  const prefix = `${uniqueName('kshark-archive')}:`;
  const s3Prefix = uniqueName('kshark-archive');
  const SID = 'sess_archived';
  let archiver: Archiver | undefined;
  const s3 = createS3Client({ endpoint: stack.s3Endpoint });

  beforeAll(async () => {
    await createTopic(topic, PARTITIONS);
    const a = new Archiver({
      kafka: { brokers: stack.brokers },
      topic,
      dlqTopic: `${topic}.dlq`,
      groupId: uniqueName('kshark-arch'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: s3Prefix },
      rollAgeMs: 1000,
      metricsPort: 0,
      consumer: { 'session.timeout.ms': 10_000 },
    });
    archiver = a;
    // Ten days old: the "aged out of Kafka" session the archive exists for.
    await produceRaw(topic, sampleSession(SID, Date.now() - 10 * 86_400_000).map(record));
    await a.start();
    await eventually('archive files', async () => (await listArchiveFiles({ s3, bucket: stack.s3Bucket, prefix: s3Prefix, topic })).length > 0, 60_000, 500);
    await a.close();
    archiver = undefined;
    // Gone from Kafka: only the archive holds it now.
    await deleteTopic(topic);
  });

  afterAll(async () => {
    await archiver?.close().catch(() => undefined);
    for (const t of [topic, `${topic}.dlq`]) await deleteTopic(t);
    const files = await listArchiveFiles({ s3, bucket: stack.s3Bucket, prefix: s3Prefix, topic }).catch(() => []);
    for (const f of files) await s3.send(new DeleteObjectCommand({ Bucket: stack.s3Bucket, Key: f.key })).catch(() => undefined);
    s3.destroy();
  });

  it('auto replays a 10-day-old session from the archive when Redis and Kafka no longer have it', async () => {
    const r = await kshark(['replay', SID, ...connFor(topic, prefix, s3Prefix), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { source: string; events: AgentEvent[] };
    expect(doc.source).toBe('archive');
    expect(doc.events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(doc.events[3]!.context.reasoning).toBe('need a summary');
  });

  it('--source archive reports a session the archive does not have as not found', async () => {
    const r = await kshark(['replay', 'sess_never', ...connFor(topic, prefix, s3Prefix), '--source', 'archive']);
    expect(r.code).toBe(3);
  });

  it('an unreachable S3 is a clear exit 4', async () => {
    const r = await kshark(['replay', SID, ...connFor(topic, prefix, s3Prefix), '--source', 'archive', '--s3-endpoint', 'http://127.0.0.1:1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/archive source unavailable: S3 bucket "agenttrace" at http:\/\/127\.0\.0\.1:1/);
  });
});
