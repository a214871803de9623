import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError, MessageHeader, Producer } from '@confluentinc/kafka-javascript';
import { DLQ_HEADER_TRUNCATED_FROM, DLQ_TRUNCATE_BYTES, dlqHeaders, isTooLarge, kafkaError, rdkafkaConfig, type KafkaConnectionOptions } from '@agenttrace/common';

/** A record the exporter cannot send, as it came from Kafka. */
export interface DeadRecord {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | string | null | undefined;
  value: Buffer | null | undefined;
  reason: string;
  detail: string;
}

/**
 * Writes records to the dead-letter topic and resolves once Kafka acknowledged them: the exporter
 * commits past a bad record only after its copy is safe. A copy too large for the topic is kept
 * truncated, with the original size in a header.
 */
export class DeadLetterWriter {
  readonly #conn: KafkaConnectionOptions;
  readonly #topic: string;
  readonly #consumerName: string;
  readonly #producer: Producer;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  #next = 0;
  #connected = false;

  constructor(conn: KafkaConnectionOptions, topic: string, consumerName: string) {
    this.#conn = conn;
    this.#topic = topic;
    this.#consumerName = consumerName;
    this.#producer = new Kafka.Producer({
      ...rdkafkaConfig({ ...conn, clientId: `${conn.clientId ?? 'agenttrace-otlp-forward'}-dlq` }),
      'enable.idempotence': true,
      'linger.ms': 5,
      dr_cb: true,
      'message.timeout.ms': 30_000,
    });
    this.#producer.on('delivery-report', (err: LibrdKafkaError | null | undefined, report: { opaque?: unknown }) => {
      const p = this.#pending.get(report.opaque as number);
      if (!p) return;
      this.#pending.delete(report.opaque as number);
      if (err) p.reject(Object.assign(kafkaError('writing to the dead-letter topic', this.#conn, err), { tooLarge: isTooLarge(err) }));
      else p.resolve();
    });
    // Failures arrive through delivery reports; this only keeps an 'error' event from crashing.
    this.#producer.on('event.error', () => undefined);
  }

  get topic(): string {
    return this.#topic;
  }

  async connect(timeoutMs: number): Promise<void> {
    await new Promise<void>((res, rej) => this.#producer.connect({ timeout: timeoutMs }, (err) => (err ? rej(kafkaError('connecting the dead-letter producer', this.#conn, err)) : res())));
    this.#producer.setPollInterval(10);
    this.#connected = true;
  }

  #produce(value: Buffer | null, key: Buffer | string | null | undefined, headers: MessageHeader[]): Promise<void> {
    const id = this.#next++;
    const done = new Promise<void>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    try {
      this.#producer.produce(this.#topic, null, value, key ?? undefined, Date.now(), id, headers);
    } catch (err) {
      this.#pending.delete(id);
      return Promise.reject(Object.assign(kafkaError('writing to the dead-letter topic', this.#conn, err), { tooLarge: isTooLarge(err) }));
    }
    return done;
  }

  /** Writes one record; throws when Kafka did not take it (the caller retries). */
  async write(r: DeadRecord): Promise<void> {
    if (!this.#connected) throw new Error('the dead-letter producer is closed');
    const headers = dlqHeaders({ reason: r.reason, detail: r.detail, topic: r.topic, partition: r.partition, offset: r.offset, consumer: this.#consumerName });
    const value = r.value ?? null;
    try {
      await this.#produce(value, r.key, headers);
    } catch (err) {
      if (!(err as { tooLarge?: boolean }).tooLarge || value === null) throw err;
      await this.#produce(value.subarray(0, DLQ_TRUNCATE_BYTES), r.key, [...headers, { [DLQ_HEADER_TRUNCATED_FROM]: String(value.length) }]);
    }
  }

  async close(timeoutMs: number): Promise<void> {
    if (!this.#connected) return;
    this.#connected = false;
    await new Promise<void>((res) => this.#producer.flush(timeoutMs, () => res()));
    for (const p of this.#pending.values()) p.reject(new Error('dead-letter producer closed before the record was acknowledged'));
    this.#pending.clear();
    await new Promise<void>((res) => this.#producer.disconnect(timeoutMs, () => res()));
  }
}
