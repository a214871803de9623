import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { eventHeaders, type AgentEvent } from '@agenttrace/contract';
import { KAFKA_CODES, createS3Client, errorMessage } from '@agenttrace/common';
import { TracerError } from './errors.js';
import { encodeEvent, type EncodeOptions } from './encode.js';
import { resolveTracerOptions, type ResolvedTracerOptions, type TracerOptions } from './options.js';
import { sharedProducer, type DeliveryTarget, type SharedProducer } from './producer-pool.js';
import { buildRedactor } from './redact.js';

/** Tracer options that make sense for events built elsewhere (each event names its own session). */
export type PublisherOptions = Omit<TracerOptions, 'sessionId' | 'agentId' | 'sessionEvents' | 'handleExit' | 'shutdownTimeoutMs' | 'maxQueuedEvents'> & {
  /** How long publish() waits for a Kafka connection before failing the batch as retryable (default 2000 ms). */
  connectTimeoutMs?: number;
};

export interface PublishResult {
  /** Ids of the events Kafka acknowledged. */
  delivered: string[];
  /** Events that were not acknowledged (or whose fate is unknown), with why. */
  failed: Array<{ eventId: string; error: TracerError }>;
}

export interface PublisherStats {
  delivered: number;
  failed: number;
  offloaded: number;
}

interface Batch {
  handed: string[];
  failed: Map<string, TracerError>;
  lost: string | undefined;
}

const RETRY_FULL_MS = 5;

/**
 * Produces events that were built elsewhere (e.g. translated from OpenTelemetry spans) through the
 * tracer's own path: the shared idempotent producer (acks=all, Java-compatible murmur2 partitioning
 * keyed by each event's session_id), redaction, and the size cap with S3 offload. Unlike
 * AgentTracer, publish() waits: it resolves once Kafka acknowledged or refused every event of the
 * batch, which is what a caller that must answer its own client (an OTLP receiver) needs.
 *
 * Events must carry this publisher's `emitterId`: failure reports are routed by it.
 */
export class EventPublisher implements DeliveryTarget {
  readonly emitterId: string;
  /** A publisher has no session of its own (DeliveryTarget routes by emitter id first). */
  readonly sessionId = '';
  readonly #opts: ResolvedTracerOptions;
  readonly #connectTimeoutMs: number;
  readonly #producer: SharedProducer;
  readonly #encodeOptions: EncodeOptions;
  #s3: S3Client | undefined;
  readonly #inflight = new Set<Batch>();
  readonly #byEvent = new Map<string, Batch>();
  readonly #stats: PublisherStats = { delivered: 0, failed: 0, offloaded: 0 };
  #closed = false;

  constructor(options: PublisherOptions = {}) {
    const { connectTimeoutMs, ...rest } = options;
    // The placeholder ids satisfy the shared validation; events carry their own session and agent.
    this.#opts = resolveTracerOptions({ ...rest, sessionId: 'publisher', agentId: 'publisher', sessionEvents: false, handleExit: false });
    if (connectTimeoutMs !== undefined && (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 1)) {
      throw new TracerError('PRODUCER_ERROR', `options.connectTimeoutMs must be an integer >= 1, got ${JSON.stringify(connectTimeoutMs)}`);
    }
    this.#connectTimeoutMs = connectTimeoutMs ?? 2000;
    this.emitterId = `em_${randomBytes(6).toString('hex')}`;
    this.#encodeOptions = {
      ...buildRedactor(this.#opts.redact),
      maxEventBytes: this.#opts.maxEventBytes,
      maxRecordBytes: this.#opts.maxRecordBytes,
      s3: this.#opts.s3,
      s3Client: () => (this.#s3 ??= createS3Client(this.#opts.s3!)),
    };
    this.#producer = sharedProducer(this.#opts);
    this.#producer.acquire(this);
    // Connect now, so the first batch does not pay for it.
    void this.#producer.ready();
  }

  /** The topic events go to. */
  get topic(): string {
    return this.#opts.topic;
  }

  get connected(): boolean {
    return this.#producer.connected;
  }

  stats(): PublisherStats {
    return { ...this.#stats };
  }

  /**
   * Produces the events in order and resolves when each one is acknowledged or failed. Never
   * rejects: failures (Kafka unreachable, not acknowledged within the delivery timeout, closed)
   * are listed in the result, retryable.
   */
  async publish(events: readonly AgentEvent[]): Promise<PublishResult> {
    const batch: Batch = { handed: [], failed: new Map(), lost: undefined };
    const early: Array<{ eventId: string; error: TracerError }> = [];
    this.#inflight.add(batch);
    try {
      // Encoding first, producing after: while another batch's confirmation holds the producer,
      // this one's CPU work (serialization, redaction) still goes on instead of waiting with it.
      const valid: AgentEvent[] = [];
      for (const event of events) {
        if (this.#closed) early.push({ eventId: event.event_id, error: new TracerError('TRACER_CLOSED', `event ${event.event_id} was published after close()`) });
        else if (event.emitter_id !== this.emitterId) {
          early.push({ eventId: event.event_id, error: new TracerError('SERIALIZE_FAILED', `event ${event.event_id} has emitter_id ${JSON.stringify(event.emitter_id)}, not this publisher's ${this.emitterId}`) });
        } else valid.push(event);
      }
      // Kafka unreachable: fail the batch before encoding it (no S3 offload for events not sent).
      if (valid.length > 0 && !this.#producer.connected && !(await this.#waitConnected())) {
        const error = new TracerError('DELIVERY_FAILED', `Kafka (${this.#opts.kafka.brokers.join(',')}) is unreachable: no connection within ${this.#connectTimeoutMs} ms`, { retryable: true });
        for (const event of valid.splice(0)) early.push({ eventId: event.event_id, error });
      }
      const encoded: Array<{ event: AgentEvent; value: Buffer }> = [];
      for (const event of valid) {
        try {
          const e = encodeEvent(event, this.#encodeOptions);
          const result = e instanceof Promise ? await e : e;
          if (result.offloaded) this.#stats.offloaded++;
          if (result.problem) this.#report(new TracerError('OFFLOAD_FAILED', result.problem, { eventIds: [event.event_id] }));
          encoded.push({ event, value: result.value });
        } catch (err) {
          early.push({ eventId: event.event_id, error: new TracerError('SERIALIZE_FAILED', `event ${event.event_id} could not be serialized: ${errorMessage(err)}`, { cause: err }) });
        }
      }
      for (let i = 0; i < encoded.length; i++) {
        const { event, value } = encoded[i]!;
        if (this.#closed) {
          early.push({ eventId: event.event_id, error: new TracerError('TRACER_CLOSED', `event ${event.event_id} was published after close()`) });
          continue;
        }
        if (!this.#producer.connected && !(await this.#waitConnected())) {
          const error = new TracerError('DELIVERY_FAILED', `Kafka (${this.#opts.kafka.brokers.join(',')}) is unreachable: no connection within ${this.#connectTimeoutMs} ms`, { retryable: true });
          for (const rest of encoded.slice(i)) early.push({ eventId: rest.event.event_id, error });
          break;
        }
        const outcome = await this.#produce(event, value);
        if (outcome === 'sent') {
          batch.handed.push(event.event_id);
          this.#byEvent.set(event.event_id, batch);
        } else {
          early.push({ eventId: event.event_id, error: outcome });
        }
      }
      if (batch.handed.length > 0) {
        // Let other publish() calls that were waiting for the same release hand over their
        // records first: one confirmation (a librdkafka flush) then covers them all, instead of
        // each batch waiting for its own while the others are held back.
        await new Promise((r) => setImmediate(r));
        await this.#producer.confirm();
      }
    } finally {
      this.#inflight.delete(batch);
      for (const id of batch.handed) if (this.#byEvent.get(id) === batch) this.#byEvent.delete(id);
    }
    const delivered: string[] = [];
    const failed = early;
    for (const id of batch.handed) {
      const error = batch.failed.get(id);
      if (error) failed.push({ eventId: id, error });
      else if (batch.lost !== undefined) failed.push({ eventId: id, error: new TracerError('DELIVERY_FAILED', `event ${id} may not have been delivered: ${batch.lost}`, { retryable: true }) });
      else delivered.push(id);
    }
    this.#stats.delivered += delivered.length;
    this.#stats.failed += failed.length;
    return { delivered, failed };
  }

  async #waitConnected(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#producer.ready(), new Promise<void>((r) => (timer = setTimeout(r, this.#connectTimeoutMs)))]);
    clearTimeout(timer);
    return this.#producer.connected;
  }

  async #produce(event: AgentEvent, value: Buffer): Promise<'sent' | TracerError> {
    const started = Date.now();
    const key = Buffer.from(event.session_id);
    const ts = Date.parse(event.timestamp);
    for (;;) {
      try {
        const outcome = this.#producer.produce(value, key, Number.isFinite(ts) ? ts : Date.now(), eventHeaders());
        if (outcome === 'sent') return 'sent';
        if (outcome === 'held') await this.#producer.whenReleased();
        else if (!(await this.#waitConnected())) return new TracerError('DELIVERY_FAILED', `event ${event.event_id}: Kafka connection lost`, { retryable: true });
      } catch (err) {
        // librdkafka's own bounded queue is full; wait for acknowledgements.
        if ((err as { code?: number }).code === KAFKA_CODES.QUEUE_FULL && Date.now() - started < this.#opts.deliveryTimeoutMs) {
          await new Promise((r) => setTimeout(r, RETRY_FULL_MS));
          continue;
        }
        return new TracerError('DELIVERY_FAILED', `event ${event.event_id} could not be handed to Kafka: ${errorMessage(err)}`, { cause: err, retryable: true });
      }
    }
  }

  #report(error: TracerError): void {
    try {
      this.#opts.onError?.(error);
    } catch {
      // A throwing handler must not break publishing.
    }
  }

  /** Flushes what is in flight and releases the shared producer. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#producer.confirm();
    this.#producer.release(this);
  }

  /** @internal */
  onFailed(eventId: string, err: LibrdKafkaError): void {
    const error = new TracerError('DELIVERY_FAILED', `event ${eventId} was not acknowledged by Kafka within ${this.#opts.deliveryTimeoutMs} ms: ${err.message}`, {
      cause: err,
      retryable: true,
      eventIds: [eventId],
    });
    const batch = this.#byEvent.get(eventId);
    if (batch) batch.failed.set(eventId, error);
    else this.#report(error);
  }

  /** @internal publish() learns success from its own confirm(). */
  onConfirmed(): void {}

  /** @internal */
  onLost(reason: string): void {
    for (const b of this.#inflight) b.lost = reason;
  }

  /** @internal */
  onProducerError(error: TracerError): void {
    this.#report(error);
  }
}
