import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { context, trace } from '@opentelemetry/api';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OpenAIInstrumentation } from '@arizeai/openinference-instrumentation-openai';
import { setSession } from '@arizeai/openinference-core';
import { redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { OtlpReceiver } from '../src/index.js';
import { createTopic, deleteTopic, eventually, repoRoot, runNode, stack, uniqueName } from '../../../test-support/stack.js';

/**
 * The real `openai` client, instrumented by OpenInference's own instrumentation (neither written
 * here), talking to a local OpenAI-compatible stub: the first completion asks for a tool, the
 * second answers. The agent code around it is what an application would write.
 */
describe('OpenInference OpenAI instrumentation → agenttrace-otlp → kshark replay', () => {
  const topic = uniqueName('otlp-openai');
  const prefix = `${uniqueName('otlp-openai')}:`;
  const SID = 'sess_openai_stub';
  let stub: Server;
  let stubUrl: string;
  let receiver: OtlpReceiver;
  let consumer: DashboardConsumer;
  let provider: NodeTracerProvider;
  const requests: Array<{ model: string; messages: unknown[] }> = [];

  beforeAll(async () => {
    stub = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model: string; messages: unknown[] };
        requests.push(body);
        const first = requests.length === 1;
        const message = first
          ? { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }
          : { role: 'assistant', content: 'It is sunny in Paris.' };
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            id: `chatcmpl-${requests.length}`,
            object: 'chat.completion',
            created: Math.floor(Date.now() / 1000),
            model: body.model,
            choices: [{ index: 0, message, finish_reason: first ? 'tool_calls' : 'stop' }],
            usage: first ? { prompt_tokens: 50, completion_tokens: 10, total_tokens: 60 } : { prompt_tokens: 80, completion_tokens: 8, total_tokens: 88 },
          }),
        );
      });
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}/v1`;
    await createTopic(topic, 4);
    receiver = new OtlpReceiver({ port: 0, pricing: { 'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 } }, publisher: { kafka: { brokers: stack.brokers }, topic, ensureTopic: false } });
    const { url } = await receiver.listen();
    consumer = new DashboardConsumer({
      kafka: { brokers: stack.brokers },
      topic,
      group: uniqueName('otlp-openai-dash'),
      redisUrl: stack.redisUrl,
      redisPrefix: prefix,
      dlqTopic: `${topic}.dlq`,
      alertsTopic: `${topic}.alerts`,
      metricsPort: false,
      sessionTimeoutMs: 6000,
    });
    await consumer.start();
    provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'weather-agent' }), spanProcessors: [
        // Exported in one request, at forceFlush: order across requests is arrival order (docs/opentelemetry.md, Limits),
        // and on a loaded machine the 5 s default timer could split this short run.
        new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 60_000 }),
      ],
    });
    // Registers the async context manager, which OpenInference's session propagation needs.
    provider.register();
    const instrumentation = new OpenAIInstrumentation();
    instrumentation.setTracerProvider(provider);
    instrumentation.manuallyInstrument(OpenAI);
  });

  afterAll(async () => {
    await provider?.shutdown();
    await receiver?.close();
    await consumer?.close();
    await new Promise<void>((r) => stub.close(() => r()));
    for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
    const redis = new Redis(stack.redisUrl);
    const left = await redis.keys(`${prefix}*`);
    if (left.length > 0) await redis.del(...left);
    await redis.quit();
  });

  it('shows both LLM calls with model, tokens and cost, and the tool call between them', async () => {
    const client = new OpenAI({ apiKey: 'sk-test-not-a-real-key', baseURL: stubUrl });
    const tracer = provider.getTracer('weather-agent');
    // The agent's own span around its work; the instrumentation's LLM spans and the tool span
    // are its children, so the whole trace is one session even where a span carries no session.id.
    await context.with(setSession(context.active(), { sessionId: SID }), () => tracer.startActiveSpan('weather-agent', { attributes: { 'openinference.span.kind': 'AGENT', 'agent.name': 'weather-agent' } }, async (agentSpan) => {
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
      const tools: OpenAI.Chat.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
      const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
      const call = first.choices[0]!.message.tool_calls![0]! as { id: string; function: { name: string; arguments: string } };
      // The application's own tool span, in OpenInference's convention.
      const result = await tracer.startActiveSpan('get_weather', { attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': call.function.name, 'input.value': call.function.arguments } }, async (span) => {
        // The lookup takes a little while, as a real tool does. (Steps that start within a
        // millisecond or two of each other can come out in either order: docs/opentelemetry.md, Limits.)
        await new Promise((r) => setTimeout(r, 25));
        const out = JSON.stringify({ city: 'Paris', sky: 'sunny' });
        span.setAttribute('output.value', out);
        span.end();
        return out;
      });
      messages.push(first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: result });
      const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
      expect(second.choices[0]!.message.content).toBe('It is sunny in Paris.');
      agentSpan.end();
    }));
    expect(trace.getActiveSpan()).toBeUndefined();
    await provider.forceFlush();

    const redis = new Redis(stack.redisUrl);
    try {
      await eventually('4 events in Redis', async () => (await redis.llen(redisKeys(prefix).events(SID))) === 4, 30_000);
    } finally {
      await redis.quit();
    }
    const r = await runNode(join(repoRoot, 'packages', 'kshark', 'dist', 'cli.js'), ['replay', SID, '--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { events: AgentEvent[]; summary: { input_tokens: number; output_tokens: number; cost_usd: number } };
    const agent = doc.events.find((e) => e.event_type === 'delegation')!;
    expect(agent.payload.subagent_id).toBe('weather-agent');
    const steps = doc.events.filter((e) => e !== agent);
    for (const s of steps) expect(s.context.parent_event_id).toBe(agent.event_id);
    expect(steps.map((e) => [e.event_type, e.payload.model ?? e.payload.tool, e.payload.input_tokens, e.payload.output_tokens])).toEqual([
      ['llm_call', 'gpt-4o-mini', 50, 10],
      ['tool_call', 'get_weather', undefined, undefined],
      ['llm_call', 'gpt-4o-mini', 80, 8],
    ]);
    expect(steps[0]!.payload.cost_usd).toBeCloseTo((50 * 0.15 + 10 * 0.6) / 1e6, 12);
    expect(doc.summary).toMatchObject({ input_tokens: 130, output_tokens: 18 });
    // kshark's summary rounds cost to 6 decimals.
    expect(doc.summary.cost_usd).toBeCloseTo((130 * 0.15 + 18 * 0.6) / 1e6, 6);
    expect(steps[1]!.payload.input).toEqual({ city: 'Paris' });
    expect(doc.events.every((e) => e.agent_id === 'weather-agent')).toBe(true);
    // The instrumentation's own message attributes arrive as the call's input.
    expect(JSON.stringify(steps[0]!.payload.input)).toContain('Weather in Paris?');
    expect(requests).toHaveLength(2);

    const text = await runNode(join(repoRoot, 'packages', 'kshark', 'dist', 'cli.js'), ['replay', SID, '--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--no-color']);
    expect(text.stdout).toMatch(/llm_call\s+gpt-4o-mini/);
    expect(text.stdout).toMatch(/tool_call\s+get_weather/);
  });
});
