import Kafka from '@confluentinc/kafka-javascript';
import type { DeliveryReport, KafkaConsumer, LibrdKafkaError, Message, Producer } from '@confluentinc/kafka-javascript';
import { KAFKA_CODES, describeKafka, errorMessage, produceWhenRoom, setTimeoutOnlyForFirstMessage, unreachableBrokers } from '@agenttrace/common';
import { KafmirrorError } from './errors.js';
import { ClusterAdmin, clientConfig, clusterError, connectClient, consumeBatch, describeCluster, disconnect, incrementalAssign, promisify0, type Cluster } from './kafka-io.js';
import { LagAlarm, describeUrl, postWebhook, timeLagMs, type LagSnapshot, type PartitionLag } from './lag.js';
import { MirrorMetrics } from './metrics.js';
import { OffsetMap } from './offset-map.js';
import { resolveReplicatorOptions, type ReplicatorOptions, type ResolvedReplicatorOptions } from './options.js';
import { cameFrom, isMirrorable, readProvenance, targetTopicName, withProvenance } from './provenance.js';
import {
  checkpointKey,
  encodeCheckpoint,
  encodeOffset,
  ensureStateTopic,
  latestOffsets,
  offsetKey,
  readStateTopic,
  type StoredOffset,
} from './state-topics.js';
import { describeTopicConfigs } from './topic-configs.js';

/** Mirroring state of one source partition. */
interface PartState {
  topic: string;
  partition: number;
  targetTopic: string;
  /** Next source offset to mirror; everything before it is committed on the target. */
  next: number;
  /** Source timestamp of the last record committed on the target. */
  lastTs: number | undefined;
  /** When the partition was last seen with nothing left to mirror. */
  caughtUpAt: number | undefined;
  /** Timestamp of the first record waiting at `headOffset`, read when no other bound is known. */
  headTs: number | undefined;
  headOffset: number;
  /** End of the partition on the source (last stable offset), sampled periodically. */
  end: number | undefined;
  map: OffsetMap;
  /** Last checkpoint written per group, to write only changes. */
  checkpointed: Map<string, number>;
  /** The source log `next` counts in (its topic id), stored with every offset. */
  sourceTopicId: string;
  /** The last translation read from the target copy (see #lookUpOnTarget), reused while the group stays put. */
  looked?: { committed: number; targetOffset: number };
}

export interface ReplicatorStats {
  records: number;
  bytes: number;
  skipped: number;
  transactions: number;
  aborted: number;
  partitions: number;
  topics: string[];
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Opaque = { st: PartState; src: number; ts: number | undefined; bytes: number };

/**
 * Mirrors topics from a source to a target cluster exactly once. Each batch read from the source
 * is written to the target inside one transaction together with the next source offset of every
 * partition it touched (in the offsets topic on the target). A crash anywhere leaves either the
 * whole batch and its offsets committed, or neither; at start-up the fenced predecessor's open
 * transaction is aborted and the source is read again from the stored offsets.
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
  #checkpointProducer: Producer | undefined;
  readonly #parts = new Map<string, PartState>();
  readonly #topics = new Map<string, number>();
  #stored = new Map<string, StoredOffset>();
  readonly #alarm: LagAlarm | undefined;
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'closed' = 'new';
  #loop: Promise<void> | undefined;
  #failure: Error | undefined;
  #timers: NodeJS.Timeout[] = [];
  #nextRefresh = 0;
  #reassignNeeded = false;
  #abortPending = false;
  #endsFailures = 0;
  #peeker: KafkaConsumer | undefined;
  /** Reads the target copy to translate offsets the in-memory map does not cover. */
  #targetReader: KafkaConsumer | undefined;
  #reportsWaiting = 0;
  #onReportsDone: (() => void) | undefined;
  #lastSnapshot: LagSnapshot | undefined;
  #checkpointBusy = false;
  #endsBusy = false;
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
    if (o.lagThresholdMs !== undefined) this.#alarm = new LagAlarm(o.lagThresholdMs);
    this.#debug = options.debug ?? false;
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
    return { ...this.#stats, partitions: this.#parts.size, topics: [...this.#topics.keys()] };
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
      this.#sourceAdmin = new ClusterAdmin(this.#source);
      this.#targetAdmin = new ClusterAdmin(this.#target);
      // Check both clusters up front so the error names the one that is down.
      const [sourceTopics] = await Promise.all([this.#sourceAdmin.listTopics(), this.#targetAdmin.listTopics()]);
      if (o.topics) {
        const missing = o.topics.filter((t) => !sourceTopics.includes(t));
        if (missing.length > 0) {
          throw new KafmirrorError('TOPIC_NOT_FOUND', `${describeCluster(this.#source)} has no topic ${missing.map((t) => `"${t}"`).join(', ')}. Check --topics (or use --topics-regex to mirror topics as they appear).`);
        }
      }
      await ensureStateTopic(this.#targetAdmin, o.offsetsTopic, o.replicationFactor);
      if (o.groups.length > 0) await ensureStateTopic(this.#targetAdmin, o.checkpointsTopic, o.replicationFactor);

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
      this.#stored = latestOffsets(await readStateTopic(this.#target, o.offsetsTopic));
      log('debug', 'stored offsets read', { partitions: this.#stored.size });

      if (o.groups.length > 0) {
        const cp = new Kafka.Producer({ ...clientConfig(this.#target, 'checkpoints'), 'enable.idempotence': true, 'linger.ms': 20, dr_cb: false });
        await connectClient(cp, this.#target, 'connecting the checkpoint producer');
        cp.setPollInterval(100);
        this.#checkpointProducer = cp;
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
      await this.#sampleEnds();
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
    this.#timers.push(setInterval(() => this.#sampleLag(), o.lagIntervalMs));
    this.#timers.push(setInterval(() => void this.#sampleEnds(), o.lagIntervalMs));
    if (o.groups.length > 0) this.#timers.push(setInterval(() => void this.#checkpoint(), o.checkpointIntervalMs));
    this.#loop = this.#run();
  }

  /** Topics to mirror as they exist on the source now. */
  async #wantedTopics(): Promise<string[]> {
    const o = this.options;
    if (o.topics) return o.topics;
    const all = await this.#sourceAdmin!.listTopics();
    return all.filter((t) => isMirrorable(t, o.targetAlias) && o.topicPattern!.test(t)).sort();
  }

  /** Finds new topics and partitions, prepares their target topics and starts reading them. */
  async #refresh(initial: boolean): Promise<void> {
    const o = this.options;
    this.#nextRefresh = Date.now() + o.refreshIntervalMs;
    const wanted = await this.#wantedTopics();
    const infos = await this.#sourceAdmin!.describeTopics(wanted);
    const added: Array<{ topic: string; partition: number; offset: number }> = [];
    for (const { name, partitions, topicId } of infos) {
      const known = this.#topics.get(name) ?? 0;
      if (partitions <= known) continue;
      await this.#checkStoredPositions(name, known, partitions, topicId);
      const targetTopic = targetTopicName(name, o.naming, o.sourceAlias);
      if (o.createTopics) await this.#prepareTargetTopic(name, targetTopic, partitions);
      await this.#awaitProducerMetadata(targetTopic, partitions);
      const fresh = Array.from({ length: partitions - known }, (_, i) => known + i).filter((p) => !this.#stored.has(offsetKey(name, p)));
      // A partition or topic that appears while running is read from its beginning: all of it is new.
      const fromLatest = initial && known === 0 && o.startFrom === 'latest';
      const starts = fresh.length > 0 ? await this.#sourceAdmin!.startOffsets(name, fresh, fromLatest ? 'latest' : 'earliest') : new Map<number, number>();
      for (let p = known; p < partitions; p++) {
        const stored = this.#stored.get(offsetKey(name, p));
        const offset = stored?.next ?? starts.get(p) ?? 0;
        const st: PartState = {
          topic: name,
          partition: p,
          targetTopic,
          next: offset,
          lastTs: stored?.lastTimestamp,
          caughtUpAt: undefined,
          headTs: undefined,
          headOffset: -1,
          end: undefined,
          map: new OffsetMap(offset),
          checkpointed: new Map(),
          sourceTopicId: topicId,
        };
        this.#parts.set(key(name, p), st);
        added.push({ topic: name, partition: p, offset });
      }
      if (known > 0 || !initial) o.log('info', `${known > 0 ? 'new partitions' : 'new topic'} to mirror`, { topic: name, partitions, target: targetTopic });
      this.#topics.set(name, partitions);
    }
    if (added.length > 0) incrementalAssign(this.#consumer!, added);
  }

  /**
   * The stored offsets of a topic's partitions must count in the source log being read: the same
   * topic id (unique per cluster and per creation, so it also tells clusters apart; the cluster
   * id would need a second client loaded at every start, seconds on a busy machine). Offsets of
   * another log (the alias pointed at another cluster, the topic recreated) would skip or repeat
   * records silently, so kafmirror refuses them (POSITIONS_MISMATCH, exit 9). Offsets stored
   * before ids were (no id) are adopted, and stamped with the next write, unless one lies past the
   * end of its partition, which proves them foreign.
   */
  async #checkStoredPositions(topic: string, from: number, to: number, topicId: string): Promise<void> {
    const o = this.options;
    const here = `on source cluster "${this.#source.alias}" (${describeKafka(this.#source.conn)}) the topic has id ${topicId}`;
    const refuse = (why: string) =>
      new KafmirrorError(
        'POSITIONS_MISMATCH',
        `the offsets stored for topic "${topic}" in ${o.offsetsTopic} on ${describeCluster(this.#target)} ${why}, but ${here}: refusing to mirror from them. To mirror this source from its start, use a new --source-alias (it gets its own offsets topic), or delete ${o.offsetsTopic} on the target`,
      );
    const legacy: Array<[number, number]> = [];
    for (let p = from; p < to; p++) {
      const s = this.#stored.get(offsetKey(topic, p));
      if (!s) continue;
      if (s.sourceTopicId === undefined) legacy.push([p, s.next]);
      else if (s.sourceTopicId !== topicId) throw refuse(`belong to topic id ${s.sourceTopicId} (another cluster, or the topic before it was recreated)`);
    }
    if (legacy.length === 0) return;
    const ends = await this.#sourceAdmin!.startOffsets(topic, legacy.map(([p]) => p), 'latest');
    for (const [p, next] of legacy) {
      const end = ends.get(p);
      if (end !== undefined && next > end) throw refuse(`carry no topic id and partition ${p} is stored at ${next}, past its end (${end})`);
    }
    o.log('warn', 'offsets stored without a topic id (by an earlier version) adopted for this source; the next write stamps them', { topic, partitions: legacy.length, topicId });
  }

  /**
   * Waits until the producer's metadata shows the target partitions: librdkafka refuses a record
   * for a partition it does not know yet ("unknown partition") instead of refreshing by itself.
   */
  async #awaitProducerMetadata(topic: string, partitions: number): Promise<void> {
    const producer = this.#producer!;
    const deadline = Date.now() + 15_000;
    let seen = 0;
    while (Date.now() < deadline) {
      seen = await new Promise<number>((resolve) =>
        producer.getMetadata({ topic, timeout: 5_000 }, (err, md) => resolve(err ? 0 : (md.topics.find((t) => t.name === topic)?.partitions.length ?? 0))),
      );
      if (seen >= partitions) return;
      await sleep(200);
    }
    throw new KafmirrorError('TOPIC_SETUP_FAILED', `topic "${topic}" on ${describeCluster(this.#target)} has ${seen} partitions, ${partitions} are needed to keep partition numbers${this.options.createTopics ? '' : ' (--no-create-topics is set: create or grow it by hand)'}`, { retryable: true });
  }

  /** Creates the target topic with the source's partition count and settings, or grows it. */
  async #prepareTargetTopic(sourceTopic: string, targetTopic: string, partitions: number): Promise<void> {
    const o = this.options;
    const admin = this.#targetAdmin!;
    const [existing] = await admin.describeTopics([targetTopic]);
    if (!existing) {
      let config: Record<string, string> = {};
      try {
        config = (await describeTopicConfigs(this.#source.conn, sourceTopic)).configs;
      } catch (err) {
        o.log('warn', 'could not read the source topic settings; creating the copy with the target defaults', { topic: sourceTopic, error: errorMessage(err) });
      }
      try {
        const created = await admin.createTopic({ topic: targetTopic, num_partitions: partitions, replication_factor: o.replicationFactor, config });
        if (created) o.log('info', 'created target topic', { topic: targetTopic, partitions, config });
      } catch (err) {
        throw new KafmirrorError('TOPIC_SETUP_FAILED', `could not create topic "${targetTopic}" on ${describeCluster(this.#target)}: ${errorMessage(err)}`, { cause: err });
      }
      return;
    }
    if (existing.partitions < partitions) {
      try {
        await admin.createPartitions(targetTopic, partitions);
        o.log('info', 'added partitions to target topic', { topic: targetTopic, from: existing.partitions, to: partitions });
      } catch (err) {
        throw new KafmirrorError('TOPIC_SETUP_FAILED', `could not grow topic "${targetTopic}" on ${describeCluster(this.#target)} to ${partitions} partitions: ${errorMessage(err)}`, { cause: err });
      }
    }
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
        if (Date.now() >= this.#nextRefresh) await this.#refresh(false);
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
        const delay = Math.min(30_000, 200 * 2 ** Math.min(failures, 8));
        o.log('warn', `mirroring failed, retrying in ${delay} ms`, { error: errorMessage(err), attempt: failures });
        await sleep(delay);
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
  #fresh(batch: Message[], touched: Map<PartState, Message>): Message[] {
    return batch.filter((m) => {
      const st = this.#parts.get(key(m.topic, m.partition));
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
    const touched = new Map<PartState, Message>();
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
          const st = this.#parts.get(key(m.topic, m.partition))!;
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

  /** Samples the end of every mirrored source partition (off the mirroring loop). */
  async #sampleEnds(): Promise<void> {
    if (this.#endsBusy || !this.#sourceAdmin) return;
    this.#endsBusy = true;
    try {
      const byTopic = new Map<string, number[]>();
      for (const st of this.#parts.values()) {
        const l = byTopic.get(st.topic) ?? [];
        l.push(st.partition);
        byTopic.set(st.topic, l);
      }
      for (const [topic, partitions] of byTopic) {
        const ends = await this.#sourceAdmin.endOffsets(topic, partitions, true, 5_000);
        for (const [p, end] of ends) {
          const st = this.#parts.get(key(topic, p));
          if (st) st.end = end;
        }
      }
      await this.#peekHeads();
      if (this.#endsFailures >= 5) this.options.log('info', `${describeCluster(this.#source)} answers again; lag figures are current`);
      this.#endsFailures = 0;
    } catch (err) {
      // Lag figures go stale while the source is unreachable: say so once, not every second.
      if (++this.#endsFailures === 5) this.options.log('warn', `cannot read the end offsets of ${describeCluster(this.#source)}; lag figures are stale until it answers`, { error: errorMessage(err) });
    } finally {
      this.#endsBusy = false;
    }
  }

  /** A consumer for reading single records at chosen offsets (assign only: it never joins its group or commits). */
  async #openReader(cluster: Cluster, clientSuffix: string, groupSuffix: string, what: string, consumeTimeoutMs: number): Promise<KafkaConsumer> {
    const reader = new Kafka.KafkaConsumer(
      { ...clientConfig(cluster, clientSuffix), 'group.id': `kafmirror.${this.options.sourceAlias}.${groupSuffix}`, 'enable.auto.commit': false, 'isolation.level': 'read_committed' },
      { 'auto.offset.reset': 'earliest' },
    );
    await connectClient(reader, cluster, what);
    reader.setDefaultConsumeTimeout(consumeTimeoutMs);
    return reader;
  }

  /**
   * For partitions with records waiting and nothing known about their age (never mirrored in this
   * or an earlier run), reads the timestamp of the first waiting record once, so the time lag of a
   * backlog is real from the first sample instead of 0.
   */
  async #peekHeads(): Promise<void> {
    const unknown = [...this.#parts.values()].filter(
      (st) => st.end !== undefined && st.end > st.next && st.lastTs === undefined && st.caughtUpAt === undefined && st.headOffset !== st.next,
    );
    if (unknown.length === 0) return;
    this.#peeker ??= await this.#openReader(this.#source, 'lag-peek', 'peek', 'connecting the lag reader', 500);
    const peeker = this.#peeker;
    for (const st of unknown.slice(0, 20)) {
      const at = st.next;
      peeker.assign([{ topic: st.topic, partition: st.partition, offset: at }]);
      try {
        const [m] = await consumeBatch(peeker, 1);
        if (m?.timestamp !== undefined) {
          st.headTs = m.timestamp;
          st.headOffset = at;
        }
      } finally {
        peeker.unassign();
      }
    }
  }

  #sampleLag(): void {
    const now = Date.now();
    const partitions: PartitionLag[] = [];
    let total = 0;
    let maxMs = 0;
    for (const st of this.#parts.values()) {
      const records = st.end === undefined ? 0 : Math.max(0, st.end - st.next);
      if (records === 0) st.caughtUpAt = now;
      const ms = timeLagMs(records, now, st.lastTs, st.caughtUpAt, st.headOffset === st.next ? st.headTs : undefined);
      partitions.push({ topic: st.topic, partition: st.partition, records, ms });
      total += records;
      maxMs = Math.max(maxMs, ms);
      this.metrics.lagRecords.set({ topic: st.topic, partition: String(st.partition) }, records);
      this.metrics.lagSeconds.set({ topic: st.topic, partition: String(st.partition) }, ms / 1000);
    }
    const transition = this.#alarm?.update(maxMs);
    this.#lastSnapshot = { time: now, partitions, totalRecords: total, maxMs, alerting: this.#alarm?.alerting ?? false };
    this.metrics.lagAlert.set(this.#alarm?.alerting ? 1 : 0);
    if (transition) this.#announce(transition, this.#lastSnapshot);
  }

  #announce(transition: 'alert' | 'recovered', snap: LagSnapshot): void {
    const o = this.options;
    const worst = [...snap.partitions].sort((a, b) => b.ms - a.ms).slice(0, 5);
    const fields = { lagMs: snap.maxMs, thresholdMs: o.lagThresholdMs, lagRecords: snap.totalRecords };
    if (transition === 'alert') o.log('warn', `replication lag ${(snap.maxMs / 1000).toFixed(1)}s is above the threshold of ${(o.lagThresholdMs! / 1000).toFixed(1)}s`, fields);
    else o.log('info', `replication lag recovered: ${(snap.maxMs / 1000).toFixed(1)}s is within the threshold of ${(o.lagThresholdMs! / 1000).toFixed(1)}s`, fields);
    if (!o.webhookUrl) return;
    const body = {
      event: transition === 'alert' ? 'kafmirror.lag_alert' : 'kafmirror.lag_recovered',
      source: o.sourceAlias,
      target: o.targetAlias,
      time: new Date(snap.time).toISOString(),
      lagMs: snap.maxMs,
      lagRecords: snap.totalRecords,
      thresholdMs: o.lagThresholdMs,
      worst,
    };
    void postWebhook(o.webhookUrl, body).then((problem) => {
      if (problem) o.log('warn', 'lag webhook failed', { url: describeUrl(o.webhookUrl!), error: problem });
    });
  }

  /** The latest lag sample (undefined before the first one). */
  lag(): LagSnapshot | undefined {
    return this.#lastSnapshot;
  }

  /** Translates the named groups' source offsets to target offsets and stores the changed ones. */
  async #checkpoint(): Promise<void> {
    const o = this.options;
    const cp = this.#checkpointProducer;
    if (this.#checkpointBusy || !cp || this.#state !== 'running') return;
    this.#checkpointBusy = true;
    try {
      for (const group of o.groups) {
        const offsets = await this.#sourceAdmin!.groupOffsets(group);
        let written = 0;
        for (const [topic, parts] of offsets) {
          for (const [partition, committed] of parts) {
            const st = this.#parts.get(key(topic, partition));
            if (!st) continue;
            // Offsets this run has not mirrored itself (before a restart, or trimmed from the map)
            // are looked up in the target copy's provenance headers.
            const targetOffset = st.map.translate(committed) ?? (await this.#lookUpOnTarget(st, committed));
            // Unknown translations keep the previous checkpoint: it is older, so a failover
            // may re-deliver but never skips.
            if (targetOffset === undefined || st.checkpointed.get(group) === targetOffset) continue;
            const value = encodeCheckpoint({ group, sourceTopic: topic, targetTopic: st.targetTopic, partition, sourceOffset: committed, targetOffset, time: Date.now() });
            cp.produce(o.checkpointsTopic, null, value, checkpointKey(group, st.targetTopic, partition), Date.now());
            st.checkpointed.set(group, targetOffset);
            written++;
          }
        }
        if (written > 0) {
          await new Promise<void>((resolve, reject) => cp.flush(10_000, (err) => (err ? reject(err) : resolve())));
          this.metrics.checkpoints.inc({ group }, written);
          o.log('debug', 'checkpoints written', { group, partitions: written });
        }
      }
    } catch (err) {
      o.log('warn', 'could not write checkpoints; retrying at the next interval', { error: errorMessage(err) });
    } finally {
      this.#checkpointBusy = false;
    }
  }

  /**
   * Where a consumer that committed source offset `committed` resumes on the target, for offsets
   * the in-memory map does not cover: a binary search over the target partition, reading the
   * source offset each copy carries in its provenance headers (both sides are in the same order).
   * The search only moves past records seen to come before `committed`, so a fetch that times out
   * can make the answer early (re-delivery), never late (a skipped record). Undefined when the
   * copy cannot tell: a record without this source's provenance, or the target unreachable.
   */
  async #lookUpOnTarget(st: PartState, committed: number): Promise<number | undefined> {
    if (st.looked?.committed === committed) return st.looked.targetOffset;
    try {
      this.#targetReader ??= await this.#openReader(this.#target, 'checkpoint-lookup', 'lookup', 'connecting the checkpoint reader', 2000);
      const reader = this.#targetReader;
      const { lowOffset, highOffset } = await new Promise<{ lowOffset: number; highOffset: number }>((resolve, reject) =>
        reader.queryWatermarkOffsets(st.targetTopic, st.partition, 5000, (err, w) => (err ? reject(err) : resolve(w))),
      );
      let lo = lowOffset;
      let hi = highOffset;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        reader.assign([{ topic: st.targetTopic, partition: st.partition, offset: mid }]);
        let m: Message | undefined;
        try {
          [m] = await consumeBatch(reader, 1);
        } finally {
          reader.unassign();
        }
        if (m === undefined) {
          hi = mid; // nothing committed at or after mid (or no answer in time: then the result is early, not late)
          continue;
        }
        const from = readProvenance(m.headers);
        if (!from || from.cluster !== this.options.sourceAlias || from.topic !== st.topic || from.partition !== st.partition) return undefined;
        if (from.offset >= committed) hi = mid;
        else lo = m.offset + 1;
      }
      st.looked = { committed, targetOffset: lo };
      return lo;
    } catch (err) {
      this.options.log('warn', 'could not read the target copy to translate a group offset; keeping the previous checkpoint', {
        topic: st.targetTopic,
        partition: st.partition,
        error: errorMessage(err),
      });
      return undefined;
    }
  }

  /** Writes checkpoints now (also done every checkpoint interval). */
  async checkpointNow(): Promise<void> {
    while (this.#checkpointBusy) await sleep(20);
    await this.#checkpoint();
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
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.#loop?.catch(() => undefined);
    if (this.options.groups.length > 0 && !this.#failure) await this.checkpointNow().catch(() => undefined);
    await this.#closeClients();
    this.#state = 'closed';
  }

  async #closeClients(): Promise<void> {
    const clients = [this.#consumer, this.#peeker, this.#targetReader, this.#checkpointProducer, this.#producer].filter((c): c is KafkaConsumer | Producer => c !== undefined);
    this.#consumer = undefined;
    this.#peeker = undefined;
    this.#targetReader = undefined;
    this.#producer = undefined;
    this.#checkpointProducer = undefined;
    await Promise.all(clients.map((c) => disconnect(c)));
    this.#sourceAdmin?.close();
    this.#targetAdmin?.close();
    await this.metrics.close();
  }
}
