import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { KafkaAdmin, redisKeys, resolveSettings, type AgentTraceSettings } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionReader } from '@agenttrace/sessions';
import type { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { testDashboard } from '../../../test-support/dashboard.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, sleep, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';

/**
 * A Kafka read of a session skips the offsets where a dashboard consumer group vouches that no
 * record of the session lies (after the session's last indexed offset, below the group's stored
 * position, from where the group applied every record), and scans everything else: records the
 * dashboard never applied are still found.
 *
 * The topic has one partition. In it, in order:
 *   the target's 10 events among others' | a record under the target's key that is not a valid
 *   event (dead-lettered by the dashboard) among many others' | [H1] two late events of the target
 *   that no group applied | [H2] a few others' records applied by a second group started at the end.
 * The invalid record is the witness: a scan that reads the vouched-for gap reports it.
 */
const topic = uniqueName('sessions-range');
const prefix = `${uniqueName('sessions-range')}:`;
const target = 'sess_range_target';
const consumers: DashboardConsumer[] = [];
let settings: AgentTraceSettings;
let high1 = 0;
let high3 = 0;

const T0 = Date.parse('2026-03-02T09:00:00Z');
const event = (sessionId: string, seq: number, emitter = 'em_range'): AgentEvent =>
  makeEvent({ session_id: sessionId, emitter_id: emitter, seq, event_type: seq === 0 ? 'session_start' : 'tool_call', timestamp: new Date(T0 + seq * 1000).toISOString(), payload: seq === 0 ? {} : { tool: `tool.${seq}`, input: { seq }, output: { ok: true }, latency_ms: 1 } });
const record = (e: AgentEvent): RawRecord => ({ key: e.session_id, value: JSON.stringify(e) });
const others = (tag: string, n: number): RawRecord[] => Array.from({ length: n }, (_, i) => record(event(`sess_range_${tag}_${i % 20}`, Math.floor(i / 20), `em_${tag}`)));

function dashboard(group: string, startFrom: 'earliest' | 'latest'): DashboardConsumer {
  const c = testDashboard(topic, prefix, { group, startFrom });
  consumers.push(c);
  return c;
}

async function highWatermark(): Promise<number> {
  const admin = new KafkaAdmin({ brokers: stack.brokers });
  try {
    return (await admin.watermarks(topic, [0], 5000)).get(0)?.high ?? 0;
  } finally {
    admin.close();
  }
}

async function storedPosition(redis: Redis, group: string): Promise<number | undefined> {
  const v = await redis.hget(redisKeys(prefix).offsets(group, topic), '0');
  return v === null ? undefined : Number(v);
}

beforeAll(async () => {
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  settings = resolveSettings({ brokers: stack.brokers.join(','), topic, redisUrl: stack.redisUrl, redisPrefix: prefix }, {});
  const redis = new Redis(stack.redisUrl);
  try {
    const mine = Array.from({ length: 10 }, (_, i) => record(event(target, i)));
    const mixed: RawRecord[] = [];
    const before = others('a', 40);
    for (let i = 0; i < 40; i++) {
      mixed.push(before[i]!);
      if (i % 4 === 0) mixed.push(mine[i / 4]!);
    }
    await produceRaw(topic, [...mixed, { key: target, value: '{"not":"an event"}' }, ...others('b', 400)]);
    high1 = await highWatermark();
    const first = dashboard(uniqueName('range-g1'), 'earliest');
    await first.start();
    await eventually('the first group applied everything', async () => (await storedPosition(redis, first.options.group)) === high1, 30_000);
    await first.close();

    // Never applied by any group: only a scan of Kafka can find these.
    await produceRaw(topic, [...others('c', 30), record(event(target, 10)), record(event(target, 11)), ...others('d', 10)]);
    const high2 = await highWatermark();
    const second = dashboard(uniqueName('range-g2'), 'latest');
    await second.start();
    // The second group starts at the end, which librdkafka looks up only once it fetches: records
    // produced before that are not its to apply. Produce until it has applied some (bounded).
    for (let i = 0; i < 60 && (await storedPosition(redis, second.options.group)) === undefined; i++) {
      await produceRaw(topic, others(`e${i}`, 5));
      await sleep(250);
    }
    high3 = await highWatermark();
    await eventually('the second group applied the last records', async () => (await storedPosition(redis, second.options.group)) === high3, 30_000);
    expect(high3).toBeGreaterThan(high2);
  } finally {
    await redis.quit();
  }
}, 120_000);

afterAll(async () => {
  for (const c of consumers) await c.close().catch(() => undefined);
  for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
  const redis = new Redis(stack.redisUrl);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe('a Kafka read bounded by what the dashboard applied', () => {
  it('skips the gap a group vouches for and still finds the records no group applied', async () => {
    const reader = new SessionReader(settings, { kafkaIdleTimeoutMs: 3000, kafkaTimeoutMs: 5000 });
    try {
      const r = await reader.read(target, { source: 'kafka' });
      expect(r.source).toBe('kafka');
      expect(r.events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      // The invalid record lies in the skipped gap: reading it would have reported it.
      expect(r.warnings).toEqual([]);
      expect(r.cursor).toMatchObject({ source: 'kafka', nextOffset: high3 });
    } finally {
      await reader.close();
    }
  });

  it('scans the whole rest of the partition when the index is for another topic id, and says so', async () => {
    const redis = new Redis(stack.redisUrl);
    const key = redisKeys(prefix).kafkaIndex(target);
    const real = await redis.hget(key, 'topic_id');
    expect(real).toMatch(/^[0-9a-f-]{36}$/);
    const reader = new SessionReader(settings, { kafkaIdleTimeoutMs: 3000, kafkaTimeoutMs: 5000 });
    try {
      await redis.hset(key, 'topic_id', '00000000-0000-0000-0000-000000000000');
      const r = await reader.read(target, { source: 'kafka' });
      expect(r.events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(r.warnings.join('\n')).toMatch(/offset index of this session is for another topic id/);
      expect(r.warnings.join('\n')).toMatch(/1 records with this key are not valid events/);
    } finally {
      await redis.hset(key, 'topic_id', real!);
      await redis.quit();
      await reader.close();
    }
  });
});
