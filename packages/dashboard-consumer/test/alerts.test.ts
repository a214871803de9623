import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { consumeAll, eventually, makeEvent, produceRaw, sleep } from '../../../test-support/stack.js';
import { alertsOutboxKey, type Alert, type DashboardConsumerOptions } from '../src/index.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

describe('streaming alerts', () => {
  let f: Fixture;
  let redis: Redis;
  let hook: Server;
  let hookUrl: string;
  const received: string[] = [];
  let requests = 0;
  const now = Date.now();
  const ts = (offsetMs: number) => new Date(now + offsetMs).toISOString();
  const end = (sid: string): AgentEvent => makeEvent({ session_id: sid, event_type: 'session_end', payload: {}, timestamp: ts(0) });
  const opts: DashboardConsumerOptions = {
    alerts: { costThresholdUsd: 1, maxSameToolCalls: 5, errorBurst: { count: 3, windowMs: 10_000 }, idleMs: 3000, idleCheckIntervalMs: 300 },
  };

  beforeAll(async () => {
    f = await fixture('alerts', 2);
    redis = testRedis();
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        requests += 1;
        // The first delivery fails: the retry must bring it through.
        if (requests === 1) {
          res.writeHead(500).end();
          return;
        }
        received.push(body);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    const events: AgentEvent[] = [];
    for (let i = 0; i < 5; i++) events.push(makeEvent({ session_id: 'sess_cost', event_type: 'llm_call', payload: { model: 'm', cost_usd: 0.4 }, timestamp: ts(i) }));
    events.push(end('sess_cost'));
    for (let i = 0; i < 12; i++) events.push(makeEvent({ session_id: 'sess_loop', payload: { tool: 'stripe.create_invoice' }, timestamp: ts(i) }));
    events.push(end('sess_loop'));
    for (let i = 0; i < 4; i++) events.push(makeEvent({ session_id: 'sess_err', event_type: 'error', status: 'error', payload: { error: { message: 'boom' } }, timestamp: ts(i * 500) }));
    events.push(end('sess_err'));
    // Errors far apart in time are not a burst.
    for (let i = 0; i < 4; i++) events.push(makeEvent({ session_id: 'sess_slow_err', event_type: 'error', status: 'error', payload: { error: { message: 'x' } }, timestamp: ts(i * 60_000 - 300_000) }));
    events.push(end('sess_slow_err'));
    events.push(makeEvent({ session_id: 'sess_idle', event_type: 'session_start', payload: {}, timestamp: ts(-2000) }));
    events.push(makeEvent({ session_id: 'sess_fine', payload: { tool: 'a' } }), end('sess_fine'));
    await produceRaw(f.topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    await f.start({ ...opts, webhookUrl: hookUrl });
  });

  afterAll(async () => {
    await f.cleanup(redis);
    redis.disconnect();
    await new Promise<void>((r) => hook.close(() => r()));
  });

  const expectedIds = ['cost_threshold|sess_cost', 'error_burst|sess_err', 'idle|sess_idle', 'tool_loop|sess_loop'];

  it('fires each rule once for the sessions that break it', async () => {
    const k = redisKeys(f.prefix);
    await eventually('four alerts fired', async () => (await redis.scard(k.alertsFired())) >= 4, 20_000);
    await sleep(1500);
    expect((await redis.smembers(k.alertsFired())).sort()).toEqual(expectedIds);
    const recent = (await redis.lrange(k.alertsRecent(), 0, -1)).map((j) => JSON.parse(j) as Alert);
    const cost = recent.find((a) => a.rule === 'cost_threshold')!;
    // value is the session total after the batch that crossed the threshold (batches group records).
    expect(cost.value).toBeGreaterThan(1);
    expect(cost.value).toBeLessThanOrEqual(2.0000001);
    expect(cost.threshold).toBe(1);
    const loop = recent.find((a) => a.rule === 'tool_loop')!;
    expect(loop).toMatchObject({ tool: 'stripe.create_invoice', threshold: 5, session_id: 'sess_loop' });
    expect(loop.value).toBeGreaterThan(5);
    expect(loop.value).toBeLessThanOrEqual(12);
  });

  it('produces them to the alerts topic and the webhook (with retries), then empties the outbox', async () => {
    const msgs = await consumeAll(f.alertsTopic, { count: 4, timeoutMs: 20_000 });
    expect(msgs.map((m) => (JSON.parse(m.value!.toString()) as Alert).alert_id).sort()).toEqual(expectedIds);
    await eventually('webhook deliveries', () => received.length >= 4, 20_000);
    expect(requests).toBe(received.length + 1);
    const texts = received.map((b) => (JSON.parse(b) as { text: string }).text);
    expect(texts.some((t) => t.includes('tool_loop') && t.includes('stripe.create_invoice'))).toBe(true);
    await eventually('outbox empty', async () => (await redis.hlen(alertsOutboxKey(f.prefix))) === 0, 10_000);
  });

  it('does not fire again after a restart or on more events', async () => {
    await f.consumers[0]!.close();
    const more = [0, 1, 2].map(() => makeEvent({ session_id: 'sess_cost', event_type: 'llm_call', payload: { model: 'm', cost_usd: 5 } }));
    await produceRaw(f.topic, more.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const c = await f.start({ ...opts, webhookUrl: hookUrl });
    const k = redisKeys(f.prefix);
    await eventually('more events applied', async () => Number(await redis.hget(k.meta('sess_cost'), 'event_count')) === 9, 20_000);
    await sleep(1500);
    expect(await redis.scard(k.alertsFired())).toBe(4);
    expect(c.stats().alertsFired).toBe(0);
    expect(received.length).toBe(4);
    const msgs = await consumeAll(f.alertsTopic, { timeoutMs: 5000 });
    expect(msgs).toHaveLength(4);
  });
});
