import type { MessageHeader } from '@confluentinc/kafka-javascript';
import { AckingProducer, type KafkaConnectionOptions, type OutgoingRecord } from '@agenttrace/common';

/** The dashboard's producer (alerts and dead letters): send() resolves when the broker acknowledged the record. */
export class KafkaSender {
  readonly #producer: AckingProducer;

  constructor(conn: KafkaConnectionOptions) {
    this.#producer = new AckingProducer(conn, {
      clientId: `${conn.clientId ?? 'agenttrace'}-producer`,
      rdkafka: { 'linger.ms': 2, 'message.timeout.ms': 30_000 },
      pollIntervalMs: 10,
      // A full queue is waited out for up to 5 s (500 × 10 ms), then send() rejects.
      queueFullAttempts: 500,
    });
  }

  connect(timeoutMs: number): Promise<void> {
    return this.#producer.connect(timeoutMs);
  }

  /** Produces one record and waits for its acknowledgement. */
  send(topic: string, value: Buffer | null, key: Buffer | string | null | undefined, headers?: MessageHeader[]): Promise<void> {
    return this.#producer.send({ topic, value, key, headers });
  }

  /** Produces a dead-letter (or any prepared) record, keeping its timestamp. */
  sendRecord(record: OutgoingRecord): Promise<void> {
    return this.#producer.send(record);
  }

  close(timeoutMs: number): Promise<void> {
    return this.#producer.close(timeoutMs);
  }
}
