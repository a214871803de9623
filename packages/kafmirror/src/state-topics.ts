import Kafka from '@confluentinc/kafka-javascript';
import type { Message } from '@confluentinc/kafka-javascript';
import { ClusterAdmin, clientConfig, connectClient, consumeBatch, disconnect, type Cluster } from './kafka-io.js';
import { KafmirrorError } from './errors.js';

/** Where mirroring of one source partition stands, as stored in the offsets topic on the target. */
export interface StoredOffset {
  topic: string;
  partition: number;
  /** Next source offset to mirror. */
  next: number;
  /** Source timestamp of the last record mirrored (for the time lag after a restart). */
  lastTimestamp?: number;
  /**
   * Which log `next` counts in: the source topic's id, a UUID the source cluster gives each
   * creation of a topic (so it differs between clusters and between incarnations). An alias can
   * be pointed at another cluster and a topic recreated under its name; offsets of one log mean
   * nothing in another. Absent in records written before ids were stored.
   */
  sourceTopicId?: string;
}

/** A translated consumer-group offset, as stored in the checkpoints topic on the target. */
export interface Checkpoint {
  group: string;
  sourceTopic: string;
  targetTopic: string;
  partition: number;
  /** The group's committed offset on the source. */
  sourceOffset: number;
  /** Where the group resumes on the target. */
  targetOffset: number;
  time: number;
}

export const offsetKey = (topic: string, partition: number): string => JSON.stringify([topic, partition]);
export const checkpointKey = (group: string, targetTopic: string, partition: number): string => JSON.stringify([group, targetTopic, partition]);

export function encodeOffset(o: StoredOffset): Buffer {
  return Buffer.from(JSON.stringify(o));
}

export function encodeCheckpoint(c: Checkpoint): Buffer {
  return Buffer.from(JSON.stringify(c));
}

function parseJson(v: Buffer | null | undefined): unknown {
  if (!v) return undefined;
  try {
    return JSON.parse(v.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function decodeOffset(v: Buffer | null | undefined): StoredOffset | undefined {
  const o = parseJson(v) as Partial<StoredOffset> | undefined;
  if (!o || typeof o.topic !== 'string' || !Number.isInteger(o.partition) || !Number.isInteger(o.next)) return undefined;
  return o as StoredOffset;
}

export function decodeCheckpoint(v: Buffer | null | undefined): Checkpoint | undefined {
  const c = parseJson(v) as Partial<Checkpoint> | undefined;
  if (!c || typeof c.group !== 'string' || typeof c.targetTopic !== 'string' || !Number.isInteger(c.partition) || !Number.isInteger(c.targetOffset)) return undefined;
  return c as Checkpoint;
}

/** Creates one of kafmirror's compacted bookkeeping topics on the target if it is missing. */
export async function ensureStateTopic(admin: ClusterAdmin, topic: string, replicationFactor: number): Promise<void> {
  await admin.createTopic({ topic, num_partitions: 1, replication_factor: replicationFactor, config: { 'cleanup.policy': 'compact' } });
}

/**
 * Reads a bookkeeping topic from its beginning to its last stable offset with read_committed,
 * so records of an aborted (or crashed, then fenced) transaction are never seen.
 */
export async function readStateTopic(cluster: Cluster, topic: string, timeoutMs = 30_000): Promise<Message[]> {
  const admin = new ClusterAdmin(cluster);
  let ends: Map<number, number>;
  try {
    const [info] = await admin.describeTopics([topic]);
    if (!info) return [];
    ends = await admin.endOffsets(topic, Array.from({ length: info.partitions }, (_, p) => p), true);
  } finally {
    admin.close();
  }
  const pending = new Set([...ends].filter(([, end]) => end > 0).map(([p]) => p));
  if (pending.size === 0) return [];
  const consumer = new Kafka.KafkaConsumer(
    {
      ...clientConfig(cluster, 'state-reader'),
      'group.id': `kafmirror-state-reader`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await connectClient(consumer, cluster, `reading ${topic}`);
  consumer.setDefaultConsumeTimeout(200);
  consumer.on('partition.eof', (e) => {
    // EOF under read_committed is reported at the last stable offset, which is the end we want.
    if (e.offset >= (ends.get(e.partition) ?? 0)) pending.delete(e.partition);
  });
  const out: Message[] = [];
  try {
    consumer.assign([...pending].map((p) => ({ topic, partition: p, offset: -2 })));
    const deadline = Date.now() + timeoutMs;
    while (pending.size > 0) {
      if (Date.now() > deadline) {
        throw new KafmirrorError('OFFSETS_UNREADABLE', `${cluster.role} cluster "${cluster.alias}": could not read ${topic} to its end within ${timeoutMs} ms`, { retryable: true });
      }
      const batch = await consumeBatch(consumer, 10_000);
      for (const m of batch) {
        out.push(m);
        if (m.offset + 1 >= (ends.get(m.partition) ?? 0)) pending.delete(m.partition);
      }
    }
  } finally {
    await disconnect(consumer);
  }
  return out;
}

/** The latest stored offset per source partition (compaction keeps the last record per key). */
export function latestOffsets(messages: Message[]): Map<string, StoredOffset> {
  const out = new Map<string, StoredOffset>();
  for (const m of messages) {
    const o = decodeOffset(m.value);
    if (o) out.set(offsetKey(o.topic, o.partition), o);
  }
  return out;
}

export function latestCheckpoints(messages: Message[]): Map<string, Checkpoint> {
  const out = new Map<string, Checkpoint>();
  for (const m of messages) {
    const c = decodeCheckpoint(m.value);
    if (c) out.set(checkpointKey(c.group, c.targetTopic, c.partition), c);
  }
  return out;
}
