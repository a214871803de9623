import type { KafkaConsumer } from '@confluentinc/kafka-javascript';
import { errorMessage } from '@agenttrace/common';
import { consumeBatch, describeCluster, disconnect, openRecordReader, type Cluster, type ClusterAdmin } from './kafka-io.js';
import { LagAlarm, describeUrl, postWebhook, timeLagMs, type AlarmTransition, type LagSnapshot, type PartitionLag } from './lag.js';
import type { MirrorMetrics } from './metrics.js';
import type { ResolvedReplicatorOptions } from './options.js';
import type { MirroredPartition, PartitionTable } from './partitions.js';

export interface LagSamplerDeps {
  options: ResolvedReplicatorOptions;
  source: Cluster;
  sourceAdmin: ClusterAdmin;
  partitions: PartitionTable;
  metrics: MirrorMetrics;
}

/** What the sampler knows of one partition beyond what the transaction loop keeps. */
interface LagState {
  /** End of the partition on the source (last stable offset), sampled periodically. */
  end: number | undefined;
  /** When the partition was last seen with nothing left to mirror. */
  caughtUpAt: number | undefined;
  /** Timestamp of the first record waiting at `headOffset`, read when no other bound is known. */
  headTs: number | undefined;
  headOffset: number;
}

/**
 * Replication lag: samples the end offsets of the mirrored source partitions (off the mirroring
 * loop), reads the age of a backlog nothing is known about, turns both into lag snapshots and
 * metrics, and announces when the lag crosses the threshold (log line and webhook).
 */
export class LagSampler {
  readonly #d: LagSamplerDeps;
  readonly #alarm: LagAlarm | undefined;
  readonly #state = new Map<MirroredPartition, LagState>();
  #lastSnapshot: LagSnapshot | undefined;
  #endsBusy = false;
  #endsFailures = 0;
  #peeker: KafkaConsumer | undefined;

  constructor(deps: LagSamplerDeps) {
    this.#d = deps;
    if (deps.options.lagThresholdMs !== undefined) this.#alarm = new LagAlarm(deps.options.lagThresholdMs);
  }

  #of(st: MirroredPartition): LagState {
    let s = this.#state.get(st);
    if (!s) {
      s = { end: undefined, caughtUpAt: undefined, headTs: undefined, headOffset: -1 };
      this.#state.set(st, s);
    }
    return s;
  }

  /** Samples the end of every mirrored source partition. Never throws: stale figures are logged. */
  async sampleEnds(): Promise<void> {
    if (this.#endsBusy) return;
    this.#endsBusy = true;
    const { options: o, source, sourceAdmin, partitions: table } = this.#d;
    try {
      const byTopic = new Map<string, number[]>();
      for (const st of table.values()) {
        const l = byTopic.get(st.topic) ?? [];
        l.push(st.partition);
        byTopic.set(st.topic, l);
      }
      for (const [topic, partitions] of byTopic) {
        const ends = await sourceAdmin.endOffsets(topic, partitions, true, 5_000);
        for (const [p, end] of ends) {
          const st = table.get(topic, p);
          if (st) this.#of(st).end = end;
        }
      }
      await this.#peekHeads();
      if (this.#endsFailures >= 5) o.log('info', `${describeCluster(source)} answers again; lag figures are current`);
      this.#endsFailures = 0;
    } catch (err) {
      // Lag figures go stale while the source is unreachable: say so once, not every second.
      if (++this.#endsFailures === 5) o.log('warn', `cannot read the end offsets of ${describeCluster(source)}; lag figures are stale until it answers`, { error: errorMessage(err) });
    } finally {
      this.#endsBusy = false;
    }
  }

  /**
   * For partitions with records waiting and nothing known about their age (never mirrored in this
   * or an earlier run), reads the timestamp of the first waiting record once, so the time lag of a
   * backlog is real from the first sample instead of 0.
   */
  async #peekHeads(): Promise<void> {
    const unknown = [...this.#d.partitions.values()].filter((st) => {
      const s = this.#of(st);
      return s.end !== undefined && s.end > st.next && st.lastTs === undefined && s.caughtUpAt === undefined && s.headOffset !== st.next;
    });
    if (unknown.length === 0) return;
    this.#peeker ??= await openRecordReader(this.#d.source, 'lag-peek', `kafmirror.${this.#d.options.sourceAlias}.peek`, 'connecting the lag reader', 500);
    const peeker = this.#peeker;
    for (const st of unknown.slice(0, 20)) {
      const at = st.next;
      peeker.assign([{ topic: st.topic, partition: st.partition, offset: at }]);
      try {
        const [m] = await consumeBatch(peeker, 1);
        if (m?.timestamp !== undefined) {
          const s = this.#of(st);
          s.headTs = m.timestamp;
          s.headOffset = at;
        }
      } finally {
        peeker.unassign();
      }
    }
  }

  /** Takes a lag snapshot from the last sampled ends, updates the metrics and the alarm. */
  sampleLag(): void {
    const metrics = this.#d.metrics;
    const now = Date.now();
    const partitions: PartitionLag[] = [];
    let total = 0;
    let maxMs = 0;
    for (const st of this.#d.partitions.values()) {
      const s = this.#of(st);
      const records = s.end === undefined ? 0 : Math.max(0, s.end - st.next);
      if (records === 0) s.caughtUpAt = now;
      const ms = timeLagMs(records, now, st.lastTs, s.caughtUpAt, s.headOffset === st.next ? s.headTs : undefined);
      partitions.push({ topic: st.topic, partition: st.partition, records, ms });
      total += records;
      maxMs = Math.max(maxMs, ms);
      metrics.lagRecords.set({ topic: st.topic, partition: String(st.partition) }, records);
      metrics.lagSeconds.set({ topic: st.topic, partition: String(st.partition) }, ms / 1000);
    }
    const transition = this.#alarm?.update(maxMs);
    this.#lastSnapshot = { time: now, partitions, totalRecords: total, maxMs, alerting: this.#alarm?.alerting ?? false };
    metrics.lagAlert.set(this.#alarm?.alerting ? 1 : 0);
    if (transition) this.#announce(transition, this.#lastSnapshot);
  }

  #announce(transition: AlarmTransition, snap: LagSnapshot): void {
    const o = this.#d.options;
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

  /** Disconnects the head reader, if one was opened. The last snapshot stays readable. */
  async close(): Promise<void> {
    const peeker = this.#peeker;
    this.#peeker = undefined;
    if (peeker) await disconnect(peeker);
  }
}
