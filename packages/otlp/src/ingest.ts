import { SCHEMA_VERSION, type AgentEvent } from '@agenttrace/contract';
import type { EventPublisher } from '@agenttrace/tracer';
import type { OtlpSpan } from './decode.js';
import { mapSpan, spanEventId, type MappedStep } from './mapping.js';
import type { SpanLedger } from './ledger.js';
import type { ResolvedReceiverOptions } from './options.js';

/** What became of the spans of one request. */
export interface IngestResult {
  received: number;
  /** Produced and acknowledged by Kafka in this request. */
  accepted: number;
  /** Already acknowledged in an earlier request (a retried export): not produced again. */
  duplicates: number;
  /** Not agent work (HTTP, database... spans): counted and dropped. */
  dropped: number;
  /** Spans that could not be turned into events, with why (OTLP partial success). */
  rejected: Array<{ spanId: string; reason: string }>;
  /** Spans Kafka did not acknowledge: the client must retry the request. */
  failed: number;
  /** Set when failures mean the whole request should be retried (Kafka unavailable, or the same spans still in flight). */
  retry: string | undefined;
}

export interface IngestStats {
  requests: number;
  spansReceived: number;
  eventsAccepted: number;
  duplicates: number;
  droppedNonGenAi: number;
  rejected: number;
  failed: number;
}

/** Ancestors of a span within the request (bounded: ids may form a cycle). */
function depthOf(span: OtlpSpan, byId: Map<string, OtlpSpan>): number {
  let d = 0;
  for (let cur = byId.get(span.parentSpanId); cur && d < 64; cur = byId.get(cur.parentSpanId)) d++;
  return d;
}

/** A Map used as a bounded, insertion-ordered set: the oldest entry goes first. */
class Bounded<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();

  constructor(max: number) {
    this.#max = max;
  }

  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  set(key: string, value: V): void {
    if (this.#max === 0) return;
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }

  delete(key: string): void {
    this.#map.delete(key);
  }
}

const MAX_ID = 256;
const HEX_TRACE = /^[0-9a-f]{32}$/;
const HEX_SPAN = /^[0-9a-f]{16}$/;

/**
 * Turns decoded spans into agent events and produces them. Sessions: the span's own session
 * attribute, else one seen on another span of the same trace (in this request or an earlier
 * one), else the trace id. Agents: the span's own agent attribute, else the sub-agent of the
 * nearest delegation above it, else the resource's service.name. Retried exports are answered
 * from a window of acknowledged event ids and are never produced twice.
 */
export class SpanIngester {
  readonly #opts: ResolvedReceiverOptions;
  readonly #publisher: EventPublisher;
  readonly #ledger: SpanLedger;
  readonly #traceSession: Bounded<string>;
  readonly #seq: Bounded<number>;
  /** event id → the agent doing its children's work (for children that arrive in a later request). */
  readonly #spanAgent: Bounded<string>;
  readonly #stats: IngestStats = { requests: 0, spansReceived: 0, eventsAccepted: 0, duplicates: 0, droppedNonGenAi: 0, rejected: 0, failed: 0 };

  constructor(opts: ResolvedReceiverOptions, publisher: EventPublisher, ledger: SpanLedger) {
    this.#opts = opts;
    this.#publisher = publisher;
    this.#ledger = ledger;
    this.#traceSession = new Bounded(opts.maxTrackedSessions);
    this.#seq = new Bounded(opts.maxTrackedSessions);
    this.#spanAgent = new Bounded(opts.maxTrackedSessions);
  }

  stats(): IngestStats {
    return { ...this.#stats };
  }

  async ingest(spans: OtlpSpan[]): Promise<IngestResult> {
    this.#stats.requests++;
    this.#stats.spansReceived += spans.length;
    const result: IngestResult = { received: spans.length, accepted: 0, duplicates: 0, dropped: 0, rejected: [], failed: 0, retry: undefined };
    const mapped: Array<{ span: OtlpSpan; step: MappedStep; id: string }> = [];
    const byId = new Map<string, OtlpSpan>();
    for (const span of spans) {
      if (!HEX_TRACE.test(span.traceId) || !HEX_SPAN.test(span.spanId) || (span.parentSpanId !== '' && !HEX_SPAN.test(span.parentSpanId))) {
        result.rejected.push({ spanId: span.spanId.slice(0, 32), reason: 'trace_id must be 16 bytes and span_id/parent_span_id 8 bytes' });
        continue;
      }
      byId.set(span.spanId, span);
    }
    const stepBySpan = new Map<string, MappedStep>();
    const sessionOfTrace = new Map<string, string>();
    for (const span of byId.values()) {
      let step: MappedStep | undefined;
      try {
        step = mapSpan(span);
      } catch (err) {
        result.rejected.push({ spanId: span.spanId, reason: `could not be mapped: ${err instanceof Error ? err.message : String(err)}` });
        continue;
      }
      if (!step) {
        result.dropped++;
        continue;
      }
      if (step.sessionId !== undefined && step.sessionId.length > MAX_ID) {
        result.rejected.push({ spanId: span.spanId, reason: `session id is ${step.sessionId.length} characters, over ${MAX_ID}` });
        continue;
      }
      if (step.sessionId !== undefined && !sessionOfTrace.has(span.traceId)) sessionOfTrace.set(span.traceId, step.sessionId);
      stepBySpan.set(span.spanId, step);
      mapped.push({ span, step, id: spanEventId(span.traceId, span.spanId) });
    }

    let events: AgentEvent[] = [];
    /** Sort keys: full-precision start time, then depth (a parent and child can start in the same millisecond). */
    const order = new Map<AgentEvent, [number, number]>();
    for (const { span, step, id } of mapped) {
      const sessionId = step.sessionId ?? sessionOfTrace.get(span.traceId) ?? this.#traceSession.get(span.traceId) ?? span.traceId;
      this.#traceSession.set(span.traceId, sessionId);
      const agentId = this.#agentOf(span, step, byId, stepBySpan);
      if (agentId.length > MAX_ID) {
        result.rejected.push({ spanId: span.spanId, reason: `agent id is ${agentId.length} characters, over ${MAX_ID}` });
        continue;
      }
      if (step.subagentId !== undefined) this.#spanAgent.set(id, step.subagentId.slice(0, MAX_ID));
      else if (agentId !== this.#serviceAgent(span)) this.#spanAgent.set(id, agentId);
      const context = { ...step.context };
      const parentSpanId = span.parentSpanId === '' ? undefined : this.#parentSpanId(span, byId, stepBySpan);
      if (parentSpanId !== undefined) {
        context.parent_event_id = spanEventId(span.traceId, parentSpanId);
        // The parent's span id, so an export of this event alone names the same parent span.
        context.otel = { ...(context.otel as Record<string, unknown>), parent_span_id: parentSpanId };
      }
      const payload = { ...step.payload };
      if (step.eventType === 'llm_call' && payload.cost_usd === undefined && typeof payload.model === 'string') {
        const price = Object.hasOwn(this.#opts.pricing, payload.model) ? this.#opts.pricing[payload.model] : undefined;
        if (price && (payload.input_tokens !== undefined || payload.output_tokens !== undefined)) {
          payload.cost_usd = ((payload.input_tokens ?? 0) * price.inputPerMillion + (payload.output_tokens ?? 0) * price.outputPerMillion) / 1e6;
        }
      }
      const ts = Number.isFinite(span.startMs) && span.startMs > 0 && span.startMs < 253402300800000 ? span.startMs : Date.now();
      const event: AgentEvent = {
        schema_version: SCHEMA_VERSION,
        event_id: id,
        session_id: sessionId,
        agent_id: agentId,
        emitter_id: this.#publisher.emitterId,
        seq: 0,
        timestamp: new Date(Math.floor(ts)).toISOString(),
        event_type: step.eventType,
        status: step.status,
        payload,
        context,
      };
      events.push(event);
      order.set(event, [ts, depthOf(span, byId)]);
    }
    let claim: { done: Set<string>; busy: boolean };
    try {
      claim = await this.#ledger.claim(events.map((e) => e.event_id));
    } catch (err) {
      result.retry = `the store of written span ids is unavailable: ${err instanceof Error ? err.message : String(err)}`;
      result.failed = events.length;
      return result;
    }
    if (claim.busy) {
      // The same spans are being produced by a request still waiting for Kafka: let the client
      // come back rather than produce them twice or answer before they are acknowledged.
      result.retry = 'some of these spans are still being written from an earlier request';
      result.failed = events.length;
      return result;
    }
    if (claim.done.size > 0) {
      result.duplicates = claim.done.size;
      events = events.filter((e) => !claim.done.has(e.event_id));
    }
    this.#stats.duplicates += result.duplicates;
    this.#stats.droppedNonGenAi += result.dropped;
    this.#stats.rejected += result.rejected.length;
    if (events.length === 0) return result;

    // Parents before children where both are here, then by start time: the order readers show.
    events.sort((x, y) => {
      const [tx, dx] = order.get(x)!;
      const [ty, dy] = order.get(y)!;
      return tx - ty || dx - dy;
    });
    for (const e of events) e.seq = this.#nextSeq(e.session_id);
    const published = await this.#publisher.publish(events);
    try {
      await this.#ledger.settle(
        published.delivered,
        published.failed.map((f) => f.eventId),
      );
    } catch {
      // Written to Kafka and answered 200 all the same: only a retry of this request (which a 200
      // does not prompt) could be written twice; failed claims expire on their own.
    }
    result.accepted = published.delivered.length;
    result.failed = published.failed.length;
    this.#stats.eventsAccepted += result.accepted;
    this.#stats.failed += result.failed;
    if (published.failed.length > 0) result.retry = published.failed[0]!.error.message;
    return result;
  }

  #nextSeq(sessionId: string): number {
    const next = this.#seq.get(sessionId) ?? 0;
    this.#seq.set(sessionId, next + 1);
    return next;
  }

  #serviceAgent(span: OtlpSpan): string {
    const svc = span.resource['service.name'];
    return typeof svc === 'string' && svc !== '' && !svc.startsWith('unknown_service') ? svc : this.#opts.defaultAgentId;
  }

  /** The agent that did a step: its own, else the nearest delegating ancestor's sub-agent. */
  #agentOf(span: OtlpSpan, step: MappedStep, byId: Map<string, OtlpSpan>, steps: Map<string, MappedStep>): string {
    if (step.agentId !== undefined) return step.agentId;
    let cur = span;
    for (let hops = 0; hops < 64 && cur.parentSpanId !== ''; hops++) {
      const parentStep = steps.get(cur.parentSpanId);
      if (parentStep?.subagentId !== undefined) return parentStep.subagentId;
      if (parentStep?.agentId !== undefined) return parentStep.agentId;
      const remembered = this.#spanAgent.get(spanEventId(cur.traceId, cur.parentSpanId));
      if (remembered !== undefined) return remembered;
      const parent = byId.get(cur.parentSpanId);
      if (!parent) break;
      cur = parent;
    }
    return this.#serviceAgent(span);
  }

  /**
   * The span id of the nearest ancestor that is an event: dropped (non-GenAI) spans of this request are skipped;
   * undefined when none is. A parent not in this request is assumed to be (or become) an event.
   */
  #parentSpanId(span: OtlpSpan, byId: Map<string, OtlpSpan>, steps: Map<string, MappedStep>): string | undefined {
    let parentSpanId = span.parentSpanId;
    for (let hops = 0; hops < 64; hops++) {
      const parent = byId.get(parentSpanId);
      if (!parent || steps.has(parentSpanId)) return parentSpanId;
      if (parent.parentSpanId === '') return undefined;
      parentSpanId = parent.parentSpanId;
    }
    return undefined;
  }
}
