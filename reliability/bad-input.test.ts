/**
 * Bad input: more than 10,000 malformed or hostile records produced straight to the topic,
 * interleaved with valid events. Neither the dashboard consumer nor the archiver may crash or
 * stall; each bad record reaches the dead-letter topic with the right reason; the valid events
 * around them are all materialized, in order.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_RECORD_BYTES, newEventId, type AgentEvent } from '@agenttrace/contract';
import { DLQ_HEADER_CONSUMER, DLQ_HEADER_REASON } from '@agenttrace/common';
import { consumeAll, createTopic, deleteTopic, eventually, produceRaw, stack, uniqueName, type RawRecord } from '../test-support/stack.js';
import { makeCorpus } from './corpus.js';
import { archiverService, clearRedisPrefix, dashboardService, readArchive, readRedis, report, scrape } from './harness.js';

const topic = uniqueName('rel-bad');
const dlqTopic = `${topic}.dlq`;
const prefix = `${topic}:`;

afterAll(async () => {
  await clearRedisPrefix(stack.redisUrl, prefix);
  await deleteTopic(topic);
  await deleteTopic(dlqTopic);
});

function headerValue(headers: Array<Record<string, unknown>> | undefined, name: string): string | undefined {
  for (const h of headers ?? []) if (name in h) return String(h[name]);
  return undefined;
}

describe('a topic full of malformed and hostile records', () => {
  it('dead-letters every bad record with its reason and keeps every valid event, without crash or stall', async () => {
    const corpus = makeCorpus({ count: 10_000, hostileValid: 300, sessionPrefix: topic, maxRecordBytes: DEFAULT_MAX_RECORD_BYTES });
    // Valid events of 20 ordinary sessions, spread through the corpus.
    const valid = new Map<string, string[]>();
    const records: RawRecord[] = [];
    const perSessionSeq = new Map<string, number>();
    let c = 0;
    for (let i = 0; i < 2000; i++) {
      const session = `${topic}-ok-${i % 20}`;
      const seq = perSessionSeq.get(session) ?? 0;
      perSessionSeq.set(session, seq + 1);
      const e: AgentEvent = {
        schema_version: 1,
        event_id: newEventId(),
        session_id: session,
        agent_id: 'steady-agent',
        emitter_id: 'em_ok',
        seq,
        timestamp: new Date().toISOString(),
        event_type: 'tool_call',
        status: 'ok',
        payload: { tool: 'ok.tool', input: { i }, output: { ok: true }, latency_ms: 2 },
        context: {},
      };
      valid.set(session, [...(valid.get(session) ?? []), e.event_id]);
      records.push({ key: session, value: JSON.stringify(e) });
      for (let k = 0; k < 5 && c < corpus.length; k++) records.push(corpus[c++]!);
    }
    while (c < corpus.length) records.push(corpus[c++]!);
    for (const r of corpus) {
      if (r.expectReason !== undefined) continue;
      const e = JSON.parse(String(r.value)) as AgentEvent;
      valid.set(e.session_id, [...(valid.get(e.session_id) ?? []), e.event_id]);
    }
    const expectedBad = new Map<string, number>();
    for (const r of corpus) if (r.expectReason) expectedBad.set(r.expectReason, (expectedBad.get(r.expectReason) ?? 0) + 1);
    const badCount = [...expectedBad.values()].reduce((a, b) => a + b, 0);

    await createTopic(topic, 4, stack.brokers, { 'max.message.bytes': String(4 * 1024 * 1024) });
    await produceRaw(topic, records, stack.brokers, { 'message.max.bytes': 4 * 1024 * 1024 });

    const metricsPort = 25467;
    const dashboard = dashboardService({ brokers: stack.brokers, topic, redisUrl: stack.redisUrl, prefix, group: `${topic}-dashboard`, dlqTopic, metricsPort });
    const archiver = archiverService({ brokers: stack.brokers, topic, s3Endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: topic, group: `${topic}-archiver`, dlqTopic });
    const t0 = Date.now();
    dashboard.start();
    archiver.start();
    try {
      // No stall: the dashboard consumer catches up with the whole topic.
      await eventually(
        'the dashboard consumer to catch up',
        async () => (await scrape(`http://127.0.0.1:${metricsPort}/metrics`, 'agenttrace_dashboard_consumer_lag')) === 0 && (await scrape(`http://127.0.0.1:${metricsPort}/metrics`, 'agenttrace_dashboard_events_total')) !== undefined,
        120_000,
        500,
      );
      const dlq = await eventually(
        'both consumers to dead-letter every bad record',
        async () => {
          const msgs = await consumeAll(dlqTopic, { timeoutMs: 15_000 });
          return msgs.length >= badCount * 2 ? msgs : undefined;
        },
        150_000,
        3000,
      );
      const byConsumer = new Map<string, Map<string, number>>();
      for (const m of dlq) {
        const consumer = headerValue(m.headers as Array<Record<string, unknown>>, DLQ_HEADER_CONSUMER) ?? 'unknown';
        const reason = headerValue(m.headers as Array<Record<string, unknown>>, DLQ_HEADER_REASON) ?? 'none';
        const hist = byConsumer.get(consumer) ?? new Map<string, number>();
        hist.set(reason, (hist.get(reason) ?? 0) + 1);
        byConsumer.set(consumer, hist);
      }
      const redis = await readRedis(stack.redisUrl, prefix, valid.keys());
      const archive = await eventually(
        'the archive to hold every valid event',
        async () => {
          const a = await readArchive({ bucket: stack.s3Bucket, endpoint: stack.s3Endpoint }, topic);
          const n = [...a.perSession.values()].reduce((s, l) => s + l.length, 0);
          const want = [...valid.values()].reduce((s, l) => s + l.length, 0);
          return n >= want ? a : undefined;
        },
        120_000,
        3000,
      ).catch(() => readArchive({ bucket: stack.s3Bucket, endpoint: stack.s3Endpoint }, topic));
      report('bad input corpus', {
        records: records.length,
        bad: badCount,
        validEvents: [...valid.values()].reduce((s, l) => s + l.length, 0),
        dlqByConsumer: Object.fromEntries([...byConsumer].map(([k, v]) => [k, Object.fromEntries(v)])),
        secondsToDrain: (Date.now() - t0) / 1000,
      });
      if (!archiver.running) console.error(archiver.log);
      expect(dashboard.running).toBe(true);
      expect(archiver.running).toBe(true);
      expect(byConsumer.size).toBe(2);
      for (const [, hist] of byConsumer) expect(Object.fromEntries(hist)).toEqual(Object.fromEntries(expectedBad));
      for (const [session, ids] of valid) {
        expect(redis.get(session), `Redis timeline of ${session}`).toEqual(ids);
        expect(archive.perSession.get(session), `archive of ${session}`).toEqual(ids);
      }
    } finally {
      await Promise.all([dashboard.stop(), archiver.stop()]);
    }
  }, 420_000);
});
