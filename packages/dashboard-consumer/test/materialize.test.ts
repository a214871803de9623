import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '@agenttrace/common';
import { partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { consumeAll, eventually, makeEvent, produceRaw } from '../../../test-support/stack.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

const t0 = Date.parse('2030-01-01T10:00:00.000Z');
const at = (s: number) => new Date(t0 + s * 1000).toISOString();

function sessionA(): AgentEvent[] {
  const base = { session_id: 'sess_a', agent_id: 'invoice-generator', emitter_id: 'em_a' };
  return [
    makeEvent({ ...base, seq: 0, timestamp: at(0), event_type: 'session_start', payload: {}, context: {} }),
    makeEvent({ ...base, seq: 1, timestamp: at(1), event_type: 'llm_call', payload: { model: 'm-1', input_tokens: 1200, output_tokens: 300, cost_usd: 0.1 }, context: {} }),
    makeEvent({ ...base, seq: 2, timestamp: at(2), event_type: 'tool_call', payload: { tool: 'stripe.create_invoice', input: {}, output: {}, latency_ms: 5 } }),
    makeEvent({ ...base, seq: 3, timestamp: at(3), event_type: 'tool_call', payload: { tool: 'stripe.create_invoice', input: {}, output: {}, latency_ms: 5 } }),
    makeEvent({ ...base, seq: 4, timestamp: at(4), event_type: 'tool_call', payload: { tool: 'crm.lookup', input: {}, output: {}, latency_ms: 5 } }),
    makeEvent({ ...base, seq: 5, timestamp: at(5), event_type: 'llm_call', payload: { model: 'm-1', input_tokens: 800, output_tokens: 200, cost_usd: 0.2 } }),
    // A delegation is emitted when the sub-agent finishes, with its start time: later in the stream, earlier in time.
    makeEvent({ ...base, agent_id: 'research-agent', seq: 6, timestamp: at(6), event_type: 'decision', payload: { action: 'skip_email' } }),
    makeEvent({ ...base, seq: 7, timestamp: at(2.5), event_type: 'delegation', payload: { subagent_id: 'research-agent', task: {}, latency_ms: 4000 } }),
    makeEvent({ ...base, seq: 8, timestamp: at(7), event_type: 'session_end', payload: {} }),
  ];
}

function sessionB(): AgentEvent[] {
  const base = { session_id: 'sess_b', agent_id: 'support-bot', emitter_id: 'em_b' };
  return [
    makeEvent({ ...base, seq: 0, timestamp: at(10), event_type: 'session_start', payload: {} }),
    makeEvent({ ...base, seq: 1, timestamp: at(11), event_type: 'tool_call', status: 'error', payload: { tool: 'kb.search', error: { message: 'timeout' } } }),
    makeEvent({ ...base, seq: 2, timestamp: at(12), event_type: 'error', status: 'error', payload: { error: { name: 'Error', message: 'gave up' } } }),
    makeEvent({ ...base, seq: 3, timestamp: at(13), event_type: 'session_end', status: 'error', payload: {} }),
  ];
}

describe('materialization into Redis', () => {
  let f: Fixture;
  let redis: Redis;
  let sub: Redis;
  let k: RedisKeys;
  const notes: Array<{ channel: string; message: string }> = [];
  const a = sessionA();
  const b = sessionB();
  // Keep the exact texts: readers must get the bytes as produced.
  const textsA = a.map((e) => JSON.stringify(e));
  const textsB = b.map((e) => JSON.stringify(e));

  beforeAll(async () => {
    f = await fixture('mat', 3);
    redis = testRedis();
    sub = testRedis();
    k = redisKeys(f.prefix);
    await sub.subscribe(k.sessionChannel('sess_a'), k.updatesChannel());
    sub.on('message', (channel: string, message: string) => notes.push({ channel, message }));
    // Interleave the two sessions, as concurrent agents would.
    const records = [];
    for (let i = 0; i < Math.max(textsA.length, textsB.length); i++) {
      if (i < textsA.length) records.push({ key: 'sess_a', value: textsA[i]! });
      if (i < textsB.length) records.push({ key: 'sess_b', value: textsB[i]! });
    }
    await produceRaw(f.topic, records);
    await f.start({ ttlSeconds: 3600 });
  });

  afterAll(async () => {
    sub.disconnect();
    await f.cleanup(redis);
    redis.disconnect();
  });

  it('stores each timeline in Kafka order with the exact record texts', async () => {
    await eventually('both sessions applied', async () => (await redis.llen(k.events('sess_a'))) === textsA.length && (await redis.llen(k.events('sess_b'))) === textsB.length);
    expect(await redis.lrange(k.events('sess_a'), 0, -1)).toEqual(textsA);
    expect(await redis.lrange(k.events('sess_b'), 0, -1)).toEqual(textsB);
  });

  it('keeps the metadata hash, tool counts and Kafka index', async () => {
    const m = await redis.hgetall(k.meta('sess_a'));
    expect(m).toMatchObject({
      session_id: 'sess_a',
      agent_id: 'invoice-generator',
      first_ts: at(0),
      last_ts: at(7),
      event_count: String(textsA.length),
      status: 'completed',
      current_step: 'session_end',
      input_tokens: '2000',
      output_tokens: '500',
      error_count: '0',
      tool_calls: '3',
    });
    expect(Number(m.cost_usd)).toBeCloseTo(0.3, 9);
    const mb = await redis.hgetall(k.meta('sess_b'));
    expect(mb).toMatchObject({ status: 'error', error_count: '2', tool_calls: '1', agent_id: 'support-bot', event_count: '4' });
    expect(await redis.hgetall(k.tools('sess_a'))).toEqual({ 'stripe.create_invoice': '2', 'crm.lookup': '1' });
    const idx = await redis.hgetall(k.kafkaIndex('sess_a'));
    expect(idx.topic).toBe(f.topic);
    expect(Number(idx.partition)).toBe(partitionForKey('sess_a', 3));
    const src = (await consumeAll(f.topic, { count: textsA.length + textsB.length })).filter((m) => m.key?.toString() === 'sess_a');
    expect(Number(idx.first_offset)).toBe(Math.min(...src.map((m) => m.offset)));
    expect(Number(idx.last_offset)).toBe(Math.max(...src.map((m) => m.offset)));
  });

  it('indexes sessions by activity, cost and agent, and sets a TTL on every session key', async () => {
    expect(Number(await redis.zscore(k.byActivity(), 'sess_a'))).toBe(t0 + 7000);
    expect(Number(await redis.zscore(k.byActivity(), 'sess_b'))).toBe(t0 + 13000);
    expect(Number(await redis.zscore(k.byCost(), 'sess_a'))).toBeCloseTo(0.3, 9);
    expect(await redis.zrange(k.byAgent('invoice-generator'), 0, -1)).toEqual(['sess_a']);
    expect(await redis.zrange(k.byAgent('research-agent'), 0, -1)).toEqual(['sess_a']);
    expect((await redis.smembers(k.agents())).sort()).toEqual(['invoice-generator', 'research-agent', 'support-bot']);
    for (const key of [k.events('sess_a'), k.meta('sess_a'), k.tools('sess_a'), k.kafkaIndex('sess_a'), k.events('sess_b')]) {
      const ttl = await redis.ttl(key);
      expect(ttl, key).toBeGreaterThan(3500);
      expect(ttl, key).toBeLessThanOrEqual(3600);
    }
  });

  it('stores the next offset per partition and announces changes on pub/sub', async () => {
    const offsets = await redis.hgetall(k.offsets(f.group, f.topic));
    const total = Object.values(offsets).reduce((s, v) => s + Number(v), 0);
    expect(total).toBe(textsA.length + textsB.length);
    await eventually('a notification for sess_a', () => notes.some((n) => n.channel === k.sessionChannel('sess_a')));
    const last = notes.filter((n) => n.channel === k.sessionChannel('sess_a')).at(-1)!;
    expect(JSON.parse(last.message)).toEqual({ session_id: 'sess_a', count: textsA.length, last_ts: at(7) });
    expect(notes.some((n) => n.channel === k.updatesChannel() && JSON.parse(n.message).session_id === 'sess_b')).toBe(true);
  });

  it('appends later events and resumes after a restart without duplicates', async () => {
    const more = [0, 1, 2].map((i) => JSON.stringify(makeEvent({ session_id: 'sess_a', agent_id: 'invoice-generator', emitter_id: 'em_c', seq: i, timestamp: at(20 + i) })));
    await produceRaw(f.topic, more.slice(0, 1).map((value) => ({ key: 'sess_a', value })));
    await eventually('first extra event', async () => (await redis.llen(k.events('sess_a'))) === textsA.length + 1);
    await f.consumers[0]!.close();
    await produceRaw(f.topic, more.slice(1).map((value) => ({ key: 'sess_a', value })));
    const c2 = await f.start({ ttlSeconds: 3600 });
    await eventually('extra events after restart', async () => (await redis.llen(k.events('sess_a'))) === textsA.length + 3, 30_000);
    // Give a redelivery, if any, the chance to show up before asserting.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await redis.lrange(k.events('sess_a'), 0, -1)).toEqual([...textsA, ...more]);
    expect(await redis.hget(k.meta('sess_a'), 'event_count')).toBe(String(textsA.length + 3));
    expect(c2.stats().applied).toBe(2);
  });
});
