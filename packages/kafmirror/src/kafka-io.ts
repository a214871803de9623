import Kafka from '@confluentinc/kafka-javascript';
import type { IAdminClient, KafkaConsumer, LibrdKafkaError, Message, NewTopic, Producer, TopicDescription, TopicPartitionOffset } from '@confluentinc/kafka-javascript';
import { describeKafka, kafkaError, rdkafkaConfig, uuidString, type KafkaConnectionOptions } from '@agenttrace/common';
import { KafmirrorError } from './errors.js';

export type Role = 'source' | 'target';

/** One of the two clusters kafmirror talks to. */
export interface Cluster {
  role: Role;
  alias: string;
  conn: KafkaConnectionOptions;
}

/** A description safe to print: role, alias, brokers and protocol, never credentials. */
export function describeCluster(c: Cluster): string {
  return `${c.role} cluster "${c.alias}" (${describeKafka(c.conn)})`;
}

const AUTH_TEXT = /auth|sasl|ssl|certificate/i;

/** An authentication failure is followed by "all broker connections are down": keep the cause. */
function stickyBackground(previous: string | undefined, next: string | undefined): string | undefined {
  if (previous !== undefined && AUTH_TEXT.test(previous) && !(next !== undefined && AUTH_TEXT.test(next))) return previous;
  return next ?? previous;
}

const AUTH_CODES = new Set([29 /* topic authorization */, 30 /* group authorization */, 31 /* cluster authorization */, 58 /* SASL auth */, -169 /* local authentication */]);

/**
 * Turns a client error into a KafmirrorError that says which cluster failed and where; an
 * authentication problem is told apart from an unreachable broker (librdkafka reports a rejected
 * SASL handshake only through the client's background error).
 */
export function clusterError(c: Cluster, what: string, err: unknown, background?: string): KafmirrorError {
  if (err instanceof KafmirrorError) return err;
  const code = (err as Partial<LibrdKafkaError>).code;
  const base = kafkaError(what, c.conn, err, background);
  const prefix = c.role === 'source' ? 'AGENTTRACE_SOURCE_KAFKA_' : 'AGENTTRACE_TARGET_KAFKA_';
  const message = `${c.role} cluster "${c.alias}": ${base.message.replaceAll('AGENTTRACE_KAFKA_', prefix)}`;
  if (base.code === 'KAFKA_AUTH_FAILED' || (typeof code === 'number' && AUTH_CODES.has(code))) {
    return new KafmirrorError('AUTH_FAILED', message, { cause: err, retryable: false });
  }
  return new KafmirrorError(c.role === 'source' ? 'SOURCE_UNAVAILABLE' : 'TARGET_UNAVAILABLE', message, { cause: err, retryable: base.retryable });
}

/** librdkafka settings for a cluster, with a client id naming the role. */
export function clientConfig(c: Cluster, suffix: string): Record<string, string | number | boolean> {
  return { ...(rdkafkaConfig(c.conn) as Record<string, string | number | boolean>), 'client.id': `${c.conn.clientId ?? 'kafmirror'}-${c.role}-${suffix}` };
}

export interface TopicInfo {
  name: string;
  partitions: number;
  /** Kafka's topic id (UUID), new each time a topic is created. */
  topicId: string;
}

/** A promise wrapper around librdkafka's admin client that knows which cluster it talks to. */
export class ClusterAdmin {
  readonly cluster: Cluster;
  readonly #client: IAdminClient;
  #background: string | undefined;
  #closed = false;

  constructor(cluster: Cluster) {
    this.cluster = cluster;
    this.#client = Kafka.AdminClient.create(clientConfig(cluster, 'admin'), {
      'event.error': (e: { message?: string }) => {
        this.#background = stickyBackground(this.#background, e.message);
      },
    });
  }

  #call<T>(what: string, fn: (cb: (err: LibrdKafkaError | null | undefined, result?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, result) => (err ? reject(clusterError(this.cluster, what, err, this.#background)) : resolve(result as T)));
    });
  }

  listTopics(timeoutMs = 10_000): Promise<string[]> {
    return this.#call('listing topics', (cb) => this.#client.listTopics({ timeout: timeoutMs }, cb));
  }

  /** Partition counts of existing topics; missing ones are left out. */
  async describeTopics(topics: string[], timeoutMs = 10_000): Promise<TopicInfo[]> {
    if (topics.length === 0) return [];
    const out: TopicInfo[] = [];
    // One topic per request: a missing topic fails the whole request otherwise.
    for (const t of topics) {
      try {
        const [d] = await this.#call<TopicDescription[]>(`describing topic ${t}`, (cb) => this.#client.describeTopics([t], { timeout: timeoutMs }, cb));
        if (d && !d.error) out.push({ name: t, partitions: d.partitions.length, topicId: uuidString(d.topicId) });
      } catch (err) {
        if (/unknown topic|UNKNOWN_TOPIC|does not host this topic/i.test(String((err as Error).message))) continue;
        throw err;
      }
    }
    return out;
  }

  async createTopic(topic: NewTopic, timeoutMs = 15_000): Promise<boolean> {
    try {
      await this.#call<void>(`creating topic ${topic.topic}`, (cb) => this.#client.createTopic(topic, timeoutMs, cb));
      return true;
    } catch (err) {
      const cause = (err as { cause?: { code?: number } }).cause;
      if (cause?.code === 36 || /already exists/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  createPartitions(topic: string, total: number, timeoutMs = 15_000): Promise<void> {
    return this.#call<void>(`adding partitions to ${topic}`, (cb) => this.#client.createPartitions(topic, total, timeoutMs, cb));
  }

  /** Next offset per partition: the last stable offset (read_committed) or the high watermark. */
  async endOffsets(topic: string, partitions: number[], committedOnly = true, timeoutMs = 10_000): Promise<Map<number, number>> {
    const rows = await this.#call<Array<{ partition: number; offset: number }>>(`listing offsets of ${topic}`, (cb) =>
      this.#client.listOffsets(
        partitions.map((p) => ({ topic, partition: p, offset: Kafka.OffsetSpec.LATEST })),
        { timeout: timeoutMs, isolationLevel: committedOnly ? Kafka.IsolationLevel.READ_COMMITTED : Kafka.IsolationLevel.READ_UNCOMMITTED },
        cb,
      ),
    );
    return new Map(rows.map((r) => [r.partition, Number(r.offset)]));
  }

  /** First offset per partition (earliest) or the last stable offset (latest). */
  async startOffsets(topic: string, partitions: number[], where: 'earliest' | 'latest', timeoutMs = 10_000): Promise<Map<number, number>> {
    const rows = await this.#call<Array<{ partition: number; offset: number }>>(`listing offsets of ${topic}`, (cb) =>
      this.#client.listOffsets(
        partitions.map((p) => ({ topic, partition: p, offset: where === 'earliest' ? Kafka.OffsetSpec.EARLIEST : Kafka.OffsetSpec.LATEST })),
        { timeout: timeoutMs, isolationLevel: Kafka.IsolationLevel.READ_COMMITTED },
        cb,
      ),
    );
    return new Map(rows.map((r) => [r.partition, Number(r.offset)]));
  }

  /** Committed offsets of a consumer group (topic → partition → next offset). */
  async groupOffsets(group: string, timeoutMs = 10_000): Promise<Map<string, Map<number, number>>> {
    const res = await this.#call<Array<{ groupId: string; error?: LibrdKafkaError; partitions: Array<{ topic: string; partition: number; offset: number; error?: unknown }> }>>(
      `reading offsets of group ${group}`,
      (cb) => this.#client.listConsumerGroupOffsets([{ groupId: group }], { timeout: timeoutMs, requireStableOffsets: true }, cb),
    );
    const out = new Map<string, Map<number, number>>();
    for (const r of res) {
      if (r.error) throw clusterError(this.cluster, `reading offsets of group ${group}`, r.error, this.#background);
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
    const res = await this.#call<{ groups: Array<{ members: unknown[]; error?: unknown }> }>(`describing group ${group}`, (cb) =>
      this.#client.describeGroups([group], { timeout: timeoutMs }, cb),
    );
    return res.groups[0]?.members.length ?? 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.disconnect();
  }
}

export function connectClient(client: Producer | KafkaConsumer, c: Cluster, what: string, timeoutMs = 15_000): Promise<void> {
  let background: string | undefined;
  const onError = (e: { message?: string }) => {
    background = stickyBackground(background, e.message);
  };
  const emitter = client as unknown as NodeJS.EventEmitter;
  emitter.on('event.error', onError);
  return new Promise<void>((resolve, reject) => {
    client.connect({ timeout: timeoutMs }, (err) => (err ? reject(clusterError(c, what, err, background)) : resolve()));
  }).finally(() => emitter.off('event.error', onError));
}

export function consumeBatch(consumer: KafkaConsumer, max: number): Promise<Message[]> {
  return new Promise((resolve, reject) => consumer.consume(max, (err, msgs) => (err ? reject(err) : resolve(msgs))));
}

/**
 * Native teardowns still running. A consumer's or producer's disconnect runs in a libuv worker
 * thread (close, then rd_kafka_destroy, while librdkafka's own threads still deliver events to
 * the binding); a process that exits meanwhile tears V8 and the event loop down under those
 * threads, which can crash it (SIGSEGV). `disconnect` gives its caller control back after
 * `timeoutMs` so a close never hangs, but the teardown stays here until it really finished, and
 * the CLI waits for `nativeTeardowns()` before it exits.
 */
const teardowns = new Set<Promise<void>>();

/** Resolves once every native teardown started so far has finished, or after `timeoutMs`; false if one had not. */
export async function nativeTeardowns(timeoutMs = 30_000): Promise<boolean> {
  if (teardowns.size === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  const finished = Promise.all([...teardowns]).then(() => true as const);
  try {
    return await Promise.race([finished, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export function disconnect(client: Producer | KafkaConsumer, timeoutMs = 5_000): Promise<void> {
  const done = new Promise<void>((resolve) => {
    // A client already disconnecting ignores this call and its callback: its "disconnected" event still comes.
    (client as unknown as NodeJS.EventEmitter).once('disconnected', () => resolve());
    try {
      client.disconnect(() => resolve());
    } catch {
      // Not connected (or already disconnecting): nothing of ours runs in the background.
      resolve();
    }
  });
  teardowns.add(done);
  void done.then(() => teardowns.delete(done));
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).finally(() => clearTimeout(timer));
}

/** librdkafka's incrementalAssign/Unassign exist at run time but are missing from its typings. */
export function incrementalAssign(consumer: KafkaConsumer, parts: TopicPartitionOffset[]): void {
  (consumer as unknown as { incrementalAssign(p: TopicPartitionOffset[]): void }).incrementalAssign(parts);
}

export const promisify0 = (fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> =>
  new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
