import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError, MessageHeader } from '@confluentinc/kafka-javascript';
import { KafkaAdmin, describeKafka, errorMessage, rdkafkaConfig, type KafkaConnectionOptions } from '@agenttrace/common';
import { TracerError } from './errors.js';

/** What a delivery report is routed back to (the record's opaque). */
export interface DeliveryTarget {
  onDelivered(err: LibrdKafkaError | null): void;
  onProducerError(error: TracerError): void;
}

export interface ProducerSettings {
  kafka: KafkaConnectionOptions;
  topic: string;
  ensureTopic: boolean;
  topicPartitions: number;
  topicRetentionMs: number;
  deliveryTimeoutMs: number;
  producer: Record<string, string | number | boolean>;
}

/**
 * With nothing in flight for this long the producer disconnects (and reconnects on the next
 * event), so an agent process that forgot close() can still end: a connected librdkafka client
 * keeps Node's event loop alive.
 */
const IDLE_DISCONNECT_MS = 5000;
const CONNECT_RETRY_MS = [250, 500, 1000, 2000, 5000];

type RdProducer = InstanceType<typeof Kafka.Producer>;

/**
 * One librdkafka producer shared by every tracer in the process with the same connection and
 * topic. Idempotent, acks=all, Java-compatible murmur2 partitioning of the session key.
 */
export class SharedProducer {
  readonly key: string;
  readonly settings: ProducerSettings;
  readonly #users = new Set<DeliveryTarget>();
  #producer: RdProducer | undefined;
  #ready: Promise<void> | undefined;
  #disconnecting: Promise<void> | undefined;
  #topicChecked = false;
  #inFlight = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #onClose: (p: SharedProducer) => void;

  constructor(key: string, settings: ProducerSettings, onClose: (p: SharedProducer) => void) {
    this.key = key;
    this.settings = settings;
    this.#onClose = onClose;
  }

  #create(): RdProducer {
    const producer = new Kafka.Producer({
      ...rdkafkaConfig(this.settings.kafka),
      'enable.idempotence': true,
      acks: -1, // all in-sync replicas
      // librdkafka's default (consistent_random, CRC32) puts keys on other partitions than Java clients do.
      partitioner: 'murmur2_random',
      'compression.type': 'lz4',
      'linger.ms': 5,
      'batch.size': 1_000_000,
      'batch.num.messages': 10_000,
      'queue.buffering.max.messages': 200_000,
      'queue.buffering.max.kbytes': 262_144,
      'message.timeout.ms': this.settings.deliveryTimeoutMs,
      dr_cb: true,
      ...this.settings.producer,
    });
    producer.on('delivery-report', (err, report) => {
      this.#inFlight--;
      if (this.#inFlight === 0) this.#armIdle();
      (report as { opaque?: DeliveryTarget } | undefined)?.opaque?.onDelivered(err ?? null);
    });
    producer.on('event.error', (err) => this.#broadcast(new TracerError('PRODUCER_ERROR', `Kafka producer error on ${describeKafka(this.settings.kafka)}: ${errorMessage(err)}`, { cause: err, retryable: true })));
    return producer;
  }

  #broadcast(error: TracerError): void {
    for (const u of this.#users) u.onProducerError(error);
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#inFlight === 0 && this.#producer) void this.#disconnect();
    }, IDLE_DISCONNECT_MS);
    this.#idleTimer.unref();
  }

  acquire(user: DeliveryTarget): void {
    this.#users.add(user);
  }

  release(user: DeliveryTarget): void {
    this.#users.delete(user);
    if (this.#users.size === 0 && this.#inFlight === 0) void this.close();
  }

  /**
   * Connects (retrying with backoff while the cluster is unreachable) and makes sure the topic
   * exists. Resolves once produce() can be called; never rejects (failures are reported).
   */
  ready(): Promise<void> {
    this.#ready ??= this.#connect();
    return this.#ready;
  }

  get connected(): boolean {
    return this.#producer !== undefined && this.#disconnecting === undefined;
  }

  async #connect(): Promise<void> {
    if (this.#disconnecting) await this.#disconnecting;
    for (let attempt = 0; !this.#closed; attempt++) {
      const producer = this.#create();
      try {
        await new Promise<void>((resolve, reject) => producer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
        producer.setPollInBackground(true);
        this.#producer = producer;
        break;
      } catch (err) {
        this.#broadcast(
          new TracerError('PRODUCER_ERROR', `cannot connect to ${describeKafka(this.settings.kafka)}: ${errorMessage(err)}; events stay buffered and are retried`, {
            cause: err,
            retryable: true,
          }),
        );
        await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS[Math.min(attempt, CONNECT_RETRY_MS.length - 1)]));
      }
    }
    if (this.#producer && this.settings.ensureTopic && !this.#topicChecked) {
      this.#topicChecked = true;
      await this.#ensureTopic();
    }
    if (this.#inFlight === 0) this.#armIdle();
  }

  async #ensureTopic(): Promise<void> {
    const admin = new KafkaAdmin({ ...this.settings.kafka, clientId: 'agenttrace-tracer' });
    try {
      await admin.ensureTopic({
        topic: this.settings.topic,
        num_partitions: this.settings.topicPartitions,
        replication_factor: -1,
        config: { 'retention.ms': String(this.settings.topicRetentionMs) },
      });
    } catch (err) {
      this.#topicChecked = false;
      this.#broadcast(new TracerError('TOPIC_SETUP_FAILED', `could not check or create topic ${this.settings.topic}: ${errorMessage(err)}`, { cause: err, retryable: true }));
    } finally {
      admin.close();
    }
  }

  /**
   * Hands one record to librdkafka. Returns false when not connected (call ready() again);
   * throws librdkafka's QUEUE_FULL error when its queue is full.
   */
  produce(value: Buffer, key: Buffer, timestamp: number, headers: MessageHeader[], target: DeliveryTarget): boolean {
    const producer = this.#producer;
    if (!producer || this.#disconnecting) return false;
    producer.produce(this.settings.topic, null, value, key, timestamp, target, headers);
    this.#inFlight++;
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
    return true;
  }

  #disconnect(): Promise<void> {
    const producer = this.#producer;
    if (!producer) return Promise.resolve();
    this.#disconnecting ??= (async () => {
      await new Promise<void>((resolve) => producer.flush(5_000, () => resolve()));
      await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
      this.#producer = undefined;
      this.#ready = undefined;
      this.#disconnecting = undefined;
    })();
    return this.#disconnecting;
  }

  /** Flushes and disconnects; used when the last tracer is gone and at process shutdown. */
  async close(): Promise<void> {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#closed = this.#users.size === 0;
    if (this.#closed) this.#onClose(this);
    await this.#disconnect();
  }
}

const pool = new Map<string, SharedProducer>();

/** The shared producer for these settings, created on first use. */
export function sharedProducer(settings: ProducerSettings): SharedProducer {
  const key = JSON.stringify([settings.kafka, settings.topic, settings.deliveryTimeoutMs, settings.producer]);
  let p = pool.get(key);
  if (!p) {
    p = new SharedProducer(key, settings, (closed) => {
      if (pool.get(closed.key) === closed) pool.delete(closed.key);
    });
    pool.set(key, p);
  }
  return p;
}

/** Disconnects every shared producer now (tests, and processes that want to exit at once). */
export async function closeAllProducers(): Promise<void> {
  await Promise.all([...pool.values()].map((p) => p.close()));
}
