import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Kafka from '@confluentinc/kafka-javascript';
import type { TopicPartitionOffset } from '@confluentinc/kafka-javascript';
import { DLQ_HEADER_REASON, KafkaAdmin, createS3Client, rdkafkaConfig, s3Sdk, uploadOffload } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { eventsToSpans, OtlpForwarder, type ForwarderOptions } from '../src/index.js';
import { consumeAll, createTopic, deleteTopic, eventually, freePort, kafkaConn, makeEvent, produceRaw, repoRoot, sleep, stack, uniqueName } from '../../../test-support/stack.js';
import { TestBackend, type ReceivedSpan } from './otlp-backend.js';

const CLI = join(repoRoot, 'packages', 'otlp', 'bin', 'agenttrace-otlp.js');

/**
 * Sessions of events as the tracer writes them (ids of their own) and as the receiver writes them
 * (OpenTelemetry ids in context.otel, with the parent's span id), each step the child of the one before.
 */
function sessions(count: number, perSession: number, tag: string): AgentEvent[] {
  const out: AgentEvent[] = [];
  for (let s = 0; s < count; s++) {
    const sid = `sess_${tag}_${s}`;
    const fromOtel = s % 2 === 1;
    const traceId = Buffer.from(`${tag}-${s}`.padEnd(16, '.')).subarray(0, 16).toString('hex');
    let prev: AgentEvent | undefined;
    for (let i = 0; i < perSession; i++) {
      const spanId = (s * 100_000 + i + 1).toString(16).padStart(16, '0');
      const context: AgentEvent['context'] = {};
      if (prev) context.parent_event_id = prev.event_id;
      if (fromOtel) {
        const prevOtel = prev?.context.otel as { span_id: string } | undefined;
        context.otel = { trace_id: traceId, span_id: spanId, ...(prevOtel ? { parent_span_id: prevOtel.span_id } : {}) };
      }
      const e = makeEvent({
        session_id: sid,
        seq: i,
        event_type: i === 0 ? 'session_start' : i % 3 === 0 ? 'llm_call' : 'tool_call',
        payload: i === 0 ? {} : i % 3 === 0 ? { model: 'gpt-4o', input_tokens: 10 + i, output_tokens: 5, latency_ms: 12 } : { tool: `tool.${i % 5}`, input: { i }, latency_ms: 3 },
        context,
      });
      out.push(e);
      prev = e;
    }
  }
  return out;
}

/** The span each event must become, from the event alone: what any export of it sends. */
function expectedSpan(e: AgentEvent): { traceId: string; spanId: string; parentSpanId: string; name: string } {
  const s = eventsToSpans([e])[0]!;
  return { traceId: s.traceId.toString('hex'), spanId: s.spanId.toString('hex'), parentSpanId: s.parentSpanId?.toString('hex') ?? '', name: s.name };
}

async function committedOffsets(group: string, topic: string, partitions: number): Promise<Map<number, number | undefined>> {
  const c = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn()), 'group.id': group, 'enable.auto.commit': false } as never, {});
  await new Promise<void>((res, rej) => c.connect({}, (err) => (err ? rej(err) : res())));
  try {
    const tps = await new Promise<TopicPartitionOffset[]>((res, rej) =>
      c.committed(Array.from({ length: partitions }, (_, p) => ({ topic, partition: p })), 10_000, (err, r) => (err ? rej(err) : res(r))),
    );
    // No commit yet reads as undefined.
    return new Map(tps.map((tp) => [tp.partition, typeof tp.offset === 'number' && tp.offset >= 0 ? tp.offset : undefined]));
  } finally {
    await new Promise<void>((res) => c.disconnect(() => res()));
  }
}

async function highWatermarks(topic: string, partitions: number): Promise<Map<number, number>> {
  const admin = new KafkaAdmin(kafkaConn());
  try {
    const wm = await admin.watermarks(topic, Array.from({ length: partitions }, (_, p) => p));
    return new Map([...wm].map(([p, w]) => [p, w.high]));
  } finally {
    admin.close();
  }
}

const byEventId = (spans: ReceivedSpan[]) => {
  const m = new Map<string, ReceivedSpan[]>();
  for (const s of spans) {
    const id = s.attributes['agenttrace.event_id'] as string;
    m.set(id, [...(m.get(id) ?? []), s]);
  }
  return m;
};

describe('agenttrace-otlp forward on the real stack', () => {
  const topics: string[] = [];
  const backends: TestBackend[] = [];
  const forwarders: OtlpForwarder[] = [];
  const children: ChildProcess[] = [];

  async function setup(partitions = 4): Promise<{ topic: string; dlq: string; group: string; backend: TestBackend }> {
    const topic = uniqueName('otlp-fwd');
    const dlq = `${topic}.dlq`;
    topics.push(topic, dlq);
    await createTopic(topic, partitions);
    await createTopic(dlq, 1);
    const backend = new TestBackend();
    backends.push(backend);
    await backend.listen();
    return { topic, dlq, group: uniqueName('otlp-fwd-group'), backend };
  }

  function forwarder(o: Partial<ForwarderOptions> & Pick<ForwarderOptions, 'endpoint' | 'topic' | 'group'>): OtlpForwarder {
    const f = new OtlpForwarder({ kafka: { brokers: stack.brokers }, retryMinMs: 100, retryMaxMs: 1000, lingerMs: 50, sessionTimeoutMs: 6000, ...o });
    forwarders.push(f);
    return f;
  }

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const f of forwarders.splice(0)) await f.close();
    for (const b of backends.splice(0)) await b.close();
  });

  afterAll(async () => {
    for (const t of topics) await deleteTopic(t);
  });

  it('sends every event as its span with ids from the event alone, dead-letters bad records, and commits only what the backend took', async () => {
    const { topic, dlq, group, backend } = await setup();
    const events = sessions(12, 25, 'a');
    await produceRaw(topic, [
      ...events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })),
      // A producer cannot forge where a dead letter came from: only the writer's provenance headers count.
      { key: 'sess_bad', value: 'not json at all', headers: [{ 'agenttrace-dlq-source-topic': 'forged-topic' }, { 'x-request-id': 'kept' }] },
      { key: 'sess_bad', value: JSON.stringify({ schema_version: 1, event_type: 'tool_call' }) },
    ]);
    const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: dlq, batchSize: 40, headers: { authorization: 'Bearer test-token-0123456789' } });
    await f.start();
    await eventually('every event at the backend', () => backend.accepted.length >= events.length, 60_000);
    await eventually('both bad records dead-lettered', () => f.stats().deadLettered === 2, 30_000);
    // Nothing more comes: each event is one span, sent once when nothing failed.
    await sleep(500);
    const got = byEventId(backend.accepted);
    expect(backend.accepted.length).toBe(events.length);
    for (const e of events) expect(got.get(e.event_id)?.map(({ traceId, spanId, parentSpanId, name }) => ({ traceId, spanId, parentSpanId, name }))).toEqual([expectedSpan(e)]);
    // A receiver-written child names its parent's real span id even when the two went in different requests.
    const otelChild = events.find((e) => (e.context.otel as { parent_span_id?: string } | undefined)?.parent_span_id !== undefined)!;
    expect(got.get(otelChild.event_id)![0]!.parentSpanId).toBe((otelChild.context.otel as { parent_span_id: string }).parent_span_id);
    expect(backend.requests.every((r) => r.headers.authorization === 'Bearer test-token-0123456789')).toBe(true);
    expect(Math.max(...backend.requests.map((r) => r.spans.length))).toBeLessThanOrEqual(40);

    const dead = await consumeAll(dlq, { count: 2, timeoutMs: 20_000 });
    const reasons = dead.map((m) => (m.headers ?? []).find((h) => DLQ_HEADER_REASON in h)?.[DLQ_HEADER_REASON]?.toString()).sort();
    expect(reasons).toEqual(['not_json', 'schema_violation']);
    const forged = dead.find((m) => m.value?.toString() === 'not json at all')!;
    const values = (name: string) => (forged.headers ?? []).filter((h) => name in h).map((h) => h[name]!.toString());
    expect(values('agenttrace-dlq-source-topic')).toEqual([topic]);
    expect(values('x-request-id')).toEqual(['kept']);

    const stats = f.stats();
    expect(stats).toMatchObject({ consumed: events.length + 2, spansSent: events.length, badRecords: 2, deadLettered: 2, refused: 0, halted: undefined });
    const closing = f.close();
    expect(f.close()).toBe(closing);
    await closing;
    // Everything was accepted, so the group's offsets are at the end of every partition.
    expect(await committedOffsets(group, topic, 4)).toEqual(await highWatermarks(topic, 4));
  });

  it('retries 503 and 429 after their Retry-After, and dead-letters only the span a 400 refuses', async () => {
    const { topic, dlq, group, backend } = await setup(1);
    const events = sessions(1, 20, 'b');
    const poison = events[7]!;
    backend.answer = (r) => {
      if (r.n === 1) return { status: 503, headers: { 'retry-after': '1' }, body: 'busy' };
      if (r.n === 2) return { status: 429, headers: { 'retry-after': '1' }, body: 'slow down' };
      if (r.spans.some((s) => s.attributes['agenttrace.event_id'] === poison.event_id)) return { status: 400, body: 'attribute value too long' };
      return { status: 200 };
    };
    await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: dlq, batchSize: 100, lingerMs: 500 });
    await f.start();
    await eventually('19 events accepted and the refused one dead-lettered', () => backend.accepted.length >= 19 && f.stats().deadLettered === 1, 60_000);
    // The whole batch came first as one request, then again after each wait.
    const [first, second, third] = backend.requests as [typeof backend.requests[0], typeof backend.requests[0], typeof backend.requests[0]];
    expect(first.spans.length).toBe(20);
    expect(second.at - first.at).toBeGreaterThanOrEqual(950);
    expect(third.at - second.at).toBeGreaterThanOrEqual(950);
    expect(new Set(backend.accepted.map((s) => s.attributes['agenttrace.event_id']))).toEqual(new Set(events.filter((e) => e !== poison).map((e) => e.event_id)));
    const dead = await consumeAll(dlq, { count: 1, timeoutMs: 20_000 });
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.value!.toString()).event_id).toBe(poison.event_id);
    const header = (name: string) => (dead[0]!.headers ?? []).find((h) => name in h)?.[name]?.toString();
    expect(header(DLQ_HEADER_REASON)).toBe('otlp_refused');
    expect(header('agenttrace-dlq-detail')).toMatch(/answered 400: attribute value too long/);
    expect(f.stats()).toMatchObject({ refused: 1, deadLettered: 1, spansSent: 19 });
    expect(f.stats().retries).toBeGreaterThanOrEqual(2);
    await f.close();
    expect(await committedOffsets(group, topic, 1)).toEqual(await highWatermarks(topic, 1));
  });

  it('backpressure: a backend that does not answer gets maxInFlight requests and reading stops until it answers', async () => {
    const { topic, group, backend } = await setup(2);
    const events = sessions(20, 100, 'c');
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    backend.answer = async () => {
      await released;
      return { status: 200 };
    };
    await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: false, batchSize: 50, maxInFlight: 2, requestTimeoutMs: 60_000 });
    await f.start();
    await eventually('two requests open', () => backend.open === 2, 30_000);
    await sleep(2000);
    expect(backend.open).toBe(2);
    expect(backend.maxOpen).toBe(2);
    // Only the records of the two requests were taken; the other 1,900 wait in Kafka.
    expect(f.stats()).toMatchObject({ consumed: 100, inFlight: 2, paused: true });
    expect(await committedOffsets(group, topic, 2)).toEqual(new Map([[0, undefined], [1, undefined]]));
    release();
    await eventually('every event at the backend', () => backend.accepted.length >= events.length, 60_000);
    expect(backend.maxOpen).toBe(2);
    expect(new Set(backend.accepted.map((s) => s.attributes['agenttrace.event_id'])).size).toBe(events.length);
    await f.close();
  });

  it('close() with the backend down does not wait out the retries, and commits nothing', async () => {
    const { topic, group } = await setup(1);
    const events = sessions(1, 10, 'e');
    await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const f = forwarder({ endpoint: `http://127.0.0.1:${await freePort()}`, topic, group, dlqTopic: false, retryMinMs: 20_000, retryMaxMs: 60_000 });
    await f.start();
    await eventually('a failed attempt', () => f.stats().retries >= 1, 30_000);
    const t0 = Date.now();
    await f.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(f.stats()).toMatchObject({ spansSent: 0, commits: 0 });
    expect(await committedOffsets(group, topic, 1)).toEqual(new Map([[0, undefined]]));
  });

  it('offloaded fields are fetched back from S3 before sending; one that cannot be fetched goes as its reference', async () => {
    const { topic, group, backend } = await setup(1);
    const s3 = createS3Client({ endpoint: stack.s3Endpoint });
    const prefix = uniqueName('otlp-fwd-offload');
    const big = { messages: [{ role: 'user', content: 'x'.repeat(12_000) }] };
    const ref = await uploadOffload(s3, { bucket: stack.s3Bucket, prefix }, JSON.stringify(big));
    const missing = { $offload: { ...ref.$offload, key: `${prefix}/payloads/sha256/00/missing.json` } };
    const [withRef, withMissing] = [
      makeEvent({ session_id: 'sess_offload', event_type: 'llm_call', payload: { model: 'gpt-4o', input: ref, output: 'ok', latency_ms: 5 }, offload: { fields: ['payload.input'] } }),
      makeEvent({ session_id: 'sess_offload', event_type: 'llm_call', payload: { model: 'gpt-4o', input: missing, output: 'ok', latency_ms: 5 }, offload: { fields: ['payload.input'] } }),
    ];
    try {
      await produceRaw(topic, [withRef, withMissing].map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
      const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: false, s3: { endpoint: stack.s3Endpoint } });
      await f.start();
      await eventually('both spans at the backend', () => backend.accepted.length >= 2, 30_000);
      const got = byEventId(backend.accepted);
      expect(JSON.parse(String(got.get(withRef.event_id)![0]!.attributes['gen_ai.input.messages']))).toEqual(big);
      expect(JSON.parse(String(got.get(withMissing.event_id)![0]!.attributes['gen_ai.input.messages']))).toEqual(missing);
      expect(f.stats()).toMatchObject({ restored: 1, restoreFailures: 1, spansSent: 2 });
    } finally {
      await s3.send(new (s3Sdk().DeleteObjectCommand)({ Bucket: stack.s3Bucket, Key: ref.$offload.key })).catch(() => undefined);
      s3.destroy();
    }
  });

  it('close() drains: requests in progress get their answers and are committed, nothing else is', async () => {
    const { topic, group, backend } = await setup(1);
    const events = sessions(1, 600, 'f');
    backend.answer = async () => {
      await sleep(1500);
      return { status: 200 };
    };
    await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: false, batchSize: 100, maxInFlight: 2 });
    await f.start();
    await eventually('two requests held by the backend', () => backend.open === 2, 30_000);
    await f.close();
    // Both answered during the drain, and only their 200 records are committed.
    expect(backend.accepted).toHaveLength(200);
    expect(f.stats()).toMatchObject({ spansSent: 200, consumed: 200 });
    expect(await committedOffsets(group, topic, 1)).toEqual(new Map([[0, 200]]));
  });

  it('close() during start(): start rejects with FORWARDER_STATE, close resolves, a second start is refused', async () => {
    const { topic, group, backend } = await setup(1);
    const f = forwarder({ endpoint: backend.url, topic, group, dlqTopic: false });
    const started = f.start();
    const closed = f.close();
    await expect(started).rejects.toMatchObject({ code: 'FORWARDER_STATE' });
    await closed;
    expect(f.close()).toBe(closed);
    await expect(f.start()).rejects.toMatchObject({ code: 'FORWARDER_STATE' });
  });

  it('kill -9 of the forwarder mid-stream loses no span; a span sent again has the same ids', async () => {
    const { topic, group, backend } = await setup(4);
    const events = sessions(40, 75, 'd');
    // The forwarder is killed while the backend holds a request it takes (records its spans) but
    // whose answer the forwarder never reads: the worst moment, those spans must come again.
    let killed: Promise<unknown> | undefined;
    let lostAnswer = 0;
    backend.answer = async (r) => {
      if (killed === undefined && backend.accepted.length >= events.length / 3) {
        lostAnswer = r.spans.length;
        killed = new Promise((res) => first.child.once('close', res));
        first.child.kill('SIGKILL');
        await killed;
      }
      await sleep(30);
      return { status: 200 };
    };
    await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const start = (): { child: ChildProcess; stderr: () => string } => {
      const child = spawn(process.execPath, [CLI, 'forward', '--endpoint', backend.url, '--brokers', stack.brokers.join(','), '--topic', topic, '--group', group, '--batch-size', '50', '--no-dlq'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=forward-test' },
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      return { child, stderr: () => stderr };
    };
    const first = start();
    await eventually('the forwarder killed mid-stream', () => killed !== undefined, 60_000);
    await killed;
    // Answers of requests out at the kill land on closed sockets; let them settle before counting.
    await sleep(500);
    const beforeRestart = backend.accepted.length;
    const second = start();
    const got = await eventually(
      'every event at the backend after the restart',
      () => {
        const m = byEventId(backend.accepted);
        return m.size >= events.length ? m : undefined;
      },
      90_000,
    );
    second.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => second.child.once('close', r));
    expect(code, second.stderr()).toBe(0);
    expect(second.stderr()).toMatch(/stopped; \d+ records read, \d+ spans sent/);
    expect(second.stderr()).not.toContain('forward-test');
    expect(backend.requests.every((r) => r.headers['x-tenant'] === 'forward-test')).toBe(true);

    let duplicates = 0;
    for (const e of events) {
      const copies = got.get(e.event_id);
      expect(copies, `event ${e.event_id} lost`).toBeDefined();
      duplicates += copies!.length - 1;
      // Every copy is the same span: same trace, span and parent ids, same name.
      for (const c of copies!) expect({ traceId: c.traceId, spanId: c.spanId, parentSpanId: c.parentSpanId, name: c.name }).toEqual(expectedSpan(e));
    }
    expect(got.size).toBe(events.length);
    // At least the request whose answer was lost came again.
    expect(lostAnswer).toBeGreaterThan(0);
    expect(duplicates).toBeGreaterThanOrEqual(lostAnswer);
    console.log(`forward kill -9: ${events.length} events, killed after ${beforeRestart} spans accepted, ${backend.accepted.length} spans accepted in all, ${duplicates} sent twice (same ids)`);
    expect(await committedOffsets(group, topic, 4)).toEqual(await highWatermarks(topic, 4));
  }, 180_000);
});
