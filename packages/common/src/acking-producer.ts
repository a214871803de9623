import type { LibrdKafkaError, MessageHeader, Producer } from '@confluentinc/kafka-javascript';
import { AgentTraceError, OptionsError } from './errors.js';
import { explainConnectFailure } from './kafka-admin.js';
import { connectClient, disconnectWithTimeout } from './kafka-client.js';
import { Kafka, kafkaError, rdkafkaConfig, type KafkaConnectionOptions } from './kafka.js';
import { produceWhenRoom } from './produce-when-room.js';

/** One record to produce. */
export interface OutgoingRecord {
  topic: string;
  value: Buffer | null;
  key?: Buffer | string | null;
  headers?: MessageHeader[];
  /** Record timestamp (ms); default now. */
  timestamp?: number;
}

export interface AckingProducerOptions {
  /** librdkafka's client.id. */
  clientId: string;
  /** What the producer is called in error messages ("connecting the <label>"); default "producer". */
  label?: string;
  /** Further librdkafka producer settings (linger.ms, message.timeout.ms, ...), over the defaults below. */
  rdkafka?: Record<string, string | number | boolean>;
  /** How often the binding polls for delivery reports, ms. Default 10. */
  pollIntervalMs?: number;
  /** Tries of one produce while the client's queue is full (10 ms apart) before send() rejects. Default 500. */
  queueFullAttempts?: number;
  /** Aborting stops waiting for room in a full queue. */
  signal?: AbortSignal;
  /** The client's asynchronous errors (connection trouble); delivery failures reject send() instead. */
  onError?: (err: { message: string; code?: number }) => void;
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * An idempotent producer whose send() resolves when the broker acknowledged the record and
 * rejects with the delivery error (a KafkaError whose `cause` is the client's error, code and
 * all). Used where each record's fate matters (dead letters, alerts), not for bulk throughput.
 */
export class AckingProducer {
  readonly #conn: KafkaConnectionOptions;
  readonly #o: Required<Omit<AckingProducerOptions, 'signal' | 'onError' | 'rdkafka'>> & AckingProducerOptions;
  readonly #pending = new Map<number, Pending>();
  #producer: Producer | undefined;
  #next = 0;

  constructor(conn: KafkaConnectionOptions, options: AckingProducerOptions) {
    const attempts = options.queueFullAttempts ?? 500;
    if (!Number.isInteger(attempts) || attempts < 1) throw new OptionsError('options.queueFullAttempts', `must be an integer >= 1, got ${String(attempts)}`);
    const poll = options.pollIntervalMs ?? 10;
    if (!Number.isInteger(poll) || poll < 1) throw new OptionsError('options.pollIntervalMs', `must be an integer >= 1, got ${String(poll)}`);
    this.#conn = conn;
    this.#o = { ...options, label: options.label ?? 'producer', queueFullAttempts: attempts, pollIntervalMs: poll };
  }

  get connected(): boolean {
    return this.#producer !== undefined;
  }

  /** Connects a new client (a failed attempt leaves nothing behind: call again to retry). */
  async connect(timeoutMs: number): Promise<void> {
    if (this.#producer) return;
    const producer = new (Kafka().Producer)({
      ...rdkafkaConfig({ ...this.#conn, clientId: this.#o.clientId }),
      'enable.idempotence': true,
      dr_cb: true,
      ...this.#o.rdkafka,
    });
    producer.on('delivery-report', (err: LibrdKafkaError | null | undefined, report: { opaque?: unknown }) => {
      const id = report.opaque as number;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if (err) p.reject(kafkaError('producing a record', this.#conn, err));
      else p.resolve();
    });
    // Delivery failures arrive through the reports; this keeps an unhandled 'error' from crashing.
    producer.on('event.error', (err) => this.#o.onError?.(err));
    let failure: { err: unknown; background: string | undefined } | undefined;
    try {
      await connectClient(producer, {
        timeoutMs,
        wrapError: (err, background) => {
          failure = { err, background };
          return kafkaError(`connecting the ${this.#o.label}`, this.#conn, err, background);
        },
      });
    } catch (err) {
      // A producer sees a refused SASL login or TLS handshake only as "transport failure": ask the cluster why.
      throw failure === undefined ? err : await explainConnectFailure(`connecting the ${this.#o.label}`, this.#conn, failure.err, failure.background);
    }
    producer.setPollInterval(this.#o.pollIntervalMs);
    this.#producer = producer;
  }

  /** Produces one record and resolves once it is acknowledged. */
  async send(record: OutgoingRecord): Promise<void> {
    const producer = this.#producer;
    if (!producer) throw new AgentTraceError('PRODUCER_NOT_CONNECTED', `the ${this.#o.label} is not connected`, { retryable: true });
    const id = this.#next++;
    const acked = new Promise<void>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    try {
      await produceWhenRoom(() => producer.produce(record.topic, null, record.value, record.key ?? undefined, record.timestamp ?? Date.now(), id, record.headers), {
        attempts: this.#o.queueFullAttempts,
        signal: this.#o.signal,
      });
    } catch (err) {
      this.#pending.delete(id);
      throw err;
    }
    return acked;
  }

  /** Waits up to `timeoutMs` for what is in flight, fails what is left, and disconnects. Idempotent. */
  async close(timeoutMs: number): Promise<void> {
    const producer = this.#producer;
    if (!producer) return;
    this.#producer = undefined;
    await new Promise<void>((res) => {
      try {
        producer.flush(timeoutMs, () => res());
      } catch {
        res();
      }
    });
    for (const p of this.#pending.values()) p.reject(new Error('producer closed before the record was acknowledged'));
    this.#pending.clear();
    await disconnectWithTimeout(producer, timeoutMs + 10_000, { flushMs: timeoutMs });
  }
}

