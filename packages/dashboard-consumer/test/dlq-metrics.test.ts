import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { Message } from '@confluentinc/kafka-javascript';
import { DLQ_HEADER_OFFSET, DLQ_HEADER_PARTITION, DLQ_HEADER_REASON, DLQ_HEADER_TOPIC, redisKeys } from '@agenttrace/common';
import { consumeAll, eventually, makeEvent, produceRaw, type RawRecord } from '../../../test-support/stack.js';
import type { DashboardConsumer } from '../src/index.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

function header(m: Message, name: string): string | undefined {
  for (const h of m.headers ?? []) if (name in h) return String(h[name]);
  return undefined;
}

function deep(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { v };
  return v;
}

describe('bad input goes to the dead-letter topic; metrics', () => {
  let f: Fixture;
  let redis: Redis;
  let c: DashboardConsumer;
  const sid = 'sess_dlq';
  const good = [0, 1, 2, 3].map((i) => JSON.stringify(makeEvent({ session_id: sid, seq: i })));
  const bad: Array<{ reason: string; record: RawRecord }> = [
    { reason: 'not_json', record: { key: sid, value: 'this is {not json' } },
    { reason: 'invalid_utf8', record: { key: sid, value: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) } },
    { reason: 'schema_violation', record: { key: sid, value: JSON.stringify({ ...makeEvent({ session_id: sid }), event_id: 'nope' }) } },
    { reason: 'unknown_schema_version', record: { key: sid, value: JSON.stringify({ ...makeEvent({ session_id: sid }), schema_version: 2 }) } },
    { reason: 'too_large', record: { key: sid, value: JSON.stringify(makeEvent({ session_id: sid, payload: { tool: 't', input: 'x'.repeat(30_000) } })) } },
    { reason: 'too_deep', record: { key: sid, value: JSON.stringify(makeEvent({ session_id: sid, payload: { tool: 't', input: deep(80) } })) } },
    { reason: 'key_mismatch', record: { key: sid, value: JSON.stringify(makeEvent({ session_id: 'someone_else' })) } },
    { reason: 'not_json', record: { key: sid, value: null } },
  ];

  beforeAll(async () => {
    f = await fixture('dlq', 2);
    redis = testRedis();
    // Good and bad records interleaved on one partition (one key): order must survive the gaps.
    const records: RawRecord[] = [];
    bad.forEach((b, i) => {
      if (i < good.length) records.push({ key: sid, value: good[i]! });
      records.push(b.record);
    });
    await produceRaw(f.topic, records);
    c = await f.start({ maxRecordBytes: 20_000 });
  });

  afterAll(async () => {
    await f.cleanup(redis);
    redis.disconnect();
  });

  it('keeps the good events in order and moves the offset past the bad ones', async () => {
    const k = redisKeys(f.prefix);
    await eventually('offsets past every record', async () => {
      const o = await redis.hgetall(k.offsets(f.group, f.topic));
      return Object.values(o).reduce((s, v) => s + Number(v), 0) === good.length + bad.length;
    });
    expect(await redis.lrange(k.events(sid), 0, -1)).toEqual(good);
    expect(await redis.exists(k.meta('someone_else'))).toBe(0);
    expect(c.stats().deadLettered).toBe(bad.length);
  });

  it('puts every bad record in the DLQ with reason, source partition and offset', async () => {
    const msgs = await consumeAll(f.dlqTopic, { count: bad.length, timeoutMs: 20_000 });
    expect(msgs).toHaveLength(bad.length);
    const src = await consumeAll(f.topic, { count: good.length + bad.length, timeoutMs: 20_000 });
    const byOffset = new Map(src.map((m) => [m.offset, m]));
    const reasons = msgs.map((m) => header(m, DLQ_HEADER_REASON)).sort();
    expect(reasons).toEqual(bad.map((b) => b.reason).sort());
    for (const m of msgs) {
      expect(header(m, DLQ_HEADER_TOPIC)).toBe(f.topic);
      const original = byOffset.get(Number(header(m, DLQ_HEADER_OFFSET)));
      expect(original, 'the source offset names the original record').toBeDefined();
      expect(Number(header(m, DLQ_HEADER_PARTITION))).toBe(original!.partition);
      // The dead-letter copy carries the original bytes so it can be inspected and replayed.
      expect(m.value?.toString('base64') ?? null).toBe(original!.value?.toString('base64') ?? null);
    }
  });

  it('serves Prometheus metrics: lag per partition, events, DLQ reasons, latencies', async () => {
    const res = await fetch(`${c.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    for (const p of c.stats().assigned) {
      expect(text).toMatch(new RegExp(`agenttrace_dashboard_consumer_lag\\{[^}]*topic="${f.topic}"[^}]*partition="${p}"[^}]*\\} 0`));
    }
    expect(c.stats().assigned).toEqual([0, 1]);
    expect(text).toMatch(/agenttrace_dashboard_events_total\{[^}]*result="applied"[^}]*\} 4/);
    expect(text).toMatch(/agenttrace_dashboard_events_total\{[^}]*result="dlq"[^}]*\} 8/);
    expect(text).toMatch(/agenttrace_dashboard_dlq_total\{[^}]*reason="not_json"[^}]*\} 2/);
    expect(text).toMatch(/agenttrace_dashboard_dlq_total\{[^}]*reason="too_deep"[^}]*\} 1/);
    expect(text).toMatch(/agenttrace_dashboard_redis_write_seconds_count\{[^}]*\} [1-9]/);
    expect(text).toMatch(/agenttrace_dashboard_event_to_redis_seconds_count\{[^}]*\} 4/);
    expect(text).toMatch(/agenttrace_dashboard_alerts_fired_total/);
    const health = await fetch(`${c.metricsUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, redis: 'up', paused: false });
  });
});
