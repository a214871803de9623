import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { Message } from '@confluentinc/kafka-javascript';
import { DLQ_HEADER_OFFSET, DLQ_HEADER_PARTITION, DLQ_HEADER_REASON, DLQ_HEADER_TOPIC, DLQ_HEADER_TRUNCATED_FROM, redisKeys } from '@agenttrace/common';
import { consumeAll, createTopic, eventually, makeEvent, produceRaw } from '../../../test-support/stack.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

/** Every value of a header, matched without regard to case (Kafka header names are case-sensitive; a forger need not be). */
function headerValues(m: Message, name: string): string[] {
  const out: string[] = [];
  for (const h of m.headers ?? []) for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === name) out.push(String(v));
  return out;
}

describe('dead-lettering by the dashboard consumer', () => {
  let redis: Redis;
  const fixtures: Fixture[] = [];

  beforeAll(() => {
    redis = testRedis();
  });

  afterAll(async () => {
    for (const f of fixtures) await f.cleanup(redis);
    redis.disconnect();
  });

  it('writes the true provenance only: dlq headers a producer put on the record are dropped, its other headers kept', async () => {
    const f = await fixture('dlq-forged', 1);
    fixtures.push(f);
    const sid = 'sess_forged';
    await produceRaw(f.topic, [
      {
        key: sid,
        value: 'this is {not json',
        headers: [
          { [DLQ_HEADER_TOPIC]: 'some-other-topic' },
          { [DLQ_HEADER_REASON]: 'forged' },
          { 'Agenttrace-DLQ-Source-Offset': '999999' },
          { [DLQ_HEADER_PARTITION]: '42' },
          { 'x-trace-id': 'abc123' },
        ],
      },
    ]);
    const c = await f.start();
    const [m] = await consumeAll(f.dlqTopic, { count: 1, timeoutMs: 30_000 });
    expect(m, 'the bad record reached the dead-letter topic').toBeDefined();
    expect(headerValues(m!, DLQ_HEADER_TOPIC)).toEqual([f.topic]);
    expect(headerValues(m!, DLQ_HEADER_REASON)).toEqual(['not_json']);
    expect(headerValues(m!, DLQ_HEADER_OFFSET)).toEqual(['0']);
    expect(headerValues(m!, DLQ_HEADER_PARTITION)).toEqual(['0']);
    // The record's own headers travel along.
    expect(headerValues(m!, 'x-trace-id')).toEqual(['abc123']);
    expect(m!.value?.toString()).toBe('this is {not json');
    expect(c.stats().deadLettered).toBe(1);
  });

  it('steps a value the DLQ topic refuses down to an empty one (even under 64 KiB) and keeps the partition moving', async () => {
    const f = await fixture('dlq-small', 1);
    fixtures.push(f);
    // The DLQ takes records of at most 2000 bytes: a 10 KB bad record must not stall the partition.
    await createTopic(f.dlqTopic, 1, undefined, { 'max.message.bytes': '2000' });
    const sid = 'sess_small_dlq';
    const bad = `{not json ${'x'.repeat(10_000)}`;
    const good = JSON.stringify(makeEvent({ session_id: sid, seq: 0 }));
    await produceRaw(f.topic, [
      { key: sid, value: bad },
      { key: sid, value: good },
    ]);
    const c = await f.start({ retryMinMs: 50, retryMaxMs: 200 });
    const k = redisKeys(f.prefix);
    // The good record behind the bad one is applied: the partition moved on.
    await eventually('the good record after the refused one to be applied', async () => (await redis.lrange(k.events(sid), 0, -1)).length === 1, 30_000);
    expect(await redis.lrange(k.events(sid), 0, -1)).toEqual([good]);
    const [m] = await consumeAll(f.dlqTopic, { count: 1, timeoutMs: 20_000 });
    expect(m, 'a stepped-down copy reached the dead-letter topic').toBeDefined();
    expect(headerValues(m!, DLQ_HEADER_TRUNCATED_FROM)).toEqual([String(Buffer.byteLength(bad))]);
    expect(headerValues(m!, DLQ_HEADER_OFFSET)).toEqual(['0']);
    expect(m!.value?.length ?? 0).toBe(0);
    expect(c.stats().deadLettered).toBe(1);
  });
});
