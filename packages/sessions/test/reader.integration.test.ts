import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { LOG_LEVELS, createS3Client, resolveSettings, unreachableBrokers, uploadOffload, redisKeys, type AgentTraceSettings, type Logger } from '@agenttrace/common';
import { partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { SessionNotFoundError, SessionReader, SourceUnavailableError } from '@agenttrace/sessions';
import { testDashboard } from '../../../test-support/dashboard.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';

const PARTITIONS = 4;
const topics: string[] = [];
const readers: SessionReader[] = [];
const redisPrefixes: string[] = [];
const s3Keys: string[] = [];

function settingsFor(topic: string, over: { brokers?: string; redisUrl?: string; redisPrefix?: string; s3Endpoint?: string } = {}): AgentTraceSettings {
  const prefix = over.redisPrefix ?? `${uniqueName('sessions-test')}:`;
  redisPrefixes.push(prefix);
  return resolveSettings(
    {
      brokers: over.brokers ?? stack.brokers.join(','),
      topic,
      redisUrl: over.redisUrl ?? stack.redisUrl,
      redisPrefix: prefix,
      s3Endpoint: over.s3Endpoint ?? stack.s3Endpoint,
      s3Bucket: stack.s3Bucket,
    },
    {},
  );
}

function reader(settings: AgentTraceSettings, opts: ConstructorParameters<typeof SessionReader>[1] = {}): SessionReader {
  const r = new SessionReader(settings, { kafkaIdleTimeoutMs: 3000, kafkaTimeoutMs: 5000, redisConnectTimeoutMs: 1500, followPollMs: 200, ...opts });
  readers.push(r);
  return r;
}

/** A session of `n` events one second apart, starting at `t0`. */
function session(sessionId: string, n: number, t0: number, emitter = 'em_1'): AgentEvent[] {
  return Array.from({ length: n }, (_, i) =>
    makeEvent({
      session_id: sessionId,
      emitter_id: emitter,
      seq: i,
      event_type: i === 0 ? 'session_start' : 'tool_call',
      timestamp: new Date(t0 + i * 1000).toISOString(),
      payload: i === 0 ? {} : { tool: `tool.${i}`, input: { i }, output: { ok: true }, latency_ms: i },
    }),
  );
}

const record = (e: AgentEvent): RawRecord => ({ key: e.session_id, value: JSON.stringify(e) });

/** Sessions that land on the same partition as `target`, so a scan has to skip their records. */
function neighbours(target: string, count: number): string[] {
  const p = partitionForKey(target, PARTITIONS);
  const out: string[] = [];
  for (let i = 0; out.length < count && i < 10_000; i++) {
    const id = `sess_other_${i}`;
    if (partitionForKey(id, PARTITIONS) === p) out.push(id);
  }
  return out;
}

function interleave(...lists: AgentEvent[][]): AgentEvent[] {
  const out: AgentEvent[] = [];
  const max = Math.max(...lists.map((l) => l.length));
  for (let i = 0; i < max; i++) for (const l of lists) if (l[i]) out.push(l[i]!);
  return out;
}

let topic: string;
const T0 = Date.parse('2026-01-15T14:00:00Z');
const target = 'sess_target_1';
let targetEvents: AgentEvent[];

beforeAll(async () => {
  topic = uniqueName('sessions');
  topics.push(topic);
  await createTopic(topic, PARTITIONS);
  targetEvents = session(target, 30, T0);
  const others = neighbours(target, 3).map((id) => session(id, 40, T0));
  await produceRaw(topic, interleave(targetEvents, ...others).map(record));
});

afterAll(async () => {
  for (const r of readers) await r.close();
  for (const t of topics) await deleteTopic(t);
  const redis = new Redis(stack.redisUrl);
  for (const p of redisPrefixes) {
    const keys = await redis.keys(`${p}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  await redis.quit();
  const s3 = createS3Client({ endpoint: stack.s3Endpoint });
  for (const k of s3Keys) await s3.send(new DeleteObjectCommand({ Bucket: stack.s3Bucket, Key: k })).catch(() => undefined);
  s3.destroy();
});

describe('Kafka source', () => {
  it('returns exactly the session, in offset order, from its murmur2 partition', async () => {
    const r = reader(settingsFor(topic));
    const res = await r.read(target, { source: 'kafka' });
    expect(res.source).toBe('kafka');
    expect(res.partition).toBe(partitionForKey(target, PARTITIONS));
    expect(res.events.map((e) => e.event_id)).toEqual(targetEvents.map((e) => e.event_id));
    expect(res.warnings).toEqual([]);
    expect(res.cursor.nextOffset).toBeGreaterThan(0);
  });

  it('auto falls back to Kafka when Redis has no timeline', async () => {
    const r = reader(settingsFor(topic));
    const res = await r.read(target);
    expect(res.source).toBe('kafka');
    expect(res.events).toHaveLength(30);
  });

  it('keeps only the --from/--to window without reporting the cut as a seq gap', async () => {
    const r = reader(settingsFor(topic));
    const res = await r.read(target, { source: 'kafka', from: T0 + 10_000, to: T0 + 19_000 });
    expect(res.events.map((e) => e.seq)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(res.warnings).toEqual([]);
  });

  it('warns about seq gaps and duplicates', async () => {
    const t = uniqueName('sessions-gap');
    topics.push(t);
    await createTopic(t, PARTITIONS);
    const ev = session('sess_gappy', 10, Date.now());
    const sent = [...ev.slice(0, 3), ...ev.slice(5), ev[7]!];
    await produceRaw(t, sent.map(record));
    const res = await reader(settingsFor(t)).read('sess_gappy', { source: 'kafka' });
    expect(res.events).toHaveLength(9);
    expect(res.warnings).toEqual([expect.stringContaining('2 seq missing (3-4)'), expect.stringContaining('seq 7 delivered 2 times')]);
  });

  it('throws SessionNotFoundError for an unknown session and names what it searched', async () => {
    const r = reader(settingsFor(topic));
    const err = await r.read('sess_nobody_here', { source: 'kafka' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionNotFoundError);
    expect((err as SessionNotFoundError).code).toBe('SESSION_NOT_FOUND');
    expect((err as Error).message).toMatch(/sess_nobody_here.*kafka/);
  });

  it('skips records under the key that are not valid events, with a warning', async () => {
    const t = uniqueName('sessions-bad');
    topics.push(t);
    await createTopic(t, PARTITIONS);
    const ev = session('sess_bad', 3, Date.now());
    await produceRaw(t, [record(ev[0]!), { key: 'sess_bad', value: '{not json' }, record(ev[1]!), record(ev[2]!)]);
    const res = await reader(settingsFor(t)).read('sess_bad', { source: 'kafka' });
    expect(res.events).toHaveLength(3);
    expect(res.warnings.join('\n')).toMatch(/1 records with this key are not valid events.*not_json/);
  });
});

describe('unreachable sources', () => {
  it('names Kafka and where when the broker is down, at once rather than after the client timeout', async () => {
    const r = reader(settingsFor(topic, { brokers: '127.0.0.1:1' }), { kafkaTimeoutMs: 10_000 });
    const t0 = performance.now();
    const err = await r.read(target, { source: 'kafka' }).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err).toBeInstanceOf(SourceUnavailableError);
    expect((err as SourceUnavailableError).code).toBe('SOURCE_UNAVAILABLE');
    expect((err as SourceUnavailableError).source).toBe('kafka');
    expect((err as Error).message).toContain('127.0.0.1:1 refused the connection');
  });

  it('says which bootstrap addresses failed and why; one that listens is enough', async () => {
    expect(await unreachableBrokers({ brokers: ['127.0.0.1:1', 'no-such-host.invalid:9092'] })).toMatch(/127\.0\.0\.1:1 refused the connection; no-such-host\.invalid:9092 names an unknown host/);
    expect(await unreachableBrokers({ brokers: ['127.0.0.1:1', ...stack.brokers] })).toBeUndefined();
  });

  it('names Redis and where, without the password, when Redis is down', async () => {
    const r = reader(settingsFor(topic, { redisUrl: 'redis://:hunter2@127.0.0.1:1' }));
    const err = await r.read(target, { source: 'redis' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceUnavailableError);
    expect((err as SourceUnavailableError).source).toBe('redis');
    expect((err as Error).message).toContain('127.0.0.1:1');
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('auto mode reads Kafka when Redis is down and says so', async () => {
    const r = reader(settingsFor(topic, { redisUrl: 'redis://127.0.0.1:1' }));
    const res = await r.read(target);
    expect(res.source).toBe('kafka');
    expect(res.events).toHaveLength(30);
    expect(res.warnings[0]).toMatch(/redis source unavailable: Redis at redis:\/\/127\.0\.0\.1:1.*skipped/);
  });

  it('follow says through options.logger (and the deprecated onWarning) that it left Redis for Kafka', async () => {
    const r = reader(settingsFor(topic, { redisUrl: 'redis://127.0.0.1:1' }));
    const logged: unknown[][] = [];
    const logger = Object.fromEntries(LOG_LEVELS.map((l) => [l, (...args: unknown[]) => logged.push([l, ...args])])) as unknown as Logger;
    const called: string[] = [];
    const ac = new AbortController();
    // A cursor from a Redis read: follow starts with Redis, cannot reach it, and goes on with Kafka.
    const cursor = { source: 'redis' as const, topic, partition: partitionForKey(target, PARTITIONS), nextOffset: 0, redisIndex: 30 };
    const seen: AgentEvent[] = [];
    const done = r.follow(target, (evs) => seen.push(...evs), ac.signal, { cursor, logger, onWarning: (m) => called.push(m) });
    await eventually('the warning', () => logged.length > 0, 20_000);
    ac.abort();
    await done;
    expect(logged[0]).toEqual(['warn', { sessionId: target }, expect.stringMatching(/Redis at redis:\/\/127\.0\.0\.1:1.*; following the Kafka partition instead/)]);
    expect(called).toEqual([logged[0]![2]]);
    await expect(r.follow(target, () => undefined, AbortSignal.abort(), { logger: { warn() {} } as never })).rejects.toThrow(/options\.logger/);
  });
});

describe('offloaded payloads', () => {
  it('are fetched back inline; a missing object becomes a warning, not a failure', async () => {
    const s3 = createS3Client({ endpoint: stack.s3Endpoint });
    const prefix = uniqueName('sessions-offload');
    const big = { text: 'x'.repeat(20_000) };
    const ref = await uploadOffload(s3, { bucket: stack.s3Bucket, prefix }, JSON.stringify(big));
    s3Keys.push(ref.$offload.key);
    s3.destroy();
    const t = uniqueName('sessions-offload');
    topics.push(t);
    await createTopic(t, PARTITIONS);
    const ev = session('sess_big', 3, Date.now());
    ev[1]!.payload.output = ref;
    ev[1]!.offload = { fields: ['payload.output'] };
    ev[2]!.payload.output = { $offload: { ...ref.$offload, key: `${prefix}/payloads/sha256/00/missing.json` } };
    ev[2]!.offload = { fields: ['payload.output'] };
    await produceRaw(t, ev.map(record));
    const r = reader(settingsFor(t));
    const res = await r.read('sess_big', { source: 'kafka' });
    expect(res.events[1]!.payload.output).toEqual(big);
    expect(res.events[2]!.payload.output).toHaveProperty('$offload');
    expect(res.warnings).toEqual([expect.stringMatching(/seq 2.*could not fetch offloaded payload/)]);
    const raw = await r.read('sess_big', { source: 'kafka', restoreOffloads: false });
    expect(raw.events[1]!.payload.output).toEqual(ref);
  });
});

describe('follow', () => {
  it('continues after a read from its cursor on the Kafka partition, without gap or duplicate', async () => {
    const t = uniqueName('sessions-follow');
    topics.push(t);
    await createTopic(t, PARTITIONS);
    const all = session('sess_live', 12, Date.now());
    await produceRaw(t, all.slice(0, 5).map(record));
    const r = reader(settingsFor(t));
    const first = await r.read('sess_live');
    expect(first.events).toHaveLength(5);
    const seen: AgentEvent[] = [];
    const ac = new AbortController();
    const done = r.follow('sess_live', (evs) => seen.push(...evs), ac.signal, { cursor: first.cursor });
    await produceRaw(t, [...all.slice(5, 8), ...session('sess_someone_else', 3, Date.now())].map(record));
    await produceRaw(t, all.slice(8).map(record));
    await eventually('followed events', () => seen.length >= 7, 20_000);
    ac.abort();
    await done;
    expect(seen.map((e) => e.seq)).toEqual([5, 6, 7, 8, 9, 10, 11]);
  });
});

describe('listSessions', () => {
  it('lists from a bounded Kafka scan when Redis has nothing, with filters and sort', async () => {
    const t = uniqueName('sessions-list');
    topics.push(t);
    await createTopic(t, PARTITIONS);
    const now = Date.now();
    const a = session('sess_list_a', 4, now - 5000);
    const b = session('sess_list_b', 6, now - 3000);
    b[5] = makeEvent({ session_id: 'sess_list_b', emitter_id: 'em_1', seq: 5, event_type: 'session_end', status: 'error', timestamp: new Date(now).toISOString(), payload: {} });
    const c = session('sess_list_c', 2, now - 1000).map((e) => ({ ...e, agent_id: 'other-agent' }));
    c[1]!.event_type = 'llm_call';
    c[1]!.payload = { model: 'm', cost_usd: 0.5, input_tokens: 10, output_tokens: 5 };
    await produceRaw(t, [...a, ...b, ...c].map(record));
    const r = reader(settingsFor(t));
    const all = await r.listSessions();
    expect(all.map((s) => s.sessionId)).toEqual(['sess_list_b', 'sess_list_c', 'sess_list_a']);
    expect(all.every((s) => s.source === 'kafka')).toBe(true);
    const bRow = all.find((s) => s.sessionId === 'sess_list_b')!;
    expect(bRow).toMatchObject({ eventCount: 6, status: 'error', errorCount: 1, toolCalls: 4 });
    expect((await r.listSessions({ agent: 'other-agent' })).map((s) => s.sessionId)).toEqual(['sess_list_c']);
    expect((await r.listSessions({ minCost: 0.1 })).map((s) => s.costUsd)).toEqual([0.5]);
    expect((await r.listSessions({ status: 'active', sort: 'events' })).map((s) => s.sessionId)).toEqual(['sess_list_a', 'sess_list_c']);
  });
});

describe('Redis source, materialized by the real dashboard consumer', () => {
  it('reads the timeline, follows it through pub/sub, and switches to Kafka when the consumer stops', async () => {
    const t = uniqueName('sessions-redis');
    topics.push(t, `${t}.dlq`, `${t}.alerts`);
    await createTopic(t, PARTITIONS);
    const settings = settingsFor(t);
    const consumer = testDashboard(t, settings.redisPrefix, { group: uniqueName('sessions-dash'), sessionTimeoutMs: 6000 });
    let running = true;
    try {
      await consumer.start();
      const all = session('sess_in_redis', 12, Date.now());
      await produceRaw(t, all.slice(0, 4).map(record));
      const r = reader(settings);
      const keys = redisKeys(settings.redisPrefix);
      const redis = new Redis(stack.redisUrl);
      await eventually('timeline', async () => (await redis.llen(keys.events('sess_in_redis'))) === 4, 30_000);
      const first = await r.read('sess_in_redis');
      expect(first.source).toBe('redis');
      expect(first.partition).toBe(partitionForKey('sess_in_redis', PARTITIONS));
      expect(first.events.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
      expect(first.cursor).toMatchObject({ source: 'redis', redisIndex: 4, nextOffset: expect.any(Number) as number });

      const seen: number[] = [];
      const warnings: string[] = [];
      const ac = new AbortController();
      const done = r.follow('sess_in_redis', (evs) => seen.push(...evs.map((e) => e.seq)), ac.signal, { cursor: first.cursor, onWarning: (w) => warnings.push(w) });
      await produceRaw(t, all.slice(4, 7).map(record));
      await eventually('events via Redis', () => seen.length >= 3, 20_000);
      expect(warnings).toEqual([]);
      // With the consumer gone, the timeline stops growing while Kafka moves on: follow must notice.
      await consumer.close();
      running = false;
      await produceRaw(t, all.slice(7).map(record));
      await eventually('events via Kafka after the switch', () => seen.length >= 8, 30_000);
      ac.abort();
      await done;
      await redis.quit();
      expect(seen).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
      expect(warnings.join('\n')).toMatch(/dashboard consumer is not keeping up.*following the Kafka partition/);
    } finally {
      if (running) await consumer.close();
    }
  });
});
