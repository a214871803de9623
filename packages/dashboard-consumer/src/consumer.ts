import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, LibrdKafkaError, Message, TopicPartition } from '@confluentinc/kafka-javascript';
import { parseEvent } from '@agenttrace/contract';
import {
  DeadLetterWriter,
  KAFKA_CODES,
  KafkaAdmin,
  TOPIC_METADATA_REFRESH_MS,
  backoffMs,
  connectClient,
  consumeBatch,
  groupConsumerConfig,
  describeKafka,
  describeTopicIdentity,
  disconnectWithTimeout,
  preloadProtocolAdmin,
  errorMessage,
  kafkaError,
  setTimeoutOnlyForFirstMessage,
  sleep,
  type KafkaTopicIdentity,
} from '@agenttrace/common';
import { AlertDispatcher, type Alert } from './alerts.js';
import { buildPlan, dropApplied, type GoodRecord, type SkippedRecord } from './batch.js';
import { DashboardError } from './errors.js';
import { KafkaSender } from './kafka-sender.js';
import { DashboardMetrics, MetricsServer } from './metrics.js';
import { resolveDashboardOptions, type DashboardConsumerOptions, type LogEntry, type ResolvedDashboardOptions } from './options.js';
import { RedisStore, isConnectionError } from './redis-store.js';

const OFFSET_BEGINNING = -2;
const OFFSET_END = -1;
/** The group's committed offset (auto.offset.reset where there is none). */
const OFFSET_STORED = -1000;

/** Counters of what the consumer did since start(), for tests and status lines. */
export interface DashboardStats {
  applied: number;
  duplicates: number;
  deadLettered: number;
  /** Bad records given up on (the DLQ refused even an empty value, or kept failing for dlqGiveUpMs): skipped. */
  dlqGivenUp: number;
  batches: number;
  alertsFired: number;
  assigned: number[];
  paused: boolean;
  redisReady: boolean;
  /** Why consumption stopped for good while running (offsets of another cluster or topic id), if it did. */
  halted: string | undefined;
}

interface PositionsOwner {
  clusterId: string;
  topicId: string;
}

interface Inbound {
  m: Message;
  good?: GoodRecord;
  reason?: string;
  detail?: string;
}

interface Prepared {
  good: GoodRecord[];
  skipped: SkippedRecord[];
  /** Kafka record timestamps of the good records, by "partition:offset". */
  ts: Map<string, number>;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

/**
 * Consumes agent events and keeps Redis current for live views: per-session timelines, metadata,
 * indexes and change notifications, exactly once. The next offset of every partition is stored
 * in Redis in the same Lua script as the writes it covers, and partitions resume from there on
 * assignment; Kafka commits are only a hint for lag tools.
 */
export class DashboardConsumer {
  readonly options: ResolvedDashboardOptions;
  readonly metrics: DashboardMetrics;
  readonly #store: RedisStore;
  readonly #sender: KafkaSender;
  readonly #dlq: DeadLetterWriter;
  readonly #alerts: AlertDispatcher;
  readonly #log: (entry: LogEntry) => void;
  #consumer: KafkaConsumer | undefined;
  #server: MetricsServer | undefined;
  #metricsUrl: string | undefined;
  #state: State = 'new';
  #loop: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #wake = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #assigned = new Set<number>();
  /** What the consumer waits for before it can do anything (shown by /healthz), e.g. its topic's creation. */
  #waitingFor: string | undefined;
  readonly #applied = new Map<number, number>();
  readonly #committed = new Map<number, number>();
  #rebalanceGen = 0;
  #paused = false;
  #lastRedisLog = 0;
  /** The cluster id and topic id the stored offsets were checked to belong to. */
  #owner: PositionsOwner | undefined;
  /** Where partitions without a stored offset start: options.startFrom, or the reset position. */
  #startFrom: 'earliest' | 'latest' | 'committed';
  #halted: string | undefined;
  readonly #stats = { applied: 0, duplicates: 0, deadLettered: 0, dlqGivenUp: 0, batches: 0, alertsFired: 0 };

  constructor(options: DashboardConsumerOptions = {}) {
    this.options = resolveDashboardOptions(options);
    const o = this.options;
    this.#startFrom = o.startFrom;
    this.#log = o.onLog ?? (() => undefined);
    this.metrics = new DashboardMetrics(() => this.#lag(), { group: o.group });
    this.#store = new RedisStore(o.redisUrl, o.redisPrefix, o.retryMaxMs, (err) => {
      this.metrics.redisUp.set(0);
      if (Date.now() - this.#lastRedisLog > 10_000) {
        this.#lastRedisLog = Date.now();
        this.#log({ level: 'warn', message: `${this.#store.description}: ${errorMessage(err)}` });
      }
    });
    this.#sender = new KafkaSender(o.kafka);
    this.#dlq = new DeadLetterWriter({
      topic: o.dlqTopic,
      consumer: o.group,
      send: (r) => this.#sender.sendRecord(r),
      backoff: { minMs: o.retryMinMs, maxMs: o.retryMaxMs },
      giveUpAfterMs: o.dlqGiveUpMs,
      onRetry: (err) => this.#log({ level: 'warn', message: `dead-lettering to ${o.dlqTopic} failed, retrying: ${errorMessage(err)}` }),
    });
    this.#alerts = new AlertDispatcher({
      sender: this.#sender,
      store: this.#store,
      alertsTopic: o.alertsTopic,
      webhookUrl: o.webhookUrl,
      webhookRetries: o.webhookRetries,
      webhookTimeoutMs: o.webhookTimeoutMs,
      maxQueued: o.maxQueuedAlerts,
      onDelivered: (sink, ok) => this.metrics.alertsDelivered.inc({ sink, result: ok ? 'ok' : 'failed' }),
      log: (e) => this.#log(e),
    });
  }

  /** http://host:port of the metrics server once started (undefined when it is off). */
  get metricsUrl(): string | undefined {
    return this.#metricsUrl;
  }

  stats(): DashboardStats {
    return { ...this.#stats, assigned: [...this.#assigned].sort((a, b) => a - b), paused: this.#paused, redisReady: this.#store.ready, halted: this.#halted };
  }

  /** Connects to Redis and Kafka, starts the metrics server and the consume loop. */
  async start(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') throw new DashboardError('CLOSED', 'this consumer was closed; create a new one');
    if (this.#state !== 'new') throw new DashboardError('ALREADY_STARTED', 'start() was already called');
    this.#state = 'starting';
    const o = this.options;
    // Needed for the positions check below; loads while Redis and Kafka answer.
    preloadProtocolAdmin();
    try {
      if (o.metricsPort !== false) {
        this.#server = new MetricsServer(this.metrics.registry, () => this.#health());
        const addr = await this.#server.listen(o.metricsPort, o.metricsHost);
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        this.#metricsUrl = `http://${host}:${addr.port}`;
      }
      await this.#store.connect(o.startTimeoutMs);
      this.metrics.redisUp.set(1);
      this.#checkOpen();
      await this.#sender.connect(o.startTimeoutMs);
      this.#checkOpen();
      if (o.ensureTopics) await this.#ensureTopics();
      this.#checkOpen();
      const identity = await this.#startIdentity();
      this.#checkOpen();
      // A topic that does not exist yet is checked when its partitions are first assigned.
      if (identity.topicId !== undefined) await this.#checkPositions(identity);
      this.#checkOpen();
      await this.#connectConsumer();
      this.#checkOpen();
    } catch (err) {
      await this.#shutdown();
      throw err;
    }
    this.#state = 'running';
    this.#timers.push(setInterval(() => this.#commitHint(), o.commitIntervalMs));
    this.#timers.push(setInterval(() => void this.#sweepOutbox(60_000), 30_000));
    this.#timers.push(setInterval(() => void this.#prune(), 10 * 60_000));
    if (o.alerts && o.alerts.idleMs !== false) this.#timers.push(setInterval(() => void this.#checkIdle(), o.alerts.idleCheckIntervalMs));
    for (const t of this.#timers) t.unref();
    // Alerts a previous run decided but did not finish delivering.
    void this.#sweepOutbox(10_000);
    this.#loop = this.#run();
    this.#log({
      level: 'info',
      message: `consuming ${o.topic} as group ${o.group} from ${describeKafka(o.kafka)} into ${this.#store.description}`,
      metrics: this.#metricsUrl,
    });
  }

  /** Stops intake, finishes (or abandons, if Redis is down) the batch in hand, flushes alerts and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasRunning = this.#state === 'running';
    this.#state = 'closing';
    this.#wake.abort();
    for (const t of this.#timers) clearInterval(t);
    if (this.#loop) await this.#loop;
    if (wasRunning) {
      this.#commitHint();
      await this.#alerts.close(5000);
    }
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closing';
    const c = this.#consumer;
    if (c) {
      // The consumer stays reachable while disconnecting: leaving the group runs the revoke
      // callback, which must unassign on it or the disconnect waits for nothing.
      await disconnectWithTimeout(c, 10_000);
      this.#consumer = undefined;
    }
    await this.#sender.close(5000).catch(() => undefined);
    await this.#server?.close();
    await this.#store.close();
    this.#state = 'closed';
  }

  #checkOpen(): void {
    if ((this.#state as State) !== 'starting') throw new DashboardError('CLOSED', 'closed while starting');
  }

  #health(): { ok: boolean; [k: string]: unknown } {
    return {
      ok: this.#state === 'running' && this.#halted === undefined && this.#waitingFor === undefined,
      ...(this.#waitingFor ? { waiting: this.#waitingFor } : {}),
      state: this.#state,
      ...(this.#halted ? { halted: this.#halted } : {}),
      redis: this.#store.ready ? 'up' : 'down',
      paused: this.#paused,
      assigned: [...this.#assigned].sort((a, b) => a - b),
    };
  }

  async #ensureTopics(): Promise<void> {
    const admin = new KafkaAdmin(this.options.kafka);
    try {
      for (const topic of [this.options.dlqTopic, this.options.alertsTopic]) {
        try {
          await admin.ensureTopic({ topic, num_partitions: 3, replication_factor: -1 });
        } catch (err) {
          // Auto-creation or an operator may still provide it; producing will say if not.
          this.#log({ level: 'warn', message: `could not create topic ${topic}: ${errorMessage(err)}` });
        }
      }
    } finally {
      admin.close();
    }
  }

  async #connectConsumer(): Promise<void> {
    const o = this.options;
    const conf: Record<string, unknown> = {
      // Bounded prefetch: backpressure instead of an unbounded in-memory backlog.
      ...groupConsumerConfig(o.kafka, { clientId: `${o.kafka.clientId ?? 'agenttrace-dashboard'}-consumer`, group: o.group, prefetchKbytes: 16_384, sessionTimeoutMs: o.sessionTimeoutMs }),
      // Eager assignment: every assignment passes through rebalance_cb, where Redis' offsets are applied.
      'partition.assignment.strategy': 'range',
      rebalance_cb: (err: LibrdKafkaError, assignment: TopicPartition[]) => this.#onRebalance(err, assignment),
      ...o.consumer,
    };
    if (o.instanceId) conf['group.instance.id'] = o.instanceId;
    const consumer = new Kafka.KafkaConsumer(conf as never, { 'auto.offset.reset': 'earliest' });
    consumer.on('event.error', (err) => this.#log({ level: 'warn', message: `Kafka consumer: ${errorMessage(err)}` }));
    await connectClient(consumer, { timeoutMs: o.startTimeoutMs, wrapError: (err, background) => kafkaError('connecting the consumer', o.kafka, err, background) });
    consumer.setDefaultConsumeTimeout(100);
    // Wait only for the first record of a batch, then take what is already fetched: low latency at low rates.
    setTimeoutOnlyForFirstMessage(consumer);
    this.#consumer = consumer;
    consumer.subscribe([o.topic]);
    await this.#checkTopic();
  }

  /**
   * A consumer subscribed to a topic that does not exist yet idles quietly until it appears: say
   * so once, and let /healthz name what it waits for until partitions arrive.
   */
  async #checkTopic(): Promise<void> {
    const admin = new KafkaAdmin(this.options.kafka);
    try {
      if ((await admin.partitionCount(this.options.topic)) !== undefined) return;
      this.#waitingFor = `topic ${this.options.topic} to be created`;
      this.#log({ level: 'warn', message: `waiting for topic ${this.options.topic} to be created; it is picked up within ${TOPIC_METADATA_REFRESH_MS / 1000} s of its creation` });
    } catch (err) {
      this.#log({ level: 'warn', message: `could not check that topic ${this.options.topic} exists: ${errorMessage(err)}` });
    } finally {
      admin.close();
    }
  }

  #onRebalance(err: LibrdKafkaError | undefined, assignment: TopicPartition[]): void {
    const gen = ++this.#rebalanceGen;
    if (err?.code === KAFKA_CODES.ASSIGN_PARTITIONS) {
      this.metrics.rebalances.inc({ kind: 'assign' });
      void this.#assign(gen, assignment);
      return;
    }
    this.metrics.rebalances.inc({ kind: 'revoke' });
    this.#commitHint();
    this.#assigned.clear();
    try {
      this.#consumer?.unassign();
    } catch {
      // Not connected any more: nothing to give back.
    }
  }

  /**
   * The cluster and topic ids at start, retried like the other start-up steps while Kafka is
   * unreachable (a broker restarting), until startTimeoutMs; refused credentials fail at once.
   */
  async #startIdentity(): Promise<KafkaTopicIdentity> {
    const o = this.options;
    const deadline = Date.now() + o.startTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await describeTopicIdentity(o.kafka, o.topic, Math.max(1000, Math.min(10_000, deadline - Date.now())));
      } catch (err) {
        const wait = this.#backoff(attempt);
        if ((err as { retryable?: boolean }).retryable === false || this.#state !== 'starting' || Date.now() + wait > deadline) throw err;
        if (attempt === 0) this.#log({ level: 'warn', message: `${errorMessage(err)}; retrying for up to ${Math.round((deadline - Date.now()) / 1000)} s` });
        await this.#sleep(wait, false);
      }
    }
  }

  /**
   * Assigns partitions at the offsets Redis holds (the truth), retrying while Redis is down. The
   * topic's identity is read again first: the topic may have been created or recreated since start.
   */
  async #assign(gen: number, assignment: TopicPartition[]): Promise<void> {
    const o = this.options;
    if (this.#halted !== undefined) return;
    for (let attempt = 0; ; attempt++) {
      if (this.#superseded(gen)) return;
      try {
        const identity = await describeTopicIdentity(o.kafka, o.topic, 10_000);
        if (identity.topicId === undefined) throw new Error(`topic ${o.topic} is not known to the cluster (yet)`);
        if (this.#owner?.clusterId !== identity.clusterId || this.#owner.topicId !== identity.topicId) await this.#checkPositions(identity);
        break;
      } catch (err) {
        if (err instanceof DashboardError && err.code === 'POSITIONS_MISMATCH') {
          this.#halt(err.message);
          return;
        }
        this.#log({ level: 'warn', message: `checking whose offsets Redis holds failed, retrying: ${errorMessage(err)}` });
        await this.#sleep(this.#backoff(attempt), false);
      }
    }
    let stored: Map<number, number> | undefined;
    for (let attempt = 0; stored === undefined; attempt++) {
      if (this.#superseded(gen)) return;
      try {
        stored = await this.#store.readOffsets(o.group, o.topic);
      } catch (err) {
        this.#log({ level: 'warn', message: `reading offsets from Redis failed, retrying: ${errorMessage(err)}` });
        await this.#sleep(this.#backoff(attempt), false);
      }
    }
    const consumer = this.#consumer;
    if (this.#superseded(gen) || consumer === undefined) return;
    const list = assignment.map((tp) => ({
      topic: tp.topic,
      partition: tp.partition,
      offset: stored.get(tp.partition) ?? (this.#startFrom === 'earliest' ? OFFSET_BEGINNING : this.#startFrom === 'latest' ? OFFSET_END : OFFSET_STORED),
    }));
    try {
      consumer.assign(list);
    } catch (err) {
      this.#log({ level: 'warn', message: `assigning partitions failed: ${errorMessage(err)}` });
      return;
    }
    this.#paused = false;
    this.metrics.paused.set(0);
    if (list.length > 0) this.#waitingFor = undefined;
    for (const tp of list) {
      this.#assigned.add(tp.partition);
      if (tp.offset >= 0) this.#applied.set(tp.partition, tp.offset);
    }
    this.#log({ level: 'info', message: `assigned ${o.topic} partitions ${list.map((l) => `${l.partition}@${l.offset >= 0 ? l.offset : this.#startFrom}`).join(', ') || '(none)'}` });
  }

  /** True when a newer rebalance or closing made an assignment in progress moot. */
  #superseded(gen: number): boolean {
    return gen !== this.#rebalanceGen || this.#consumer === undefined || this.#state === 'closing' || this.#halted !== undefined;
  }

  /**
   * Makes sure the offsets stored for this group and topic belong to the cluster and topic id
   * being read, and stamps them with both. The rule (docs/dashboard-consumer.md, "Stored
   * positions"): offsets of another cluster or topic id are never used; without resetPositions
   * this throws POSITIONS_MISMATCH, with it they are dropped and partitions start there. Offsets
   * stored without ids (by versions before ids were stored) are adopted once, with a log line,
   * unless one of them lies past the end of its partition here, which proves they are foreign.
   */
  async #checkPositions(identity: KafkaTopicIdentity): Promise<void> {
    const o = this.options;
    const owner: PositionsOwner = { clusterId: identity.clusterId, topicId: identity.topicId ?? '' };
    const where = `the offsets of group ${o.group} for topic ${o.topic} in ${this.#store.description} (prefix ${this.#store.prefix})`;
    const here = `${describeKafka(o.kafka)} is cluster ${owner.clusterId} with topic id ${owner.topicId}`;
    let r = await this.#store.claimPositions(o.group, o.topic, owner, 'claim');
    let mismatch: string | undefined;
    if (r.kind === 'legacy') {
      const impossible = await this.#impossibleOffsets(identity);
      if (impossible) mismatch = `${where} carry no cluster or topic id and cannot be this topic's: ${impossible}; ${here}`;
      else {
        r = await this.#store.claimPositions(o.group, o.topic, owner, 'adopt');
        if (r.kind === 'adopted') {
          this.#log({ level: 'warn', message: `${where} carry no cluster or topic id (stored by an earlier version): adopted them as cluster ${owner.clusterId}, topic id ${owner.topicId}` });
        }
      }
    }
    if (r.kind === 'mismatch') {
      mismatch = `${where} belong to cluster ${r.clusterId || '(none)'}, topic id ${r.topicId || '(none)'}, but ${here}`;
    }
    if (mismatch !== undefined) {
      if (o.resetPositions === undefined) {
        throw new DashboardError(
          'POSITIONS_MISMATCH',
          `${mismatch}. Refusing to use them (they would make this topic's records look like duplicates): start with --reset-positions=earliest or --reset-positions=latest to drop them, or use another --group or --redis-prefix`,
        );
      }
      const reset = await this.#store.claimPositions(o.group, o.topic, owner, 'reset');
      this.#startFrom = o.resetPositions;
      this.#applied.clear();
      this.#committed.clear();
      const where = `the ${o.resetPositions === 'committed' ? "group's committed" : o.resetPositions} offset`;
      this.#log({
        level: 'warn',
        message:
          reset.kind === 'reset'
            ? `${mismatch}; reset as asked: dropped them, every partition starts from ${where}`
            : `${mismatch}; another instance of the group has just reset them for this cluster and topic: using its offsets, partitions without one start from ${where}`,
      });
    } else if (r.kind === 'fresh') {
      this.#log({ level: 'debug', message: `${where}: none stored yet; stamped with cluster ${owner.clusterId}, topic id ${owner.topicId}` });
    }
    this.#owner = owner;
  }

  /** Why the stored (id-less) offsets cannot belong to this topic, or undefined when they can. */
  async #impossibleOffsets(identity: KafkaTopicIdentity): Promise<string | undefined> {
    const o = this.options;
    const stored = await this.#store.readOffsets(o.group, o.topic);
    const count = identity.partitions ?? 0;
    const beyond = [...stored.keys()].filter((p) => p >= count);
    if (beyond.length > 0) return `partition ${beyond[0]} has an offset but the topic has ${count} partitions`;
    const admin = new KafkaAdmin(o.kafka);
    try {
      const wm = await admin.watermarks(o.topic, [...stored.keys()]);
      for (const [p, next] of stored) {
        const high = wm.get(p)?.high;
        if (high !== undefined && next > high) return `partition ${p} is stored at offset ${next}, past its end (${high})`;
      }
    } finally {
      admin.close();
    }
    return undefined;
  }

  /** Stops consuming for good while running: the stored offsets are another log's. Says so once; /healthz turns not-ok. */
  #halt(message: string): void {
    if (this.#halted !== undefined) return;
    this.#halted = message;
    this.#assigned.clear();
    try {
      this.#consumer?.unassign();
    } catch {
      // Not connected any more: nothing to give back.
    }
    this.#log({ level: 'error', message: `consumption stopped: ${message}` });
  }

  #backoff(attempt: number): number {
    return backoffMs(attempt, { minMs: this.options.retryMinMs, maxMs: this.options.retryMaxMs });
  }

  /** Sleeps; when `abortable`, close() cuts it short. */
  #sleep(ms: number, abortable = true): Promise<void> {
    return sleep(ms, abortable ? this.#wake.signal : undefined);
  }

  async #consume(): Promise<Message[]> {
    const c = this.#consumer;
    if (!c) return [];
    return consumeBatch(c, this.options.batchSize);
  }

  async #run(): Promise<void> {
    // Two batches at most: while one is written to Redis the next is fetched and validated, which
    // keeps both the JS thread and Redis busy. Writes stay strictly in order.
    let writing: Promise<void> | undefined;
    while (this.#state === 'running') {
      let msgs: Message[];
      try {
        msgs = await this.#consume();
      } catch (err) {
        this.#log({ level: 'warn', message: `consuming failed: ${errorMessage(err)}` });
        await this.#sleep(200);
        continue;
      }
      if (msgs.length === 0) {
        if (writing) await writing;
        writing = undefined;
        continue;
      }
      const prepared = await this.#prepare(msgs);
      if (writing) await writing;
      writing = prepared ? this.#write(prepared) : undefined;
    }
    if (writing) await writing;
  }

  /** Validates a batch and dead-letters its bad records; undefined when closing interrupted it. */
  async #prepare(msgs: Message[]): Promise<Prepared | undefined> {
    const o = this.options;
    const good: GoodRecord[] = [];
    const bad: Inbound[] = [];
    const ts = new Map<string, number>();
    for (const m of msgs) {
      const r = parseEvent(m.value, { key: m.key ?? null, maxBytes: o.maxRecordBytes });
      if (r.ok) {
        good.push({ partition: m.partition, offset: m.offset, value: m.value!, event: r.event });
        if (m.timestamp !== undefined) ts.set(`${m.partition}:${m.offset}`, m.timestamp);
      } else bad.push({ m, reason: r.reason, detail: r.detail });
    }
    // Dead-letter first: once the offset moves past a bad record, the DLQ must already have it.
    if (bad.length > 0 && !(await this.#deadLetterAll(bad))) return undefined;
    return { good, skipped: bad.map((b) => ({ partition: b.m.partition, offset: b.m.offset })), ts };
  }

  async #write(prepared: Prepared): Promise<void> {
    try {
      await this.#apply(prepared);
    } catch (err) {
      if (this.#state !== 'running') return;
      // #apply retries what can be retried; anything else is a bug worth seeing, not a reason to stop.
      this.#log({ level: 'error', message: `batch failed unexpectedly: ${errorMessage(err)}` });
    }
  }

  async #apply({ good: initialGood, skipped: initialSkipped, ts }: Prepared): Promise<void> {
    let good = initialGood;
    let skipped = initialSkipped;
    for (let attempt = 0; good.length + skipped.length > 0; ) {
      if (this.#state !== 'running' || this.#halted !== undefined) return; // abandoned: nothing was stored, Kafka redelivers it
      const plan = buildPlan(good, skipped, this.#planContext(), this.#store.prefix);
      const t0 = performance.now();
      let result;
      try {
        result = await this.#store.apply(plan);
      } catch (err) {
        if (!isConnectionError(err) && good.length + skipped.length > 1) {
          // Something in this batch is refused by Redis itself (e.g. a key of the wrong type): apply
          // record by record so only the offending records are dead-lettered and the rest go on.
          await this.#applyOneByOne(good, skipped, ts);
          return;
        }
        if (!isConnectionError(err)) {
          await this.#rejectByRedis(good, skipped, err);
          return;
        }
        this.#redisDown(err, attempt);
        await this.#sleep(this.#backoff(attempt));
        attempt += 1;
        continue;
      }
      this.metrics.redisWrite.observe((performance.now() - t0) / 1000);
      if (result.kind === 'foreign') {
        const o = this.options;
        this.#halt(
          `the offsets of group ${o.group} for topic ${o.topic} in Redis were taken over by cluster ${result.clusterId || '(none)'}, topic id ${result.topicId || '(none)'} while this instance reads cluster ${this.#owner?.clusterId ?? '?'}, topic id ${this.#owner?.topicId ?? '?'}; nothing of this batch was written`,
        );
        return;
      }
      if (result.kind === 'stale') {
        const before = good.length;
        good = dropApplied(good, result.stored);
        skipped = dropApplied(skipped, result.stored);
        this.#stats.duplicates += before - good.length;
        this.metrics.events.inc({ result: 'duplicate' }, before - good.length);
        for (const [p, next] of result.stored) if ((this.#applied.get(p) ?? -1) < next) this.#applied.set(p, next);
        continue;
      }
      this.#applyDone(plan.parts, good, result.alerts, ts);
      return;
    }
  }

  #planContext() {
    const o = this.options;
    return { keys: this.#store.keys, topic: o.topic, group: o.group, ttlSeconds: o.ttlSeconds, rules: o.alerts, recentAlerts: o.recentAlerts, now: Date.now(), prices: o.prices, owner: this.#owner };
  }

  #applyDone(parts: Array<[number, number, number]>, good: GoodRecord[], alerts: string[], ts: Map<string, number>): void {
    const now = Date.now();
    if (this.#paused) this.#resumeAfterOutage();
    this.metrics.redisUp.set(1);
    this.metrics.batches.inc();
    this.#stats.batches += 1;
    this.#stats.applied += good.length;
    this.metrics.events.inc({ result: 'applied' }, good.length);
    for (const g of good) {
      const evMs = Date.parse(g.event.timestamp);
      if (!Number.isNaN(evMs)) this.metrics.eventToRedis.observe(Math.max(0, now - evMs) / 1000);
      const rec = ts.get(`${g.partition}:${g.offset}`);
      if (rec !== undefined && rec > 0) this.metrics.recordToRedis.observe(Math.max(0, now - rec) / 1000);
    }
    for (const [p, , next] of parts) if ((this.#applied.get(p) ?? -1) < next) this.#applied.set(p, next);
    for (const a of alerts) {
      this.#stats.alertsFired += 1;
      try {
        this.metrics.alertsFired.inc({ rule: (JSON.parse(a) as Alert).rule });
      } catch {
        this.metrics.alertsFired.inc({ rule: 'unknown' });
      }
      this.#alerts.enqueue(a);
    }
  }

  #redisDown(err: unknown, attempt: number): void {
    this.metrics.redisUp.set(0);
    this.metrics.redisRetries.inc();
    if (!this.#paused) {
      this.#paused = true;
      this.metrics.paused.set(1);
      try {
        this.#consumer?.pause([...this.#assigned].map((partition) => ({ topic: this.options.topic, partition })));
      } catch {
        // Assignment changed under us; the held batch is retried regardless.
      }
      this.#log({ level: 'warn', message: `Redis unavailable (${errorMessage(err)}); consumption paused, retrying with backoff` });
    } else if (attempt % 10 === 9) {
      this.#log({ level: 'warn', message: `Redis still unavailable after ${attempt + 1} attempts: ${errorMessage(err)}` });
    }
  }

  #resumeAfterOutage(): void {
    this.#paused = false;
    this.metrics.paused.set(0);
    try {
      this.#consumer?.resume([...this.#assigned].map((partition) => ({ topic: this.options.topic, partition })));
    } catch {
      // Partitions reassigned meanwhile start unpaused.
    }
    this.#log({ level: 'info', message: 'Redis is back; consumption resumed' });
  }

  async #applyOneByOne(good: GoodRecord[], skipped: SkippedRecord[], ts: Map<string, number>): Promise<void> {
    type Item = { g?: GoodRecord; s?: SkippedRecord; partition: number; offset: number };
    const items: Item[] = [...good.map((g) => ({ g, partition: g.partition, offset: g.offset })), ...skipped.map((s) => ({ s, partition: s.partition, offset: s.offset }))];
    items.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    for (const it of items) {
      for (let attempt = 0; ; attempt++) {
        if (this.#state !== 'running') return;
        const g = it.g ? [it.g] : [];
        const s = it.s ? [it.s] : [];
        const plan = buildPlan(g, s, this.#planContext(), this.#store.prefix);
        try {
          const r = await this.#store.apply(plan);
          if (r.kind === 'ok') this.#applyDone(plan.parts, g, r.alerts, ts);
          if (r.kind === 'foreign') {
            this.#halt(`the offsets of group ${this.options.group} for topic ${this.options.topic} in Redis now belong to cluster ${r.clusterId}, topic id ${r.topicId}`);
            return;
          }
          break;
        } catch (err) {
          if (isConnectionError(err)) {
            this.#redisDown(err, attempt);
            await this.#sleep(this.#backoff(attempt));
            continue;
          }
          await this.#rejectByRedis(g, s, err);
          break;
        }
      }
    }
  }

  /** A single record Redis refuses to store goes to the dead-letter topic so the partition moves on. */
  async #rejectByRedis(good: GoodRecord[], skipped: SkippedRecord[], err: unknown): Promise<void> {
    const o = this.options;
    for (const g of good) {
      const fake: Message = { topic: o.topic, partition: g.partition, offset: g.offset, value: g.value, size: g.value.length, key: g.event.session_id };
      const ok = await this.#deadLetterAll([{ m: fake, reason: 'redis_rejected', detail: errorMessage(err) }]);
      if (!ok) return;
    }
    const plan = buildPlan([], [...skipped, ...good.map((g) => ({ partition: g.partition, offset: g.offset }))], this.#planContext(), this.#store.prefix);
    for (let attempt = 0; this.#state === 'running'; attempt++) {
      try {
        const r = await this.#store.apply(plan);
        if (r.kind === 'ok') this.#applyDone(plan.parts, [], [], new Map());
        if (r.kind === 'foreign') this.#halt(`the offsets of group ${o.group} for topic ${o.topic} in Redis now belong to cluster ${r.clusterId}, topic id ${r.topicId}`);
        return;
      } catch (e) {
        if (!isConnectionError(e)) {
          this.#log({ level: 'error', message: `Redis refuses even an offset update: ${errorMessage(e)}` });
        }
        this.#redisDown(e, attempt);
        await this.#sleep(this.#backoff(attempt));
      }
    }
  }

  /** Produces bad records to the dead-letter topic and waits for the acks; false when closing interrupted it. */
  async #deadLetterAll(bad: Inbound[]): Promise<boolean> {
    const results = await Promise.all(bad.map((b) => this.#deadLetter(b)));
    return results.every(Boolean);
  }

  /**
   * Dead-letters one bad record through the shared writer (provenance headers, forged ones
   * dropped, size step-down, give-up rule). True once the record is settled (in the DLQ, or given
   * up on and skipped); false when closing interrupted it (it is read again on the next start).
   */
  async #deadLetter(b: Inbound): Promise<boolean> {
    const m = b.m;
    const reason = b.reason ?? 'unknown';
    // The record's timestamp is left out: the dead-letter copy is stamped with the time it was dead-lettered.
    const outcome = await this.#dlq.write({ topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers }, reason, b.detail ?? '', this.#wake.signal);
    if (outcome.status === 'aborted') return false;
    if (outcome.status === 'given-up') {
      this.#stats.dlqGivenUp += 1;
      this.#log({
        level: 'error',
        message: `gave up dead-lettering ${m.topic}/${m.partition}@${m.offset} (${reason}); it is skipped (the source record stays in the topic until retention removes it): ${outcome.why}`,
      });
      return true;
    }
    this.#stats.deadLettered += 1;
    this.metrics.dlq.inc({ reason });
    this.metrics.events.inc({ result: 'dlq' });
    if (outcome.truncated) {
      this.#log({ level: 'warn', message: `dead-letter copy of ${m.topic}/${m.partition}@${m.offset} truncated to ${outcome.keptBytes} of ${outcome.originalBytes} bytes to fit ${this.options.dlqTopic}` });
    }
    this.#log({ level: 'debug', message: `dead-lettered ${m.topic}/${m.partition}@${m.offset}: ${reason}` });
    return true;
  }

  #commitHint(): void {
    const c = this.#consumer;
    if (!c) return;
    const list: Array<{ topic: string; partition: number; offset: number }> = [];
    for (const p of this.#assigned) {
      const next = this.#applied.get(p);
      if (next === undefined || this.#committed.get(p) === next) continue;
      list.push({ topic: this.options.topic, partition: p, offset: next });
      this.#committed.set(p, next);
    }
    if (list.length === 0) return;
    try {
      c.commit(list);
    } catch {
      // Only a hint for lag tools; Redis holds the real position.
    }
  }

  async #lag(): Promise<Array<{ topic: string; partition: number; lag: number }>> {
    const c = this.#consumer;
    const topic = this.options.topic;
    if (!c) return [];
    const out: Array<{ topic: string; partition: number; lag: number }> = [];
    await Promise.all(
      [...this.#assigned].map(async (p) => {
        const wm = await new Promise<{ lowOffset: number; highOffset: number } | undefined>((res) => {
          try {
            c.queryWatermarkOffsets(topic, p, 2000, (err, w) => res(err ? undefined : w));
          } catch {
            res(undefined);
          }
        });
        if (!wm) return;
        const pos = this.#applied.get(p) ?? wm.lowOffset;
        out.push({ topic, partition: p, lag: Math.max(0, wm.highOffset - Math.max(pos, wm.lowOffset)) });
      }),
    );
    return out.sort((a, b) => a.partition - b.partition);
  }

  async #sweepOutbox(minAgeMs: number): Promise<void> {
    if (this.#state !== 'running' || this.options.alerts === false) return;
    try {
      await this.#alerts.sweep(minAgeMs);
    } catch (err) {
      this.#log({ level: 'debug', message: `alert outbox sweep failed: ${errorMessage(err)}` });
    }
  }

  async #prune(): Promise<void> {
    if (this.#state !== 'running') return;
    try {
      await this.#store.pruneIndexes(Date.now() - this.options.ttlSeconds * 1000, 1000);
    } catch (err) {
      this.#log({ level: 'debug', message: `index pruning failed: ${errorMessage(err)}` });
    }
  }

  /** Idle alerts compare event time with the clock, so they only run while this instance is caught up. */
  async #checkIdle(): Promise<void> {
    const rules = this.options.alerts;
    if (this.#state !== 'running' || !rules || rules.idleMs === false || this.#paused || this.#assigned.size === 0) return;
    try {
      const lag = await this.#lag();
      if (lag.length < this.#assigned.size || lag.some((l) => l.lag > this.options.batchSize)) return;
      const now = Date.now();
      const cutoff = now - rules.idleMs;
      // Only sessions that went quiet in the last day: a fresh consumer must not alert on all history.
      const ids = await this.#store.idleCandidates(cutoff - 24 * 3600_000, cutoff, 500);
      const owned = [...this.#assigned];
      for (const id of ids) {
        const json = await this.#store.fireIdle(id, cutoff, owned, new Date(now).toISOString(), Math.round(rules.idleMs / 1000), this.options.recentAlerts, this.options.topic);
        if (json) {
          this.#stats.alertsFired += 1;
          this.metrics.alertsFired.inc({ rule: 'idle' });
          this.#alerts.enqueue(json);
        }
      }
    } catch (err) {
      this.#log({ level: 'debug', message: `idle check failed: ${errorMessage(err)}` });
    }
  }
}
