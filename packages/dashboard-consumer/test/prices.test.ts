import { afterAll, describe, expect, it } from 'vitest';
import { redisKeys } from '@agenttrace/common';
import { AgentTracer } from '@agenttrace/tracer';
import { eventually, makeEvent, produceRaw, stack } from '../../../test-support/stack.js';
import { fixture, testRedis } from './helpers.js';

describe('cost at the default price table', () => {
  const redis = testRedis();
  afterAll(() => redis.disconnect());

  it('raises the cost alert for a session traced with no pricing option', async () => {
    const f = await fixture('prices', 1);
    try {
      const sessionId = `sess_prices_${f.topic}`;
      const tracer = new AgentTracer({ sessionId, agentId: 'pricey', kafka: { brokers: stack.brokers }, topic: f.topic, ensureTopic: false, handleExit: false });
      // 4 calls of 1M input + 100k output tokens at claude-sonnet-4-5's $3 / $15 per million: $4.50 each, $18 in all.
      for (let i = 0; i < 4; i++) {
        await tracer.trackLlmCall({ model: 'claude-sonnet-4-5-20250929', input: 'long context' }, () => ({ usage: { input_tokens: 1_000_000, output_tokens: 100_000 } }));
      }
      await tracer.close();
      await f.start();
      const k = redisKeys(f.prefix);
      await eventually('the cost alert', async () => (await redis.sismember(k.alertsFired(), `cost_threshold|${sessionId}`)) === 1, 30_000);
      const cost = Number(await redis.zscore(k.byCost(), sessionId));
      expect(cost).toBeCloseTo(18, 6);
    } finally {
      await f.cleanup(redis);
    }
  }, 90_000);

  it('prices LLM calls that carry tokens but no cost (events from other producers)', async () => {
    const f = await fixture('prices-raw', 1);
    try {
      const sid = 'sess_prices_raw';
      const events = [0, 1, 2].map((seq) => makeEvent({ session_id: sid, seq, event_type: 'llm_call', payload: { model: 'gpt-4o', input_tokens: 1_000_000, output_tokens: 500_000 } }));
      await produceRaw(f.topic, events.map((e) => ({ key: sid, value: JSON.stringify(e) })));
      await f.start({ alerts: { costThresholdUsd: 10 } });
      const k = redisKeys(f.prefix);
      // $2.50 + $5.00 per call at gpt-4o's prices.
      await eventually('the session priced', async () => Number(await redis.zscore(k.byCost(), sid)) > 0, 30_000);
      expect(Number(await redis.zscore(k.byCost(), sid))).toBeCloseTo(22.5, 6);
      await eventually('the cost alert', async () => (await redis.sismember(k.alertsFired(), `cost_threshold|${sid}`)) === 1, 30_000);
    } finally {
      await f.cleanup(redis);
    }
  }, 90_000);
});
