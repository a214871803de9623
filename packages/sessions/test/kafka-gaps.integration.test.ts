import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisKeys, resolveSettings, type AgentTraceSettings } from '@agenttrace/common';
import { SessionReader } from '@agenttrace/sessions';
import type { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { testDashboard } from '../../../test-support/dashboard.js';
import { createTopic, eventually, produceRaw, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';
import { cleanUp, eventRecord, highWatermark as highWatermarkOf, otherRecords, seqEvent, startAtEnd, storedPosition as storedPositionOf } from './partition-fixtures.js';

/**
 * The session index's gaps: long runs of other sessions' records between two records of a session,
 * which a Kafka read skips. A gap is noted only where the group that noted it applied every
 * record in between.
 *
 * One partition, in order:
 *   [A] the target's events 0-4 | a record under the target's key that is not a valid event
 *   (dead-lettered; the witness: a scan that reads it reports it) | 1,100 others' records |
 *   the target's events 5-6 — all applied by group 1 from the start;
 *   [B] the target's event 7, applied by no group | a second group starting at the end |
 *   1,100 others' records | the target's event 8, applied by group 2.
 * Group 2 cannot vouch for what lies before its start, so event 7 must still be read.
 */
const topic = uniqueName('sessions-gaps');
const prefix = `${uniqueName('sessions-gaps')}:`;
const target = 'sess_gaps_target';
const consumers: DashboardConsumer[] = [];
let settings: AgentTraceSettings;
let witness = 0;
let secondSince = 0;

const record = eventRecord;
const others = (tag: string, n: number): RawRecord[] => otherRecords('sess_gaps', tag, n, 50);
const mine = (from: number, to: number): RawRecord[] => Array.from({ length: to - from + 1 }, (_, i) => record(seqEvent(target, from + i, 'em_gaps')));
const highWatermark = () => highWatermarkOf(topic);
const storedPosition = (redis: Redis, group: string) => storedPositionOf(redis, prefix, group, topic);

async function applyAll(redis: Redis, c: DashboardConsumer): Promise<void> {
  const high = await highWatermark();
  await eventually(`group ${c.options.group} applied up to ${high}`, async () => (await storedPosition(redis, c.options.group)) === high, 30_000);
}

function dashboard(startFrom: 'earliest' | 'latest'): DashboardConsumer {
  const c = testDashboard(topic, prefix, { group: uniqueName('gaps-g'), startFrom });
  consumers.push(c);
  return c;
}

beforeAll(async () => {
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  settings = resolveSettings({ brokers: stack.brokers.join(','), topic, redisUrl: stack.redisUrl, redisPrefix: prefix }, {});
  const redis = new Redis(stack.redisUrl);
  try {
    // [A]
    const head = mine(0, 4).flatMap((r, i) => [r, ...others(`a${i}`, 3)]);
    witness = head.length;
    await produceRaw(topic, [...head, { key: target, value: '{"not":"an event"}' }, ...others('b', 1100), ...mine(5, 6)]);
    const first = dashboard('earliest');
    await first.start();
    await applyAll(redis, first);
    await first.close();

    // [B]
    await produceRaw(topic, [...mine(7, 7), ...others('c', 10)]);
    const second = dashboard('latest');
    await startAtEnd(second, redis, prefix, topic, (i) => others(`e${i}`, 5));
    secondSince = Number(await redis.hget(redisKeys(prefix).offsetsOwner(second.options.group, topic), 'since:0'));
    await produceRaw(topic, [...others('f', 1100), ...mine(8, 8), ...others('g', 10)]);
    await applyAll(redis, second);
  } finally {
    await redis.quit();
  }
}, 120_000);

afterAll(() => cleanUp(consumers, topic, prefix));

describe('the gaps of a session Kafka index', () => {
  it('notes a gap only where its group applied every record in between', async () => {
    const redis = new Redis(stack.redisUrl);
    try {
      const gaps = (await redis.hget(redisKeys(prefix).kafkaIndex(target), 'gaps'))?.split(',').map((g) => g.split(':').map(Number) as [number, number]);
      expect(gaps).toHaveLength(2);
      const [[a1, b1], [a2, b2]] = gaps as [[number, number], [number, number]];
      // Event 4 is at witness - 4 (three others follow it), event 5 right after the 1,100 others.
      expect(a1).toBe(witness - 4);
      expect(b1).toBe(witness + 1 + 1100);
      // The second gap starts where group 2 began applying, after event 7, not at event 6.
      expect(secondSince).toBeGreaterThan(b1 + 2);
      expect(a2).toBe(secondSince - 1);
      expect(b2 - a2).toBeGreaterThan(1100);
    } finally {
      await redis.quit();
    }
  });

  it('a Kafka read skips the gaps and still finds the event no group applied', async () => {
    const reader = new SessionReader(settings, { kafkaIdleTimeoutMs: 3000, kafkaTimeoutMs: 5000 });
    try {
      const r = await reader.read(target, { source: 'kafka' });
      expect(r.source).toBe('kafka');
      expect(r.events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      // The invalid record lies in the first gap: reading it would have reported it.
      expect(r.warnings).toEqual([]);
    } finally {
      await reader.close();
    }
  });
});
