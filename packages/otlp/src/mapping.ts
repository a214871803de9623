import { createHash } from 'node:crypto';
import type { EventContext, EventPayload, EventStatus, EventType, RecordedError } from '@agenttrace/contract';
import type { AttrValue, Attributes, OtlpSpan } from './decode.js';

/**
 * The one place that says how OpenTelemetry spans become agent events, for the three GenAI
 * conventions in use: OTel GenAI semantic conventions (`gen_ai.*`), OpenInference
 * (`openinference.span.kind`, `llm.*`, `tool.*`, `input.value`), and OpenLLMetry (`traceloop.*`,
 * indexed `gen_ai.prompt.N.*`/`gen_ai.completion.N.*`). docs/opentelemetry.md has the same table.
 */

/** Which convention recognised the span. */
export type Convention = 'openinference' | 'gen_ai' | 'openllmetry';

/** A span recognised as agent work, before session, agent and sequence are settled. */
export interface MappedStep {
  convention: Convention;
  eventType: EventType;
  status: EventStatus;
  payload: EventPayload;
  context: EventContext;
  /** Session named by the span itself, if any. */
  sessionId: string | undefined;
  /** Agent named by the span itself, if any. */
  agentId: string | undefined;
  /** For delegations: the agent the work went to (its children are that agent's steps). */
  subagentId: string | undefined;
}

/** Attributes that name the session, most specific first. */
export const SESSION_ATTRIBUTES = [
  'gen_ai.conversation.id',
  'session.id',
  'traceloop.association.properties.session_id',
  'traceloop.association.properties.conversation_id',
  'traceloop.association.properties.thread_id',
  'traceloop.association.properties.chat_id',
] as const;

const LLM_OPERATIONS = new Set(['chat', 'text_completion', 'generate_content', 'embeddings']);

function s(attrs: Attributes, key: string): string | undefined {
  const v = attrs[key];
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function n(attrs: Attributes, key: string): number | undefined {
  const v = attrs[key];
  const x = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined;
}

/** A JSON text (as the conventions put messages and arguments into strings) as its value. */
function parsed(v: AttrValue | undefined): unknown {
  if (typeof v !== 'string') return v ?? undefined;
  const t = v.trimStart();
  if (t.startsWith('{') || t.startsWith('[') || t.startsWith('"')) {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  }
  return v;
}

/** Highest index taken from flattened attributes: a hostile `prefix.99999999.x` must not allocate. */
const MAX_INDEX = 1000;

/**
 * Rebuilds a flattened, indexed list (`prefix.0.role`, `prefix.0.content`, `prefix.1...`) into an
 * array of objects, keeping the nested path under the index (`message.role` → {message: {role}}).
 */
export function indexed(attrs: Attributes, prefix: string): Array<Record<string, unknown>> | undefined {
  const byIndex = new Map<number, Record<string, unknown>>();
  const p = `${prefix}.`;
  for (const key of Object.keys(attrs)) {
    if (!key.startsWith(p)) continue;
    const rest = key.slice(p.length);
    const dot = rest.indexOf('.');
    if (dot <= 0) continue;
    const idx = Number(rest.slice(0, dot));
    if (!Number.isInteger(idx) || idx < 0 || idx >= MAX_INDEX) continue;
    let obj = byIndex.get(idx);
    if (!obj) byIndex.set(idx, (obj = {}));
    const path = rest.slice(dot + 1).split('.');
    let at: Record<string, unknown> = obj;
    for (let i = 0; i < path.length - 1; i++) {
      const seg = path[i]!;
      const next = Object.hasOwn(at, seg) ? at[seg] : undefined;
      if (typeof next === 'object' && next !== null) at = next as Record<string, unknown>;
      else {
        const fresh: Record<string, unknown> = {};
        Object.defineProperty(at, seg, { value: fresh, enumerable: true, writable: true, configurable: true });
        at = fresh;
      }
    }
    Object.defineProperty(at, path[path.length - 1]!, { value: parsed(attrs[key]), enumerable: true, writable: true, configurable: true });
  }
  if (byIndex.size === 0) return undefined;
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** Messages carried as span events by older GenAI instrumentations (gen_ai.user.message, gen_ai.choice...). */
function eventMessages(span: OtlpSpan, output: boolean): unknown[] | undefined {
  const out: unknown[] = [];
  for (const ev of span.events) {
    const isChoice = ev.name === 'gen_ai.choice';
    if (!ev.name.startsWith('gen_ai.') || ev.name === 'gen_ai.client.inference.operation.details' || isChoice !== output) continue;
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(ev.attributes)) if (k !== 'gen_ai.system' && k !== 'gen_ai.provider.name') body[k] = parsed(v);
    if (!isChoice) body.role ??= ev.name.replace(/^gen_ai\.|\.message$/g, '');
    out.push(body);
  }
  return out.length > 0 ? out : undefined;
}

/** The error a span records: its status message and its `exception` event. */
export function spanError(span: OtlpSpan): RecordedError {
  const ex = span.events.find((e) => e.name === 'exception');
  const err: RecordedError = { message: span.statusMessage || (ex ? (s(ex.attributes, 'exception.message') ?? '') : '') || 'span status ERROR' };
  const name = (ex && s(ex.attributes, 'exception.type')) ?? s(span.attributes, 'error.type');
  if (name) err.name = name;
  const stack = ex && s(ex.attributes, 'exception.stacktrace');
  if (stack) err.stack = stack;
  return err;
}

function putDefined(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

function llmPayload(span: OtlpSpan, a: Attributes, convention: Convention): { payload: EventPayload; context: EventContext } {
  const payload: EventPayload = {};
  const context: EventContext = {};
  let model: string | undefined;
  let input: unknown;
  let output: unknown;
  let inTok: number | undefined;
  let outTok: number | undefined;
  let cost: number | undefined;
  if (convention === 'openinference') {
    model = s(a, 'llm.model_name') ?? s(a, 'embedding.model_name');
    input = indexed(a, 'llm.input_messages') ?? parsed(a['input.value']);
    output = indexed(a, 'llm.output_messages') ?? parsed(a['output.value']);
    inTok = n(a, 'llm.token_count.prompt');
    outTok = n(a, 'llm.token_count.completion');
    cost = n(a, 'llm.cost.total');
    putDefined(context, 'provider', s(a, 'llm.provider') ?? s(a, 'llm.system'));
    putDefined(context, 'invocation_parameters', parsed(a['llm.invocation_parameters']));
  } else {
    model = s(a, 'gen_ai.request.model') ?? s(a, 'gen_ai.response.model');
    input = parsed(a['gen_ai.input.messages']) ?? indexed(a, 'gen_ai.prompt') ?? parsed(a['gen_ai.prompt']) ?? eventMessages(span, false);
    output = parsed(a['gen_ai.output.messages']) ?? indexed(a, 'gen_ai.completion') ?? parsed(a['gen_ai.completion']) ?? eventMessages(span, true);
    inTok = n(a, 'gen_ai.usage.input_tokens') ?? n(a, 'gen_ai.usage.prompt_tokens');
    outTok = n(a, 'gen_ai.usage.output_tokens') ?? n(a, 'gen_ai.usage.completion_tokens');
    putDefined(context, 'provider', s(a, 'gen_ai.provider.name') ?? s(a, 'gen_ai.system'));
    putDefined(context, 'operation', s(a, 'gen_ai.operation.name') ?? s(a, 'llm.request.type'));
    putDefined(context, 'system_instructions', parsed(a['gen_ai.system_instructions']));
    putDefined(context, 'response_model', s(a, 'gen_ai.response.model'));
    putDefined(context, 'finish_reasons', a['gen_ai.response.finish_reasons']);
  }
  if (model !== undefined) {
    payload.model = model;
    context.model = model;
  }
  putDefined(payload, 'input', input);
  putDefined(payload, 'output', output);
  if (inTok !== undefined) payload.input_tokens = Math.round(inTok);
  if (outTok !== undefined) payload.output_tokens = Math.round(outTok);
  if (cost !== undefined) payload.cost_usd = cost;
  return { payload, context };
}

/**
 * Recognises a span as agent work and maps it; undefined for spans of no GenAI convention
 * (HTTP, database...), which the receiver counts and drops.
 */
export function mapSpan(span: OtlpSpan): MappedStep | undefined {
  const a = span.attributes;
  const oiKind = s(a, 'openinference.span.kind')?.toUpperCase();
  const op = s(a, 'gen_ai.operation.name');
  const tlKind = s(a, 'traceloop.span.kind');
  let convention: Convention;
  let eventType: EventType;
  let payload: EventPayload = {};
  let context: EventContext = {};
  let subagentId: string | undefined;
  let agentId: string | undefined;

  if (oiKind !== undefined) {
    convention = 'openinference';
    agentId = s(a, 'agent.name');
    if (oiKind === 'LLM' || oiKind === 'EMBEDDING') {
      eventType = 'llm_call';
      ({ payload, context } = llmPayload(span, a, convention));
    } else if (oiKind === 'TOOL') {
      eventType = 'tool_call';
      payload.tool = s(a, 'tool.name') ?? span.name;
      putDefined(payload, 'input', parsed(a['input.value']));
      putDefined(payload, 'output', parsed(a['output.value']));
      putDefined(context, 'tool_description', s(a, 'tool.description'));
    } else if (oiKind === 'AGENT') {
      eventType = 'delegation';
      subagentId = s(a, 'agent.name') ?? span.name;
      agentId = undefined;
      payload.subagent_id = subagentId;
      putDefined(payload, 'task', parsed(a['input.value']));
      putDefined(payload, 'output', parsed(a['output.value']));
    } else {
      // CHAIN, RETRIEVER, RERANKER, GUARDRAIL, EVALUATOR, PROMPT...
      eventType = 'custom';
      payload.name = span.name;
      payload.span_kind = oiKind.toLowerCase();
      putDefined(payload, 'input', parsed(a['input.value']));
      putDefined(payload, 'output', parsed(a['output.value']));
    }
    putDefined(context, 'user_id', s(a, 'user.id'));
  } else if (op !== undefined) {
    convention = 'gen_ai';
    agentId = s(a, 'gen_ai.agent.id') ?? s(a, 'gen_ai.agent.name');
    if (LLM_OPERATIONS.has(op)) {
      eventType = 'llm_call';
      ({ payload, context } = llmPayload(span, a, convention));
    } else if (op === 'execute_tool') {
      eventType = 'tool_call';
      payload.tool = s(a, 'gen_ai.tool.name') ?? span.name;
      putDefined(payload, 'input', parsed(a['gen_ai.tool.call.arguments']));
      putDefined(payload, 'output', parsed(a['gen_ai.tool.call.result']));
      putDefined(context, 'tool_call_id', s(a, 'gen_ai.tool.call.id'));
      putDefined(context, 'tool_type', s(a, 'gen_ai.tool.type'));
      putDefined(context, 'tool_description', s(a, 'gen_ai.tool.description'));
    } else if (op === 'invoke_agent') {
      eventType = 'delegation';
      subagentId = agentId ?? span.name;
      agentId = undefined;
      payload.subagent_id = subagentId;
      putDefined(payload, 'task', parsed(a['gen_ai.input.messages']));
      putDefined(payload, 'output', parsed(a['gen_ai.output.messages']));
      putDefined(context, 'agent_name', s(a, 'gen_ai.agent.name'));
      putDefined(context, 'agent_description', s(a, 'gen_ai.agent.description'));
      putDefined(context, 'model', s(a, 'gen_ai.request.model'));
    } else {
      // create_agent and operations newer than this table.
      eventType = 'custom';
      payload.name = op;
      putDefined(payload, 'agent_name', s(a, 'gen_ai.agent.name'));
      putDefined(context, 'model', s(a, 'gen_ai.request.model'));
    }
  } else if (tlKind !== undefined) {
    convention = 'openllmetry';
    const entity = s(a, 'traceloop.entity.name') ?? span.name;
    const input = parsed(a['traceloop.entity.input']);
    const output = parsed(a['traceloop.entity.output']);
    if (tlKind === 'tool') {
      eventType = 'tool_call';
      payload.tool = entity;
      putDefined(payload, 'input', input);
      putDefined(payload, 'output', output);
    } else if (tlKind === 'agent') {
      eventType = 'delegation';
      subagentId = entity;
      payload.subagent_id = entity;
      putDefined(payload, 'task', input);
      putDefined(payload, 'output', output);
    } else {
      // workflow, task
      eventType = 'custom';
      payload.name = entity;
      payload.span_kind = tlKind;
      putDefined(payload, 'input', input);
      putDefined(payload, 'output', output);
    }
    putDefined(context, 'workflow', s(a, 'traceloop.workflow.name'));
  } else if (a['llm.request.type'] !== undefined || a['gen_ai.system'] !== undefined || a['gen_ai.request.model'] !== undefined) {
    // OpenLLMetry's LLM spans carry no traceloop.span.kind, only gen_ai.* with indexed prompts.
    convention = 'openllmetry';
    eventType = 'llm_call';
    ({ payload, context } = llmPayload(span, a, convention));
  } else {
    return undefined;
  }

  const latency = span.endMs - span.startMs;
  if (Number.isFinite(latency) && latency >= 0 && span.endMs > 0) payload.latency_ms = Math.round(latency * 1000) / 1000;
  const status: EventStatus = span.statusCode === 2 ? 'error' : 'ok';
  if (status === 'error') payload.error = spanError(span);
  context.otel = { trace_id: span.traceId, span_id: span.spanId, span_name: span.name, convention };
  if (span.scopeName) (context.otel as Record<string, unknown>).scope = span.scopeName;

  let sessionId: string | undefined;
  for (const key of SESSION_ATTRIBUTES) {
    sessionId = s(a, key);
    if (sessionId !== undefined) break;
  }
  return { convention, eventType, status, payload, context, sessionId, agentId, subagentId };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * The event id of a span: a function of (trace id, span id) alone, so a retried export maps to
 * the same ids, and a child can name its parent's event without having seen the parent. It has
 * the contract's form (`evt_` + 26 Crockford base32 characters) but is not time-ordered.
 */
export function spanEventId(traceId: string, spanId: string): string {
  // One update: each call crosses into C++ (three of them cost more than the concatenation).
  const h = createHash('sha256').update(`${traceId}:${spanId}`).digest();
  let out = 'evt_';
  // 26 characters of 5 bits; the first is kept below 8, as in a ULID (48-bit time part).
  let acc = 0;
  let bits = 0;
  let i = 0;
  while (out.length < 30) {
    if (bits < 5) {
      acc = (acc << 8) | h[i++]!;
      bits += 8;
    }
    bits -= 5;
    let v = (acc >> bits) & 31;
    if (out.length === 4) v &= 7;
    out += CROCKFORD[v];
  }
  return out;
}
