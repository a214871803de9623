import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { AgentTracer, shutdownTracing, type TracerError } from '@agenttrace/tracer';
import { HEADER_SCHEMA_VERSION, partitionForKey, isOffloadRef, type AgentEvent } from '@agenttrace/contract';
import { createS3Client, restoreOffloads, KafkaAdmin } from '@agenttrace/common';
import type { Message } from '@confluentinc/kafka-javascript';
import {
  consumeAll,
  deleteTopic,
  eventually,
  kafkaConn,
  nodePid,
  repoRoot,
  sleep,
  stack,
  startCluster,
  startNode,
  stopCluster,
  uniqueName,
  type ClusterInfo,
} from '../../../test-support/stack.js';

const parse = (m: Message): AgentEvent => JSON.parse(m.value!.toString('utf8')) as AgentEvent;
const topics: string[] = [];
const newTopic = () => {
  const t = uniqueName('tracer');
  topics.push(t);
  return t;
};

afterAll(async () => {
  await shutdownTracing();
  for (const t of topics) await deleteTopic(t);
});

describe('tracer against the local broker', () => {
  it('delivers every event exactly once, in order per session, on the Java murmur2 partition', async () => {
    const topic = newTopic();
    const sessions = ['sess_alpha', 'sess_beta', 'sess_gamma', 'sess_delta'];
    const tracers = sessions.map((sessionId) => new AgentTracer({ sessionId, agentId: 'order-agent', topic, kafka: { brokers: stack.brokers } }));
    const perSession = 150;
    for (let i = 0; i < perSession; i++) {
      for (const t of tracers) await t.trackToolCall('step', { i }, () => i);
    }
    await Promise.all(tracers.map((t) => t.close()));
    // session_start + steps + session_end per session
    const expected = sessions.length * (perSession + 2);
    const messages = await consumeAll(topic, { count: expected, timeoutMs: 30_000 });
    expect(messages.length).toBe(expected);

    const admin = new KafkaAdmin(kafkaConn());
    const partitions = await admin.partitionCount(topic);
    admin.close();
    expect(partitions).toBe(20);

    const ids = new Set(messages.map((m) => parse(m).event_id));
    expect(ids.size).toBe(expected);
    for (const s of sessions) {
      const mine = messages.filter((m) => m.key?.toString() === s);
      expect(mine.length).toBe(perSession + 2);
      expect(new Set(mine.map((m) => m.partition))).toEqual(new Set([partitionForKey(s, 20)]));
      const ordered = [...mine].sort((a, b) => a.offset - b.offset).map(parse);
      expect(ordered.map((e) => e.seq)).toEqual(Array.from({ length: perSession + 2 }, (_, i) => i));
      expect(ordered[0]!.event_type).toBe('session_start');
      expect(ordered.at(-1)!.event_type).toBe('session_end');
      expect(ordered.slice(1, -1).map((e) => (e.payload.input as { i: number }).i)).toEqual(Array.from({ length: perSession }, (_, i) => i));
    }
    const headers = messages[0]!.headers ?? [];
    expect(headers.some((h) => Object.keys(h)[0] === HEADER_SCHEMA_VERSION)).toBe(true);
  });

  it('flushes one session while another keeps recording, and counts only what Kafka acknowledged', async () => {
    const topic = newTopic();
    const busy = new AgentTracer({ sessionId: 'sess_busy', agentId: 'a', topic, kafka: { brokers: stack.brokers }, sessionEvents: false });
    const quiet = new AgentTracer({ sessionId: 'sess_quiet', agentId: 'a', topic, kafka: { brokers: stack.brokers }, sessionEvents: false });
    busy.logEvent('warmup');
    await busy.flush();
    // The busy session records every millisecond throughout (bounded: 4 s or 4000 events).
    let stop = false;
    let busyCount = 1;
    const until = Date.now() + 4000;
    const loop = (async () => {
      while (!stop && Date.now() < until && busyCount < 4000) {
        busy.logEvent('tick', { n: busyCount++ });
        await sleep(1);
      }
    })();
    await sleep(300);
    for (let i = 0; i < 50; i++) quiet.logEvent('step', { i });
    const t0 = Date.now();
    await quiet.flush(3000);
    const flushMs = Date.now() - t0;
    const busyStillRecording = !stop && Date.now() < until;
    expect(quiet.stats()).toMatchObject({ delivered: 50, failed: 0, pending: 0 });
    stop = true;
    await loop;
    await Promise.all([busy.close(), quiet.close()]);
    expect(busyStillRecording).toBe(true);
    expect(flushMs).toBeLessThan(3000);
    expect(busy.stats()).toMatchObject({ delivered: busyCount, failed: 0, pending: 0 });
    const messages = await consumeAll(topic, { count: busyCount + 50, timeoutMs: 30_000 });
    expect(messages.length).toBe(busyCount + 50);
    expect(new Set(messages.map((m) => parse(m).event_id)).size).toBe(busyCount + 50);
  });

  it('records tool results and errors, links sub-agent steps to their delegation, and passes agent errors through', async () => {
    const topic = newTopic();
    const tracer = new AgentTracer({ sessionId: 'sess_tree', agentId: 'invoice-generator-v2', topic, kafka: { brokers: stack.brokers } });
    const out = await tracer.trackToolCall('stripe.create_invoice', { customer_id: 'cus_xyz', amount: 4500 }, async () => ({ invoice_id: 'inv_abc' }), {
      reasoning: 'Milestone 2 completion',
      confidence: 0.94,
    });
    expect(out).toEqual({ invoice_id: 'inv_abc' });
    const boom = new Error('card declined');
    await expect(tracer.trackToolCall('stripe.charge', { amount: 4500 }, async () => Promise.reject(boom))).rejects.toBe(boom);
    tracer.logDecision({ action: 'skip_email', reasoning: 'Customer disabled notifications', confidence: 0.89 });
    await tracer.delegate('research-agent', { topic: 'pricing' }, async () => {
      await tracer.trackLlmCall({ model: 'claude-sonnet-4-5', input: 'summarize' }, async () => ({ text: 'ok', usage: { input_tokens: 1200, output_tokens: 300 } }), {
        pricing: { inputPerMillion: 3, outputPerMillion: 15 },
      });
    });
    await tracer.close();
    const events = (await consumeAll(topic, { count: 7 })).map(parse).sort((a, b) => a.seq - b.seq);
    const [, tool, failed, decision, llm, delegation] = events;
    expect(tool).toMatchObject({ event_type: 'tool_call', status: 'ok', payload: { tool: 'stripe.create_invoice', output: { invoice_id: 'inv_abc' } }, context: { reasoning: 'Milestone 2 completion', confidence: 0.94 } });
    expect(tool!.payload.latency_ms).toBeGreaterThanOrEqual(0);
    expect(failed).toMatchObject({ status: 'error', payload: { error: { name: 'Error', message: 'card declined' } } });
    expect(decision).toMatchObject({ event_type: 'decision', payload: { action: 'skip_email' }, context: { confidence: 0.89 } });
    expect(llm).toMatchObject({ event_type: 'llm_call', agent_id: 'research-agent', payload: { input_tokens: 1200, output_tokens: 300 } });
    expect(llm!.payload.cost_usd).toBeCloseTo((1200 * 3 + 300 * 15) / 1e6, 10);
    expect(delegation).toMatchObject({ event_type: 'delegation', agent_id: 'invoice-generator-v2', payload: { subagent_id: 'research-agent' } });
    expect(llm!.context.parent_event_id).toBe(delegation!.event_id);
  });

  it('offloads oversized fields to S3 and restores them byte for byte', async () => {
    const topic = newTopic();
    const prefix = uniqueName('offload');
    const s3opts = { bucket: stack.s3Bucket, endpoint: stack.s3Endpoint, prefix };
    const tracer = new AgentTracer({ sessionId: 'sess_big', agentId: 'writer', topic, kafka: { brokers: stack.brokers }, s3: s3opts, redact: false });
    const document = { title: 'Quarterly report', body: 'lorem ipsum dolor sit amet '.repeat(2000), rows: Array.from({ length: 200 }, (_, i) => ({ i, v: i * 1.5 })) };
    await tracer.trackToolCall('docs.render', { template: 'q3' }, async () => document);
    await tracer.close();
    const [, event] = (await consumeAll(topic, { count: 3 })).map(parse).sort((a, b) => a.seq - b.seq);
    const raw = JSON.stringify(event);
    expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(10 * 1024);
    expect(event!.offload).toEqual({ fields: ['payload.output'] });
    const ref = event!.payload.output;
    expect(isOffloadRef(ref)).toBe(true);
    if (!isOffloadRef(ref)) return;
    const s3 = createS3Client(s3opts);
    const obj = await s3.send(new GetObjectCommand({ Bucket: ref.$offload.bucket, Key: ref.$offload.key }));
    const bytes = Buffer.from(await obj.Body!.transformToByteArray());
    expect(bytes.equals(Buffer.from(JSON.stringify(document)))).toBe(true);
    const { event: restored, failures } = await restoreOffloads(s3, event!);
    expect(failures).toEqual([]);
    expect(restored.payload.output).toEqual(document);
  });

  it('scrubs e-mail addresses and card numbers before events leave the process', async () => {
    const topic = newTopic();
    const tracer = new AgentTracer({ sessionId: 'sess_pii', agentId: 'support', topic, kafka: { brokers: stack.brokers } });
    await tracer.trackToolCall('crm.lookup', { email: 'jane.doe@example.com', card: '4111 1111 1111 1111', note: 'call jane.doe@example.com' }, async () => ({ api_key: 'sk_live_123', ok: true }));
    await tracer.close();
    const messages = await consumeAll(topic, { count: 3 });
    const text = messages.map((m) => m.value!.toString()).join('\n');
    expect(text).not.toContain('jane.doe@example.com');
    expect(text).not.toContain('4111 1111 1111 1111');
    expect(text).not.toContain('sk_live_123');
    expect(text).toContain('[REDACTED:email]');
    expect(text).toContain('[REDACTED:card]');
  });

  it('handles values JSON cannot carry without disturbing the agent', async () => {
    const topic = newTopic();
    const errors: TracerError[] = [];
    const tracer = new AgentTracer({ sessionId: 'sess_odd', agentId: 'odd', topic, kafka: { brokers: stack.brokers }, onError: (e) => errors.push(e) });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.me = cyclic;
    const result = await tracer.trackToolCall('odd.values', { cyclic, big: 10n ** 30n, fn: () => 1 }, async () => cyclic);
    expect(result).toBe(cyclic);
    await tracer.close();
    const [, event] = (await consumeAll(topic, { count: 3 })).map(parse).sort((a, b) => a.seq - b.seq);
    expect(event!.payload.input).toEqual({ cyclic: { a: 1, me: '[Circular]' }, big: `${10n ** 30n}n`, fn: '[Function fn]' });
    expect(errors).toEqual([]);
  });

  it('never blocks the agent and reports a full buffer and undeliverable events when Kafka is unreachable', async () => {
    const errors: TracerError[] = [];
    const tracer = new AgentTracer({
      sessionId: 'sess_down',
      agentId: 'a',
      topic: uniqueName('unreachable'),
      kafka: { brokers: ['127.0.0.1:1'] },
      deliveryTimeoutMs: 1500,
      maxQueuedEvents: 50,
      onError: (e) => errors.push(e),
    });
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) tracer.logDecision({ action: `a${i}` });
    expect(performance.now() - t0).toBeLessThan(200);
    expect(tracer.stats().dropped).toBeGreaterThan(0);
    expect(errors.some((e) => e.code === 'BUFFER_FULL')).toBe(true);
    const closing = tracer.close(10_000);
    await expect(closing).rejects.toMatchObject({ code: 'DELIVERY_FAILED' });
    expect(tracer.stats().failed).toBeGreaterThan(0);
    expect(tracer.stats().pending).toBe(0);
    expect(tracer.stats().delivered).toBe(0);
  });

  it('flushes on SIGTERM and on a normal exit', async () => {
    for (const mode of ['sigterm', 'normal'] as const) {
      const topic = newTopic();
      const sessionId = `sess_exit_${mode}`;
      const child = spawn(process.execPath, [`${repoRoot}/packages/tracer/test/fixtures/sigterm-agent.mjs`, sessionId, topic, '200'], {
        env: { ...process.env, EXIT_NORMALLY: mode === 'normal' ? '1' : '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
      await eventually('the agent to record its events', () => out.includes('recorded'), 20_000);
      if (mode === 'sigterm') child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
      expect(code).not.toBe('timeout');
      const events = (await consumeAll(topic, { count: 202, timeoutMs: 20_000 })).map(parse);
      expect(events.length).toBe(202);
      expect(events.filter((e) => e.event_type === 'session_end').length).toBe(1);
    }
  });
});

describe('tracer against a broker that goes away', () => {
  const name = uniqueName('tracer-faults');
  let cluster: ClusterInfo;
  let brokers: string[];

  beforeAll(async () => {
    cluster = await startCluster(name, 20092, 1);
    brokers = [`127.0.0.1:${cluster.nodes[0]!.port}`];
  });

  afterAll(async () => {
    await shutdownTracing();
    await stopCluster(name);
  });

  it('loses nothing when the broker comes back within the delivery timeout', async () => {
    const topic = uniqueName('comeback');
    const tracer = new AgentTracer({ sessionId: 'sess_comeback', agentId: 'a', topic, kafka: { brokers }, deliveryTimeoutMs: 60_000 });
    for (let i = 0; i < 50; i++) tracer.logDecision({ action: `before-${i}` });
    await tracer.flush();
    process.kill(nodePid(cluster, 1), 'SIGKILL');
    await sleep(500);
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) tracer.logDecision({ action: `during-${i}` });
    // The agent is never blocked while the broker is down.
    expect(performance.now() - t0).toBeLessThan(100);
    await startNode(name, 1);
    for (let i = 0; i < 50; i++) tracer.logDecision({ action: `after-${i}` });
    await tracer.close();
    const events = (await consumeAll(topic, { count: 202, timeoutMs: 60_000, brokers })).map(parse);
    expect(events.length).toBe(202);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(202);
    expect(events.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 202 }, (_, i) => i));
  }, 120_000);

  it('never counts events delivered when the client is closed with them unacknowledged', async () => {
    const topic = uniqueName('closedaway');
    const errors: TracerError[] = [];
    const tracer = new AgentTracer({ sessionId: 'sess_closedaway', agentId: 'a', topic, kafka: { brokers }, deliveryTimeoutMs: 60_000, sessionEvents: false, onError: (e) => errors.push(e) });
    tracer.logDecision({ action: 'first' });
    await tracer.flush();
    process.kill(nodePid(cluster, 1), 'SIGKILL');
    try {
      await sleep(300);
      for (let i = 0; i < 10; i++) tracer.logDecision({ action: `in-flight-${i}` });
      // Let the tracer hand them to librdkafka (it is connected; the broker is not).
      await sleep(500);
      expect(tracer.stats().pending).toBe(10);
      // Shutdown with a short bound: close() times out, then the client is closed with 10 records in it.
      await shutdownTracing(1000);
      expect(tracer.stats()).toMatchObject({ delivered: 1, failed: 10, pending: 0 });
      expect(errors.some((e) => e.code === 'DELIVERY_FAILED' && /may not have been delivered/.test(e.message))).toBe(true);
    } finally {
      await startNode(name, 1);
    }
  }, 120_000);

  it('reports each event failed about its delivery timeout after it was recorded, however long the broker has been down', async () => {
    // librdkafka times records out only when the broker's thread wakes, at each reconnect attempt,
    // and its reconnect backoff grows with every refused attempt: events recorded over a long
    // outage must not wait for a late attempt (up to 10 s by default) to be reported.
    const topic = uniqueName('longdown');
    const errors: TracerError[] = [];
    const failedAt = new Map<string, number>();
    const deliveryTimeoutMs = 3000;
    const tracer = new AgentTracer({
      sessionId: 'sess_longdown',
      agentId: 'a',
      topic,
      kafka: { brokers },
      deliveryTimeoutMs,
      sessionEvents: false,
      onError: (e) => {
        errors.push(e);
        if (e.code === 'DELIVERY_FAILED') for (const id of e.eventIds) failedAt.set(id, Date.now());
      },
    });
    tracer.logDecision({ action: 'first' });
    await tracer.flush();
    process.kill(nodePid(cluster, 1), 'SIGKILL');
    try {
      // Four per second for 12 s: longer than librdkafka's longest reconnect backoff, so some
      // events are recorded just after an attempt, whatever the attempts' phase.
      const recordedAt = new Map<string, number>();
      for (let i = 0; i < 48; i++) {
        recordedAt.set(tracer.logDecision({ action: `down-${i}` }), Date.now());
        await sleep(250);
      }
      // flush()'s own default bound (deliveryTimeoutMs + 5 s) is enough for every fate to be known.
      await expect(tracer.flush()).rejects.toMatchObject({ code: 'DELIVERY_FAILED' });
      expect(errors.filter((e) => e.code === 'FLUSH_TIMEOUT')).toEqual([]);
      expect([...failedAt.keys()].sort()).toEqual([...recordedAt.keys()].sort());
      const late = [...recordedAt].map(([id, at]) => failedAt.get(id)! - at).filter((ms) => ms > deliveryTimeoutMs + 2500);
      expect(late, 'failure reports that came long after the delivery timeout (ms after recording)').toEqual([]);
      expect(tracer.stats()).toMatchObject({ delivered: 1, failed: 48, pending: 0 });
    } finally {
      await startNode(name, 1);
    }
    await tracer.close().catch(() => undefined);
  }, 120_000);

  it('reports undelivered events when the broker stays down longer than the delivery timeout', async () => {
    const topic = uniqueName('staydown');
    const errors: TracerError[] = [];
    const tracer = new AgentTracer({ sessionId: 'sess_staydown', agentId: 'a', topic, kafka: { brokers }, deliveryTimeoutMs: 3000, onError: (e) => errors.push(e) });
    tracer.logDecision({ action: 'first' });
    await tracer.flush();
    process.kill(nodePid(cluster, 1), 'SIGKILL');
    await sleep(300);
    const lost: string[] = [];
    for (let i = 0; i < 20; i++) lost.push(tracer.logDecision({ action: `lost-${i}` }));
    const flushed = tracer.flush(15_000);
    await expect(flushed).rejects.toMatchObject({ code: 'DELIVERY_FAILED' });
    const failed = errors.filter((e) => e.code === 'DELIVERY_FAILED');
    expect(failed.length).toBe(20);
    // Each failure names its own event (failure reports are routed by the record's content).
    expect(failed.flatMap((e) => e.eventIds).sort()).toEqual([...lost].sort());
    expect(tracer.stats()).toMatchObject({ failed: 20, pending: 0 });
    await startNode(name, 1);
    await tracer.close().catch(() => undefined);
    // Nothing is reported delivered that was not: what Kafka has matches what the tracer counted.
    const events = (await consumeAll(topic, { timeoutMs: 20_000, brokers })).map(parse);
    expect(events.filter((e) => e.payload.action?.startsWith('lost-')).length).toBeLessThanOrEqual(20);
    expect(events.length).toBe(tracer.stats().delivered);
  }, 120_000);
});
