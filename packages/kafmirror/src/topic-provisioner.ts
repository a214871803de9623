import type { Producer, TopicPartitionOffset } from '@confluentinc/kafka-javascript';
import { describeKafka, errorMessage, sleep } from '@agenttrace/common';
import { KafmirrorError } from './errors.js';
import { describeCluster, type Cluster, type ClusterAdmin } from './kafka-io.js';
import type { ResolvedReplicatorOptions } from './options.js';
import type { PartitionTable } from './partitions.js';
import { isMirrorable, targetTopicName } from './provenance.js';
import { offsetKey, type StoredOffset } from './state-topics.js';
import { describeTopicConfigs } from './topic-configs.js';

export interface TopicProvisionerDeps {
  options: ResolvedReplicatorOptions;
  source: Cluster;
  target: Cluster;
  sourceAdmin: ClusterAdmin;
  targetAdmin: ClusterAdmin;
  /** The transactional producer, which must see a target partition before it can write to it. */
  producer: Producer;
  /** Positions read from the offsets topic at start-up, after fencing any predecessor. */
  stored: ReadonlyMap<string, StoredOffset>;
  /** Where new partitions are entered. */
  partitions: PartitionTable;
}

/**
 * Finds the source topics and partitions to mirror (at start-up and every refresh interval),
 * checks that the positions stored for them count in the source log being read, prepares their
 * target topics, and enters them in the partition table. The caller starts reading what it adds.
 */
export class TopicProvisioner {
  readonly #d: TopicProvisionerDeps;
  #nextRefresh = 0;

  constructor(deps: TopicProvisionerDeps) {
    this.#d = deps;
  }

  /** True when the refresh interval has passed since the last refresh began. */
  get refreshDue(): boolean {
    return Date.now() >= this.#nextRefresh;
  }

  /** Topics to mirror as they exist on the source now. */
  async #wantedTopics(): Promise<string[]> {
    const o = this.#d.options;
    if (o.topics) return o.topics;
    const all = await this.#d.sourceAdmin.listTopics();
    return all.filter((t) => isMirrorable(t, o.targetAlias) && o.topicPattern!.test(t)).sort();
  }

  /**
   * Finds new topics and partitions, prepares their target topics and enters them in the table.
   * Returns the partitions added, with the source offset to read each from.
   */
  async refresh(initial: boolean): Promise<TopicPartitionOffset[]> {
    const { options: o, partitions: table, stored } = this.#d;
    this.#nextRefresh = Date.now() + o.refreshIntervalMs;
    const wanted = await this.#wantedTopics();
    const infos = await this.#d.sourceAdmin.describeTopics(wanted);
    const added: TopicPartitionOffset[] = [];
    for (const { name, partitions, topicId } of infos) {
      const known = table.knownPartitions(name);
      if (partitions <= known) continue;
      await this.#checkStoredPositions(name, known, partitions, topicId);
      const targetTopic = targetTopicName(name, o.naming, o.sourceAlias);
      if (o.createTopics) await this.#prepareTargetTopic(name, targetTopic, partitions);
      await this.#awaitProducerMetadata(targetTopic, partitions);
      const fresh = Array.from({ length: partitions - known }, (_, i) => known + i).filter((p) => !stored.has(offsetKey(name, p)));
      // A partition or topic that appears while running is read from its beginning: all of it is new.
      const fromLatest = initial && known === 0 && o.startFrom === 'latest';
      const starts = fresh.length > 0 ? await this.#d.sourceAdmin.startOffsets(name, fresh, fromLatest ? 'latest' : 'earliest') : new Map<number, number>();
      for (let p = known; p < partitions; p++) {
        const s = stored.get(offsetKey(name, p));
        const offset = s?.next ?? starts.get(p) ?? 0;
        table.add(name, p, targetTopic, offset, s?.lastTimestamp, topicId);
        added.push({ topic: name, partition: p, offset });
      }
      if (known > 0 || !initial) o.log('info', `${known > 0 ? 'new partitions' : 'new topic'} to mirror`, { topic: name, partitions, target: targetTopic });
      table.setKnownPartitions(name, partitions);
    }
    return added;
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
    const { options: o, source, target } = this.#d;
    const here = `on source cluster "${source.alias}" (${describeKafka(source.conn)}) the topic has id ${topicId}`;
    const refuse = (why: string) =>
      new KafmirrorError(
        'POSITIONS_MISMATCH',
        `the offsets stored for topic "${topic}" in ${o.offsetsTopic} on ${describeCluster(target)} ${why}, but ${here}: refusing to mirror from them. To mirror this source from its start, use a new --source-alias (it gets its own offsets topic), or delete ${o.offsetsTopic} on the target`,
      );
    const legacy: Array<[number, number]> = [];
    for (let p = from; p < to; p++) {
      const s = this.#d.stored.get(offsetKey(topic, p));
      if (!s) continue;
      if (s.sourceTopicId === undefined) legacy.push([p, s.next]);
      else if (s.sourceTopicId !== topicId) throw refuse(`belong to topic id ${s.sourceTopicId} (another cluster, or the topic before it was recreated)`);
    }
    if (legacy.length === 0) return;
    const ends = await this.#d.sourceAdmin.startOffsets(topic, legacy.map(([p]) => p), 'latest');
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
    const producer = this.#d.producer;
    const deadline = Date.now() + 15_000;
    let seen = 0;
    while (Date.now() < deadline) {
      seen = await new Promise<number>((resolve) =>
        producer.getMetadata({ topic, timeout: 5_000 }, (err, md) => resolve(err ? 0 : (md.topics.find((t) => t.name === topic)?.partitions.length ?? 0))),
      );
      if (seen >= partitions) return;
      await sleep(200);
    }
    throw new KafmirrorError('TOPIC_SETUP_FAILED', `topic "${topic}" on ${describeCluster(this.#d.target)} has ${seen} partitions, ${partitions} are needed to keep partition numbers${this.#d.options.createTopics ? '' : ' (--no-create-topics is set: create or grow it by hand)'}`, { retryable: true });
  }

  /** Creates the target topic with the source's partition count and settings, or grows it. */
  async #prepareTargetTopic(sourceTopic: string, targetTopic: string, partitions: number): Promise<void> {
    const { options: o, targetAdmin: admin, source, target } = this.#d;
    const [existing] = await admin.describeTopics([targetTopic]);
    if (!existing) {
      let config: Record<string, string> = {};
      try {
        config = (await describeTopicConfigs(source.conn, sourceTopic)).configs;
      } catch (err) {
        o.log('warn', 'could not read the source topic settings; creating the copy with the target defaults', { topic: sourceTopic, error: errorMessage(err) });
      }
      try {
        const created = await admin.createTopic({ topic: targetTopic, num_partitions: partitions, replication_factor: o.replicationFactor, config });
        if (created) o.log('info', 'created target topic', { topic: targetTopic, partitions, config });
      } catch (err) {
        throw new KafmirrorError('TOPIC_SETUP_FAILED', `could not create topic "${targetTopic}" on ${describeCluster(target)}: ${errorMessage(err)}`, { cause: err });
      }
      return;
    }
    if (existing.partitions < partitions) {
      try {
        await admin.createPartitions(targetTopic, partitions);
        o.log('info', 'added partitions to target topic', { topic: targetTopic, from: existing.partitions, to: partitions });
      } catch (err) {
        throw new KafmirrorError('TOPIC_SETUP_FAILED', `could not grow topic "${targetTopic}" on ${describeCluster(target)} to ${partitions} partitions: ${errorMessage(err)}`, { cause: err });
      }
    }
  }
}
