import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import { buildPlan, type GoodRecord } from '../src/index.js';
import { RedisStore } from '../src/redis-store.js';
import { makeEvent, stack, uniqueName } from '../../../test-support/stack.js';

const prefix = `${uniqueName('rank-idx')}:`;
const keys = redisKeys(prefix);
const redis = new Redis(stack.redisUrl);
const store = new RedisStore(stack.redisUrl, prefix, 1000, () => undefined);

afterAll(async () => {
  const all = await redis.keys(`${prefix}*`);
  if (all.length > 0) await redis.del(...all);
  await redis.quit();
  await store.close();
});

const rec = (offset: number, over: Parameters<typeof makeEvent>[0]): GoodRecord => {
  const event = makeEvent({ session_id: 's1', agent_id: 'a', ...over });
  return { partition: 0, offset, value: Buffer.from(JSON.stringify(event)), event };
};
const plan = (good: GoodRecord[]) => buildPlan(good, [], { keys, topic: 't', group: 'g', ttlSeconds: 600, rules: false, recentAlerts: 10, now: 0 }, prefix);

describe('ranking indexes (written by the apply script)', () => {
  it('move with the timeline, and a redelivered batch does not count twice', async () => {
    await store.connect(5000);
    const first = [
      rec(0, { event_type: 'session_start', payload: {}, timestamp: '2030-01-01T00:00:10.000Z' }),
      rec(1, { event_type: 'tool_call', payload: { tool: 'x' }, timestamp: '2030-01-01T00:00:11.000Z' }),
      rec(2, { event_type: 'tool_call', payload: { tool: 'x' }, timestamp: '2030-01-01T00:00:12.000Z' }),
      rec(3, { event_type: 'error', status: 'error', payload: { error: { message: 'm', code: 'E1' } }, timestamp: '2030-01-01T00:00:13.000Z' }),
    ];
    expect((await store.apply(plan(first))).kind).toBe('ok');
    // The same records again (a redelivery): refused as stale, nothing written.
    expect((await store.apply(plan(first))).kind).toBe('stale');
    const second = [
      rec(4, { event_type: 'tool_call', payload: { tool: 'y' }, timestamp: '2030-01-01T00:00:14.000Z' }),
      // Earlier than anything so far: the start, and so the duration, move.
      rec(5, { event_type: 'tool_call', status: 'error', payload: { tool: 'x', error: { message: 'm', code: 503 } }, timestamp: '2030-01-01T00:00:05.000Z' }),
      rec(6, { event_type: 'session_end', status: 'error', payload: {}, timestamp: '2030-01-01T00:00:20.000Z' }),
    ];
    expect((await store.apply(plan(second))).kind).toBe('ok');
    expect((await store.apply(plan(second))).kind).toBe('stale');
    const score = (k: string) => redis.zscore(k, 's1').then(Number);
    expect(await score(keys.byEvents())).toBe(7);
    expect(await score(keys.byErrors())).toBe(2);
    expect(await score(keys.byToolCalls())).toBe(4);
    expect(await score(keys.byMaxToolCalls())).toBe(3);
    expect(await score(keys.byStart())).toBe(Date.parse('2030-01-01T00:00:05.000Z'));
    expect(await score(keys.byDuration())).toBe(15_000);
    expect(await score(keys.toolSessions('x'))).toBe(3);
    expect(await score(keys.toolSessions('y'))).toBe(1);
    expect((await redis.smembers(keys.toolNames())).sort()).toEqual(['x', 'y']);
    expect(await score(keys.errorCodeSessions('E1'))).toBe(1);
    expect(await score(keys.errorCodeSessions('503'))).toBe(1);
    expect(await redis.smembers(keys.byStatus('active'))).toEqual([]);
    expect(await redis.smembers(keys.byStatus('error'))).toEqual(['s1']);
    // The indexes agree with the meta hash they rank.
    expect(await redis.hmget(keys.meta('s1'), 'event_count', 'error_count', 'tool_calls')).toEqual(['7', '2', '4']);
  });

  it('pruning removes a session from every index', async () => {
    expect(await store.pruneIndexes(Date.parse('2031-01-01T00:00:00Z'), 100)).toBe(1);
    for (const k of [keys.byEvents(), keys.byErrors(), keys.byToolCalls(), keys.byMaxToolCalls(), keys.byStart(), keys.byDuration(), keys.toolSessions('x'), keys.errorCodeSessions('503')]) {
      expect(await redis.zscore(k, 's1'), k).toBeNull();
    }
    expect(await redis.sismember(keys.byStatus('error'), 's1')).toBe(0);
  });
});
