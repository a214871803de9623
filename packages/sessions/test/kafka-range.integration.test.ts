import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisKeys, resolveSettings, type AgentTraceSettings } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionReader } from '@agenttrace/sessions';
import type { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { testDashboard } from '../../../test-support/dashboard.js';
import { createTopic, eventually, produceRaw, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';
import { cleanUp, eventRecord, highWatermark as highWatermarkOf, otherRecords, seqEvent, startAtEnd, storedPosition as storedPositionOf } from './partition-fixtures.js';

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

const event = (sessionId: string, seq: number, emitter = 'em_range'): AgentEvent => seqEvent(sessionId, seq, emitter);
const record = eventRecord;
const others = (tag: string, n: number): RawRecord[] => otherRecords('sess_range', tag, n, 20);

function dashboard(group: string, startFrom: 'earliest' | 'latest'): DashboardConsumer {
  const c = testDashboard(topic, prefix, { group, startFrom });
  consumers.push(c);
  return c;
}

const highWatermark = () => highWatermarkOf(topic);
const storedPosition = (redis: Redis, group: string) => storedPositionOf(redis, prefix, group, topic);

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
    await startAtEnd(second, redis, prefix, topic, (i) => others(`e${i}`, 5));
    high3 = await highWatermark();
    await eventually('the second group applied the last records', async () => (await storedPosition(redis, second.options.group)) === high3, 30_000);
    expect(high3).toBeGreaterThan(high2);
  } finally {
    await redis.quit();
  }
}, 120_000);

afterAll(() => cleanUp(consumers, topic, prefix));

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
