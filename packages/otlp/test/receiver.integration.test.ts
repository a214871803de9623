import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SpanKind, SpanStatusCode, context, trace, type Span } from '@opentelemetry/api';
import { BatchSpanProcessor, InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { OptionsError, redisKeys } from '@agenttrace/common';
import { parseEvent, type AgentEvent } from '@agenttrace/contract';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { OtlpReceiver } from '../src/index.js';
import { consumeAll, createTopic, deleteTopic, eventually, freePort, repoRoot, runNode, stack, uniqueName } from '../../../test-support/stack.js';

const KSHARK = join(repoRoot, 'packages', 'kshark', 'dist', 'cli.js');
const PRICING = { 'gpt-4o': { inputPerMillion: 2.5, outputPerMillion: 10 } };

/** A small agent run, instrumented the way OTel GenAI instrumentations do it, exported by the real SDK. */
async function runAgent(provider: NodeTracerProvider, conversationId: string, withError = false): Promise<void> {
  const tracer = provider.getTracer('agent-under-test');
  const at = (parent: Span) => trace.setSpan(context.active(), parent);
  const root = tracer.startSpan('invoke_agent planner', { kind: SpanKind.INTERNAL, attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'gen_ai.conversation.id': conversationId } });
  const llm = tracer.startSpan(
    'chat gpt-4o',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': 1000,
        'gen_ai.usage.output_tokens': 200,
        'gen_ai.conversation.id': conversationId,
        'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'find kafka docs' }] }]),
      },
    },
    at(root),
  );
  llm.end();
  for (const [name, args] of [
    ['web.search', { q: 'kafka' }],
    ['web.fetch', { url: 'https://kafka.apache.org' }],
  ] as const) {
    const tool = tracer.startSpan(`execute_tool ${name}`, { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name, 'gen_ai.tool.call.arguments': JSON.stringify(args), 'gen_ai.conversation.id': conversationId } }, at(root));
    // An HTTP client span under the tool: not agent work, dropped; nothing may point at it.
    const http = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET' } }, at(tool));
    http.end();
    if (withError && name === 'web.fetch') {
      tool.recordException(new Error('connection reset'));
      tool.setStatus({ code: SpanStatusCode.ERROR, message: 'connection reset' });
    }
    tool.end();
    await new Promise((r) => setTimeout(r, 5));
  }
  root.end();
  await provider.forceFlush();
}

describe('OTLP receiver on the real stack', () => {
  const topic = uniqueName('otlp-in');
  const prefix = `${uniqueName('otlp-in')}:`;
  let receiver: OtlpReceiver;
  let url: string;
  let consumer: DashboardConsumer;
  let redis: Redis;
  const keys = redisKeys(prefix);
  const conn = ['--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl];

  const post = (body: Uint8Array | string, headers: Record<string, string>) => fetch(url, { method: 'POST', body: typeof body === 'string' ? body : new Blob([new Uint8Array(body)]), headers });
  const timeline = async (sid: string) => (await redis.lrange(keys.events(sid), 0, -1)).map((v) => JSON.parse(v) as AgentEvent);

  beforeAll(async () => {
    await createTopic(topic, 4);
    receiver = new OtlpReceiver({ port: 0, pricing: PRICING, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    url = (await receiver.listen()).url;
    consumer = new DashboardConsumer({
      kafka: { brokers: stack.brokers },
      topic,
      group: uniqueName('otlp-dash'),
      redisUrl: stack.redisUrl,
      redisPrefix: prefix,
      dlqTopic: `${topic}.dlq`,
      alertsTopic: `${topic}.alerts`,
      metricsPort: false,
      sessionTimeoutMs: 6000,
    });
    await consumer.start();
    redis = new Redis(stack.redisUrl);
  });

  afterAll(async () => {
    await receiver?.close();
    await consumer?.close();
    for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
    const left = await redis.keys(`${prefix}*`);
    if (left.length > 0) await redis.del(...left);
    await redis.quit();
  });

  it('the OTel SDK with the protobuf exporter: kshark replay shows the LLM call (model, tokens, cost) and the tools in order', async () => {
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'otel-sdk-agent' }),
      // One request at forceFlush: across requests, order is arrival order (docs/opentelemetry.md, Limits).
      spanProcessors: [new BatchSpanProcessor(new ProtoExporter({ url }), { scheduledDelayMillis: 60_000 })],
    });
    await runAgent(provider, 'conv-proto', true);
    await provider.shutdown();
    await eventually('4 events in Redis', async () => (await redis.llen(keys.events('conv-proto'))) === 4, 30_000);

    const r = await runNode(KSHARK, ['replay', 'conv-proto', ...conn, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { source: string; warnings: string[]; summary: { input_tokens: number; output_tokens: number; cost_usd: number }; events: AgentEvent[] };
    expect(doc.source).toBe('redis');
    expect(doc.warnings).toEqual([]);
    expect(doc.events.map((e) => [e.event_type, e.payload.tool ?? e.payload.model ?? e.payload.subagent_id, e.agent_id, e.status])).toEqual([
      ['delegation', 'planner', 'otel-sdk-agent', 'ok'],
      ['llm_call', 'gpt-4o', 'planner', 'ok'],
      ['tool_call', 'web.search', 'planner', 'ok'],
      ['tool_call', 'web.fetch', 'planner', 'error'],
    ]);
    const [root, llm, search, fetchTool] = doc.events as [AgentEvent, AgentEvent, AgentEvent, AgentEvent];
    expect(llm.payload).toMatchObject({ input_tokens: 1000, output_tokens: 200 });
    expect(llm.payload.cost_usd).toBeCloseTo(0.0045, 9);
    expect(doc.summary).toMatchObject({ input_tokens: 1000, output_tokens: 200 });
    expect(doc.summary.cost_usd).toBeCloseTo(0.0045, 9);
    expect(search.payload.input).toEqual({ q: 'kafka' });
    expect(fetchTool.payload.error).toMatchObject({ message: 'connection reset', name: 'Error' });
    // Sub-agent chain: children point at the delegation; the dropped HTTP spans left no dangling parent.
    for (const child of [llm, search, fetchTool]) expect(child.context.parent_event_id).toBe(root.event_id);
    expect(root.context.parent_event_id).toBeUndefined();
    for (const e of doc.events) expect(parseEvent(JSON.stringify(e), { key: e.session_id }).ok).toBe(true);
    expect(receiver.stats().droppedNonGenAi).toBeGreaterThanOrEqual(2);

    const text = await runNode(KSHARK, ['replay', 'conv-proto', ...conn, '--no-color']);
    expect(text.stdout).toMatch(/llm_call\s+gpt-4o/);
    expect(text.stdout.indexOf('web.search')).toBeLessThan(text.stdout.indexOf('web.fetch'));
  });

  it('export: the session goes out as OTLP spans that a decoder built from the official opentelemetry-proto definitions reads', async () => {
    // An independent decoder: protobufjs over the .proto files of opentelemetry-proto as shipped in an npm package.
    const protoDir = join(repoRoot, 'node_modules', '@opentelemetry', 'otlp-grpc-exporter-base', 'build', 'protos');
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => join(protoDir, target);
    await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: true });
    const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
    const bodies: Buffer[] = [];
    const backend = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    try {
      const port = (backend.address() as AddressInfo).port;
      const r = await runNode(join(repoRoot, 'packages', 'otlp', 'dist', 'cli.js'), ['export', 'conv-proto', '--endpoint', `http://127.0.0.1:${port}`, ...conn]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/exported 4 spans of session conv-proto/);
      expect(bodies).toHaveLength(1);
      type Kv = { key: string; value: { string_value?: string; int_value?: string; double_value?: number } };
      type S = { trace_id: string; span_id: string; parent_span_id: string; name: string; attributes: Kv[]; status?: { code?: number; message?: string } };
      const doc = Request.toObject(Request.decode(bodies[0]!), { longs: String, bytes: String, enums: Number, defaults: false }) as { resource_spans: Array<{ resource: { attributes: Kv[] }; scope_spans: Array<{ spans: S[] }> }> };
      const spans = doc.resource_spans[0]!.scope_spans[0]!.spans;
      const hex = (b64: string) => Buffer.from(b64 ?? '', 'base64').toString('hex');
      const attr = (s: S, k: string) => {
        const v = s.attributes.find((a) => a.key === k)?.value;
        return v?.string_value ?? v?.int_value ?? v?.double_value;
      };
      expect(spans.map((s) => s.name)).toEqual(['invoke_agent planner', 'chat gpt-4o', 'execute_tool web.search', 'execute_tool web.fetch']);
      const events = await timeline('conv-proto');
      // Spans that came in through OTLP keep their trace and span ids; parents are preserved.
      for (const [i, s] of spans.entries()) {
        const otel = events[i]!.context.otel as { trace_id: string; span_id: string };
        expect(hex(s.trace_id)).toBe(otel.trace_id);
        expect(hex(s.span_id)).toBe(otel.span_id);
        expect(attr(s, 'gen_ai.conversation.id')).toBe('conv-proto');
      }
      for (const s of spans.slice(1)) expect(hex(s.parent_span_id)).toBe(hex(spans[0]!.span_id));
      // The receiver recorded each child's parent span id, so an export of the child alone names the same parent.
      for (const e of events.slice(1)) expect((e.context.otel as { parent_span_id?: string }).parent_span_id).toBe(hex(spans[0]!.span_id));
      expect((events[0]!.context.otel as { parent_span_id?: string }).parent_span_id).toBeUndefined();
      const llm = spans[1]!;
      expect([attr(llm, 'gen_ai.operation.name'), attr(llm, 'gen_ai.request.model'), attr(llm, 'gen_ai.usage.input_tokens'), attr(llm, 'gen_ai.usage.output_tokens')]).toEqual(['chat', 'gpt-4o', '1000', '200']);
      expect(attr(llm, 'agenttrace.cost_usd')).toBeCloseTo(0.0045, 9);
      expect(attr(spans[2]!, 'gen_ai.tool.name')).toBe('web.search');
      expect(JSON.parse(String(attr(spans[2]!, 'gen_ai.tool.call.arguments')))).toEqual({ q: 'kafka' });
      expect(spans[3]!.status).toEqual({ code: 2, message: 'connection reset' });
      expect(doc.resource_spans[0]!.resource.attributes).toEqual([{ key: 'service.name', value: { string_value: 'agenttrace' } }]);
    } finally {
      await new Promise<void>((r) => backend.close(() => r()));
    }
  });

  it('the OTel SDK with the JSON exporter, OpenInference attributes, and a trace without a session id', async () => {
    const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'oi-agent' }), spanProcessors: [new BatchSpanProcessor(new JsonExporter({ url }), { scheduledDelayMillis: 60_000 })] });
    const tracer = provider.getTracer('openinference-like');
    const root = tracer.startSpan('agent', { attributes: { 'openinference.span.kind': 'AGENT', 'agent.name': 'support', 'input.value': 'refund?' } });
    const traceId = root.spanContext().traceId;
    const llm = tracer.startSpan('ChatOpenAI', { attributes: { 'openinference.span.kind': 'LLM', 'llm.model_name': 'gpt-4o-mini', 'llm.token_count.prompt': 12, 'llm.token_count.completion': 3 } }, trace.setSpan(context.active(), root));
    llm.end();
    root.end();
    await provider.forceFlush();
    await provider.shutdown();
    // No session attribute anywhere: the trace id is the session.
    await eventually('2 events in Redis', async () => (await redis.llen(keys.events(traceId))) === 2, 30_000);
    const events = await timeline(traceId);
    expect(events.map((e) => [e.event_type, e.agent_id])).toEqual([
      ['delegation', 'oi-agent'],
      ['llm_call', 'support'],
    ]);
    expect(events[1]!.payload).toMatchObject({ model: 'gpt-4o-mini', input_tokens: 12, output_tokens: 3 });
  });

  it('a retried export (the same body again, and gzip-compressed) never shows a step twice in Kafka or Redis', async () => {
    const mem = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'retry-agent' }), spanProcessors: [new SimpleSpanProcessor(mem)] });
    await runAgent(provider, 'conv-retry');
    const body = ProtobufTraceSerializer.serializeRequest(mem.getFinishedSpans())!;
    const headers = { 'Content-Type': 'application/x-protobuf' };
    const first = await post(body, headers);
    expect(first.status).toBe(200);
    const before = receiver.stats();
    // The exporter's retry (it never saw the first answer), and the same body gzip-compressed.
    expect((await post(body, headers)).status).toBe(200);
    expect((await post(gzipSync(body), { ...headers, 'Content-Encoding': 'gzip' })).status).toBe(200);
    const after = receiver.stats();
    expect(after.duplicates - before.duplicates).toBe(8);
    expect(after.eventsAccepted).toBe(before.eventsAccepted);
    await eventually('4 events in Redis', async () => (await redis.llen(keys.events('conv-retry'))) === 4, 30_000);
    // Give the consumer time to pick up anything extra, then look again.
    const records = (await consumeAll(topic, { timeoutMs: 15_000 })).filter((m) => String(m.key) === 'conv-retry');
    expect(records).toHaveLength(4);
    const ids = (await timeline('conv-retry')).map((e) => e.event_id);
    expect(new Set(ids).size).toBe(4);
    expect(ids).toHaveLength(4);
    await provider.shutdown();
  });

  it('with --dedupe-redis, a retry after a receiver restart (or to another receiver) is still not written twice', async () => {
    const mem = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] });
    await runAgent(provider, 'conv-restart');
    const body = ProtobufTraceSerializer.serializeRequest(mem.getFinishedSpans())!;
    await provider.shutdown();
    const opts = { port: 0, dedupeRedis: { url: stack.redisUrl, prefix }, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } };
    const headers = { 'Content-Type': 'application/x-protobuf' };
    const a = new OtlpReceiver(opts);
    const first = await fetch((await a.listen()).url, { method: 'POST', body: new Blob([new Uint8Array(body)]), headers });
    expect(first.status).toBe(200);
    expect(a.stats().eventsAccepted).toBe(4);
    await a.close();
    const b = new OtlpReceiver(opts);
    try {
      const again = await fetch((await b.listen()).url, { method: 'POST', body: new Blob([new Uint8Array(body)]), headers });
      expect(again.status).toBe(200);
      expect(b.stats()).toMatchObject({ eventsAccepted: 0, duplicates: 4 });
    } finally {
      await b.close();
    }
    expect((await redis.keys(`${prefix}otlp:span:*`)).length).toBe(4);
    await eventually('4 events in Redis', async () => (await redis.llen(keys.events('conv-restart'))) === 4, 30_000);
    const records = (await consumeAll(topic, { timeoutMs: 10_000 })).filter((m) => String(m.key) === 'conv-restart');
    expect(records).toHaveLength(4);
  });

  it('bad input gets a clear 4xx and the service keeps serving', async () => {
    const pb = { 'Content-Type': 'application/x-protobuf' };
    const bad = await post(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), pb);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/x-protobuf');
    expect(Buffer.from(await bad.arrayBuffer()).toString('latin1')).toContain('runs past the end');

    const wrongType = await post('hello', { 'Content-Type': 'text/plain' });
    expect(wrongType.status).toBe(415);
    expect(((await wrongType.json()) as { message: string }).message).toContain('application/x-protobuf');
    expect((await post('x', { 'Content-Type': 'application/json', 'Content-Encoding': 'br' })).status).toBe(415);

    const notJson = await post('{"resourceSpans": [', { 'Content-Type': 'application/json' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { message: string }).message).toMatch(/not JSON/);
    const wrongShape = await post('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', { 'Content-Type': 'application/json' });
    expect(wrongShape.status).toBe(400);
    expect(((await wrongShape.json()) as { message: string }).message).toContain('resourceSpans[0].scopeSpans[0].spans[0].traceId');

    expect((await fetch(url, { method: 'GET' })).status).toBe(405);
    expect((await fetch(url.replace('/v1/traces', '/v1/logs'), { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } })).status).toBe(404);

    // Hostile strings: a 100 kB session id is rejected by span (partial success); control
    // characters and prototype keys are carried as data.
    const span = (spanId: string, attrs: Array<[string, string]>) => ({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId,
      name: 'chat \u001b[2J\u202e',
      startTimeUnixNano: String(Date.now() * 1e6),
      endTimeUnixNano: String(Date.now() * 1e6 + 5e6),
      attributes: attrs.map(([key, v]) => ({ key, value: { stringValue: v } })),
    });
    const hostile = {
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                span('00000000000000a1', [['gen_ai.operation.name', 'chat'], ['gen_ai.conversation.id', 'x'.repeat(100_000)]]),
                span('00000000000000a2', [['gen_ai.operation.name', 'chat'], ['gen_ai.conversation.id', 'conv-hostile'], ['__proto__', 'p'], ['gen_ai.request.model', '\u0000\u001b]0;t\u0007']]),
              ],
            },
          ],
        },
      ],
    };
    const partial = await post(JSON.stringify(hostile), { 'Content-Type': 'application/json' });
    expect(partial.status).toBe(200);
    const ps = ((await partial.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } }).partialSuccess;
    expect(ps.rejectedSpans).toBe('1');
    expect(ps.errorMessage).toContain('session id is 100000 characters');
    await eventually('hostile event in Redis', async () => (await redis.llen(keys.events('conv-hostile'))) === 1, 30_000);
    expect((await timeline('conv-hostile'))[0]!.payload.model).toBe('\u0000\u001b]0;t\u0007');

    // The same through protobuf: partial success in ExportTraceServiceResponse.
    const good = await post(ProtobufTraceSerializer.serializeRequest([])!, pb);
    expect(good.status).toBe(200);
    expect(receiver.stats().badRequests).toBeGreaterThanOrEqual(7);
  });

  it('bodies over the limit get 413, including a small gzip body that inflates past it', async () => {
    const small = new OtlpReceiver({ port: 0, maxBodyBytes: 64 * 1024, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    const u = (await small.listen()).url;
    try {
      const big = await fetch(u, { method: 'POST', body: Buffer.alloc(200 * 1024, 1), headers: { 'Content-Type': 'application/x-protobuf' } });
      expect(big.status).toBe(413);
      expect(((await big.text()) as string).length).toBeGreaterThan(0);
      const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
      expect(bomb.length).toBeLessThan(64 * 1024);
      const r = await fetch(u, { method: 'POST', body: bomb, headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'gzip' } });
      expect(r.status).toBe(413);
      expect(Buffer.from(await r.arrayBuffer()).toString('latin1')).toContain('decompressed');
      const ok = await fetch(u, { method: 'POST', body: ProtobufTraceSerializer.serializeRequest([])!, headers: { 'Content-Type': 'application/x-protobuf' } });
      expect(ok.status).toBe(200);
    } finally {
      await small.close();
    }
  });
});

describe('OTLP receiver access and availability', () => {
  it('refuses to listen beyond loopback without a token, and checks the token when set', async () => {
    expect(() => new OtlpReceiver({ host: '0.0.0.0', publisher: { kafka: { brokers: stack.brokers } } })).toThrow(OptionsError);
    expect(() => new OtlpReceiver({ host: '0.0.0.0', publisher: { kafka: { brokers: stack.brokers } } })).toThrow(/token is required/);
    const token = 'test-token-0123456789abcdef';
    const r = new OtlpReceiver({ port: 0, token, publisher: { kafka: { brokers: stack.brokers }, topic: uniqueName('otlp-auth'), ensureTopic: false } });
    const u = (await r.listen()).url;
    try {
      const body = ProtobufTraceSerializer.serializeRequest([])!;
      const none = await fetch(u, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expect((await fetch(u, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf', Authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(u, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf', Authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await r.close();
    }
  });

  it('CLI: a non-loopback --host without --token exits 2 naming the fix', async () => {
    const res = await runNode(join(repoRoot, 'packages', 'otlp', 'dist', 'cli.js'), ['serve', '--host', '0.0.0.0', '--port', '0'], { env: { ...process.env, AGENTTRACE_OTLP_TOKEN: '' } });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/token is required.*--token or AGENTTRACE_OTLP_TOKEN/);
  });

  it('Kafka unreachable: 503 with Retry-After, so the exporter keeps the spans and retries', async () => {
    const port = await freePort();
    const r = new OtlpReceiver({ port: 0, retryAfterSeconds: 2, publisher: { kafka: { brokers: [`127.0.0.1:${port}`] }, topic: uniqueName('otlp-down'), ensureTopic: false, connectTimeoutMs: 1000, onError: () => {} } });
    const u = (await r.listen()).url;
    try {
      const mem = new InMemorySpanExporter();
      const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] });
      await runAgent(provider, 'conv-down');
      // Serialized before shutdown(): the in-memory exporter forgets its spans then.
      const body = ProtobufTraceSerializer.serializeRequest(mem.getFinishedSpans())!;
      await provider.shutdown();
      const res = await fetch(u, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(Buffer.from(await res.arrayBuffer()).toString('latin1')).toMatch(/unreachable/);
      expect(r.stats().unavailable).toBe(1);
      // Nothing was marked as taken: the retry is produced, not answered as a duplicate.
      expect(r.stats().duplicates).toBe(0);
      expect((await fetch(u, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } })).status).toBe(503);
      expect(r.stats().duplicates).toBe(0);
    } finally {
      await r.close();
    }
  });
});
