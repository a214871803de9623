import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { encodeTraceRequest, eventsToSpans, traceEndpoint } from '../src/index.js';
import { makeEvent, repoRoot } from '../../../test-support/stack.js';

/** Events as the tracer SDK writes them (no OpenTelemetry ids of their own). */
function tracerSession(): AgentEvent[] {
  const base = { session_id: 'sess_export', agent_id: 'invoice-agent', emitter_id: 'em_main' };
  const delegation = newEventId();
  return [
    makeEvent({ ...base, event_type: 'session_start', payload: {}, context: {}, seq: 0 }),
    makeEvent({ ...base, agent_id: 'research-agent', event_type: 'llm_call', seq: 1, payload: { model: 'claude-sonnet-4-5', input: 'summarize', output: 'ok', input_tokens: 1200, output_tokens: 300, cost_usd: 0.0081, latency_ms: 900.5 }, context: { parent_event_id: delegation } }),
    makeEvent({ ...base, event_id: delegation, event_type: 'delegation', seq: 2, payload: { subagent_id: 'research-agent', task: { topic: 'acme' }, latency_ms: 1500 }, context: {} }),
    makeEvent({ ...base, event_type: 'tool_call', status: 'error', seq: 3, payload: { tool: 'stripe.create_payment', input: { amount: 4500 }, error: { name: 'StripeError', message: 'rate limited' }, latency_ms: 20 }, context: {} }),
  ];
}

describe('export: agent events as OTLP spans', () => {
  it('derives stable ids, keeps parents, and names spans by the GenAI conventions', () => {
    const events = tracerSession();
    const spans = eventsToSpans(events);
    expect(spans.map((s) => s.name)).toEqual(['create_agent invoice-agent', 'chat claude-sonnet-4-5', 'invoke_agent research-agent', 'execute_tool stripe.create_payment']);
    expect(new Set(spans.map((s) => s.traceId.toString('hex'))).size).toBe(1);
    // The child was exported before its delegation and still points at it.
    expect(spans[1]!.parentSpanId!.equals(spans[2]!.spanId)).toBe(true);
    expect(eventsToSpans(events).map((s) => s.spanId.toString('hex'))).toEqual(spans.map((s) => s.spanId.toString('hex')));
    expect(spans[1]!.endMs - spans[1]!.startMs).toBeCloseTo(900.5, 6);
    expect(spans[3]!.error).toEqual({ message: 'rate limited', type: 'StripeError' });
  });

  it('the request decodes with the official opentelemetry-proto definitions', async () => {
    const root = new protobuf.Root();
    const protoDir = join(repoRoot, 'node_modules', '@opentelemetry', 'otlp-grpc-exporter-base', 'build', 'protos');
    root.resolvePath = (_o, target) => join(protoDir, target);
    await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: true });
    const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
    const events = tracerSession();
    const body = encodeTraceRequest(eventsToSpans(events), { 'service.name': 'svc' });
    expect(Request.verify(Request.decode(body))).toBeNull();
    type Kv = { key: string; value: Record<string, unknown> };
    const doc = Request.toObject(Request.decode(body), { longs: String, enums: Number }) as {
      resource_spans: Array<{ scope_spans: Array<{ scope: { name: string }; spans: Array<{ name: string; kind: number; start_time_unix_nano: string; end_time_unix_nano: string; attributes: Kv[]; events: Array<{ name: string; attributes: Kv[] }>; status: { code: number; message?: string } }> }> }>;
    };
    const ss = doc.resource_spans[0]!.scope_spans[0]!;
    expect(ss.scope.name).toBe('@agenttrace/otlp');
    const llm = ss.spans[1]!;
    const attrs = Object.fromEntries(llm.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
    expect(attrs).toMatchObject({ 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'claude-sonnet-4-5', 'gen_ai.usage.input_tokens': '1200', 'gen_ai.usage.output_tokens': '300', 'gen_ai.agent.id': 'research-agent', 'gen_ai.conversation.id': 'sess_export', 'agenttrace.cost_usd': 0.0081 });
    expect(llm.kind).toBe(3);
    expect(BigInt(llm.start_time_unix_nano)).toBe(BigInt(Date.parse(events[1]!.timestamp)) * 1_000_000n);
    expect(BigInt(llm.end_time_unix_nano) - BigInt(llm.start_time_unix_nano)).toBe(900_500_000n);
    const failed = ss.spans[3]!;
    expect(failed.status).toEqual({ code: 2, message: 'rate limited' });
    expect(failed.events[0]!.name).toBe('exception');
  });

  it('endpoints: a base URL gets /v1/traces, a full one is kept, anything else is refused', () => {
    expect(traceEndpoint('http://127.0.0.1:4318')).toBe('http://127.0.0.1:4318/v1/traces');
    expect(traceEndpoint('https://cloud.example/api/public/otel')).toBe('https://cloud.example/api/public/otel/v1/traces');
    expect(traceEndpoint('http://h:4318/v1/traces')).toBe('http://h:4318/v1/traces');
    expect(() => traceEndpoint('ftp://h')).toThrow(/must be http/);
    expect(() => traceEndpoint('not a url')).toThrow(/is not a URL/);
  });
});
