import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { S3Client } from '@aws-sdk/client-s3';
import type { LibrdKafkaError } from '@confluentinc/kafka-javascript';
import {
  SCHEMA_VERSION,
  costOf,
  eventHeaders,
  newEventId,
  type AgentEvent,
  type EventContext,
  type EventPayload,
  type EventStatus,
  type EventType,
  type RecordedError,
} from '@agenttrace/contract';
import { KAFKA_CODES, createS3Client, errorMessage } from '@agenttrace/common';
import { TracerError, type TracerErrorCode } from './errors.js';
import { registerTracer, unregisterTracer } from './exit-hooks.js';
import { BIG_STRING_CHARS, encodeEvent, type EncodeOptions } from './encode.js';
import { offloadWorkerAvailable, shrinkInWorker } from './offloader.js';
import { resolveTracerOptions, type ResolvedTracerOptions, type TracerOptions } from './options.js';
import { sharedProducer, type DeliveryTarget, type SharedProducer } from './producer-pool.js';
import { buildRedactor } from './redact.js';

/** Why-context an agent can attach to any step. Extra fields are kept. */
export interface StepContext {
  reasoning?: unknown;
  confidence?: number;
  model?: string;
  /** Overrides the parent taken from the surrounding delegate()/track call. */
  parentEventId?: string;
  [field: string]: unknown;
}

export interface LlmUsage {
  inputTokens?: number;
  outputTokens?: number;
  costUsd?: number;
}

export interface LlmCallOptions<T> extends StepContext {
  /** Token usage and cost of the result. Default: read `usage` in Anthropic or OpenAI shape. */
  usage?: (result: T) => LlmUsage | undefined;
  /** What to record as output (default: the whole result). */
  output?: (result: T) => unknown;
  /** Prices per million tokens, used when usage() gives no cost. */
  pricing?: { inputPerMillion: number; outputPerMillion: number };
}

export interface DecisionInput {
  action: string;
  reasoning?: unknown;
  confidence?: number;
  model?: string;
  options?: unknown[];
  [field: string]: unknown;
}

export interface TracerStats {
  /** Events recorded by the agent (including dropped ones). */
  recorded: number;
  /** Events Kafka acknowledged. */
  delivered: number;
  /** Events Kafka did not acknowledge within the delivery timeout. */
  failed: number;
  /** Events dropped because the buffer was full or the tracer was closed. */
  dropped: number;
  /** Events with fields offloaded to S3. */
  offloaded: number;
  /** Events waiting in memory or for Kafka's acknowledgement. */
  pending: number;
}

interface Scope {
  sessionId: string;
  tracer: AgentTracer;
  agentId: string;
  parentEventId: string | undefined;
}

interface Queued {
  event: AgentEvent;
  /** When it was recorded (for the delivery timeout while not connected). */
  at: number;
  /** Record timestamp: when the step started. */
  ts: number;
  /** The record value once encoded: a held or refused hand-over retries with it, never encodes (or uploads) again. */
  value?: Buffer;
  /** When librdkafka's queue first refused it (full): the delivery timeout runs from there. */
  fullSince?: number;
}

const scopes = new AsyncLocalStorage<Scope>();
const RETRY_FULL_MS = 5;
/** Name at most this many handed-over, unconfirmed events (memory stays bounded between confirmations). */
const MAX_NAMED_HANDED = 10_000;
/** Keep at most this many failures for flush() to report in detail. */
const MAX_KEPT_FAILURES = 1000;

const CONTEXT_KEYS = new Set(['reasoning', 'confidence', 'model', 'parentEventId']);

function toContext(ctx: StepContext | undefined, parent: string | undefined): EventContext {
  const out: EventContext = {};
  const p = ctx?.parentEventId ?? parent;
  if (p) out.parent_event_id = p;
  if (!ctx) return out;
  if (ctx.reasoning !== undefined) out.reasoning = ctx.reasoning;
  if (typeof ctx.confidence === 'number' && ctx.confidence >= 0 && ctx.confidence <= 1) out.confidence = ctx.confidence;
  else if (ctx.confidence !== undefined) out.confidence_raw = ctx.confidence;
  if (typeof ctx.model === 'string') out.model = ctx.model;
  for (const [k, v] of Object.entries(ctx)) if (!CONTEXT_KEYS.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** An error as data: name, message, stack and code, never the live object. */
export function recordError(err: unknown): RecordedError {
  if (err instanceof Error) {
    const out: RecordedError = { name: err.name, message: err.message };
    if (err.stack) out.stack = err.stack;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    return out;
  }
  return { name: typeof err, message: errorMessage(err) };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function defaultUsage(result: unknown): LlmUsage | undefined {
  const u = (result as { usage?: Record<string, unknown> } | null | undefined)?.usage;
  if (!u || typeof u !== 'object') return undefined;
  const inputTokens = num(u.input_tokens) ?? num(u.prompt_tokens) ?? num(u.inputTokens);
  const outputTokens = num(u.output_tokens) ?? num(u.completion_tokens) ?? num(u.outputTokens);
  const out: LlmUsage = {};
  if (inputTokens !== undefined) out.inputTokens = inputTokens;
  if (outputTokens !== undefined) out.outputTokens = outputTokens;
  return out;
}

const lastDefaultReport = new Map<string, number>();
function defaultOnError(error: TracerError): void {
  // One line per kind of failure per minute: loud enough to notice, not enough to flood logs.
  const now = Date.now();
  if ((lastDefaultReport.get(error.code) ?? 0) > now - 60_000) return;
  lastDefaultReport.set(error.code, now);
  process.stderr.write(`agenttrace tracer: ${error.code}: ${error.message}\n`);
}

/**
 * Records one agent session as events on Kafka. Recording is an in-memory enqueue: the agent
 * never waits on Kafka, and the tracer never throws its own failures into the agent — they go to
 * `onError` and make `flush()`/`close()` reject. The agent's own errors pass through untouched.
 */
export class AgentTracer {
  readonly sessionId: string;
  readonly agentId: string;
  /** This tracer's id; `seq` counts per (session, emitter). */
  readonly emitterId: string;

  readonly #opts: ResolvedTracerOptions;
  readonly #producer: SharedProducer;
  readonly #encodeOptions: EncodeOptions;
  /** The record key, encoded once: a string key is converted to UTF-8 by the client on every produce (#2). */
  readonly #key: Buffer;
  #s3: S3Client | undefined;
  #seq = 0;
  #queue: Queued[] = [];
  #queueHead = 0;
  #drainScheduled = false;
  #draining = false;
  /** Events recorded and not yet acknowledged or failed (queued, being encoded, or handed over). */
  #pending = 0;
  /** Events handed to librdkafka and not yet confirmed or failed (see SharedProducer.confirm). */
  #handed = 0;
  /**
   * Their ids (up to MAX_NAMED_HANDED), so a flush that gives up can name the events it leaves
   * undelivered. Beyond the cap each one's fate still reaches onError (its failure report).
   */
  #handedIds = new Set<string>();
  /** After an upload timed out, S3 is not tried again before this time (see offloadTimeoutMs). */
  #s3RestUntil = 0;
  #s3RestReason = '';
  /** Events counted failed by #onLost whose own failure report may still come (it is not counted twice). */
  #lostUnreported = 0;
  /** Woken when pending reaches 0, and when a drain ends (flush() then looks again). */
  #waiters: Array<() => void> = [];
  #failures: TracerError[] = [];
  #failureCount = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  #sessionEnded = false;
  readonly #stats = { recorded: 0, delivered: 0, failed: 0, dropped: 0, offloaded: 0 };
  /**
   * What the shared producer calls back with delivery outcomes. A separate object, so the
   * callbacks stay private to the tracer instead of being methods anyone holding it could call.
   */
  readonly #target: DeliveryTarget;

  constructor(options: TracerOptions) {
    this.#opts = resolveTracerOptions(options);
    this.sessionId = this.#opts.sessionId;
    this.#key = Buffer.from(this.sessionId);
    this.agentId = this.#opts.agentId;
    this.emitterId = `em_${randomBytes(6).toString('hex')}`;
    this.#target = {
      emitterId: this.emitterId,
      sessionId: this.sessionId,
      onFailed: (eventId, err) => this.#onFailed(eventId, err),
      onConfirmed: () => this.#onConfirmed(),
      onLost: (reason) => this.#onLost(reason),
      onProducerError: (error) => this.#onProducerError(error),
    };
    this.#encodeOptions = {
      ...buildRedactor(this.#opts.redact),
      maxEventBytes: this.#opts.maxEventBytes,
      maxRecordBytes: this.#opts.maxRecordBytes,
      s3: this.#opts.s3,
      s3Client: () => (this.#s3 ??= createS3Client(this.#opts.s3!)),
      offloadTimeoutMs: this.#opts.offloadTimeoutMs,
      skipS3: () => (Date.now() < this.#s3RestUntil ? { reason: this.#s3RestReason, code: 'OFFLOAD_TIMEOUT' } : undefined),
    };
    if (offloadWorkerAvailable) {
      this.#encodeOptions.shrink = (json, o) => shrinkInWorker(json, o, this.#encodeOptions.s3Client);
      // The built-in redaction can be rebuilt in the worker: there it takes the big strings too.
      const r = this.#opts.redact;
      if (r !== false && !r.hook && (r.patterns?.length ?? 0) === 0) {
        const options: { email?: boolean; cardNumbers?: boolean; keys?: string[] } = {};
        if (r.email !== undefined) options.email = r.email;
        if (r.cardNumbers !== undefined) options.cardNumbers = r.cardNumbers;
        if (r.keys !== undefined) options.keys = r.keys;
        this.#encodeOptions.deferredRedact = { options, bigStringChars: BIG_STRING_CHARS };
      }
    }
    this.#producer = sharedProducer(this.#opts);
    this.#producer.acquire(this.#target);
    if (this.#opts.handleExit) registerTracer(this, this.#opts.shutdownTimeoutMs);
    if (this.#opts.sessionEvents) this.#record('session_start', 'ok', {}, undefined, Date.now());
  }

  // ------------------------------------------------------------------------------------------
  // What agents call.

  /** Runs a tool call, recording input, output or error, and latency. Returns or rethrows fn's outcome. */
  async trackToolCall<T>(tool: string, input: unknown, fn: () => Promise<T> | T, context?: StepContext): Promise<T> {
    const id = newEventId();
    const started = Date.now();
    const t0 = performance.now();
    try {
      const out = await this.#within(id, undefined, fn);
      this.#record('tool_call', 'ok', { tool, input, output: out, latency_ms: ms(t0) }, context, started, id);
      return out;
    } catch (err) {
      this.#record('tool_call', 'error', { tool, input, error: recordError(err), latency_ms: ms(t0) }, context, started, id);
      throw err;
    }
  }

  /** Runs an LLM call, recording model, input, output, token usage and cost. */
  async trackLlmCall<T>(request: { model: string; input: unknown }, fn: () => Promise<T> | T, options: LlmCallOptions<T> = {}): Promise<T> {
    const id = newEventId();
    const started = Date.now();
    const t0 = performance.now();
    const { usage, output, pricing, ...context } = options;
    const ctx: StepContext = { model: request.model, ...context };
    try {
      const result = await this.#within(id, undefined, fn);
      const payload: EventPayload = { model: request.model, input: request.input, output: output ? safeCall(output, result) : result, latency_ms: ms(t0) };
      const u = (usage ? safeCall(usage, result) : defaultUsage(result)) as LlmUsage | undefined;
      if (u?.inputTokens !== undefined) payload.input_tokens = Math.round(u.inputTokens);
      if (u?.outputTokens !== undefined) payload.output_tokens = Math.round(u.outputTokens);
      let cost = u?.costUsd;
      if (cost === undefined && pricing && u) cost = ((u.inputTokens ?? 0) * pricing.inputPerMillion + (u.outputTokens ?? 0) * pricing.outputPerMillion) / 1e6;
      else if (cost === undefined && u && this.#opts.prices) cost = costOf(request.model, u.inputTokens ?? 0, u.outputTokens ?? 0, this.#opts.prices);
      if (cost !== undefined && Number.isFinite(cost) && cost >= 0) payload.cost_usd = cost;
      this.#record('llm_call', 'ok', payload, ctx, started, id);
      return result;
    } catch (err) {
      this.#record('llm_call', 'error', { model: request.model, input: request.input, error: recordError(err), latency_ms: ms(t0) }, ctx, started, id);
      throw err;
    }
  }

  /** Records a decision and why it was taken. Returns the event id. */
  logDecision(decision: DecisionInput): string {
    const { action, reasoning, confidence, model, ...rest } = decision ?? ({} as DecisionInput);
    const ctx: StepContext = { reasoning, confidence };
    if (model !== undefined) ctx.model = model;
    return this.#record('decision', 'ok', { action: String(action), ...rest }, ctx, Date.now());
  }

  /**
   * Delegates work to a sub-agent. Steps recorded inside `fn` carry the sub-agent's id and link
   * to this delegation through `parent_event_id`; the delegation event itself is recorded when
   * the work finishes (with its output and latency), under the id its children point to.
   */
  async delegate<T>(subagentId: string, task: unknown, fn: () => Promise<T> | T, context?: StepContext): Promise<T> {
    const id = newEventId();
    const started = Date.now();
    const t0 = performance.now();
    try {
      const out = await this.#within(id, subagentId, fn);
      this.#record('delegation', 'ok', { subagent_id: subagentId, task, output: out, latency_ms: ms(t0) }, context, started, id);
      return out;
    } catch (err) {
      this.#record('delegation', 'error', { subagent_id: subagentId, task, error: recordError(err), latency_ms: ms(t0) }, context, started, id);
      throw err;
    }
  }

  /** Records an error the agent met (without throwing it). Returns the event id. */
  logError(error: unknown, context?: StepContext): string {
    return this.#record('error', 'error', { error: recordError(error) }, context, Date.now());
  }

  /** Records any other step. Returns the event id. */
  logEvent(name: string, payload: Record<string, unknown> = {}, context?: StepContext, status: EventStatus = 'ok'): string {
    return this.#record('custom', status, { ...payload, name }, context, Date.now());
  }

  /** Records the end of the session (close() does it when this was not called). */
  endSession(summary: { status?: EventStatus; [field: string]: unknown } = {}): string | undefined {
    if (this.#sessionEnded) return undefined;
    this.#sessionEnded = true;
    const { status, ...rest } = summary;
    return this.#record('session_end', status ?? 'ok', rest, undefined, Date.now());
  }

  /** Counters of what happened to this tracer's events. */
  stats(): TracerStats {
    return { ...this.#stats, pending: this.#pending };
  }

  /**
   * Resolves when every event recorded so far is acknowledged by Kafka. Rejects with
   * DELIVERY_FAILED when some were not (since the previous flush), or FLUSH_TIMEOUT.
   */
  async flush(timeoutMs: number = this.#opts.deliveryTimeoutMs + 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#pending > 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        // Named, and reported: onError hears of every event a rejected flush()/close() leaves behind.
        const ids = this.#undeliveredIds();
        const error = new TracerError(
          'FLUSH_TIMEOUT',
          `${this.#pending} event(s) of session ${this.sessionId} were still undelivered after ${timeoutMs} ms (${this.#whereUndelivered()}): ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''}`,
          { retryable: true, eventIds: ids },
        );
        this.#report(error);
        throw error;
      }
      // Everything recorded is with librdkafka: have the shared producer confirm it. Otherwise
      // wait for the drain (or a failure) to move things along.
      const handedAll = this.#queue.length === this.#queueHead && !this.#draining && !this.#drainScheduled && this.#handed > 0;
      let timer: NodeJS.Timeout | undefined;
      let waiter: (() => void) | undefined;
      const step = handedAll ? this.#producer.confirm() : new Promise<void>((resolve) => this.#waiters.push((waiter = resolve)));
      await Promise.race([step, new Promise<void>((resolve) => (timer = setTimeout(resolve, handedAll ? remaining : Math.min(remaining, 250))))]);
      clearTimeout(timer);
      if (waiter) this.#waiters = this.#waiters.filter((w) => w !== waiter);
    }
    if (this.#failureCount > 0) {
      const failures = this.#failures;
      const count = this.#failureCount;
      this.#failures = [];
      this.#failureCount = 0;
      throw new TracerError('DELIVERY_FAILED', `${count} event(s) of session ${this.sessionId} could not be delivered to Kafka: ${failures[0]?.message ?? ''}`, {
        cause: failures[0],
        retryable: true,
        eventIds: failures.flatMap((f) => f.eventIds),
      });
    }
  }

  /**
   * Records session_end (unless done), stops intake, delivers everything and releases the
   * shared producer. Idempotent; rejects like flush() when events could not be delivered.
   */
  close(timeoutMs?: number): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#opts.sessionEvents) this.endSession();
      this.#closed = true;
      try {
        await this.flush(timeoutMs);
      } finally {
        unregisterTracer(this);
        this.#producer.release(this.#target);
      }
    })();
    return this.#closing;
  }

  /** Ids of the events still pending: queued (or being encoded) and handed over unconfirmed. */
  #undeliveredIds(): string[] {
    const ids: string[] = [];
    for (let i = this.#queueHead; i < this.#queue.length; i++) ids.push(this.#queue[i]!.event.event_id);
    for (const id of this.#handedIds) ids.push(id);
    return ids;
  }

  #whereUndelivered(): string {
    const queued = this.#queue.length - this.#queueHead;
    const parts = [`${queued} not yet handed to Kafka`, `${this.#handed} handed over and not yet acknowledged`];
    if (this.#handed > this.#handedIds.size) parts.push(`${this.#handed - this.#handedIds.size} of those not named here: each one's failure is reported on its own`);
    if (!this.#producer.connected) parts.push('the producer is not connected');
    return parts.join(', ');
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ------------------------------------------------------------------------------------------
  // Hot path: build the event and enqueue it. Nothing here waits or throws.

  #within<T>(eventId: string, subagentId: string | undefined, fn: () => Promise<T> | T): Promise<T> {
    const outer = scopes.getStore();
    const agentId = subagentId ?? (outer?.tracer === this ? outer.agentId : this.agentId);
    return Promise.resolve(scopes.run({ sessionId: this.sessionId, tracer: this, agentId, parentEventId: eventId }, fn));
  }

  #record(type: EventType, status: EventStatus, payload: EventPayload, context: StepContext | undefined, startedAt: number, id?: string): string {
    const eventId = id ?? newEventId();
    try {
      this.#stats.recorded++;
      const seq = this.#seq++;
      if (this.#closed) {
        this.#drop('TRACER_CLOSED', eventId, `event ${eventId} (${type}) was recorded after close() of session ${this.sessionId}; it was not sent`);
        return eventId;
      }
      if (this.#queue.length - this.#queueHead >= this.#opts.maxQueuedEvents) {
        this.#drop('BUFFER_FULL', eventId, `buffer of ${this.#opts.maxQueuedEvents} events is full (Kafka slow or unreachable); event ${eventId} (${type}) of session ${this.sessionId} was dropped`);
        return eventId;
      }
      const scope = scopes.getStore();
      const inSession = scope !== undefined && scope.sessionId === this.sessionId;
      const agentId = scope?.tracer === this ? scope.agentId : this.agentId;
      const event: AgentEvent = {
        schema_version: SCHEMA_VERSION,
        event_id: eventId,
        session_id: this.sessionId,
        agent_id: agentId,
        emitter_id: this.emitterId,
        seq,
        timestamp: new Date(startedAt).toISOString(),
        event_type: type,
        status,
        payload,
        context: toContext(context, inSession ? scope.parentEventId : undefined),
      };
      this.#queue.push({ event, at: Date.now(), ts: startedAt });
      this.#pending++;
      this.#scheduleDrain();
    } catch (err) {
      this.#report(new TracerError('SERIALIZE_FAILED', `could not record ${type} event: ${errorMessage(err)}`, { cause: err, eventIds: [eventId] }));
    }
    return eventId;
  }

  #drop(code: TracerErrorCode, eventId: string, message: string): void {
    this.#stats.dropped++;
    this.#report(new TracerError(code, message, { eventIds: [eventId] }));
  }

  #report(error: TracerError): void {
    try {
      (this.#opts.onError ?? defaultOnError)(error);
    } catch {
      // An error handler that throws must not break the agent either.
    }
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled || this.#draining) return;
    this.#drainScheduled = true;
    setImmediate(() => {
      this.#drainScheduled = false;
      this.#draining = true;
      this.#drain().then(
        () => this.#afterDrain(),
        (err: unknown) => {
          this.#report(new TracerError('PRODUCER_ERROR', `internal error while sending events: ${errorMessage(err)}`, { cause: err }));
          this.#afterDrain();
        },
      );
    });
  }

  #afterDrain(): void {
    this.#draining = false;
    this.#wake();
    if (this.#queue.length > this.#queueHead) {
      // Not connected yet: look again shortly rather than spinning.
      if (!this.#producer.connected) setTimeout(() => this.#scheduleDrain(), 100);
      else this.#scheduleDrain();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Off the hot path: redact, serialize, offload, hand to librdkafka — in order, per tracer.

  async #drain(): Promise<void> {
    while (this.#queue.length > this.#queueHead) {
      if (!this.#producer.connected) {
        await this.#waitForProducer();
        if (!this.#producer.connected) return;
      }
      const item = this.#queue[this.#queueHead]!;
      let value = item.value;
      if (value === undefined) {
        try {
          const resting = Date.now() < this.#s3RestUntil;
          const encoded = encodeEvent(item.event, this.#encodeOptions);
          const result = encoded instanceof Promise ? await encoded : encoded;
          value = item.value = result.value;
          if (result.offloaded) this.#stats.offloaded++;
          if (result.problem) {
            if (result.problemCode === 'OFFLOAD_TIMEOUT' && !resting) this.#restS3();
            this.#report(new TracerError(result.problemCode ?? 'OFFLOAD_FAILED', result.problem, { eventIds: [item.event.event_id] }));
          }
        } catch (err) {
          this.#takeHead();
          this.#fail(new TracerError('SERIALIZE_FAILED', `event ${item.event.event_id} could not be serialized: ${errorMessage(err)}`, { cause: err, eventIds: [item.event.event_id] }));
          continue;
        }
      }
      let outcome = this.#produce(item, value);
      // librdkafka's own bounded queue is full: wait for acknowledgements, within the timeout.
      while (outcome === 'full') {
        await new Promise((r) => setTimeout(r, RETRY_FULL_MS));
        outcome = this.#produce(item, value);
      }
      if (outcome === 'held') {
        // A confirmation is running: it needs librdkafka to empty, so wait for it to end.
        await this.#producer.whenReleased();
        continue;
      }
      if (outcome === 'gone') return;
      this.#takeHead();
    }
  }

  /**
   * An upload timed out: S3 is hung or far too slow. For the next offloadTimeoutMs oversized events
   * are sent marked without trying it, so a hung S3 holds the session's events at most
   * offloadTimeoutMs at a time instead of that long per oversized event.
   */
  #restS3(): void {
    const now = Date.now();
    this.#s3RestUntil = now + this.#opts.offloadTimeoutMs;
    this.#s3RestReason = `S3 was not tried: an upload timed out at ${new Date(now).toISOString()} and S3 is not tried again for offloadTimeoutMs (${this.#opts.offloadTimeoutMs} ms) after a timeout`;
  }

  #takeHead(): void {
    this.#queue[this.#queueHead] = undefined as unknown as Queued;
    this.#queueHead++;
    // Compact now and then instead of shift()ing (O(n) per event).
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  /**
   * Kafka counts as unreachable only while the producer has been trying to connect: time an event
   * spent waiting for something else (an upload, an idle disconnect) is not Kafka's (#14).
   */
  #expiresAt(item: Queued): number {
    return Math.max(item.at, this.#producer.connectingSince ?? Date.now()) + this.#opts.deliveryTimeoutMs;
  }

  async #waitForProducer(): Promise<void> {
    // Asked first: a connection attempt starting now starts the unreachable clock now.
    const ready = this.#producer.ready();
    const oldest = this.#queue[this.#queueHead];
    const wait = oldest ? Math.max(0, this.#expiresAt(oldest) - Date.now()) : 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise<void>((r) => (timer = setTimeout(r, Math.min(wait, 1000))))]);
    clearTimeout(timer);
    if (!this.#producer.connected) this.#expireQueued();
  }

  /** Events that waited longer than the delivery timeout for a connection are failed, loudly. */
  #expireQueued(): void {
    const since = this.#producer.connectingSince;
    if (since === undefined) return;
    const now = Date.now();
    while (this.#queue.length > this.#queueHead && this.#expiresAt(this.#queue[this.#queueHead]!) <= now) {
      const item = this.#queue[this.#queueHead]!;
      this.#takeHead();
      this.#fail(
        new TracerError('DELIVERY_FAILED', `event ${item.event.event_id} could not be delivered: Kafka (${this.#opts.kafka.brokers.join(',')}) was unreachable for ${now - since} ms (deliveryTimeoutMs ${this.#opts.deliveryTimeoutMs})`, {
          retryable: true,
          eventIds: [item.event.event_id],
        }),
      );
    }
  }

  /** 'gone' when the producer went away, 'held' during a confirmation (the item stays at the head). */
  #produce(item: Queued, value: Buffer): 'sent' | 'full' | 'gone' | 'held' | 'failed' {
    try {
      const outcome = this.#producer.produce(value, this.#key, item.ts, eventHeaders());
      if (outcome === 'sent') {
        this.#handed++;
        if (this.#handedIds.size < MAX_NAMED_HANDED) this.#handedIds.add(item.event.event_id);
      }
      return outcome;
    } catch (err) {
      // librdkafka's own bounded queue is full (Kafka slower than the agent).
      if ((err as { code?: number }).code === KAFKA_CODES.QUEUE_FULL && Date.now() - (item.fullSince ??= Date.now()) < this.#opts.deliveryTimeoutMs) return 'full';
      this.#fail(new TracerError('DELIVERY_FAILED', `event ${item.event.event_id} could not be handed to Kafka: ${errorMessage(err)}`, { cause: err, eventIds: [item.event.event_id] }));
      return 'failed';
    }
  }

  #fail(error: TracerError): void {
    this.#countFailure(error, 1);
    this.#settle();
  }

  /** Counts `count` failed events under one error, keeps it for flush() and reports it. */
  #countFailure(error: TracerError, count: number): void {
    this.#stats.failed += count;
    this.#failureCount += count;
    if (this.#failures.length < MAX_KEPT_FAILURES) this.#failures.push(error);
    this.#report(error);
  }

  #settle(count = 1): void {
    this.#pending -= count;
    if (this.#pending === 0) this.#wake();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** A handed-over event was not acknowledged (librdkafka's report for it). */
  #onFailed(eventId: string, err: LibrdKafkaError): void {
    const error = new TracerError(
      'DELIVERY_FAILED',
      `event ${eventId} of session ${this.sessionId} was not acknowledged by Kafka within ${this.#opts.deliveryTimeoutMs} ms: ${err.message}${err.code === TIMED_OUT ? UNCERTAIN : ''}`,
      { cause: err, retryable: true, eventIds: [eventId] },
    );
    if (this.#handed > 0) {
      this.#handed--;
      this.#handedIds.delete(eventId);
      this.#fail(error);
      return;
    }
    if (this.#lostUnreported > 0) {
      // Counted failed already when the client was closed with it in flight.
      this.#lostUnreported--;
      return;
    }
    // Confirmed already (a report that trailed its confirmation): correct the count, say so.
    this.#stats.delivered--;
    this.#countFailure(error, 1);
  }

  /** Every event handed over so far was acknowledged, except those reported failed. */
  #onConfirmed(): void {
    const n = this.#handed;
    if (n === 0) return;
    this.#handed = 0;
    this.#handedIds.clear();
    this.#stats.delivered += n;
    this.#settle(n);
  }

  /** The client was closed with this tracer's events unacknowledged: their fate is unknown. */
  #onLost(reason: string): void {
    const n = this.#handed;
    if (n === 0) return;
    this.#handed = 0;
    const ids = [...this.#handedIds];
    this.#handedIds.clear();
    this.#lostUnreported += n;
    this.#countFailure(new TracerError('DELIVERY_FAILED', `${n} event(s) of session ${this.sessionId} may not have been delivered: ${reason}`, { retryable: true, eventIds: ids }), n);
    this.#settle(n);
  }

  /** Errors of the shared producer (connection problems). */
  #onProducerError(error: TracerError): void {
    this.#report(error);
  }
}

const TIMED_OUT = KAFKA_CODES.MSG_TIMED_OUT;
/**
 * A request can reach the broker and be written while its acknowledgement is lost (the broker
 * died before answering). librdkafka then reports a timeout, not knowing the outcome; the tracer
 * does not retry on its own, so such an event is in Kafka at most once.
 */
const UNCERTAIN = ' (if it was already sent when the connection broke, Kafka may still have written it; it is never written twice)';

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 1000) / 1000;
}

function safeCall<T, R>(fn: (v: T) => R, v: T): R | undefined {
  try {
    return fn(v);
  } catch {
    return undefined;
  }
}
