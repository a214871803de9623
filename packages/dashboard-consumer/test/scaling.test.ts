import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import { eventually, makeEvent, produceRaw, sleep } from '../../../test-support/stack.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

describe('several instances in one group', () => {
  let f: Fixture;
  let redis: Redis;

  beforeAll(async () => {
    f = await fixture('scale', 4);
    redis = testRedis();
  });

  afterAll(async () => {
    await f.cleanup(redis);
    redis.disconnect();
  });

  it('share the partitions and lose or duplicate nothing across rebalances', async () => {
    const expected = new Map<string, string[]>();
    const chunk = async (n: number, from: number) => {
      const records = [];
      for (let i = 0; i < n; i++) {
        const sid = `sess_${(from + i) % 24}`;
        const text = JSON.stringify(makeEvent({ session_id: sid, seq: from + i }));
        if (!expected.has(sid)) expected.set(sid, []);
        expected.get(sid)!.push(text);
        records.push({ key: sid, value: text });
      }
      await produceRaw(f.topic, records);
    };
    const one = await f.start({ batchSize: 100 });
    const two = await f.start({ batchSize: 100 });
    await eventually('both instances own partitions', () => one.stats().assigned.length > 0 && two.stats().assigned.length > 0, 30_000);
    expect([...one.stats().assigned, ...two.stats().assigned].sort()).toEqual([0, 1, 2, 3]);
    let produced = 0;
    for (let i = 0; i < 5; i++, produced += 200) await chunk(200, produced);
    // One instance leaves mid-stream, a third joins: two rebalances while records keep coming.
    const leaving = one.close();
    for (let i = 0; i < 3; i++, produced += 200) await chunk(200, produced);
    await leaving;
    const three = await f.start({ batchSize: 100 });
    for (let i = 0; i < 3; i++, produced += 200) {
      await chunk(200, produced);
      await sleep(200);
    }
    const k = redisKeys(f.prefix);
    await eventually('every record applied', async () => {
      const o = await redis.hgetall(k.offsets(f.group, f.topic));
      return Object.values(o).reduce((s, v) => s + Number(v), 0) === produced;
    }, 60_000, 250);
    expect(one.stats().applied).toBeGreaterThan(0);
    expect(two.stats().applied + three.stats().applied).toBeGreaterThan(0);
    expect(one.stats().applied + two.stats().applied + three.stats().applied).toBe(produced);
    for (const [sid, texts] of expected) expect(await redis.lrange(k.events(sid), 0, -1), sid).toEqual(texts);
  }, 120_000);
});
