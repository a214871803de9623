import { describe, expect, it } from 'vitest';
import { SpanStatusCode, context, trace, type Attributes as OtelAttributes } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { validateEvent } from '@agenttrace/contract';
import { decodeJson, decodeProtobuf, indexed, mapSpan, spanEventId, type OtlpSpan } from '../src/index.js';

/** Spans made by the OpenTelemetry JS SDK itself, serialized by its own OTLP serializers. */
function sdkSpans(build: (start: (name: string, attrs: OtelAttributes, parent?: ReturnType<typeof trace.setSpan>) => ReturnType<ReturnType<BasicTracerProvider['getTracer']>['startSpan']>) => void) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'unit-agent' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('unit');
  build((name, attrs, parent) => tracer.startSpan(name, { attributes: attrs }, parent ?? context.active()));
  return exporter.getFinishedSpans();
}

const base: OtlpSpan = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  parentSpanId: '',
  name: 'x',
  kind: 0,
  startMs: 1_764_300_000_000,
  endMs: 1_764_300_000_250,
  attributes: {},
  events: [],
  statusCode: 0,
  statusMessage: '',
  resource: {},
  scopeName: '',
};

describe('mapping', () => {
  it('OTel GenAI chat span: model, tokens, messages, conversation id', () => {
    const m = mapSpan({
      ...base,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': 100,
        'gen_ai.usage.output_tokens': 20,
        'gen_ai.conversation.id': 'conv-1',
        'gen_ai.input.messages': '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
        'gen_ai.provider.name': 'openai',
      },
    })!;
    expect(m.eventType).toBe('llm_call');
    expect(m.sessionId).toBe('conv-1');
    expect(m.payload).toMatchObject({ model: 'gpt-4o', input_tokens: 100, output_tokens: 20, latency_ms: 250 });
    expect(m.payload.input).toEqual([{ role: 'user', parts: [{ type: 'text', content: 'hi' }] }]);
    expect(m.context.provider).toBe('openai');
  });

  it('OTel GenAI execute_tool and invoke_agent', () => {
    const tool = mapSpan({ ...base, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search', 'gen_ai.tool.call.arguments': '{"q":"kafka"}', 'gen_ai.tool.call.result': '"ok"' } })!;
    expect(tool).toMatchObject({ eventType: 'tool_call', payload: { tool: 'search', input: { q: 'kafka' }, output: 'ok' } });
    const agent = mapSpan({ ...base, attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'researcher' } })!;
    expect(agent).toMatchObject({ eventType: 'delegation', subagentId: 'researcher', payload: { subagent_id: 'researcher' } });
  });

  it('OpenInference LLM, TOOL, AGENT and CHAIN spans', () => {
    const llm = mapSpan({
      ...base,
      attributes: {
        'openinference.span.kind': 'LLM',
        'llm.model_name': 'claude-3-5-sonnet',
        'llm.token_count.prompt': 11,
        'llm.token_count.completion': 7,
        'llm.input_messages.0.message.role': 'user',
        'llm.input_messages.0.message.content': 'hello',
        'llm.output_messages.0.message.role': 'assistant',
        'llm.output_messages.0.message.content': 'hi!',
        'session.id': 'oi-session',
      },
    })!;
    expect(llm).toMatchObject({ convention: 'openinference', eventType: 'llm_call', sessionId: 'oi-session', payload: { model: 'claude-3-5-sonnet', input_tokens: 11, output_tokens: 7 } });
    expect(llm.payload.input).toEqual([{ message: { role: 'user', content: 'hello' } }]);
    expect(llm.payload.output).toEqual([{ message: { role: 'assistant', content: 'hi!' } }]);
    const tool = mapSpan({ ...base, attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': 'calc', 'input.value': '{"x":1}', 'output.value': '2' } })!;
    expect(tool).toMatchObject({ eventType: 'tool_call', payload: { tool: 'calc', input: { x: 1 }, output: '2' } });
    expect(mapSpan({ ...base, attributes: { 'openinference.span.kind': 'AGENT', 'agent.name': 'planner' } })).toMatchObject({ eventType: 'delegation', subagentId: 'planner' });
    expect(mapSpan({ ...base, name: 'RunnableSequence', attributes: { 'openinference.span.kind': 'CHAIN' } })).toMatchObject({ eventType: 'custom', payload: { name: 'RunnableSequence', span_kind: 'chain' } });
  });

  it('OpenLLMetry: traceloop tool/agent spans and indexed gen_ai.prompt / gen_ai.completion', () => {
    const llm = mapSpan({
      ...base,
      attributes: {
        'llm.request.type': 'chat',
        'gen_ai.system': 'OpenAI',
        'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.usage.prompt_tokens': 30,
        'gen_ai.usage.completion_tokens': 5,
        'gen_ai.prompt.0.role': 'system',
        'gen_ai.prompt.0.content': 'be brief',
        'gen_ai.prompt.1.role': 'user',
        'gen_ai.prompt.1.content': 'hi',
        'gen_ai.completion.0.role': 'assistant',
        'gen_ai.completion.0.content': 'hello',
        'traceloop.association.properties.session_id': 'tl-1',
      },
    })!;
    expect(llm).toMatchObject({ convention: 'openllmetry', eventType: 'llm_call', sessionId: 'tl-1', payload: { model: 'gpt-4o-mini', input_tokens: 30, output_tokens: 5 } });
    expect(llm.payload.input).toEqual([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }]);
    expect(llm.payload.output).toEqual([{ role: 'assistant', content: 'hello' }]);
    expect(mapSpan({ ...base, attributes: { 'traceloop.span.kind': 'tool', 'traceloop.entity.name': 'fetch_page', 'traceloop.entity.input': '{"url":"u"}' } })).toMatchObject({
      eventType: 'tool_call',
      payload: { tool: 'fetch_page', input: { url: 'u' } },
    });
    expect(mapSpan({ ...base, attributes: { 'traceloop.span.kind': 'agent', 'traceloop.entity.name': 'writer' } })).toMatchObject({ eventType: 'delegation', subagentId: 'writer' });
  });

  it('status ERROR becomes an error step with the exception; non-GenAI spans are not mapped', () => {
    const m = mapSpan({
      ...base,
      statusCode: 2,
      statusMessage: 'rate limited',
      events: [{ timeMs: 0, name: 'exception', attributes: { 'exception.type': 'RateLimitError', 'exception.stacktrace': 'at x' } }],
      attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'm' },
    })!;
    expect(m.status).toBe('error');
    expect(m.payload.error).toEqual({ name: 'RateLimitError', message: 'rate limited', stack: 'at x' });
    expect(mapSpan({ ...base, attributes: { 'http.request.method': 'GET' } })).toBeUndefined();
  });

  it('hostile indexes and prototype keys do not allocate or pollute', () => {
    const attrs = JSON.parse('{"gen_ai.prompt.99999999.content":"x","gen_ai.prompt.0.__proto__":"y","gen_ai.prompt.0.content":"ok"}') as Record<string, string>;
    const out = indexed(attrs, 'gen_ai.prompt')!;
    expect(out).toHaveLength(1);
    expect(out[0]!.content).toBe('ok');
    expect(({} as Record<string, unknown>).content).toBeUndefined();
  });

  it('event ids depend on (trace id, span id) only and fit the contract', () => {
    const a = spanEventId(base.traceId, base.spanId);
    expect(a).toBe(spanEventId(base.traceId, base.spanId));
    expect(a).not.toBe(spanEventId(base.traceId, 'b7ad6b7169203332'));
    expect(a).toMatch(/^evt_[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    const event = {
      schema_version: 1,
      event_id: a,
      session_id: 's',
      agent_id: 'a',
      emitter_id: 'e',
      seq: 0,
      timestamp: new Date(0).toISOString(),
      event_type: 'llm_call',
      status: 'ok',
      payload: {},
      context: { parent_event_id: spanEventId(base.traceId, 'aaaaaaaaaaaaaaaa') },
    };
    expect(validateEvent(event)).toMatchObject({ ok: true });
  });
});

describe('decoding what the OpenTelemetry JS SDK serializes', () => {
  const spans = sdkSpans((start) => {
    const root = start('invoke_agent planner', { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'gen_ai.conversation.id': 'c-42' });
    const ctx = trace.setSpan(context.active(), root);
    const llm = start('chat gpt-4o', { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 9, tags: ['a', 'b'], ratio: 0.5, ok: true }, ctx);
    llm.addEvent('gen_ai.choice', { index: 0 });
    llm.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    llm.end();
    root.end();
  });

  function check(decoded: OtlpSpan[]): void {
    expect(decoded).toHaveLength(2);
    const [llm, root] = decoded;
    expect(root!.traceId).toBe(spans[1]!.spanContext().traceId);
    expect(root!.spanId).toBe(spans[1]!.spanContext().spanId);
    expect(root!.parentSpanId).toBe('');
    expect(llm!.parentSpanId).toBe(root!.spanId);
    expect(llm!.attributes).toMatchObject({ 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 9, tags: ['a', 'b'], ratio: 0.5, ok: true });
    expect(llm!.statusCode).toBe(2);
    expect(llm!.statusMessage).toBe('boom');
    expect(llm!.events[0]).toMatchObject({ name: 'gen_ai.choice', attributes: { index: 0 } });
    expect(llm!.resource['service.name']).toBe('unit-agent');
    expect(llm!.scopeName).toBe('unit');
    const [s, ns] = spans[0]!.startTime;
    expect(llm!.startMs).toBeCloseTo(s * 1000 + ns / 1e6, 3);
  }

  it('protobuf', () => {
    check(decodeProtobuf(ProtobufTraceSerializer.serializeRequest(spans)!));
  });

  it('JSON', () => {
    check(decodeJson(JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)!).toString('utf8'))));
  });

  it('malformed protobuf fails with a message naming where', () => {
    const good = ProtobufTraceSerializer.serializeRequest(spans)!;
    expect(() => decodeProtobuf(good.subarray(0, good.length - 7))).toThrow(/invalid OTLP request at resource_spans\[0\]/);
    expect(() => decodeProtobuf(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(/runs past the end/);
    expect(() => decodeProtobuf(Buffer.from([0x0b]))).toThrow(/wire type 3/);
    // Deeply nested array values are refused, not recursed into without bound.
    const varint = (n: number): number[] => (n < 128 ? [n] : [(n % 128) | 128, ...varint(Math.floor(n / 128))]);
    const field = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, ...varint(body.length)]), body]);
    let v = field(0x0a, Buffer.alloc(0)); // AnyValue{string_value: ''}
    for (let i = 0; i < 40; i++) v = field(0x2a, field(0x0a, v)); // AnyValue{array_value: {values: [v]}}
    const kv = Buffer.concat([field(0x0a, Buffer.from('k')), field(0x12, v)]);
    const req = field(0x0a, field(0x12, field(0x12, field(0x4a, kv))));
    expect(() => decodeProtobuf(req)).toThrow(/nested deeper than 16/);
  });
});
