import { afterAll, describe, expect, it } from 'vitest';
import { redisKeys } from '@agenttrace/common';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw } from '../../../test-support/stack.js';
import { fixture, testRedis } from './helpers.js';

describe('started before its topic exists', () => {
  const redis = testRedis();
  afterAll(() => redis.disconnect());

  it('says what it waits for on /healthz, then picks the topic up within seconds of its creation', async () => {
    // The fixture's own topic exists; this consumer reads one that does not yet.
    const f = await fixture('late-topic', 1);
    const topic = `${f.topic}-late`;
    try {
      const c = await f.start({ topic });
      const early = await fetch(`${c.metricsUrl}/healthz`);
      expect(early.status).toBe(503);
      expect(await early.json()).toMatchObject({ ok: false, waiting: `topic ${topic} to be created` });
      expect(f.logs.some((l) => l.level === 'warn' && l.message.includes(`waiting for topic ${topic}`))).toBe(true);

      await createTopic(topic, 2);
      const sid = 'sess_late_topic';
      await produceRaw(topic, [0, 1, 2].map((seq) => ({ key: sid, value: JSON.stringify(makeEvent({ session_id: sid, seq })) })));
      const created = Date.now();
      const k = redisKeys(f.prefix);
      // librdkafka's metadata refresh is 5 s here (300 s by default); a rebalance follows.
      await eventually('the late topic consumed', async () => (await redis.llen(k.events(sid))) === 3, 30_000, 100);
      expect(Date.now() - created).toBeLessThan(20_000);
      const later = await fetch(`${c.metricsUrl}/healthz`);
      expect(later.status).toBe(200);
      expect(await later.json()).not.toHaveProperty('waiting');
    } finally {
      await f.cleanup(redis);
      await deleteTopic(topic);
    }
  }, 90_000);
});
