import { describe, expect, it } from 'vitest';
import { OptionsError, redisKeys } from '@agenttrace/common';
import { makeEvent } from '../../../test-support/stack.js';
import { ALERT_DEFAULTS, buildPlan, describeStep, dropApplied, resolveDashboardOptions, slackPayload, type GoodRecord } from '../src/index.js';

const env = { AGENTTRACE_BROKERS: '127.0.0.1:9092' };

describe('options', () => {
  it('applies the documented defaults', () => {
    const o = resolveDashboardOptions({}, env);
    expect(o).toMatchObject({ group: 'session-dashboard', topic: 'agent-events', dlqTopic: 'agent-events.dlq', alertsTopic: 'agent-alerts', ttlSeconds: 30 * 24 * 3600, redisPrefix: 'agenttrace:' });
    expect(o.alerts).toEqual(ALERT_DEFAULTS);
    expect(ALERT_DEFAULTS).toMatchObject({ costThresholdUsd: 10, maxSameToolCalls: 50 });
  });

  it.each([
    [{ batchSize: 0 }, 'options.batchSize'],
    [{ topic: 'bad topic' }, 'options.topic'],
    [{ redisUrl: 'http://x' }, 'options.redisUrl'],
    [{ webhookUrl: 'ftp://secret-token@x' }, 'options.webhookUrl'],
    [{ alerts: { costThresholdUsd: -1 } }, 'options.alerts.costThresholdUsd'],
    [{ alerts: { errorBurst: { count: 1, windowMs: 10 } } }, 'options.alerts.errorBurst.count'],
    [{ metricsPort: 70_000 }, 'options.metricsPort'],
    [{ startFrom: 'middle' }, 'options.startFrom'],
    [{ kafka: { brokers: ['nope'] } }, 'options.kafka.brokers'],
  ])('rejects %j naming %s', (bad, name) => {
    let err: unknown;
    try {
      resolveDashboardOptions(bad as never, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OptionsError);
    expect((err as OptionsError).option).toBe(name);
    expect((err as Error).message).not.toContain('secret-token');
  });
});

describe('batch planning', () => {
  const keys = redisKeys('t:');
  const rec = (partition: number, offset: number, over: Parameters<typeof makeEvent>[0]): GoodRecord => {
    const event = makeEvent(over);
    return { partition, offset, value: Buffer.from(JSON.stringify(event)), event };
  };

  it('groups by session, keeps offset order and sums the aggregates', () => {
    const good = [
      rec(0, 10, { session_id: 's1', event_type: 'llm_call', payload: { model: 'm', input_tokens: 5, output_tokens: 2, cost_usd: 0.1 }, timestamp: '2030-01-01T00:00:02.000Z' }),
      rec(1, 3, { session_id: 's2', payload: { tool: 'a' } }),
      rec(0, 11, { session_id: 's1', event_type: 'llm_call', payload: { model: 'm', cost_usd: 0.2 }, timestamp: '2030-01-01T00:00:01.000Z' }),
      rec(0, 13, { session_id: 's1', event_type: 'session_end', status: 'error', payload: {}, timestamp: '2030-01-01T00:00:03.000Z' }),
    ];
    const plan = buildPlan(good, [{ partition: 0, offset: 12 }], { keys, topic: 't', group: 'g', ttlSeconds: 60, rules: false, recentAlerts: 10, now: 0 }, 't:');
    expect(plan.sessions).toEqual(['s1', 's2']);
    expect(plan.parts).toEqual([[0, 10, 14], [1, 3, 4]]);
    const header = JSON.parse(String(plan.args[0])) as { s: Array<Record<string, unknown>> };
    expect(header.s[0]).toMatchObject({ id: 's1', n: 3, it: 5, ot: 2, c: '0.3', st: 'error', ec: 0, ft: '2030-01-01T00:00:01.000Z', lt: '2030-01-01T00:00:03.000Z', fo: '10', lo: '13' });
    expect(plan.args.slice(1)).toEqual([good[0]!.value, good[2]!.value, good[3]!.value, good[1]!.value]);
    expect(plan.keys[Number(header.s[0]!.k)]).toBe(keys.events('s1'));
  });

  it('drops records below the stored offsets', () => {
    const rs = [{ partition: 0, offset: 5 }, { partition: 0, offset: 6 }, { partition: 1, offset: 1 }];
    expect(dropApplied(rs, new Map([[0, 6]]))).toEqual([{ partition: 0, offset: 6 }, { partition: 1, offset: 1 }]);
  });

  it('describes the current step and formats Slack text', () => {
    expect(describeStep(makeEvent({ event_type: 'tool_call', payload: { tool: 'stripe.create_invoice' } }))).toBe('tool_call stripe.create_invoice');
    expect(describeStep(makeEvent({ event_type: 'session_start', payload: {} }))).toBe('session_start');
    expect(describeStep(makeEvent({ event_type: 'custom', payload: { name: 'x'.repeat(500) } })).length).toBeLessThanOrEqual(200);
    expect(slackPayload({ alert_id: 'cost_threshold|s', rule: 'cost_threshold', session_id: 's', fired_at: '', value: 12, threshold: 10, message: 'session s has cost $12.00' }).text).toContain('session s has cost $12.00');
  });
});
