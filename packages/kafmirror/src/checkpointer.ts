import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, Message, Producer } from '@confluentinc/kafka-javascript';
import { errorMessage, sleep } from '@agenttrace/common';
import { clientConfig, connectClient, consumeBatch, disconnect, openRecordReader, type Cluster, type ClusterAdmin } from './kafka-io.js';
import type { MirrorMetrics } from './metrics.js';
import type { ResolvedReplicatorOptions } from './options.js';
import type { MirroredPartition, PartitionTable } from './partitions.js';
import { readProvenance } from './provenance.js';
import { checkpointKey, encodeCheckpoint } from './state-topics.js';

export interface CheckpointerDeps {
  options: ResolvedReplicatorOptions;
  target: Cluster;
  /** Reads the groups' committed offsets on the source. */
  sourceAdmin: ClusterAdmin;
  partitions: PartitionTable;
  metrics: MirrorMetrics;
  /** Checkpoints are written only while mirroring runs. */
  isRunning: () => boolean;
}

/** What the checkpointer remembers of one partition. */
interface PartitionCheckpoints {
  /** Last checkpoint written per group, to write only changes. */
  written: Map<string, number>;
  /** The last translation read from the target copy (see #lookUpOnTarget), reused while the group stays put. */
  looked?: { committed: number; targetOffset: number };
}

/**
 * Consumer-group offset translation: translates the named groups' committed source offsets to
 * target offsets (from the offset map the transaction loop fills, else by searching the target
 * copy's provenance headers) and writes the changed ones to the checkpoints topic on the target.
 */
export class Checkpointer {
  readonly #d: CheckpointerDeps;
  readonly #memo = new Map<MirroredPartition, PartitionCheckpoints>();
  #producer: Producer | undefined;
  /** Reads the target copy to translate offsets the in-memory map does not cover. */
  #targetReader: KafkaConsumer | undefined;
  #busy = false;

  constructor(deps: CheckpointerDeps) {
    this.#d = deps;
  }

  /** Connects the checkpoint producer to the target. */
  async connect(): Promise<void> {
    const target = this.#d.target;
    const cp = new Kafka.Producer({ ...clientConfig(target, 'checkpoints'), 'enable.idempotence': true, 'linger.ms': 20, dr_cb: false });
    await connectClient(cp, target, 'connecting the checkpoint producer');
    cp.setPollInterval(100);
    this.#producer = cp;
  }

  #of(st: MirroredPartition): PartitionCheckpoints {
    let m = this.#memo.get(st);
    if (!m) {
      m = { written: new Map() };
      this.#memo.set(st, m);
    }
    return m;
  }

  /** Translates the named groups' source offsets to target offsets and stores the changed ones. Never throws. */
  async checkpoint(): Promise<void> {
    const { options: o, partitions: table } = this.#d;
    const cp = this.#producer;
    if (this.#busy || !cp || !this.#d.isRunning()) return;
    this.#busy = true;
    try {
      for (const group of o.groups) {
        const offsets = await this.#d.sourceAdmin.groupOffsets(group);
        let written = 0;
        for (const [topic, parts] of offsets) {
          for (const [partition, committed] of parts) {
            const st = table.get(topic, partition);
            if (!st) continue;
            // Offsets this run has not mirrored itself (before a restart, or trimmed from the map)
            // are looked up in the target copy's provenance headers.
            const targetOffset = st.map.translate(committed) ?? (await this.#lookUpOnTarget(st, committed));
            const memo = this.#of(st);
            // Unknown translations keep the previous checkpoint: it is older, so a failover
            // may re-deliver but never skips.
            if (targetOffset === undefined || memo.written.get(group) === targetOffset) continue;
            const value = encodeCheckpoint({ group, sourceTopic: topic, targetTopic: st.targetTopic, partition, sourceOffset: committed, targetOffset, time: Date.now() });
            cp.produce(o.checkpointsTopic, null, value, checkpointKey(group, st.targetTopic, partition), Date.now());
            memo.written.set(group, targetOffset);
            written++;
          }
        }
        if (written > 0) {
          await new Promise<void>((resolve, reject) => cp.flush(10_000, (err) => (err ? reject(err) : resolve())));
          this.#d.metrics.checkpoints.inc({ group }, written);
          o.log('debug', 'checkpoints written', { group, partitions: written });
        }
      }
    } catch (err) {
      o.log('warn', 'could not write checkpoints; retrying at the next interval', { error: errorMessage(err) });
    } finally {
      this.#busy = false;
    }
  }

  /** Waits for a checkpoint in progress, then writes one. */
  async checkpointNow(): Promise<void> {
    while (this.#busy) await sleep(20);
    await this.checkpoint();
  }

  /**
   * Where a consumer that committed source offset `committed` resumes on the target, for offsets
   * the in-memory map does not cover: a binary search over the target partition, reading the
   * source offset each copy carries in its provenance headers (both sides are in the same order).
   * The search only moves past records seen to come before `committed`, so a fetch that times out
   * can make the answer early (re-delivery), never late (a skipped record). Undefined when the
   * copy cannot tell: a record without this source's provenance, or the target unreachable.
   */
  async #lookUpOnTarget(st: MirroredPartition, committed: number): Promise<number | undefined> {
    const memo = this.#of(st);
    if (memo.looked?.committed === committed) return memo.looked.targetOffset;
    const o = this.#d.options;
    try {
      this.#targetReader ??= await openRecordReader(this.#d.target, 'checkpoint-lookup', `kafmirror.${o.sourceAlias}.lookup`, 'connecting the checkpoint reader', 2000);
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
        if (!from || from.cluster !== o.sourceAlias || from.topic !== st.topic || from.partition !== st.partition) return undefined;
        if (from.offset >= committed) hi = mid;
        else lo = m.offset + 1;
      }
      memo.looked = { committed, targetOffset: lo };
      return lo;
    } catch (err) {
      o.log('warn', 'could not read the target copy to translate a group offset; keeping the previous checkpoint', {
        topic: st.targetTopic,
        partition: st.partition,
        error: errorMessage(err),
      });
      return undefined;
    }
  }

  /** Disconnects the checkpoint producer and the target reader. */
  async close(): Promise<void> {
    const clients = [this.#targetReader, this.#producer].filter((c): c is KafkaConsumer | Producer => c !== undefined);
    this.#targetReader = undefined;
    this.#producer = undefined;
    await Promise.all(clients.map((c) => disconnect(c)));
  }
}
