import { createHash } from 'node:crypto';
import type { AgentEvent } from '@agenttrace/contract';
import { errorMessage } from '@agenttrace/common';
import { OtlpError } from './errors.js';

/**
 * Agent events as OTLP spans, following the GenAI semantic conventions, so a session can be
 * looked at in any OpenTelemetry backend (Jaeger, Tempo, Langfuse, Phoenix). Events that came in
 * through the receiver keep their original trace and span ids (`context.otel`); the others get
 * ids derived from the session (trace) and the event id (span).
 */

type Value = string | number | boolean;

export interface ExportSpan {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer | undefined;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Array<[string, Value]>;
  error: { message: string; type?: string; stack?: string } | undefined;
}

const KIND_INTERNAL = 1;
const KIND_CLIENT = 3;

function digest(text: string, bytes: number): Buffer {
  return createHash('sha256').update(text).digest().subarray(0, bytes);
}

function hexId(v: unknown, bytes: number): Buffer | undefined {
  return typeof v === 'string' && v.length === bytes * 2 && /^[0-9a-f]+$/.test(v) ? Buffer.from(v, 'hex') : undefined;
}

function json(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

/** The OTLP spans of a session's events (in their order). */
export function eventsToSpans(events: readonly AgentEvent[]): ExportSpan[] {
  const sessionTrace = new Map<string, Buffer>();
  const spanOf = new Map<string, { traceId: Buffer; spanId: Buffer }>();
  const ids = (e: AgentEvent) => {
    let cached = spanOf.get(e.event_id);
    if (!cached) {
      const otel = (e.context.otel ?? {}) as Record<string, unknown>;
      let traceId = hexId(otel.trace_id, 16);
      if (!traceId) {
        traceId = sessionTrace.get(e.session_id) ?? digest(`agenttrace-session:${e.session_id}`, 16);
        sessionTrace.set(e.session_id, traceId);
      }
      cached = { traceId, spanId: hexId(otel.span_id, 8) ?? digest(`agenttrace-event:${e.event_id}`, 8) };
      spanOf.set(e.event_id, cached);
    }
    return cached;
  };
  for (const e of events) ids(e);
  return events.map((e) => {
    const { traceId, spanId } = ids(e);
    const p = e.payload;
    const attrs: Array<[string, Value]> = [];
    const put = (k: string, v: unknown) => {
      if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) attrs.push([k, v]);
    };
    put('gen_ai.conversation.id', e.session_id);
    let name: string;
    let kind = KIND_INTERNAL;
    switch (e.event_type) {
      case 'llm_call':
        name = `chat ${p.model ?? ''}`.trim();
        kind = KIND_CLIENT;
        put('gen_ai.operation.name', 'chat');
        put('gen_ai.agent.id', e.agent_id);
        put('gen_ai.request.model', p.model ?? e.context.model);
        put('gen_ai.usage.input_tokens', p.input_tokens);
        put('gen_ai.usage.output_tokens', p.output_tokens);
        put('gen_ai.input.messages', json(p.input));
        put('gen_ai.output.messages', json(p.output));
        put('gen_ai.provider.name', e.context.provider);
        break;
      case 'tool_call':
        name = `execute_tool ${p.tool ?? ''}`.trim();
        put('gen_ai.operation.name', 'execute_tool');
        put('gen_ai.agent.id', e.agent_id);
        put('gen_ai.tool.name', p.tool);
        put('gen_ai.tool.call.id', e.context.tool_call_id);
        put('gen_ai.tool.call.arguments', json(p.input));
        put('gen_ai.tool.call.result', json(p.output));
        break;
      case 'delegation':
        name = `invoke_agent ${p.subagent_id ?? ''}`.trim();
        put('gen_ai.operation.name', 'invoke_agent');
        put('gen_ai.agent.id', p.subagent_id);
        put('gen_ai.agent.name', p.subagent_id);
        put('gen_ai.input.messages', json(p.task));
        put('gen_ai.output.messages', json(p.output));
        put('agenttrace.parent_agent_id', e.agent_id);
        break;
      case 'session_start':
        name = `create_agent ${e.agent_id}`;
        put('gen_ai.operation.name', 'create_agent');
        put('gen_ai.agent.id', e.agent_id);
        break;
      default:
        name = e.event_type === 'custom' && typeof p.name === 'string' ? p.name : e.event_type;
        put('gen_ai.agent.id', e.agent_id);
        if (p.action !== undefined) put('agenttrace.action', p.action);
        if (e.context.reasoning !== undefined) put('agenttrace.reasoning', json(e.context.reasoning));
        if (typeof e.context.confidence === 'number') put('agenttrace.confidence', e.context.confidence);
    }
    put('agenttrace.event_id', e.event_id);
    put('agenttrace.event_type', e.event_type);
    put('agenttrace.seq', e.seq);
    put('agenttrace.cost_usd', p.cost_usd);
    const startMs = Date.parse(e.timestamp);
    const latency = typeof p.latency_ms === 'number' && p.latency_ms >= 0 ? p.latency_ms : 0;
    const parentId = e.context.parent_event_id;
    const parent = typeof parentId === 'string' ? spanOf.get(parentId) : undefined;
    // The receiver records the parent's span id: the event alone then names its parent span, so an
    // export that holds only the child (a later batch of the continuous exporter) sends the same span.
    const otelParent = typeof parentId === 'string' ? hexId((e.context.otel as Record<string, unknown> | undefined)?.parent_span_id, 8) : undefined;
    // A parent that is not in this export (another session, or cut by a time range) still has a derived id.
    const parentSpanId = otelParent ?? parent?.spanId ?? (typeof parentId === 'string' ? digest(`agenttrace-event:${parentId}`, 8) : undefined);
    const err = e.status === 'error' ? p.error : undefined;
    return {
      traceId,
      spanId,
      parentSpanId,
      name: name || e.event_type,
      kind,
      startMs,
      endMs: startMs + latency,
      attributes: attrs,
      error: e.status === 'error' ? { message: err?.message ?? 'error', ...(err?.name ? { type: err.name } : {}), ...(err?.stack ? { stack: err.stack } : {}) } : undefined,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Protobuf writer for ExportTraceServiceRequest (field numbers of opentelemetry-proto trace/v1).

class Writer {
  readonly #parts: Buffer[] = [];
  #size = 0;

  #push(b: Buffer): void {
    this.#parts.push(b);
    this.#size += b.length;
  }

  varint(v: number): this {
    const out: number[] = [];
    while (v > 127) {
      out.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    out.push(v);
    this.#push(Buffer.from(out));
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  bytes(field: number, b: Buffer): this {
    this.tag(field, 2).varint(b.length);
    this.#push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }

  message(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }

  fixed64Nanos(field: number, ms: number): this {
    const whole = Math.floor(ms);
    const nanos = BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(nanos < 0n ? 0n : nanos);
    this.tag(field, 1);
    this.#push(b);
    return this;
  }

  double(field: number, v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.tag(field, 1);
    this.#push(b);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.#parts, this.#size);
  }
}

function keyValue(key: string, v: Value): Writer {
  const any = new Writer();
  if (typeof v === 'string') any.string(1, v);
  else if (typeof v === 'boolean') any.tag(2, 0).varint(v ? 1 : 0);
  else if (Number.isInteger(v) && v >= 0) any.tag(3, 0).varint(v);
  else any.double(4, v);
  return new Writer().string(1, key).message(2, any);
}

/** One ExportTraceServiceRequest holding the spans under one resource. */
export function encodeTraceRequest(spans: readonly ExportSpan[], resource: Record<string, string>, scopeName = '@agenttrace/otlp'): Buffer {
  const res = new Writer();
  for (const [k, v] of Object.entries(resource)) res.message(1, keyValue(k, v));
  const scopeSpans = new Writer().message(1, new Writer().string(1, scopeName).string(2, '0.1.0'));
  for (const s of spans) {
    const w = new Writer().bytes(1, s.traceId).bytes(2, s.spanId);
    if (s.parentSpanId) w.bytes(4, s.parentSpanId);
    w.string(5, s.name).tag(6, 0).varint(s.kind).fixed64Nanos(7, s.startMs).fixed64Nanos(8, s.endMs);
    for (const [k, v] of s.attributes) w.message(9, keyValue(k, v));
    if (s.error) {
      const ev = new Writer().fixed64Nanos(1, s.endMs).string(2, 'exception');
      ev.message(3, keyValue('exception.message', s.error.message));
      if (s.error.type) ev.message(3, keyValue('exception.type', s.error.type));
      if (s.error.stack) ev.message(3, keyValue('exception.stacktrace', s.error.stack));
      w.message(11, ev);
      if (s.error.type) w.message(9, keyValue('error.type', s.error.type));
      w.message(15, new Writer().string(2, s.error.message).tag(3, 0).varint(2));
    } else {
      w.message(15, new Writer().tag(3, 0).varint(1));
    }
    scopeSpans.message(2, w);
  }
  const rs = new Writer().message(1, res).message(2, scopeSpans);
  return new Writer().message(1, rs).finish();
}

export interface ExportOptions {
  /** Full URL of the backend's OTLP/HTTP trace endpoint; a base URL gets `/v1/traces` appended. */
  endpoint: string;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** resource service.name (default `agenttrace`). */
  serviceName?: string;
  /** Spans per request (default 512). */
  batchSize?: number;
  /** Per-request timeout in ms (default 10000). */
  timeoutMs?: number;
}

export interface ExportResult {
  spans: number;
  requests: number;
  /** Spans the backend reported rejected (OTLP partial success). */
  rejected: number;
}

/** The trace endpoint for a base URL or a full one, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function traceEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new OtlpError('EXPORT_FAILED', `--endpoint ${JSON.stringify(endpoint)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OtlpError('EXPORT_FAILED', `--endpoint must be http(s), got ${url.protocol}`);
  if (!url.pathname.endsWith('/v1/traces')) url.pathname = `${url.pathname.replace(/\/$/, '')}/v1/traces`;
  return url.toString();
}

/** rejected_spans of an ExportTraceServiceResponse (0 when absent or unreadable). */
export function rejectedOf(body: Buffer): number {
  // field 1 (partial_success) → field 1 (rejected_spans, varint)
  if (body.length < 2 || body[0] !== 0x0a) return 0;
  const inner = body.subarray(2, 2 + body[1]!);
  if (inner[0] !== 0x08) return 0;
  let v = 0;
  let mul = 1;
  for (let i = 1; i < inner.length && i < 10; i++) {
    v += (inner[i]! & 0x7f) * mul;
    if (inner[i]! < 0x80) break;
    mul *= 128;
  }
  return v;
}

/** Sends the events as OTLP/HTTP protobuf requests; throws EXPORT_FAILED naming the answer. */
export async function exportEvents(events: readonly AgentEvent[], options: ExportOptions): Promise<ExportResult> {
  const url = traceEndpoint(options.endpoint);
  const spans = eventsToSpans(events);
  const batch = options.batchSize ?? 512;
  const resource = { 'service.name': options.serviceName ?? 'agenttrace' };
  const result: ExportResult = { spans: 0, requests: 0, rejected: 0 };
  for (let i = 0; i < spans.length; i += batch) {
    const chunk = spans.slice(i, i + batch);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        body: new Uint8Array(encodeTraceRequest(chunk, resource)),
        headers: { 'Content-Type': 'application/x-protobuf', ...(options.headers ?? {}) },
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new OtlpError('EXPORT_FAILED', `could not reach ${url}: ${errorMessage(err)}`, { cause: err, retryable: true });
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status < 200 || res.status > 299) {
      throw new OtlpError('EXPORT_FAILED', `${url} answered ${res.status} after ${result.spans} of ${spans.length} spans: ${body.toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 300)}`, {
        retryable: res.status === 429 || res.status >= 500,
      });
    }
    result.requests++;
    result.spans += chunk.length;
    if ((res.headers.get('content-type') ?? '').includes('protobuf')) result.rejected += rejectedOf(body);
  }
  return result;
}
