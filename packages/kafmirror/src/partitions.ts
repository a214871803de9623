import { OffsetMap } from './offset-map.js';

/**
 * Mirroring state of one source partition that more than one part of the replicator reads: the
 * transaction loop moves `next` and `lastTs` and fills `map`; the lag sampler and the
 * checkpointer only read them (each keeps its own per-partition state to itself).
 */
export interface MirroredPartition {
  readonly topic: string;
  readonly partition: number;
  readonly targetTopic: string;
  /** Next source offset to mirror; everything before it is committed on the target. */
  next: number;
  /** Source timestamp of the last record committed on the target. */
  lastTs: number | undefined;
  /** Source offset -> target offset of the records this run mirrored (for checkpoints). */
  readonly map: OffsetMap;
  /** The source log `next` counts in (its topic id), stored with every offset. */
  readonly sourceTopicId: string;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** The partitions being mirrored, and how many partitions of each source topic are known. */
export class PartitionTable {
  readonly #parts = new Map<string, MirroredPartition>();
  readonly #topics = new Map<string, number>();

  get(topic: string, partition: number): MirroredPartition | undefined {
    return this.#parts.get(key(topic, partition));
  }

  add(topic: string, partition: number, targetTopic: string, next: number, lastTs: number | undefined, sourceTopicId: string): MirroredPartition {
    const st: MirroredPartition = { topic, partition, targetTopic, next, lastTs, map: new OffsetMap(next), sourceTopicId };
    this.#parts.set(key(topic, partition), st);
    return st;
  }

  values(): IterableIterator<MirroredPartition> {
    return this.#parts.values();
  }

  get size(): number {
    return this.#parts.size;
  }

  /** Partitions of `topic` already taken on (0 for a topic not seen yet). */
  knownPartitions(topic: string): number {
    return this.#topics.get(topic) ?? 0;
  }

  setKnownPartitions(topic: string, partitions: number): void {
    this.#topics.set(topic, partitions);
  }

  /** Source topics being mirrored, in the order they were found. */
  topics(): string[] {
    return [...this.#topics.keys()];
  }
}
