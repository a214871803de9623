import Kafka from '@confluentinc/kafka-javascript';
import type { DeliveryReport, LibrdKafkaError, MessageHeader } from '@confluentinc/kafka-javascript';
import { KafkaAdmin, backoffMs, connectClient, describeKafka, disconnectWithTimeout, errorMessage, rdkafkaConfig, sleep, type KafkaConnectionOptions } from '@agenttrace/common';
import { TracerError } from './errors.js';

/** What the shared producer tells a tracer about the events it handed over. */
export interface DeliveryTarget {
  /** Failed events name their emitter: their delivery reports are routed by it. */
  readonly emitterId: string;
  readonly sessionId: string;
  /** One event was not acknowledged (librdkafka's error and the event's id). */
  onFailed(eventId: string, err: LibrdKafkaError): void;
  /** Every event this target handed over before now either failed (already reported) or is acknowledged. */
  onConfirmed(): void;
  /** The events handed over and not confirmed can no longer be accounted for (the client was closed with them in flight). */
  onLost(reason: string): void;
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
 * With no event produced for this long the producer confirms what it holds and disconnects (and
 * reconnects on the next event), so an agent process that forgot close() can still end: a
 * connected librdkafka client keeps Node's event loop alive.
 */
const IDLE_DISCONNECT_MS = 5000;
/** Pauses between connect attempts: common's jittered exponential backoff, 250 ms up to 5 s. */
const CONNECT_BACKOFF = { minMs: 250, maxMs: 5000 };
/** A confirmation waits for librdkafka in slices this long (it gives up on events by itself at message.timeout.ms). */
const FLUSH_SLICE_MS = 1000;
const DISCONNECT_FLUSH_MS = 5000;
/**
 * librdkafka times records out (message.timeout.ms) only when the leader's broker thread wakes:
 * while the broker is down that is at each reconnect attempt, and its reconnect backoff grows to
 * reconnect.backoff.max.ms (10 s by default). A record could then be reported failed 10 s after
 * its delivery timeout, outliving a flush()/close() bounded by that timeout (deliveryTimeoutMs +
 * 5 s) so that it rejected FLUSH_TIMEOUT with every event's fate still unknown. One reconnect
 * attempt a second keeps each failure report within about a second of its timeout.
 */
const RECONNECT_BACKOFF_MAX_MS = 1000;

type RdProducer = InstanceType<typeof Kafka.Producer>;

/**
 * One librdkafka producer shared by every tracer in the process with the same connection and
 * topic. Idempotent, acks=all, Java-compatible murmur2 partitioning of the session key.
 *
 * Delivery reports come only for failed records (`delivery.report.only.error`): a report per
 * record costs the agent's thread more than serializing and producing the record together (#2).
 * Success is learnt by confirmation instead: new records are held back in the tracers' queues
 * while librdkafka flushes, and a flush that ends with nothing left means every record handed over
 * before it was acknowledged or reported failed. Tracers ask for one when they flush or close;
 * requests that arrive while one runs share it.
 */
export class SharedProducer {
  readonly key: string;
  readonly settings: ProducerSettings;
  readonly #users = new Set<DeliveryTarget>();
  readonly #byEmitter = new Map<string, DeliveryTarget>();
  /** Released users that may still have records in flight: told at the next confirmation (or loss). */
  readonly #departed = new Set<DeliveryTarget>();
  #producer: RdProducer | undefined;
  #ready: Promise<void> | undefined;
  #connectingSince: number | undefined;
  #disconnecting: Promise<void> | undefined;
  #confirming: Promise<void> | undefined;
  #held = false;
  #releaseWaiters: Array<() => void> = [];
  #topicChecked = false;
  /** Records handed to librdkafka since the last confirmation. */
  #unconfirmed = 0;
  #produced = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #errorReports = 0;
  #closed = false;
  readonly #onClose: (p: SharedProducer, done: Promise<void>) => void;

  constructor(key: string, settings: ProducerSettings, onClose: (p: SharedProducer, done: Promise<void>) => void) {
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
      'reconnect.backoff.max.ms': RECONNECT_BACKOFF_MAX_MS,
      // Reports for failed records only, with the record (whose event_id and emitter_id route it).
      'delivery.report.only.error': true,
      dr_msg_cb: true,
      ...this.settings.producer,
    });
    producer.on('delivery-report', (err, report) => {
      if (!err) return;
      this.#errorReports++;
      this.#routeFailure(err, report);
    });
    producer.on('event.error', (err) => this.#broadcast(new TracerError('PRODUCER_ERROR', `Kafka producer error on ${describeKafka(this.settings.kafka)}: ${errorMessage(err)}`, { cause: err, retryable: true })));
    return producer;
  }

  #routeFailure(err: LibrdKafkaError, report: DeliveryReport | undefined): void {
    let eventId = 'unknown';
    let target: DeliveryTarget | undefined;
    try {
      const event = JSON.parse(String(report?.value ?? '')) as { event_id?: unknown; emitter_id?: unknown };
      if (typeof event.event_id === 'string') eventId = event.event_id;
      if (typeof event.emitter_id === 'string') target = this.#byEmitter.get(event.emitter_id);
    } catch {
      // Not an event of ours: fall through to the session key.
    }
    if (!target) {
      const session = report?.key === undefined || report.key === null ? undefined : String(report.key);
      target = [...this.#users].find((u) => u.sessionId === session);
    }
    if (target) target.onFailed(eventId, err);
    else this.#broadcast(new TracerError('DELIVERY_FAILED', `event ${eventId} was not acknowledged by Kafka and its tracer is gone: ${errorMessage(err)}`, { cause: err, retryable: true, eventIds: [eventId] }));
  }

  #broadcast(error: TracerError): void {
    if (this.#users.size === 0) process.stderr.write(`agenttrace tracer: ${error.code}: ${error.message}\n`);
    for (const u of this.#users) u.onProducerError(error);
  }

  /** Every IDLE_DISCONNECT_MS: if nothing was produced since the last look, confirm and disconnect. */
  #armIdle(): void {
    if (this.#idleTimer) return;
    let seen = this.#produced;
    const check = () => {
      this.#idleTimer = undefined;
      if (!this.#producer || this.#disconnecting) return;
      if (this.#produced !== seen || this.#confirming) {
        seen = this.#produced;
        this.#idleTimer = setTimeout(check, IDLE_DISCONNECT_MS).unref();
        return;
      }
      void this.#disconnect(true);
    };
    this.#idleTimer = setTimeout(check, IDLE_DISCONNECT_MS).unref();
  }

  acquire(user: DeliveryTarget): void {
    this.#users.add(user);
    this.#byEmitter.set(user.emitterId, user);
  }

  release(user: DeliveryTarget): void {
    this.#users.delete(user);
    // A tracer whose close() timed out still has records in flight: keep telling it their fate.
    if (this.#unconfirmed > 0) this.#departed.add(user);
    else this.#byEmitter.delete(user.emitterId);
    if (this.#users.size === 0) void this.close();
  }

  /** Everyone with records in flight: users and departed ones. Departed ones are told once. */
  #takeAudience(): DeliveryTarget[] {
    const audience = [...this.#users, ...this.#departed];
    for (const d of this.#departed) this.#byEmitter.delete(d.emitterId);
    this.#departed.clear();
    return audience;
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

  /** Resolves when records may be produced again. */
  whenReleased(): Promise<void> {
    if (!this.#held) return Promise.resolve();
    return new Promise((resolve) => this.#releaseWaiters.push(resolve));
  }

  /**
   * Since when a tracer has been waiting for a connection (undefined while connected or not asked
   * to connect): the only time during which Kafka may be called unreachable.
   */
  get connectingSince(): number | undefined {
    return this.connected ? undefined : this.#connectingSince;
  }

  async #connect(): Promise<void> {
    this.#connectingSince = Date.now();
    if (this.#disconnecting) await this.#disconnecting;
    for (let attempt = 0; !this.#closed; attempt++) {
      const producer = this.#create();
      try {
        await connectClient(producer, { timeoutMs: 10_000 });
        producer.setPollInBackground(true);
        this.#producer = producer;
        this.#connectingSince = undefined;
        break;
      } catch (err) {
        this.#broadcast(
          new TracerError('PRODUCER_ERROR', `cannot connect to ${describeKafka(this.settings.kafka)}: ${errorMessage(err)}; events stay buffered and are retried`, {
            cause: err,
            retryable: true,
          }),
        );
        await sleep(backoffMs(attempt, CONNECT_BACKOFF));
      }
    }
    if (this.#producer && this.settings.ensureTopic && !this.#topicChecked) {
      this.#topicChecked = true;
      await this.#ensureTopic();
    }
    if (this.#producer) this.#armIdle();
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
   * Hands one record to librdkafka: 'held' while a confirmation runs (wait for whenReleased()),
   * 'gone' when not connected (call ready() again). Throws librdkafka's QUEUE_FULL error when its
   * queue is full.
   */
  produce(value: Buffer, key: Buffer, timestamp: number, headers: MessageHeader[]): 'sent' | 'held' | 'gone' {
    if (this.#held) return 'held';
    const producer = this.#producer;
    if (!producer || this.#disconnecting) return 'gone';
    producer.produce(this.settings.topic, null, value, key, timestamp, undefined, headers);
    this.#unconfirmed++;
    this.#produced++;
    return 'sent';
  }

  /**
   * Resolves once every record handed over before the call is acknowledged or reported failed,
   * and each user was told (onConfirmed). Never rejects.
   */
  confirm(): Promise<void> {
    if (this.#unconfirmed === 0 && !this.#confirming) {
      this.#confirmAll();
      return Promise.resolve();
    }
    this.#confirming ??= this.#runConfirmation().finally(() => {
      this.#confirming = undefined;
    });
    return this.#confirming;
  }

  async #runConfirmation(): Promise<void> {
    this.#held = true;
    try {
      for (;;) {
        const producer = this.#producer;
        // Disconnected meanwhile: #disconnect confirmed, or reported the records lost.
        if (!producer || this.#disconnecting) return;
        if (await this.#flush(producer, FLUSH_SLICE_MS)) break;
      }
      await this.#reportsDispatched();
      this.#confirmAll();
    } finally {
      this.#release();
    }
  }

  #release(): void {
    if (this.#disconnecting) return;
    this.#held = false;
    const waiters = this.#releaseWaiters;
    this.#releaseWaiters = [];
    for (const w of waiters) w();
  }

  #confirmAll(): void {
    this.#unconfirmed = 0;
    for (const u of this.#takeAudience()) u.onConfirmed();
  }

  /** True when librdkafka holds no record any more (all acknowledged, or failed and reported). */
  #flush(producer: RdProducer, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => producer.flush(timeoutMs, (err) => resolve(!err)));
  }

  /**
   * Failure reports reach JavaScript through the client's own async queue, at most 100 per turn of
   * the event loop, and can trail the flush that waited for them: wait until a whole turn brings
   * none, so a failed record is never confirmed as delivered.
   */
  async #reportsDispatched(): Promise<void> {
    let seen = -1;
    while (seen !== this.#errorReports) {
      seen = this.#errorReports;
      await new Promise((r) => setImmediate(r));
    }
  }

  /** `idle`: disconnect only if everything is confirmed (otherwise stay connected and look again later). */
  #disconnect(idle = false): Promise<void> {
    const producer = this.#producer;
    if (!producer) return Promise.resolve();
    this.#disconnecting ??= (async () => {
      this.#held = true;
      const empty = await this.#flush(producer, DISCONNECT_FLUSH_MS);
      if (empty) {
        await this.#reportsDispatched();
        this.#confirmAll();
      } else if (idle && !this.#closed) {
        // Still holding records (Kafka slow or away): keep the client, look again later.
        this.#disconnecting = undefined;
        this.#release();
        this.#armIdle();
        return;
      } else {
        const lost = this.#unconfirmed;
        this.#unconfirmed = 0;
        for (const u of this.#takeAudience()) u.onLost(`the Kafka client was closed with ${lost} record(s) still unacknowledged after ${DISCONNECT_FLUSH_MS} ms`);
      }
      // The flush above emptied the queue or gave up on it; this flush is the binding's own, bounded too.
      await disconnectWithTimeout(producer, 15_000, { flushMs: 5_000 });
      if (this.#idleTimer) clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
      this.#producer = undefined;
      this.#ready = undefined;
      this.#disconnecting = undefined;
      this.#release();
    })();
    return this.#disconnecting;
  }

  /** Flushes and disconnects; used when the last tracer is gone and at process shutdown. */
  async close(): Promise<void> {
    this.#closed = this.#users.size === 0;
    const done = this.#disconnect();
    if (this.#closed) this.#onClose(this, done);
    await done;
  }
}

const pool = new Map<string, SharedProducer>();
/** Producers out of the pool and still disconnecting (their last records are being confirmed). */
const closing = new Set<Promise<void>>();

/** The shared producer for these settings, created on first use. */
export function sharedProducer(settings: ProducerSettings): SharedProducer {
  const key = JSON.stringify([settings.kafka, settings.topic, settings.deliveryTimeoutMs, settings.producer]);
  let p = pool.get(key);
  if (!p) {
    p = new SharedProducer(key, settings, (closed, done) => {
      if (pool.get(closed.key) === closed) pool.delete(closed.key);
      closing.add(done);
      void done.finally(() => closing.delete(done));
    });
    pool.set(key, p);
  }
  return p;
}

/** Disconnects every shared producer now (tests, and processes that want to exit at once). */
export async function closeAllProducers(): Promise<void> {
  await Promise.all([...[...pool.values()].map((p) => p.close()), ...closing]);
}
