import Kafka from '@confluentinc/kafka-javascript';
import type { DeliveryReport, KafkaConsumer, LibrdKafkaError, Message, Producer } from '@confluentinc/kafka-javascript';
import { KAFKA_CODES, backoffMs, describeKafka, errorMessage, produceWhenRoom, setTimeoutOnlyForFirstMessage, sleep, unreachableBrokers } from '@agenttrace/common';
import { Checkpointer } from './checkpointer.js';
import { KafmirrorError } from './errors.js';
import { ClusterAdmin, clientConfig, clusterError, connectClient, consumeBatch, describeCluster, disconnect, incrementalAssign, promisify0, type Cluster } from './kafka-io.js';
import type { LagSnapshot } from './lag.js';
import { LagSampler } from './lag-sampler.js';
import { MirrorMetrics } from './metrics.js';
import { resolveReplicatorOptions, type ReplicatorOptions, type ResolvedReplicatorOptions } from './options.js';
import { PartitionTable, type MirroredPartition } from './partitions.js';
import { cameFrom, withProvenance } from './provenance.js';
import { encodeOffset, ensureStateTopic, latestOffsets, offsetKey, readStateTopic, type StoredOffset } from './state-topics.js';
import { TopicProvisioner } from './topic-provisioner.js';

export interface ReplicatorStats {
  records: number;
  bytes: number;
  skipped: number;
  transactions: number;
  aborted: number;
  partitions: number;
  topics: string[];
}

/** Pauses of the mirroring loop after a failed batch: 400 ms doubling to 30 s, jittered (common's backoffMs). */
const LOOP_BACKOFF = { minMs: 400, maxMs: 30_000 };

type Opaque = { st: MirroredPartition; src: number; ts: number | undefined; bytes: number };

/**
 * Mirrors topics from a source to a target cluster exactly once. Each batch read from the source
 * is written to the target inside one transaction together with the next source offset of every
 * partition it touched (in the offsets topic on the target). A crash anywhere leaves either the
 * whole batch and its offsets committed, or neither; at start-up the fenced predecessor's open
 * transaction is aborted and the source is read again from the stored offsets.
 *
 * This class holds the domain loop (consume, transactional produce, commit; start, close and
 * failure handling). Finding and preparing topics is the TopicProvisioner's job, lag the
 * LagSampler's and consumer-group offset translation the Checkpointer's.
 */
export class Replicator {
  readonly options: ResolvedReplicatorOptions;
  readonly metrics = new MirrorMetrics();
  readonly #source: Cluster;
  readonly #target: Cluster;
  #sourceAdmin: ClusterAdmin | undefined;
  #targetAdmin: ClusterAdmin | undefined;
  #consumer: KafkaConsumer | undefined;
  #producer: Producer | undefined;
  readonly #parts = new PartitionTable();
  #provisioner: TopicProvisioner | undefined;
  #lagSampler: LagSampler | undefined;
  #checkpointer: Checkpointer | undefined;
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'closed' = 'new';
  #loop: Promise<void> | undefined;
  #failure: Error | undefined;
  #timers: NodeJS.Timeout[] = [];
  /** Aborted by close(), to cut a backoff pause short. */
  readonly #stopping = new AbortController();
  #reassignNeeded = false;
  #abortPending = false;
  #reportsWaiting = 0;
  #onReportsDone: (() => void) | undefined;
  #metricsPort: number | undefined;
  readonly #stats: ReplicatorStats = { records: 0, bytes: 0, skipped: 0, transactions: 0, aborted: 0, partitions: 0, topics: [] };
  #failureListeners: Array<(err: Error) => void> = [];
  readonly #debug: boolean;
  readonly #needsReports: boolean;

  constructor(options: ReplicatorOptions) {
    this.options = resolveReplicatorOptions(options);
    const o = this.options;
    this.#source = { role: 'source', alias: o.sourceAlias, conn: { clientId: 'kafmirror', ...o.source } };
    this.#target = { role: 'target', alias: o.targetAlias, conn: { clientId: 'kafmirror', ...o.target } };
    this.#debug = o.debug;
    this.#needsReports = this.options.groups.length > 0;
  }

  get transactionalId(): string {
    const o = this.options;
    return `kafmirror.${o.sourceAlias}.${o.targetAlias}.${o.instanceId}`;
  }

  get metricsPort(): number | undefined {
    return this.#metricsPort;
  }

  get stats(): ReplicatorStats {
    return { ...this.#stats, partitions: this.#parts.size, topics: this.#parts.topics() };
  }

  /** Called once if mirroring stops on an error it cannot recover from. */
  onFailure(listener: (err: Error) => void): void {
    this.#failureListeners.push(listener);
    if (this.#failure) listener(this.#failure);
  }

  /**
   * Connects to both clusters, fences any previous instance, reads the stored offsets and starts
   * mirroring. Rejects with a KafmirrorError naming the cluster when one cannot be reached.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new KafmirrorError('STATE', 'start() can be called once');
    this.#state = 'starting';
    const o = this.options;
    const log = o.log;
    try {
      // A refused connection or an unknown host is known at once; librdkafka would take ~10 s to say so.
      for (const c of [this.#source, this.#target]) {
        const problem = await unreachableBrokers(c.conn);
        if (problem !== undefined) throw new KafmirrorError(c.role === 'source' ? 'SOURCE_UNAVAILABLE' : 'TARGET_UNAVAILABLE', `${c.role} cluster "${c.alias}": cannot connect to ${describeKafka(c.conn)}: ${problem}. Is the broker running and reachable from here?`, { retryable: true });
      }
      const sourceAdmin = (this.#sourceAdmin = new ClusterAdmin(this.#source));
      const targetAdmin = (this.#targetAdmin = new ClusterAdmin(this.#target));
      this.#lagSampler = new LagSampler({ options: o, source: this.#source, sourceAdmin, partitions: this.#parts, metrics: this.metrics });
      // Check both clusters up front so the error names the one that is down.
      const [sourceTopics] = await Promise.all([sourceAdmin.listTopics(), targetAdmin.listTopics()]);
      if (o.topics) {
        const missing = o.topics.filter((t) => !sourceTopics.includes(t));
        if (missing.length > 0) {
          throw new KafmirrorError('TOPIC_NOT_FOUND', `${describeCluster(this.#source)} has no topic ${missing.map((t) => `"${t}"`).join(', ')}. Check --topics (or use --topics-regex to mirror topics as they appear).`);
        }
      }
      await ensureStateTopic(targetAdmin, o.offsetsTopic, o.replicationFactor);
      if (o.groups.length > 0) await ensureStateTopic(targetAdmin, o.checkpointsTopic, o.replicationFactor);

      const producer = new Kafka.Producer({
        ...clientConfig(this.#target, 'producer'),
        'transactional.id': this.transactionalId,
        'transaction.timeout.ms': 60_000,
        'enable.idempotence': true,
        acks: -1,
        'linger.ms': 5,
        'batch.num.messages': 10_000,
        'batch.size': 1_000_000,
        'queue.buffering.max.messages': Math.max(100_000, o.maxBatchRecords * 4),
        // Delivery reports only feed the offset map used for checkpoints; correctness does not need
        // them (a failed delivery fails the commit), and one callback per record costs throughput.
        dr_cb: this.#needsReports,
      } as Record<string, string | number | boolean>);
      if (this.#needsReports) producer.on('delivery-report', (err, report) => this.#onDelivery(err, report));
      this.#producer = producer;
      await connectClient(producer, this.#target, 'connecting the producer');
      producer.setPollInterval(5);
      // Fences an older instance with the same id and aborts the transaction it left open, so
      // the offsets read next are final.
      await promisify0((cb) => producer.initTransactions(30_000, cb)).catch((err: unknown) => {
        throw clusterError(this.#target, 'initialising transactions', err);
      });
      const stored = latestOffsets(await readStateTopic(this.#target, o.offsetsTopic));
      log('debug', 'stored offsets read', { partitions: stored.size });
      this.#provisioner = new TopicProvisioner({ options: o, source: this.#source, target: this.#target, sourceAdmin, targetAdmin, producer, stored, partitions: this.#parts });

      if (o.groups.length > 0) {
        const checkpointer = new Checkpointer({ options: o, target: this.#target, sourceAdmin, partitions: this.#parts, metrics: this.metrics, isRunning: () => this.#state === 'running' || this.#state === 'stopping' });
        this.#checkpointer = checkpointer;
        await checkpointer.connect();
      }

      const consumer = new Kafka.KafkaConsumer(
        {
          ...clientConfig(this.#source, 'consumer'),
          // Offsets live on the target; this group id is never committed to.
          'group.id': `kafmirror.${o.sourceAlias}.${o.targetAlias}.${o.instanceId}`,
          'enable.auto.commit': false,
          'enable.auto.offset.store': false,
          'isolation.level': 'read_committed',
          'fetch.wait.max.ms': 50,
          'queued.max.messages.kbytes': 65_536,
        },
        { 'auto.offset.reset': o.startFrom },
      );
      this.#consumer = consumer;
      await connectClient(consumer, this.#source, 'connecting the consumer');
      consumer.setDefaultConsumeTimeout(100);
      setTimeoutOnlyForFirstMessage(consumer);

      await this.#refresh(true);
      if (o.metricsPort !== undefined) this.#metricsPort = await this.metrics.listen(o.metricsPort, o.metricsHost);
      await this.#lagSampler.sampleEnds();
    } catch (err) {
      await this.#closeClients();
      this.#state = 'closed';
      throw err instanceof KafmirrorError ? err : new KafmirrorError('TRANSACTION_FAILED', errorMessage(err), { cause: err });
    }
    this.#state = 'running';
    log('info', `mirroring ${o.topics ? o.topics.join(',') : `/${o.topicsRegex}/`} from ${describeCluster(this.#source)} to ${describeCluster(this.#target)}`, {
      partitions: this.#parts.size,
      naming: o.naming,
      transactionalId: this.transactionalId,
    });
    const lag = this.#lagSampler;
    this.#timers.push(setInterval(() => lag.sampleLag(), o.lagIntervalMs));
    this.#timers.push(setInterval(() => void lag.sampleEnds(), o.lagIntervalMs));
    const checkpointer = this.#checkpointer;
    if (checkpointer) this.#timers.push(setInterval(() => void checkpointer.checkpoint(), o.checkpointIntervalMs));
    this.#loop = this.#run();
  }

  /** Takes on the topics and partitions the provisioner finds, and starts reading them. */
  async #refresh(initial: boolean): Promise<void> {
    const added = await this.#provisioner!.refresh(initial);
    if (added.length > 0) incrementalAssign(this.#consumer!, added);
  }

  async #run(): Promise<void> {
    const o = this.options;
    let failures = 0;
    while (this.#state === 'running') {
      try {
        if (this.#abortPending) {
          const producer = this.#producer!;
          await promisify0((cb) => producer.abortTransaction(30_000, cb));
          this.#abortPending = false;
        }
        if (this.#provisioner!.refreshDue) await this.#refresh(false);
        if (this.#reassignNeeded) this.#rewind();
        const batch = await consumeBatch(this.#consumer!, o.maxBatchRecords);
        if (batch.length > 0) await this.#transaction(batch);
        failures = 0;
      } catch (err) {
        if (err instanceof KafmirrorError && !err.retryable) {
          this.#fail(err);
          return;
        }
        const e = err as Partial<LibrdKafkaError>;
        if (e.code === KAFKA_CODES.FENCED || e.code === KAFKA_CODES.PRODUCER_FENCED) {
          this.#fail(new KafmirrorError('FENCED', `another kafmirror with transactional id "${this.transactionalId}" took over on ${describeCluster(this.#target)}; this one stops (${errorMessage(err)})`, { cause: err }));
          return;
        }
        if (e.isFatal) {
          this.#fail(new KafmirrorError('TRANSACTION_FAILED', `the producer on ${describeCluster(this.#target)} hit a fatal error: ${errorMessage(err)}. Start kafmirror again: it resumes from the stored offsets.`, { cause: err }));
          return;
        }
        failures++;
        const delay = backoffMs(failures - 1, LOOP_BACKOFF);
        o.log('warn', `mirroring failed, retrying in ${delay} ms`, { error: errorMessage(err), attempt: failures });
        // close() cuts the pause short: a stop never waits out a 30 s backoff.
        await sleep(delay, this.#stopping.signal);
      }
    }
  }

  /** Re-reads the source from the committed offsets after an aborted transaction. */
  #rewind(): void {
    const consumer = this.#consumer!;
    const parts = [...this.#parts.values()];
    consumer.unassign();
    consumer.assign(parts.map((st) => ({ topic: st.topic, partition: st.partition, offset: st.next })));
    this.#reassignNeeded = false;
  }

  /** Records not committed yet: from before the committed position they can arrive once after a rewind. */
  #fresh(batch: Message[], touched: Map<MirroredPartition, Message>): Message[] {
    return batch.filter((m) => {
      const st = this.#parts.get(m.topic, m.partition);
      return st !== undefined && m.offset >= st.next && m.offset > (touched.get(st)?.offset ?? -1);
    });
  }

  /**
   * One transaction: the batch, then (with batchLingerMs) whatever else arrives within the linger
   * time up to maxBatchRecords, then the next source offset of every partition touched.
   */
  async #transaction(batch: Message[]): Promise<void> {
    const o = this.options;
    const producer = this.#producer!;
    const touched = new Map<MirroredPartition, Message>();
    let fresh = this.#fresh(batch, touched);
    if (fresh.length === 0) return;
    const t0 = performance.now();
    await promisify0((cb) => producer.beginTransaction(cb));
    const reports: Opaque[] = [];
    let produced = 0;
    let consumed = 0;
    let t1 = 0;
    let t2 = 0;
    try {
      for (;;) {
        for (const m of fresh) {
          const st = this.#parts.get(m.topic, m.partition)!;
          touched.set(st, m);
          if (cameFrom(m.headers, o.targetAlias)) {
            this.#stats.skipped++;
            this.metrics.skipped.inc({ topic: m.topic, reason: 'loop' });
            continue;
          }
          const op: Opaque = { st, src: m.offset, ts: m.timestamp, bytes: (m.value?.length ?? 0) + (m.key ? Buffer.byteLength(m.key) : 0) };
          await this.#produce(st.targetTopic, m.partition, m.value, m.key, m.timestamp, op, withProvenance(m.headers, o.sourceAlias, m.topic, m.partition, m.offset));
          reports.push(op);
          produced++;
        }
        consumed += fresh.length;
        if (o.batchLingerMs === 0 || consumed >= o.maxBatchRecords || performance.now() - t0 >= o.batchLingerMs || this.#state !== 'running') break;
        fresh = this.#fresh(await consumeBatch(this.#consumer!, o.maxBatchRecords - consumed), touched);
      }
      for (const [st, m] of touched) {
        const stored: StoredOffset = { topic: st.topic, partition: st.partition, next: m.offset + 1, sourceTopicId: st.sourceTopicId };
        const ts = m.timestamp ?? st.lastTs;
        if (ts !== undefined) stored.lastTimestamp = ts;
        await this.#produce(o.offsetsTopic, null, encodeOffset(stored), offsetKey(st.topic, st.partition), undefined, undefined, undefined);
        produced++;
      }
      if (this.#needsReports) this.#expectReports(produced);
      t1 = performance.now();
      await this.#commit();
      t2 = performance.now();
    } catch (err) {
      this.#stats.aborted++;
      this.metrics.transactions.inc({ result: 'aborted' });
      this.#reassignNeeded = true;
      // Aborted at the top of the next loop, with backoff if the target is down.
      this.#abortPending = !(err as Partial<LibrdKafkaError>).isFatal;
      throw err;
    }
    await this.#reportsDone(5_000);
    const now = Date.now();
    const perTopic = new Map<string, { records: number; bytes: number }>();
    for (const op of reports) {
      const target = this.#reportedOffset.get(op);
      if (target !== undefined) op.st.map.add(op.src, target);
      const t = perTopic.get(op.st.topic) ?? { records: 0, bytes: 0 };
      t.records++;
      t.bytes += op.bytes;
      perTopic.set(op.st.topic, t);
      if (op.ts !== undefined) this.metrics.latency.observe(Math.max(0, now - op.ts) / 1000);
    }
    for (const [topic, t] of perTopic) {
      this.metrics.records.inc({ topic }, t.records);
      this.metrics.bytes.inc({ topic }, t.bytes);
      this.#stats.bytes += t.bytes;
    }
    this.#reportedOffset = new WeakMap();
    if (this.#debug) o.log('debug', 'transaction committed', { records: reports.length, produceMs: Math.round(t1 - t0), commitMs: Math.round(t2 - t1), reportsMs: Math.round(performance.now() - t2) });
    this.#stats.records += reports.length;
    this.#stats.transactions++;
    this.metrics.transactions.inc({ result: 'committed' });
    for (const [st, m] of touched) {
      st.next = m.offset + 1;
      if (m.timestamp !== undefined) st.lastTs = m.timestamp;
    }
  }

  #reportedOffset = new WeakMap<Opaque, number>();

  async #produce(
    topic: string,
    partition: number | null,
    value: Buffer | null,
    k: Message['key'],
    timestamp: number | undefined,
    opaque: Opaque | undefined,
    headers: Message['headers'],
  ): Promise<void> {
    await produceWhenRoom(() => this.#producer!.produce(topic, partition, value, k ?? null, timestamp ?? null, opaque, headers), { attempts: 3001, intervalMs: 5 });
  }

  #expectReports(n: number): void {
    this.#reportsWaiting += n;
  }

  #onDelivery(err: LibrdKafkaError | null | undefined, report: DeliveryReport): void {
    // A failed delivery also fails the commit, which aborts the transaction; nothing to keep here.
    if (!err && report.opaque) this.#reportedOffset.set(report.opaque as Opaque, Number(report.offset));
    this.#reportsWaiting = Math.max(0, this.#reportsWaiting - 1);
    if (this.#reportsWaiting === 0 && this.#onReportsDone) {
      const done = this.#onReportsDone;
      this.#onReportsDone = undefined;
      done();
    }
  }

  /** Delivery reports come through the poll loop, possibly just after the commit returned. */
  async #reportsDone(timeoutMs: number): Promise<void> {
    if (this.#reportsWaiting === 0) return;
    await Promise.race([new Promise<void>((resolve) => (this.#onReportsDone = resolve)), sleep(timeoutMs)]);
    this.#onReportsDone = undefined;
    this.#reportsWaiting = 0;
  }

  async #commit(): Promise<void> {
    const producer = this.#producer!;
    for (let attempt = 1; ; attempt++) {
      try {
        await promisify0((cb) => producer.commitTransaction(30_000, cb));
        return;
      } catch (err) {
        const e = err as Partial<LibrdKafkaError>;
        // A retriable commit error leaves the outcome open; retrying the commit settles it.
        if (e.isRetriable && !e.isTxnRequiresAbort && !e.isFatal && attempt < 5) {
          this.options.log('warn', 'commit failed, retrying', { error: errorMessage(err), attempt });
          await sleep(200 * attempt);
          continue;
        }
        throw err;
      }
    }
  }

  /** The latest lag sample (undefined before the first one). */
  lag(): LagSnapshot | undefined {
    return this.#lagSampler?.lag();
  }

  /** Writes checkpoints now (also done every checkpoint interval). */
  async checkpointNow(): Promise<void> {
    await this.#checkpointer?.checkpointNow();
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.options.log('error', err.message);
    this.#state = 'stopping';
    for (const l of this.#failureListeners) l(err);
  }

  /** Stops after the transaction in flight, then closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state === 'running' || this.#state === 'stopping') this.#state = 'stopping';
    this.#stopping.abort();
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.#loop?.catch(() => undefined);
    // The last checkpoint, after the loop stopped and while the clients are still open (the
    // checkpointer writes while running or stopping): a failover right after a clean stop then
    // starts each group where it really was.
    if (this.options.groups.length > 0 && !this.#failure) await this.checkpointNow().catch(() => undefined);
    await this.#closeClients();
    this.#state = 'closed';
  }

  async #closeClients(): Promise<void> {
    const clients = [this.#consumer, this.#producer].filter((c): c is KafkaConsumer | Producer => c !== undefined);
    this.#consumer = undefined;
    this.#producer = undefined;
    await Promise.all([...clients.map((c) => disconnect(c)), this.#lagSampler?.close(), this.#checkpointer?.close()]);
    this.#sourceAdmin?.close();
    this.#targetAdmin?.close();
    await this.metrics.close();
  }
}
