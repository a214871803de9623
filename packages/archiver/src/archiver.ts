import { setMaxListeners } from 'node:events';
import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, LibrdKafkaError, Message, TopicPartition } from '@confluentinc/kafka-javascript';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  AckingProducer,
  DeadLetterWriter,
  KAFKA_CODES,
  KafkaAdmin,
  S3Error,
  TOPIC_METADATA_REFRESH_MS,
  backoffMs,
  checkBucket,
  connectClient,
  consumeBatch,
  groupConsumerConfig,
  createS3Client,
  describeKafka,
  describeS3,
  describeTopicIdentity,
  disconnectWithTimeout,
  errorMessage,
  kafkaError,
  retry,
  setTimeoutOnlyForFirstMessage,
  sleep,
  stopRetrying,
} from '@agenttrace/common';
import { ArchiverError } from './errors.js';
import { hourDir, objectKey, parseObjectKey, partitionFilePrefix, topicPrefix, type ObjectName } from '@agenttrace/archive-format';
import { ArchiverMetrics } from './metrics.js';
import { resolveArchiverOptions, type ArchiverOptions, type ResolvedArchiverOptions } from './options.js';
import type { EncodedFile } from './partition-work.js';
import { EncodePipeline } from './pipeline.js';
import type { BadRecord } from './roller.js';
import { listKeys, objectMetadata, putObject } from './s3-store.js';

/** Object metadata naming the log an archive object was cut from (S3 returns the names lower-cased). */
export const META_CLUSTER_ID = 'agenttrace-cluster-id';
export const META_TOPIC_ID = 'agenttrace-topic-id';
/** A topic recreated under its name is noticed within this long (its objects are stamped with the new id from then on). */
const IDENTITY_TTL_MS = 30_000;

/** Backoff of start-up retries: first and longest pause, ms. */
const START_RETRY_MIN_MS = 500;
const START_RETRY_MAX_MS = 10_000;
/**
 * Start-up failures that retrying cannot fix. librdkafka rarely marks errors retriable (a plain
 * "Local: Timed out" is not), so anything not known to be permanent is retried.
 */
function isPermanentStartError(err: unknown): boolean {
  if ((err as { code?: unknown }).code === 'KAFKA_AUTH_FAILED') return true;
  const cause = (err as { cause?: { isFatal?: boolean; code?: number } }).cause;
  if (cause?.isFatal === true) return true;
  return /configuration property|invalid value for|no such configuration|authenticat|sasl|ssl handshake|authoriz/i.test(errorMessage(err));
}

/** Raw bytes handed to encode workers and not encoded yet, above which the consume loop waits. */
const MAX_INFLIGHT_ENCODE_BYTES = 32 * 1024 * 1024;
/** After a revoke drain timed out and its S3 requests were aborted, how long to wait for them to settle. */
const ABORT_SETTLE_MS = 10_000;

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

/** What the archiver has done so far (for tests, the CLI's --json summary and the benchmark). */
export interface ArchiverStats {
  /** Records received from Kafka (valid or not). */
  consumed: number;
  files: number;
  rows: number;
  bytes: number;
  rawBytes: number;
  /** Bad records the dead-letter topic acknowledged. */
  dlq: number;
  /** Of those, records whose value was truncated to fit the dead-letter topic. */
  dlqTruncated: number;
  /** Bad records given up on (the DLQ never accepted them within dlqGiveUpMs, or refused even an empty value). */
  dlqGivenUp: number;
  uploadRetries: number;
  commits: number;
  /** Records dropped because they were fetched before their partition was revoked, re-assigned or repositioned. */
  staleDiscarded: number;
  /** Objects found stored (by an earlier run or member) at the start of a range being archived, and adopted instead of writing another. */
  adopted: number;
  /** Next offset to read per partition, as last committed by this process. */
  committed: Record<number, number>;
}

/**
 * Consumes the events topic in consumer group `archiver` and writes every event to Parquet objects
 * on S3, committing a partition's offsets only after the object covering them is durably stored.
 */
export class Archiver {
  readonly #o: ResolvedArchiverOptions;
  readonly #s3: S3Client;
  readonly metrics = new ArchiverMetrics();
  #consumer: KafkaConsumer | undefined;
  #producer: AckingProducer | undefined;
  readonly #dlq: DeadLetterWriter;
  #state: State = 'new';
  #closing: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  /** Aborted by close() while start() retries, to cut its backoff pause short. */
  readonly #startAbort = new AbortController();
  #paused = false;
  #fatal: Error | undefined;
  readonly #abort = new AbortController();
  #pipeline: EncodePipeline | undefined;
  /** Bumped when a partition is lost: files closed before (still in an encode worker) are then dropped. */
  readonly #epochs = new Map<number, number>();
  readonly #chains = new Map<number, Promise<void>>();
  /** Bumped when a partition is lost, so files still in flight for it never commit. */
  readonly #generation = new Map<number, number>();
  readonly #assigned = new Set<number>();
  /** What the archiver waits for before it can do anything (shown by /healthz), e.g. its topic's creation. */
  #waitingFor: string | undefined;
  /** Bumped on every change of a partition's ownership or position (assign, revoke, seek). */
  #seq = 0;
  /** #seq at each partition's last change: a consume() call started before it returns stale records of that partition. */
  readonly #changedAt = new Map<number, number>();
  /** Last offset handed to the encode pipeline per partition since its last change. */
  readonly #lastHanded = new Map<number, number>();
  /** True while a consume() call is collecting in the binding's thread. */
  #consuming = false;
  /** Assignments and seeks held back until the consume() call in flight has returned. */
  #betweenCalls: Array<() => void> = [];
  /** Revocations so far: an assignment held back is void once a revocation followed it. */
  #revocations = 0;
  /** Aborts one partition's S3 requests (its revoke drain timed out). */
  readonly #partitionAbort = new Map<number, AbortController>();
  #pendingBytes = 0;
  #metricsPort: number | undefined;
  #lagTimer: NodeJS.Timeout | undefined;
  readonly #stats: ArchiverStats = { consumed: 0, files: 0, rows: 0, bytes: 0, rawBytes: 0, dlq: 0, dlqTruncated: 0, dlqGivenUp: 0, uploadRetries: 0, commits: 0, staleDiscarded: 0, adopted: 0, committed: {} };
  readonly #high = new Map<number, number>();
  /** The log being archived (cluster id, topic id), read again when older than IDENTITY_TTL_MS. */
  #identity: { clusterId: string; topicId: string; at: number } | undefined;

  constructor(options: ArchiverOptions = {}) {
    this.#o = resolveArchiverOptions(options);
    this.#s3 = createS3Client(this.#o.s3);
    // Each partition's upload chain listens on this signal twice while it works (the retry and
    // the S3 request; both remove their listener when done), so a topic with more than five
    // partitions passes Node's default of 10 and logs a false "possible memory leak" warning.
    setMaxListeners(0, this.#abort.signal);
    const o = this.#o;
    this.#dlq = new DeadLetterWriter({
      topic: o.dlqTopic,
      consumer: o.groupId,
      send: (record) => {
        const producer = this.#producer;
        if (!producer) return Promise.reject(new ArchiverError('DLQ_FAILED', 'the dead-letter producer is not connected', { retryable: true }));
        return producer.send(record);
      },
      backoff: { minMs: o.retryMinMs, maxMs: o.retryMaxMs },
      giveUpAfterMs: o.dlqGiveUpMs,
      onRetry: (err, attempt) => this.#countRetry('dlq', attempt, err),
    });
  }

  get options(): Readonly<ResolvedArchiverOptions> {
    return this.#o;
  }

  get stats(): ArchiverStats {
    return { ...this.#stats, committed: { ...this.#stats.committed } };
  }

  /** Port of the metrics server, once started with metricsPort set. */
  get metricsPort(): number | undefined {
    return this.#metricsPort;
  }

  /** Resolves when the archiver stops on its own because of an unrecoverable failure (never on close()). */
  #onFailed: (err: Error) => void = () => undefined;
  readonly #failed = new Promise<Error>((resolve) => (this.#onFailed = resolve));
  get failed(): Promise<Error> {
    return this.#failed;
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ArchiverError('ARCHIVER_STATE', `start() called on an archiver that is ${this.#state}`);
    this.#state = 'starting';
    const o = this.#o;
    try {
      if (o.metricsPort !== undefined) this.#metricsPort = await this.metrics.listen(o.metricsPort, o.metricsHost, () => this.#health());
      const deadline = Date.now() + o.startTimeoutMs;
      // S3 first: a wrong endpoint, bucket or credentials would otherwise surface at the first upload, minutes later.
      await this.#startStep('checking the S3 bucket', deadline, () => checkBucket(this.#s3, o.s3, Math.min(10_000, o.startTimeoutMs)));
      await this.#startStep('creating the dead-letter topic', deadline, () => this.#ensureDlqTopic());
      this.#producer = await this.#startStep('connecting the dead-letter producer', deadline, () => this.#connectProducer());
      this.#pipeline = new EncodePipeline(
        { topic: o.topic, rollRows: o.rollRows, rollBytes: o.rollBytes, rowGroupRows: o.rowGroupRows, compression: o.compression },
        o.encodeWorkers,
        {
          onFile: (file) => this.#enqueue(file),
          onError: (err) => this.#fail(err instanceof ArchiverError ? err : new ArchiverError('ENCODE_FAILED', err.message, { cause: err })),
          epochOf: (p) => this.#epochs.get(p) ?? 0,
        },
      );
      await this.#pipeline.start();
      this.#consumer = await this.#startStep('connecting the consumer', deadline, () => this.#connectConsumer());
      await this.#checkTopic();
    } catch (err) {
      await this.#teardown();
      this.#state = 'closed';
      throw err instanceof ArchiverError
        ? err
        : new ArchiverError('CONSUMER_FAILED', `could not start the archiver on ${describeKafka(o.kafka)}: ${errorMessage(err)}`, { cause: err, retryable: true });
    }
    if (this.#stopping) {
      // close() was called while starting: it is waiting for this to finish.
      await this.#teardown();
      this.#state = 'closed';
      throw new ArchiverError('ARCHIVER_STATE', 'the archiver was closed while starting');
    }
    this.#state = 'running';
    this.#o.log('info', 'archiver started', { topic: o.topic, group: o.groupId, s3: describeS3(o.s3), prefix: o.s3.prefix ?? '' });
    this.#lagTimer = setInterval(() => this.#updateLag(), 5000);
    this.#lagTimer.unref();
    this.#loop = this.#run();
  }

  /**
   * Runs one start-up step, retrying transient Kafka failures (a broker restarting, a request timing
   * out while the controller moves) with jittered exponential backoff until `deadline`.
   * Authentication and configuration errors fail at once: waiting does not fix them.
   */
  async #startStep<T>(what: string, deadline: number, fn: () => Promise<T>): Promise<T> {
    const o = this.#o;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const storage = err instanceof S3Error;
        const retryable = storage ? err.retryable : !isPermanentStartError(err);
        const wait = backoffMs(attempt - 1, { minMs: START_RETRY_MIN_MS, maxMs: START_RETRY_MAX_MS });
        if (!retryable || this.#stopping || Date.now() + wait > deadline) {
          const tail = retryable && !this.#stopping ? ` (still failing after ${attempt} attempts in ${o.startTimeoutMs} ms)` : '';
          if (storage) throw new ArchiverError('STORAGE_FAILED', `could not start the archiver: ${what}: ${errorMessage(err)}${tail}`, { cause: err, retryable });
          throw new ArchiverError('CONSUMER_FAILED', `could not start the archiver on ${describeKafka(o.kafka)}: ${what}: ${errorMessage(err)}${tail}`, { cause: err, retryable });
        }
        this.metrics.startRetries.inc();
        // One line per step, not one per attempt: the final failure (or success) says the rest.
        if (attempt === 1) o.log('warn', `${what} failed; retrying for up to ${Math.round((deadline - Date.now()) / 1000)} s`, { error: errorMessage(err) });
        await sleep(wait, this.#startAbort.signal);
      }
    }
  }

  /**
   * A consumer subscribed to a topic that does not exist yet idles quietly until it appears: say
   * so once, and let /healthz name what it waits for until partitions arrive.
   */
  async #checkTopic(): Promise<void> {
    const admin = new KafkaAdmin(this.#o.kafka);
    try {
      if ((await admin.partitionCount(this.#o.topic)) !== undefined) return;
      this.#waitingFor = `topic ${this.#o.topic} to be created`;
      this.#o.log('warn', `waiting for topic ${this.#o.topic} to be created; it is picked up within ${TOPIC_METADATA_REFRESH_MS / 1000} s of its creation`);
    } catch (err) {
      this.#o.log('warn', `could not check that topic ${this.#o.topic} exists`, { error: errorMessage(err) });
    } finally {
      admin.close();
    }
  }

  /** What /healthz shows: 503 while the archiver is not running or waits for its topic. */
  #health(): { ok: boolean; [k: string]: unknown } {
    return {
      ok: this.#state === 'running' && this.#waitingFor === undefined,
      state: this.#state,
      ...(this.#waitingFor ? { waiting: this.#waitingFor } : {}),
      assigned: [...this.#assigned].sort((a, b) => a - b),
    };
  }

  /**
   * Stops intake, closes every open file, waits (up to closeTimeoutMs) for uploads and their
   * commits, then disconnects. Idempotent. Rejects with CLOSE_TIMEOUT when uploads were abandoned
   * (their ranges stay uncommitted and are archived again on the next start).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#state === 'new' || this.#state === 'closed') {
      this.#state = 'closed';
      return;
    }
    if (this.#state === 'starting') {
      // start() is retrying Kafka: stop it and let it clean up.
      this.#stopping = true;
      this.#startAbort.abort();
      while ((this.#state as State) === 'starting') await sleep(50);
      if ((this.#state as State) === 'closed') return;
    }
    this.#state = 'closing';
    this.#stopping = true;
    await this.#loop?.catch(() => undefined);
    if (!this.#fatal && this.#pipeline) {
      this.#pipeline.roll(undefined, 'close', Date.now());
      // Every file closed so far reaches its partition's upload chain before the chains are awaited.
      await this.#pipeline.drain();
    }
    const drained = await this.#waitChains([...this.#chains.keys()], this.#o.closeTimeoutMs);
    if (!drained) this.#abort.abort();
    await this.#teardown();
    this.#state = 'closed';
    this.#o.log('info', 'archiver closed', { files: this.#stats.files, rows: this.#stats.rows, dlq: this.#stats.dlq });
    if (!drained) {
      throw new ArchiverError('CLOSE_TIMEOUT', `uploads did not finish within ${this.#o.closeTimeoutMs} ms; their offsets were not committed and will be archived again on restart`, { retryable: true });
    }
  }

  async #teardown(): Promise<void> {
    if (this.#lagTimer) clearInterval(this.#lagTimer);
    await this.#pipeline?.close();
    const consumer = this.#consumer;
    this.#consumer = undefined;
    // Leaving the group answers the revoke, which waits for the revoked partitions' uploads
    // (closeTimeoutMs, then ABORT_SETTLE_MS for aborted ones): the bound leaves room for both.
    if (consumer) await disconnectWithTimeout(consumer, this.#o.closeTimeoutMs + ABORT_SETTLE_MS + 10_000);
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.close(5000);
    await this.metrics.close();
  }

  /** A missing dead-letter topic would stall the first bad record forever; create it up front. */
  async #ensureDlqTopic(): Promise<void> {
    const admin = new KafkaAdmin({ ...this.#o.kafka, clientId: this.#o.kafka.clientId ?? 'agenttrace-archiver' });
    try {
      if ((await admin.partitionCount(this.#o.dlqTopic)) === undefined) {
        await admin.ensureTopic({ topic: this.#o.dlqTopic, num_partitions: 3, replication_factor: -1 });
        this.#o.log('info', 'created the dead-letter topic', { topic: this.#o.dlqTopic });
      }
    } finally {
      admin.close();
    }
  }

  async #connectProducer(): Promise<AckingProducer> {
    const o = this.#o;
    const producer = new AckingProducer(o.kafka, {
      clientId: o.kafka.clientId ?? 'agenttrace-archiver',
      label: 'dead-letter producer',
      rdkafka: { 'linger.ms': 5 },
      pollIntervalMs: 50,
      // A full queue is waited out for up to 30 s (3000 × 10 ms), never past close() giving up.
      queueFullAttempts: 3000,
      signal: this.#abort.signal,
      onError: (err) => o.log('warn', 'dead-letter producer error', { error: err.message }),
    });
    // On failure the half-made client is gone already; start() makes a new one.
    await producer.connect(15_000);
    return producer;
  }

  async #connectConsumer(): Promise<KafkaConsumer> {
    const o = this.#o;
    const consumer = new Kafka.KafkaConsumer(
      {
        // Big fetches: the archiver reads backlogs.
        ...groupConsumerConfig(o.kafka, { clientId: o.kafka.clientId ?? 'agenttrace-archiver', group: o.groupId, instanceId: o.instanceId, prefetchKbytes: 256 * 1024 }),
        'isolation.level': 'read_committed',
        'fetch.max.bytes': 64 * 1024 * 1024,
        rebalance_cb: (err: LibrdKafkaError, assignment: TopicPartition[]) => this.#onRebalance(consumer, err, assignment),
        ...o.consumer,
      },
      { 'auto.offset.reset': 'earliest' },
    );
    consumer.on('event.error', (err) => o.log('warn', 'consumer error', { error: err.message }));
    await connectClient(consumer, { timeoutMs: 15_000, wrapError: (err, background) => kafkaError('connecting the consumer', o.kafka, err, background) });
    consumer.setDefaultConsumeTimeout(200);
    // The timeout bounds the wait for the first record only; after it, a call takes only what is
    // already fetched. Otherwise each record restarts the wait and a steady trickle keeps one call
    // collecting for minutes (no age roll, no commit, close() waiting behind it).
    setTimeoutOnlyForFirstMessage(consumer);
    consumer.subscribe([o.topic]);
    return consumer;
  }

  /** `consumer` is passed in: during disconnect #consumer is already cleared but the revoke must still be answered. */
  #onRebalance(consumer: KafkaConsumer, err: LibrdKafkaError, assignment: TopicPartition[]): void {
    if (err.code === KAFKA_CODES.ASSIGN_PARTITIONS) {
      // A consume() call in flight may hold records fetched before the revoke and, once assign() is
      // called, records fetched after it, with nothing telling them apart. So the assignment takes
      // effect only between two calls: every call then reads either the old or the new assignment.
      const revocations = this.#revocations;
      this.#betweenConsumeCalls(() => {
        if (this.#revocations !== revocations) {
          this.#o.log('info', 'assignment superseded by a later revocation before it took effect', { partitions: assignment.map((tp) => tp.partition) });
          return;
        }
        if (assignment.length > 0) this.#waitingFor = undefined;
        for (const tp of assignment) {
          this.#mark(tp.partition);
          this.#assigned.add(tp.partition);
          const ctrl = this.#partitionAbort.get(tp.partition);
          if (!ctrl || ctrl.signal.aborted) this.#partitionAbort.set(tp.partition, new AbortController());
        }
        this.#o.log('info', 'partitions assigned', { partitions: assignment.map((tp) => tp.partition) });
        try {
          consumer.assign(assignment);
          if (this.#paused) consumer.pause(assignment);
        } catch (e) {
          this.#o.log('warn', 'assign failed', { error: errorMessage(e) });
        }
      });
      return;
    }
    if (err.code !== KAFKA_CODES.REVOKE_PARTITIONS) return;
    const revoked = assignment.map((tp) => tp.partition);
    this.#revocations += 1;
    this.#o.log('info', 'partitions revoked', { partitions: revoked });
    for (const p of revoked) {
      this.#assigned.delete(p);
      this.#mark(p);
      // The open file's records are not committed; the next owner reads them again. Files closed
      // but still being encoded belong to the old epoch and are dropped when they come back.
      this.#epochs.set(p, (this.#epochs.get(p) ?? 0) + 1);
      this.#pipeline?.discard(p);
    }
    void this.#drainRevoked(consumer, revoked);
  }

  /**
   * Lets uploads already under way finish and commit before giving the partitions up, so the next
   * owner starts after them instead of racing them. When they take longer than closeTimeoutMs,
   * their S3 requests are aborted and awaited before unassign(): the rebalance cannot complete
   * while this member has not answered the revoke, so no upload of ours can land after the next
   * owner started (see docs/decisions/0005-archive-exactly-once.md).
   */
  async #drainRevoked(consumer: KafkaConsumer, revoked: number[]): Promise<void> {
    if (!(await this.#waitChains(revoked, this.#o.closeTimeoutMs))) {
      for (const p of revoked) {
        this.#generation.set(p, (this.#generation.get(p) ?? 0) + 1);
        this.#partitionAbort.get(p)?.abort();
      }
      this.#o.log('warn', 'uploads of revoked partitions did not finish in time; aborted, left uncommitted', { partitions: revoked, timeoutMs: this.#o.closeTimeoutMs });
      if (!(await this.#waitChains(revoked, ABORT_SETTLE_MS))) {
        this.#o.log('error', 'aborted uploads of revoked partitions did not settle; giving the partitions up anyway', { partitions: revoked });
      }
    }
    try {
      consumer.unassign();
    } catch (e) {
      this.#o.log('warn', 'unassign failed', { error: errorMessage(e) });
    }
  }

  /** Runs `action` now when no consume() call is in flight, else right after the current one returns. */
  #betweenConsumeCalls(action: () => void): void {
    if (this.#consuming) this.#betweenCalls.push(action);
    else action();
  }

  /** Records that a partition's ownership or position changed: in-flight consume results for it are stale. */
  #mark(partition: number): void {
    this.#changedAt.set(partition, ++this.#seq);
    this.#lastHanded.delete(partition);
  }

  /** The signal that aborts a partition's S3 requests: on close() giving up, or its revoke drain timing out. */
  #signalFor(partition: number): AbortSignal {
    let ctrl = this.#partitionAbort.get(partition);
    if (!ctrl) this.#partitionAbort.set(partition, (ctrl = new AbortController()));
    const signal = AbortSignal.any([this.#abort.signal, ctrl.signal]);
    // Every bad record of a file being dead-lettered listens on it while it is retried.
    setMaxListeners(0, signal);
    return signal;
  }

  async #waitChains(partitions: number[], timeoutMs: number): Promise<boolean> {
    const all = Promise.all(partitions.map((p) => this.#chains.get(p) ?? Promise.resolve())).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs)));
    const drained = await Promise.race([all, timeout]);
    clearTimeout(timer);
    return drained;
  }

  /**
   * One bounded consume call. `stamp` is #seq when the call started: a partition whose ownership or
   * position changed since (its rebalance callback ran while the binding's thread was collecting)
   * has records in this batch that must not be used.
   */
  #consume(max: number): Promise<{ msgs: Message[]; stamp: number }> {
    const consumer = this.#consumer;
    const stamp = this.#seq;
    if (!consumer) return Promise.resolve({ msgs: [], stamp });
    this.#consuming = true;
    // The held actions run before the caller sees the records (a rebalance callback, a macrotask,
    // cannot run in between).
    return consumeBatch(consumer, max)
      .finally(() => {
        this.#consuming = false;
        const held = this.#betweenCalls;
        this.#betweenCalls = [];
        for (const action of held) action();
      })
      .then((msgs) => ({ msgs, stamp }));
  }

  async #run(): Promise<void> {
    const o = this.#o;
    while (!this.#stopping) {
      this.#applyBackpressure();
      let msgs: Message[];
      let stamp: number;
      try {
        // While paused, keep polling so the group membership stays alive.
        ({ msgs, stamp } = await this.#consume(this.#paused ? 1 : o.consumeBatch));
      } catch (err) {
        if (this.#stopping) break;
        o.log('warn', 'consume failed; retrying', { error: errorMessage(err) });
        await sleep(500);
        continue;
      }
      const pipeline = this.#pipeline;
      if (!pipeline) break;
      const now = Date.now();
      this.#handle(pipeline, msgs, stamp, now);
      if (this.#stopping) break;
      pipeline.roll(undefined, 'age', now, o.rollAgeMs);
      this.#relieveMemory(pipeline);
      // Bound the records handed to encode workers and not encoded yet; librdkafka keeps fetching meanwhile.
      await pipeline.waitForCapacity(MAX_INFLIGHT_ENCODE_BYTES);
      if (this.#paused && msgs.length === 0) await sleep(100);
    }
  }

  /**
   * Hands the batch to the encode pipeline, split by partition (offset order is kept within each).
   * Records of partitions not assigned, or changed since the call started (stale), are dropped:
   * librdkafka fetches them again from the committed (or sought) position.
   */
  #handle(pipeline: EncodePipeline, msgs: Message[], stamp: number, now: number): void {
    const byPartition = new Map<number, Message[]>();
    for (const m of msgs) {
      if (!this.#assigned.has(m.partition)) continue;
      if ((this.#changedAt.get(m.partition) ?? 0) > stamp) {
        this.#stats.staleDiscarded += 1;
        continue;
      }
      const last = this.#lastHanded.get(m.partition);
      if (last !== undefined && !(m.offset > last)) {
        this.#fail(new ArchiverError('OFFSET_ORDER', `partition ${m.partition}: offset ${m.offset} received after ${last}; offsets must strictly rise, so nothing more is written or committed`));
        return;
      }
      this.#lastHanded.set(m.partition, m.offset);
      let list = byPartition.get(m.partition);
      if (!list) byPartition.set(m.partition, (list = []));
      list.push(m);
    }
    for (const [p, list] of byPartition) {
      this.#stats.consumed += list.length;
      pipeline.add(p, list, now);
    }
  }

  #relieveMemory(pipeline: EncodePipeline): void {
    const buffered = new Map(pipeline.bufferedBytes());
    let total = 0;
    for (const b of buffered.values()) total += b;
    while (total > this.#o.maxBufferedBytes) {
      let biggest: number | undefined;
      for (const [p, b] of buffered) if (biggest === undefined || b > buffered.get(biggest)!) biggest = p;
      if (biggest === undefined || buffered.get(biggest)! === 0) return;
      total -= buffered.get(biggest)!;
      buffered.set(biggest, 0);
      pipeline.roll(biggest, 'memory', Date.now());
    }
  }

  #applyBackpressure(): void {
    const consumer = this.#consumer;
    if (!consumer) return;
    const max = this.#o.maxPendingUploadBytes;
    const tps = [...this.#assigned].map((partition) => ({ topic: this.#o.topic, partition }));
    try {
      if (!this.#paused && this.#pendingBytes > max) {
        this.#paused = true;
        consumer.pause(tps);
        this.metrics.paused.set(1);
        this.#o.log('warn', 'uploads are behind; consumption paused', { pendingBytes: this.#pendingBytes });
      } else if (this.#paused && this.#pendingBytes <= max / 2) {
        this.#paused = false;
        consumer.resume(tps);
        this.metrics.paused.set(0);
        this.#o.log('info', 'consumption resumed', { pendingBytes: this.#pendingBytes });
      }
    } catch (err) {
      this.#o.log('warn', 'pause/resume failed', { error: errorMessage(err) });
    }
  }

  /** Queues an encoded file's dead-lettering, upload and commit behind the partition's earlier files. */
  #enqueue(file: EncodedFile): void {
    const p = file.partition;
    const generation = this.#generation.get(p) ?? 0;
    const signal = this.#signalFor(p);
    const body = file.body;
    const size = body?.byteLength ?? 0;
    this.#pendingBytes += size;
    this.metrics.pendingUploadBytes.set(this.#pendingBytes);
    const prev = this.#chains.get(p) ?? Promise.resolve();
    const next = prev
      .then(() => this.#ship(file, body, generation, signal))
      .catch((err: unknown) => {
        if (!signal.aborted) this.#fail(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        this.#pendingBytes -= size;
        this.metrics.pendingUploadBytes.set(this.#pendingBytes);
      });
    this.#chains.set(p, next);
  }

  #current(partition: number, generation: number): boolean {
    return !this.#fatal && (this.#generation.get(partition) ?? 0) === generation;
  }

  /**
   * Checks what is stored, dead-letters, uploads, then commits — in that order. Nothing is ever
   * deleted: a range already stored under the same name is not written again, and an object stored
   * by an earlier run or member at our start is adopted (see #adopt).
   */
  async #ship(file: EncodedFile, body: Uint8Array | undefined, generation: number, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const p = file.partition;
    if (!this.#current(p, generation)) return;
    let key: string | undefined;
    let ident: { clusterId: string; topicId: string } | undefined;
    let stored = false;
    if (body && file.hourStart !== undefined) {
      key = objectKey(o.s3.prefix, { topic: o.topic, hourStart: file.hourStart, partition: p, firstOffset: file.firstOffset, lastOffset: file.lastOffset });
      ident = await this.#retry('reading the cluster and topic id', () => this.#logIdentity(), signal);
      const found = await this.#stored(file, key, ident, signal);
      if (!this.#current(p, generation)) return;
      if (found.adopt) {
        this.#adopt(file, found.adopt);
        return;
      }
      stored = found.same;
    }
    if (file.bad.length > 0) await this.#sendDlq(file, signal);
    if (body && key !== undefined) {
      if (stored) {
        // Same name, same records: an earlier run stored exactly this range (it crashed before committing).
        o.log('info', 'range already stored; not written again', { partition: p, key });
      } else {
        if (!this.#current(p, generation)) return;
        o.log('debug', 'uploading', { partition: p, key, bytes: body.byteLength, rows: file.rows });
        const started = performance.now();
        const target = key;
        const logIdent = ident!;
        const { multipart } = await this.#retry(
          'upload',
          () =>
            putObject(this.#s3, o.s3.bucket, target, body, {
              multipartThresholdBytes: o.multipartThresholdBytes,
              multipartPartBytes: o.multipartPartBytes,
              metadata: {
                'agenttrace-first-offset': String(file.firstOffset),
                'agenttrace-last-offset': String(file.lastOffset),
                [META_CLUSTER_ID]: logIdent.clusterId,
                [META_TOPIC_ID]: logIdent.topicId,
              },
              signal,
            }),
          signal,
        );
        this.metrics.uploadSeconds.observe((performance.now() - started) / 1000);
        this.metrics.filesWritten.inc({ reason: file.reason });
        this.metrics.rowsWritten.inc(file.rows);
        this.metrics.bytesWritten.inc(body.byteLength);
        this.metrics.rawBytes.inc(file.rawBytes);
        this.#stats.files += 1;
        this.#stats.rows += file.rows;
        this.#stats.bytes += body.byteLength;
        this.#stats.rawBytes += file.rawBytes;
        o.log('info', 'uploaded', { partition: p, key, rows: file.rows, bytes: body.byteLength, multipart, reason: file.reason, first: file.firstOffset, last: file.lastOffset });
      }
    }
    if (!this.#current(p, generation)) return;
    this.#commit(p, file.lastOffset + 1);
  }

  /**
   * What the archive already holds of the file's range, in the file's hour directory (an object
   * starting at the same offset starts with the same first event, so it is in the same hour).
   * `same`: an object of exactly this range. `adopt`: another object that starts at or before our
   * first offset and covers it, stored by an earlier run that crashed before committing, or by the
   * partition's previous owner. An object starting inside our range cannot come from any run that
   * started at a committed offset: archiving past it would duplicate events, so the archiver stops.
   */
  async #stored(file: EncodedFile, key: string, ident: { clusterId: string; topicId: string }, signal: AbortSignal): Promise<{ same: boolean; adopt?: Omit<ObjectName, 'topic'> & { key: string } }> {
    const o = this.#o;
    const dir = topicPrefix(o.s3.prefix, o.topic) + hourDir(file.hourStart!) + partitionFilePrefix(file.partition);
    const keys = await this.#retry('list', () => listKeys(this.#s3, o.s3.bucket, dir, signal), signal);
    let same = false;
    const overlapping: Array<Omit<ObjectName, 'topic'> & { key: string }> = [];
    for (const other of keys) {
      if (other === key) {
        if (await this.#otherLog(other, ident, signal)) {
          this.metrics.conflicts.inc();
          throw new ArchiverError('ARCHIVE_CONFLICT', `partition ${file.partition}: ${key} is stored by another cluster or topic id; writing would replace it. Give each cluster its own --s3-prefix. Nothing is written; the archiver stops`);
        }
        same = true;
        continue;
      }
      const n = parseObjectKey(other);
      if (!n || n.partition !== file.partition) continue;
      if (n.lastOffset < file.firstOffset || n.firstOffset > file.lastOffset) continue;
      // Offsets only compare within one log. An object stamped with another cluster or topic id
      // (archived before a failover, or from the topic before it was recreated) holds other
      // records under the same numbers: neither adopted nor a conflict, it stays beside ours.
      // Unstamped objects predate the stamps and are treated as this log's.
      if (await this.#otherLog(other, ident, signal)) {
        o.log('warn', 'kept an object whose offsets overlap but which belongs to another cluster or topic id', { partition: file.partition, key: other });
        continue;
      }
      overlapping.push({ key: other, ...n });
    }
    if (overlapping.length === 0) return { same };
    overlapping.sort((a, b) => a.firstOffset - b.firstOffset);
    const first = overlapping[0]!;
    if (!same && first.firstOffset <= file.firstOffset) return { same, adopt: first };
    this.metrics.conflicts.inc();
    throw new ArchiverError(
      'ARCHIVE_CONFLICT',
      `partition ${file.partition}: offsets ${file.firstOffset}-${file.lastOffset} overlap ${overlapping.map((x) => x.key).join(', ')}${same ? ` besides ${key}` : ''}; another writer archived this partition concurrently. Nothing is deleted or written; the archiver stops`,
    );
  }

  /** True when a stored object carries the cluster or topic id of another log than ours. */
  async #otherLog(key: string, ident: { clusterId: string; topicId: string }, signal: AbortSignal): Promise<boolean> {
    const meta = await this.#retry('head', () => objectMetadata(this.#s3, this.#o.s3.bucket, key, signal), signal);
    if (meta === undefined) return false;
    const clusterId = meta[META_CLUSTER_ID];
    const topicId = meta[META_TOPIC_ID];
    return (clusterId !== undefined || topicId !== undefined) && (clusterId !== ident.clusterId || topicId !== ident.topicId);
  }

  /**
   * Takes a stored object as the archive of its range instead of writing another cut of it:
   * commits past it and moves the partition's reading position there. Everything this member
   * consumed, buffered or closed of the partition since is dropped (it belongs to the old position).
   */
  #adopt(file: EncodedFile, found: Omit<ObjectName, 'topic'> & { key: string }): void {
    const o = this.#o;
    const p = file.partition;
    const next = found.lastOffset + 1;
    this.#stats.adopted += 1;
    this.metrics.adopted.inc();
    o.log(found.firstOffset < file.firstOffset ? 'warn' : 'info', 'adopted an object stored by an earlier run or owner; resuming after it', {
      partition: p,
      key: found.key,
      ours: `${file.firstOffset}-${file.lastOffset}`,
      resumeAt: next,
    });
    this.#commit(p, next);
    this.#generation.set(p, (this.#generation.get(p) ?? 0) + 1);
    this.#epochs.set(p, (this.#epochs.get(p) ?? 0) + 1);
    this.#pipeline?.discard(p);
    this.#mark(p);
    // Like an assignment, the new position takes effect between two consume() calls (see #onRebalance).
    this.#betweenConsumeCalls(() => {
      const consumer = this.#consumer;
      // A partition being revoked is not read again by us; the next owner starts at the commit.
      if (!consumer || !this.#assigned.has(p) || this.#fatal) return;
      this.#mark(p);
      const failed = (err: unknown) =>
        this.#fail(new ArchiverError('SEEK_FAILED', `partition ${p}: could not move to offset ${next} after adopting ${found.key}: ${errorMessage(err)}`, { cause: err, retryable: true }));
      try {
        consumer.seek({ topic: o.topic, partition: p, offset: next }, 0, (err) => {
          if (err) failed(err);
        });
      } catch (err) {
        failed(err);
      }
    });
  }

  #commit(partition: number, offset: number): void {
    const consumer = this.#consumer;
    // Revoked partitions still commit here while their in-flight files drain, before unassign().
    if (!consumer) return;
    try {
      consumer.commitSync({ topic: this.#o.topic, partition, offset });
      this.#stats.commits += 1;
      this.#stats.committed[partition] = offset;
      this.#o.log('debug', 'committed', { partition, offset });
    } catch (err) {
      this.metrics.commitFailures.inc();
      this.#o.log('warn', 'offset commit failed; the range will be archived again after a restart (same or replacing object)', { partition, offset, error: errorMessage(err) });
    }
  }

  /**
   * Dead-letters the file's bad records not settled yet, each on its own through the shared
   * writer (provenance headers, forged ones dropped, size step-down, retries with backoff, give-up
   * after dlqGiveUpMs), so one undeliverable record cannot hold the partition forever. A record
   * settled (acknowledged or given up on) is never sent again. Throws only when `signal` ended it.
   */
  async #sendDlq(file: EncodedFile, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const pending = file.bad.filter((b) => !b.dlqSettled);
    if (pending.length === 0) return;
    const outcomes = await Promise.all(
      pending.map((b) =>
        this.#dlq.write({ topic: o.topic, partition: file.partition, offset: b.offset, key: b.key, value: b.value, timestamp: b.timestamp, headers: b.headers }, b.reason, b.detail, signal),
      ),
    );
    let sent = 0;
    let aborted = 0;
    outcomes.forEach((r, i) => {
      const b = pending[i]!;
      if (r.status === 'aborted') {
        aborted += 1;
        return;
      }
      b.dlqSettled = true;
      if (r.status === 'given-up') {
        this.#giveUpDlq(file.partition, b, r.why);
        return;
      }
      sent += 1;
      this.metrics.dlqRecords.inc({ reason: b.reason });
      this.#stats.dlq += 1;
      if (r.truncated) {
        this.metrics.dlqTruncated.inc();
        this.#stats.dlqTruncated += 1;
        o.log('warn', 'dead-letter record truncated to fit the dead-letter topic', { partition: file.partition, offset: b.offset, reason: b.reason, originalBytes: r.originalBytes, keptBytes: r.keptBytes });
      }
    });
    if (sent > 0) o.log('info', 'dead-lettered', { partition: file.partition, records: sent, dlqTopic: o.dlqTopic });
    if (aborted > 0) {
      throw new ArchiverError('DLQ_FAILED', `${aborted} of ${pending.length} dead-letter records of partition ${file.partition} were abandoned (archiver closed or partition revoked)`, { retryable: true });
    }
  }

  #giveUpDlq(partition: number, b: BadRecord, why: string): void {
    this.metrics.dlqGivenUp.inc({ reason: b.reason });
    this.#stats.dlqGivenUp += 1;
    this.#o.log('error', 'gave up dead-lettering a bad record; it is skipped (the source record stays in the topic until retention removes it)', {
      topic: this.#o.topic,
      partition,
      offset: b.offset,
      reason: b.reason,
      why,
    });
  }

  /** Cluster id and topic id of the archived topic, cached for IDENTITY_TTL_MS. */
  async #logIdentity(): Promise<{ clusterId: string; topicId: string }> {
    const now = Date.now();
    if (this.#identity && now - this.#identity.at < IDENTITY_TTL_MS) return this.#identity;
    const r = await describeTopicIdentity(this.#o.kafka, this.#o.topic);
    if (r.topicId === undefined) throw new Error(`topic ${this.#o.topic} is not known to ${describeKafka(this.#o.kafka)}`);
    this.#identity = { clusterId: r.clusterId, topicId: r.topicId, at: now };
    return this.#identity;
  }

  /** Retries an S3 or DLQ operation with exponential backoff until it succeeds or `signal` gives up. */
  #retry<T>(operation: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const o = this.#o;
    return retry(
      async () => {
        if (signal.aborted) throw stopRetrying('the operation was abandoned before it succeeded (archiver closed or partition revoked)');
        return fn();
      },
      {
        retries: Infinity,
        minMs: o.retryMinMs,
        maxMs: o.retryMaxMs,
        signal,
        onFailedAttempt: (err, attempt) => this.#countRetry(operation, attempt, err),
      },
    ).catch((err: unknown) => {
      throw new ArchiverError(operation === 'dlq' ? 'DLQ_FAILED' : 'UPLOAD_FAILED', `${operation} failed: ${errorMessage(err)}`, { cause: err, retryable: true });
    });
  }

  #countRetry(operation: string, attempt: number, err: Error): void {
    this.metrics.uploadRetries.inc({ operation });
    this.#stats.uploadRetries += 1;
    this.#o.log('warn', `${operation} failed; retrying`, { attempt, error: err.message });
  }

  #fail(err: Error): void {
    if (this.#fatal) return;
    this.#fatal = err;
    this.#o.log('error', 'archiver stopped after an unrecoverable failure', { error: err.message });
    this.#stopping = true;
    this.#onFailed(err);
  }

  #updateLag(): void {
    const consumer = this.#consumer;
    if (!consumer) return;
    for (const p of this.#assigned) {
      try {
        const w = consumer.getWatermarkOffsets(this.#o.topic, p);
        if (typeof w.highOffset === 'number' && w.highOffset >= 0) this.#high.set(p, w.highOffset);
      } catch {
        // Not known yet (no fetch answered); try again on the next tick.
      }
      const high = this.#high.get(p);
      const committed = this.#stats.committed[p];
      if (high !== undefined && committed !== undefined) this.metrics.lag.set({ partition: String(p) }, Math.max(0, high - committed));
    }
  }
}
