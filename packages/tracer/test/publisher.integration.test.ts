import { afterAll, describe, expect, it } from 'vitest';
import { EventPublisher, shutdownTracing } from '@agenttrace/tracer';
import { isOffloadRef, newEventId, partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { createS3Client, restoreOffloads } from '@agenttrace/common';
import { consumeAll, createTopic, deleteTopic, freePort, makeEvent, stack, uniqueName } from '../../../test-support/stack.js';

const topics: string[] = [];
afterAll(async () => {
  await shutdownTracing();
  for (const t of topics) await deleteTopic(t);
});

describe('EventPublisher: pre-built events through the tracer path', () => {
  it('resolves once Kafka acknowledged; keyed by session on the Java murmur2 partition; redacted; oversized fields offloaded', async () => {
    const topic = uniqueName('publisher');
    topics.push(topic);
    await createTopic(topic, 6);
    const prefix = uniqueName('pub-offload');
    const s3 = { bucket: stack.s3Bucket, endpoint: stack.s3Endpoint, prefix };
    const publisher = new EventPublisher({ kafka: { brokers: stack.brokers }, topic, ensureTopic: false, s3 });
    const ev = (session: string, payload: AgentEvent['payload']): AgentEvent => makeEvent({ event_id: newEventId(), session_id: session, emitter_id: publisher.emitterId, payload });
    const big = 'x'.repeat(20_000);
    const events = [
      ev('sess_p1', { tool: 'crm.lookup', input: { password: 'hunter2', email: 'jane.doe@example.com' } }),
      ev('sess_p2', { tool: 'docs.render', output: big }),
      ...Array.from({ length: 50 }, (_, i) => ev(`sess_p${i % 7}`, { tool: 't', input: { i } })),
    ];
    // Two batches at once share confirmations; each resolves with its own ids.
    const [a, b] = await Promise.all([publisher.publish(events.slice(0, 20)), publisher.publish(events.slice(20))]);
    expect(a.failed).toEqual([]);
    expect(b.failed).toEqual([]);
    expect([...a.delivered, ...b.delivered]).toEqual(events.map((e) => e.event_id));
    expect(publisher.stats()).toMatchObject({ delivered: 52, failed: 0, offloaded: 1 });

    const got = await consumeAll(topic, { count: 52 });
    expect(got).toHaveLength(52);
    for (const m of got) {
      const e = JSON.parse(m.value!.toString('utf8')) as AgentEvent;
      expect(String(m.key)).toBe(e.session_id);
      expect(m.partition).toBe(partitionForKey(e.session_id, 6));
    }
    const byId = new Map(got.map((m) => { const e = JSON.parse(m.value!.toString('utf8')) as AgentEvent; return [e.event_id, e]; }));
    const redacted = byId.get(events[0]!.event_id)!;
    expect(redacted.payload.input).toEqual({ password: '[REDACTED:key]', email: expect.not.stringContaining('jane.doe@example.com') as unknown });
    const offloaded = byId.get(events[1]!.event_id)!;
    expect(offloaded.offload).toEqual({ fields: ['payload.output'] });
    expect(isOffloadRef(offloaded.payload.output)).toBe(true);
    const { event: restored } = await restoreOffloads(createS3Client(s3), offloaded);
    expect(restored.payload.output).toBe(big);
    await publisher.close();
  });

  it('Kafka unreachable: publish() resolves with every event failed and retryable, it does not hang', async () => {
    const port = await freePort();
    const publisher = new EventPublisher({ kafka: { brokers: [`127.0.0.1:${port}`] }, topic: uniqueName('publisher-down'), ensureTopic: false, connectTimeoutMs: 500, onError: () => {} });
    const events = [makeEvent({ emitter_id: publisher.emitterId }), makeEvent({ emitter_id: publisher.emitterId })];
    const t0 = Date.now();
    const r = await publisher.publish(events);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.delivered).toEqual([]);
    expect(r.failed.map((f) => [f.eventId, f.error.code, f.error.retryable])).toEqual(events.map((e) => [e.event_id, 'DELIVERY_FAILED', true]));
    expect(r.failed[0]!.error.message).toMatch(/unreachable/);
    // An event of another emitter is refused by name, not routed to the wrong place.
    const other = await publisher.publish([makeEvent({ emitter_id: 'em_other' })]);
    expect(other.failed[0]!.error.message).toMatch(/not this publisher's/);
    await publisher.close();
  });
});
