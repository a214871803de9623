import type { GroupDescriptions, IAdminClient, LibrdKafkaError, NewTopic, TopicDescription } from '@confluentinc/kafka-javascript';
import { isTopicAlreadyExists } from './kafka-codes.js';
import { describeTopicConfigs, describeTopicIdentity, type KafkaTopicIdentity } from './kafka-protocol-admin.js';
import { Kafka, KafkaError, kafkaError, rdkafkaConfig, securityProtocolOf, stickyKafkaError, uuidString, type KafkaConnectionOptions } from './kafka.js';

/** A topic as the admin client describes it. */
export interface TopicInfo {
  name: string;
  partitions: number;
  /** Kafka's topic id (UUID), new each time a topic is created. */
  topicId: string;
}

export interface KafkaAdminOptions {
  /** librdkafka's client.id; default `<conn.clientId ?? 'agenttrace'>-admin`. */
  clientId?: string;
  /**
   * Turns a failed request into the caller's error; `background` is the client's last
   * asynchronous error (a refused SASL handshake shows there only). Default: kafkaError.
   */
  wrapError?: (what: string, err: unknown, background: string | undefined) => Error;
}

/** A consumer group as the admin client describes it. */
export interface GroupInfo {
  state: GroupState;
  members: Array<{ memberId: string; clientId: string; partitions: Array<{ topic: string; partition: number }> }>;
}

export type GroupState = 'unknown' | 'preparing-rebalance' | 'completing-rebalance' | 'stable' | 'dead' | 'empty';

// librdkafka's ConsumerGroupStates, by number (the enum is a runtime value of the native module).
const GROUP_STATES: readonly GroupState[] = ['unknown', 'preparing-rebalance', 'completing-rebalance', 'stable', 'dead', 'empty'];

const UNKNOWN_TOPIC = /unknown topic|UNKNOWN_TOPIC|does not host this topic/i;

/**
 * The project's one admin client: a promise wrapper around librdkafka's, plus the requests it
 * lacks (cluster and topic ids, DescribeConfigs) through the protocol admin. Every failure is
 * wrapped by `wrapError`, so each caller reports it in its own terms (kafmirror names the cluster).
 */
export class KafkaAdmin {
  readonly #conn: KafkaConnectionOptions;
  readonly #client: IAdminClient;
  readonly #wrap: (what: string, err: unknown, background: string | undefined) => Error;
  #background: string | undefined;
  #closed = false;

  constructor(conn: KafkaConnectionOptions, options: KafkaAdminOptions = {}) {
    this.#conn = conn;
    this.#wrap = options.wrapError ?? ((what, err, background) => kafkaError(what, conn, err, background));
    this.#client = Kafka().AdminClient.create(
      { ...rdkafkaConfig(conn), 'client.id': options.clientId ?? `${conn.clientId ?? 'agenttrace'}-admin` },
      {
        'event.error': (e: { message?: string }) => {
          this.#background = stickyKafkaError(this.#background, e.message);
        },
      },
    );
  }

  #call<T>(what: string, fn: (cb: (err: LibrdKafkaError | null | undefined, result?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, result) => {
        if (err) return reject(this.#wrap(what, err, this.#background));
        // A request that succeeded means the login works now: an old refusal must not colour a later failure.
        this.#background = undefined;
        resolve(result as T);
      });
    });
  }

  listTopics(timeoutMs = 10_000): Promise<string[]> {
    return this.#call('listing topics', (cb) => this.#client.listTopics({ timeout: timeoutMs }, cb));
  }

  /** Existing topics with their partition counts and ids; missing ones are left out. */
  async describeTopics(topics: string[], timeoutMs = 10_000): Promise<TopicInfo[]> {
    const out: TopicInfo[] = [];
    // One topic per request: a missing topic fails the whole request otherwise.
    for (const t of topics) {
      try {
        const [d] = await this.#call<TopicDescription[]>(`describing topic ${t}`, (cb) => this.#client.describeTopics([t], { timeout: timeoutMs }, cb));
        if (d && !d.error) out.push({ name: t, partitions: d.partitions.length, topicId: uuidString(d.topicId) });
      } catch (err) {
        if (UNKNOWN_TOPIC.test(String((err as Error).message))) continue;
        throw err;
      }
    }
    return out;
  }

  /** Partition count of a topic, or undefined when it does not exist. */
  async partitionCount(topic: string, timeoutMs = 10_000): Promise<number | undefined> {
    const [d] = await this.describeTopics([topic], timeoutMs);
    return d?.partitions;
  }

  /** Creates the topic if it does not exist; returns true when it was created, false when it existed. */
  async ensureTopic(topic: NewTopic, timeoutMs = 15_000): Promise<boolean> {
    try {
      await this.#call<void>(`creating topic ${topic.topic}`, (cb) => this.#client.createTopic(topic, timeoutMs, cb));
      return true;
    } catch (err) {
      if (isTopicAlreadyExists(err)) return false;
      throw err;
    }
  }

  async deleteTopic(topic: string, timeoutMs = 15_000): Promise<void> {
    await this.#call<void>(`deleting topic ${topic}`, (cb) => this.#client.deleteTopic(topic, timeoutMs, cb));
  }

  createPartitions(topic: string, total: number, timeoutMs = 15_000): Promise<void> {
    return this.#call<void>(`adding partitions to ${topic}`, (cb) => this.#client.createPartitions(topic, total, timeoutMs, cb));
  }

  /** Low and high watermark per partition (high = next offset to be written). */
  async watermarks(topic: string, partitions: number[], timeoutMs = 10_000): Promise<Map<number, { low: number; high: number }>> {
    const [lows, highs] = await Promise.all([this.#offsets(topic, partitions, 'earliest', false, timeoutMs), this.#offsets(topic, partitions, 'latest', false, timeoutMs)]);
    const out = new Map<number, { low: number; high: number }>();
    for (const [p, high] of highs) out.set(p, { low: 0, high });
    for (const [p, low] of lows) {
      const entry = out.get(p);
      if (entry) entry.low = low;
    }
    return out;
  }

  /** Next offset per partition: the last stable offset (`committedOnly`, read_committed) or the high watermark. */
  endOffsets(topic: string, partitions: number[], committedOnly = true, timeoutMs = 10_000): Promise<Map<number, number>> {
    return this.#offsets(topic, partitions, 'latest', committedOnly, timeoutMs);
  }

  /** First offset per partition (earliest) or the last stable offset (latest). */
  startOffsets(topic: string, partitions: number[], where: 'earliest' | 'latest', timeoutMs = 10_000): Promise<Map<number, number>> {
    return this.#offsets(topic, partitions, where, true, timeoutMs);
  }

  async #offsets(topic: string, partitions: number[], where: 'earliest' | 'latest', committedOnly: boolean, timeoutMs: number): Promise<Map<number, number>> {
    const { OffsetSpec, IsolationLevel } = Kafka();
    const rows = await this.#call<Array<{ partition: number; offset: number }>>(`listing offsets of ${topic}`, (cb) =>
      this.#client.listOffsets(
        partitions.map((p) => ({ topic, partition: p, offset: where === 'earliest' ? OffsetSpec.EARLIEST : OffsetSpec.LATEST })),
        { timeout: timeoutMs, isolationLevel: committedOnly ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED },
        cb,
      ),
    );
    return new Map(rows.map((r) => [r.partition, Number(r.offset)]));
  }

  /** First offset whose timestamp is at or after `timestampMs` (the high watermark when none is). */
  async offsetForTime(topic: string, partition: number, timestampMs: number, timeoutMs = 10_000): Promise<number> {
    const { OffsetSpec } = Kafka();
    const [r] = await this.#call<Array<{ partition: number; offset: number }>>(`looking up offsets of ${topic}`, (cb) =>
      this.#client.listOffsets([{ topic, partition, offset: new OffsetSpec(timestampMs) }], { timeout: timeoutMs }, cb),
    );
    return Number(r?.offset ?? -1);
  }

  /** Committed offsets of a consumer group (topic → partition → next offset). */
  async groupOffsets(group: string, timeoutMs = 10_000): Promise<Map<string, Map<number, number>>> {
    const what = `reading offsets of group ${group}`;
    const res = await this.#call<Array<{ groupId: string; error?: LibrdKafkaError; partitions: Array<{ topic: string; partition: number; offset: number; error?: unknown }> }>>(what, (cb) =>
      this.#client.listConsumerGroupOffsets([{ groupId: group }], { timeout: timeoutMs, requireStableOffsets: true }, cb),
    );
    const out = new Map<string, Map<number, number>>();
    for (const r of res) {
      if (r.error) throw this.#wrap(what, r.error, this.#background);
      for (const p of r.partitions) {
        if (p.error || p.offset < 0) continue;
        let m = out.get(p.topic);
        if (!m) out.set(p.topic, (m = new Map()));
        m.set(p.partition, Number(p.offset));
      }
    }
    return out;
  }

  /** Number of members a consumer group has (0 when it is empty or unknown). */
  async groupMembers(group: string, timeoutMs = 10_000): Promise<number> {
    return (await this.describeGroup(group, timeoutMs)).members.length;
  }

  /**
   * A consumer group's state and each member's current assignment (an unknown group is `dead`
   * with no members); says whether a rebalance is over and who holds which partition.
   */
  async describeGroup(group: string, timeoutMs = 10_000): Promise<GroupInfo> {
    const res = await this.#call<GroupDescriptions>(`describing group ${group}`, (cb) => this.#client.describeGroups([group], { timeout: timeoutMs }, cb));
    const g = res.groups[0];
    if (!g) return { state: 'dead', members: [] };
    return {
      state: GROUP_STATES[g.state] ?? 'unknown',
      members: g.members.map((m) => ({ memberId: m.memberId, clientId: m.clientId, partitions: (m.assignment?.topicPartitions ?? []).map((tp) => ({ topic: tp.topic, partition: tp.partition })) })),
    };
  }

  /** A topic's settings (DescribeConfigs, which librdkafka's admin client lacks; through the protocol admin). */
  describeTopicConfigs(topic: string, timeoutMs = 10_000): Promise<Record<string, string>> {
    return describeTopicConfigs(this.#conn, topic, timeoutMs);
  }

  /** The cluster id and the topic's id and partition count (through the protocol admin). */
  topicIdentity(topic: string, timeoutMs = 10_000): Promise<KafkaTopicIdentity> {
    return describeTopicIdentity(this.#conn, topic, timeoutMs);
  }

  get client(): IAdminClient {
    return this.#client;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.disconnect();
  }
}

/**
 * `kafkaError` for a failed connect of a producer, which sees nothing of a refused SASL login or
 * TLS handshake before it is polled (after connect): with SASL or TLS configured, an admin client
 * (whose errors arrive at once) asks the cluster, so the user hears "refused" instead of
 * "unreachable". Costs one short round trip, and only on a failure.
 */
export async function explainConnectFailure(what: string, conn: KafkaConnectionOptions, err: unknown, background?: string): Promise<KafkaError> {
  const first = kafkaError(what, conn, err, background);
  if (first.code === 'KAFKA_AUTH_FAILED' || securityProtocolOf(conn) === 'plaintext') return first;
  const admin = new KafkaAdmin(conn);
  try {
    await admin.listTopics(5_000);
    return first;
  } catch (probe) {
    if ((probe as { code?: unknown }).code !== 'KAFKA_AUTH_FAILED') return first;
    return new KafkaError('KAFKA_AUTH_FAILED', `${what} failed: ${(probe as Error).message}`, { cause: probe, retryable: false });
  } finally {
    admin.close();
  }
}
