import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError, MessageHeader, Producer } from '@confluentinc/kafka-javascript';
import { explainConnectFailure, kafkaError, rdkafkaConfig, watchKafkaErrors, type KafkaConnectionOptions } from '@agenttrace/common';

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** A producer whose send() resolves when the broker acknowledged the record. */
export class KafkaSender {
  readonly #conn: KafkaConnectionOptions;
  readonly #producer: Producer;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #connected = false;

  constructor(conn: KafkaConnectionOptions) {
    this.#conn = conn;
    this.#producer = new Kafka.Producer({
      ...rdkafkaConfig({ ...conn, clientId: `${conn.clientId ?? 'agenttrace'}-producer` }),
      'enable.idempotence': true,
      'linger.ms': 2,
      dr_cb: true,
      'message.timeout.ms': 30_000,
    });
    this.#producer.on('delivery-report', (err: LibrdKafkaError | null | undefined, report: { opaque?: unknown }) => {
      const id = report.opaque as number;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if (err) p.reject(kafkaError('producing a record', this.#conn, err));
      else p.resolve();
    });
    // Errors also arrive through delivery reports; this only keeps an unhandled 'error' from crashing.
    this.#producer.on('event.error', () => undefined);
  }

  async connect(timeoutMs: number): Promise<void> {
    const background = watchKafkaErrors(this.#producer);
    await new Promise<void>((res, rej) =>
      this.#producer.connect({ timeout: timeoutMs }, (err) => (err ? rej(err) : res())),
    ).catch(async (err: unknown) => {
      throw await explainConnectFailure('connecting the producer', this.#conn, err, background());
    });
    this.#producer.setPollInterval(10);
    this.#connected = true;
  }

  /** Produces one record and waits for its acknowledgement. Throws on a full queue after a bounded wait. */
  async send(topic: string, value: Buffer | null, key: Buffer | string | null | undefined, headers?: MessageHeader[]): Promise<void> {
    const id = this.#next++;
    const done = new Promise<void>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    for (let attempt = 0; ; attempt++) {
      try {
        this.#producer.produce(topic, null, value, key ?? undefined, Date.now(), id, headers);
        break;
      } catch (err) {
        if (/queue full/i.test(String((err as Error).message)) && attempt < 500) {
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        this.#pending.delete(id);
        throw err;
      }
    }
    return done;
  }

  async close(timeoutMs: number): Promise<void> {
    if (!this.#connected) return;
    this.#connected = false;
    await new Promise<void>((res) => this.#producer.flush(timeoutMs, () => res()));
    for (const p of this.#pending.values()) p.reject(new Error('producer closed before the record was acknowledged'));
    this.#pending.clear();
    await new Promise<void>((res) => this.#producer.disconnect(timeoutMs, () => res()));
  }
}
