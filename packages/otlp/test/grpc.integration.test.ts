import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Metadata } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { BatchSpanProcessor, InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { KafkaAdmin } from '@agenttrace/common';
import { parseEvent, type AgentEvent } from '@agenttrace/contract';
import { OtlpReceiver } from '../src/index.js';
import { consumeAll, createTopic, deleteTopic, freePort, kafkaConn, repoRoot, sleep, stack, uniqueName } from '../../../test-support/stack.js';

/** An agent step with a model call and two tools, one failing, as OTel GenAI instrumentations record it. */
function runAgent(provider: NodeTracerProvider, conversationId: string): void {
  const tracer = provider.getTracer('grpc-agent');
  const root = tracer.startSpan('invoke_agent planner', { attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'gen_ai.conversation.id': conversationId } });
  const inRoot = trace.setSpan(context.active(), root);
  tracer
    .startSpan('chat gpt-4o', { kind: SpanKind.CLIENT, attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 100, 'gen_ai.usage.output_tokens': 20, 'gen_ai.conversation.id': conversationId } }, inRoot)
    .end();
  for (const name of ['web.search', 'web.fetch']) {
    const tool = tracer.startSpan(`execute_tool ${name}`, { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name, 'gen_ai.conversation.id': conversationId } }, inRoot);
    if (name === 'web.fetch') tool.setStatus({ code: SpanStatusCode.ERROR, message: 'connection reset' });
    tool.end();
  }
  root.end();
}

function exportOnce(exporter: GrpcExporter, spans: ReadableSpan[]): Promise<{ code: number; error?: Error }> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

async function recorded(conversationId: string): Promise<ReadableSpan[]> {
  const mem = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'grpc-agent' }), spanProcessors: [new SimpleSpanProcessor(mem)] });
  runAgent(provider, conversationId);
  const spans = [...mem.getFinishedSpans()];
  await provider.shutdown();
  return spans;
}

/** Records in a topic now: the sum of its partitions' high watermarks. */
async function recordsIn(topic: string): Promise<number> {
  const admin = new KafkaAdmin(kafkaConn());
  try {
    return [...(await admin.watermarks(topic, [0, 1])).values()].reduce((n, w) => n + w.high, 0);
  } finally {
    admin.close();
  }
}

const eventsOf = (msgs: Awaited<ReturnType<typeof consumeAll>>, sid: string): AgentEvent[] =>
  msgs.map((m) => parseEvent(m.value)).flatMap((r) => (r.ok && r.event.session_id === sid ? [r.event] : []));

describe('OTLP/gRPC in, with the OpenTelemetry JS SDK gRPC exporter', () => {
  const topic = uniqueName('otlp-grpc');
  beforeAll(async () => {
    await createTopic(topic, 2);
  });
  afterAll(async () => {
    await deleteTopic(topic);
  });

  it('the SDK exporter (gzip) gets OK only after Kafka has the events; a retried export is not written twice', async () => {
    const receiver = new OtlpReceiver({ port: 0, grpcPort: 0, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    const { grpc } = await receiver.listen();
    try {
      const exporter = new GrpcExporter({ url: grpc!.url, compression: CompressionAlgorithm.GZIP });
      const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'grpc-agent' }), spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60_000 })] });
      const before = await recordsIn(topic);
      runAgent(provider, 'conv-grpc');
      await provider.forceFlush();
      // The export was answered: Kafka already holds the four records (one look, no waiting).
      expect((await recordsIn(topic)) - before).toBe(4);
      const events = eventsOf(await consumeAll(topic, { count: 4, timeoutMs: 5000 }), 'conv-grpc');
      expect(events.map((e) => [e.event_type, e.payload.model ?? e.payload.tool ?? e.payload.subagent_id, e.status]).sort()).toEqual(
        [
          ['delegation', 'planner', 'ok'],
          ['llm_call', 'gpt-4o', 'ok'],
          ['tool_call', 'web.search', 'ok'],
          ['tool_call', 'web.fetch', 'error'],
        ].sort(),
      );
      expect(events.find((e) => e.event_type === 'llm_call')!.payload).toMatchObject({ input_tokens: 100, output_tokens: 20 });
      expect(receiver.stats()).toMatchObject({ eventsAccepted: 4, badRequests: 0, unavailable: 0 });
      await provider.shutdown();

      // The same spans again (what an exporter retry sends): answered OK, produced no second time.
      const spans = await recorded('conv-grpc-retry');
      const again = new GrpcExporter({ url: grpc!.url });
      expect((await exportOnce(again, spans)).code).toBe(0);
      expect((await exportOnce(again, spans)).code).toBe(0);
      await again.shutdown();
      expect(receiver.stats().duplicates).toBe(4);
      await sleep(500);
      expect(eventsOf(await consumeAll(topic, { timeoutMs: 5000 }), 'conv-grpc-retry')).toHaveLength(4);
    } finally {
      await receiver.close();
    }
  });

  it('Kafka unreachable: UNAVAILABLE, the export fails (the exporter keeps the spans), nothing is marked written', async () => {
    const port = await freePort();
    const receiver = new OtlpReceiver({ port: 0, grpcPort: 0, publisher: { kafka: { brokers: [`127.0.0.1:${port}`] }, topic: uniqueName('otlp-grpc-down'), ensureTopic: false, connectTimeoutMs: 1000, onError: () => {} } });
    const { grpc } = await receiver.listen();
    try {
      const exporter = new GrpcExporter({ url: grpc!.url, timeoutMillis: 4000 });
      const result = await exportOnce(exporter, await recorded('conv-grpc-down'));
      await exporter.shutdown();
      expect(result.code).toBe(1);
      expect(String(result.error?.message)).toMatch(/UNAVAILABLE|unreachable|not acknowledged/i);
      expect(receiver.stats().unavailable).toBeGreaterThanOrEqual(1);
      expect(receiver.stats()).toMatchObject({ eventsAccepted: 0, duplicates: 0 });
    } finally {
      await receiver.close();
    }
  });

  it('a token is required on gRPC too: without it UNAUTHENTICATED, with `authorization: Bearer` metadata OK', async () => {
    const token = 'grpc-test-token-0123456789';
    const receiver = new OtlpReceiver({ port: 0, grpcPort: 0, token, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    const { grpc } = await receiver.listen();
    try {
      const spans = await recorded('conv-grpc-token');
      const anonymous = new GrpcExporter({ url: grpc!.url });
      const refused = await exportOnce(anonymous, spans);
      await anonymous.shutdown();
      expect(refused.code).toBe(1);
      expect(String(refused.error?.message)).toMatch(/UNAUTHENTICATED|bearer token/i);
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const authed = new GrpcExporter({ url: grpc!.url, metadata });
      expect((await exportOnce(authed, spans)).code).toBe(0);
      await authed.shutdown();
      expect(receiver.stats()).toMatchObject({ eventsAccepted: 4, badRequests: 1 });
    } finally {
      await receiver.close();
    }
  });

  it('a message over maxBodyBytes (also once decompressed) gets RESOURCE_EXHAUSTED, and the receiver keeps serving', async () => {
    const receiver = new OtlpReceiver({ port: 0, grpcPort: 0, maxBodyBytes: 4096, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    const { grpc } = await receiver.listen();
    try {
      const mem = new InMemorySpanExporter();
      const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] });
      // Compresses to far below the limit, 20 KB once decompressed.
      provider.getTracer('big').startSpan('chat big', { attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.input.messages': 'x'.repeat(20_000) } }).end();
      const big = [...mem.getFinishedSpans()];
      await provider.shutdown();
      const exporter = new GrpcExporter({ url: grpc!.url, compression: CompressionAlgorithm.GZIP });
      const refused = await exportOnce(exporter, big);
      expect(refused.code).toBe(1);
      expect(String(refused.error?.message)).toMatch(/RESOURCE_EXHAUSTED|larger than 4096/);
      expect((await exportOnce(exporter, await recorded('conv-grpc-after-big'))).code).toBe(0);
      await exporter.shutdown();
      expect(receiver.stats().eventsAccepted).toBe(4);
    } finally {
      await receiver.close();
    }
  });

  it('CLI: serve listens on both ports and stops on SIGTERM', async () => {
    const [http, grpcPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [join(repoRoot, 'packages', 'otlp', 'bin', 'agenttrace-otlp.js'), 'serve', '--port', String(http), '--grpc-port', String(grpcPort), '--brokers', stack.brokers.join(','), '--topic', topic], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((r) => child.once('close', r));
    for (let i = 0; i < 100 && !/listening on/.test(err); i++) await sleep(100);
    try {
      expect(err).toContain(`listening on http://127.0.0.1:${http}/v1/traces and OTLP/gRPC http://127.0.0.1:${grpcPort}`);
      const exporter = new GrpcExporter({ url: `http://127.0.0.1:${grpcPort}` });
      expect((await exportOnce(exporter, await recorded('conv-grpc-cli'))).code).toBe(0);
      await exporter.shutdown();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await closed, err).toBe(0);
    expect(err).toMatch(/stopped; 4 spans received, 4 events written/);
  });
});
