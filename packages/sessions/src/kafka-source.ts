import type { KafkaConsumer } from '@confluentinc/kafka-javascript';
import { describeKafka } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import type { SourceConnections } from './connections.js';
import { SessionNotFoundError } from './errors.js';
import { closeConsumer, consumeBatch, openConsumer, pickSessionRecords, scanPartition, type ScannedEvent } from './kafka-scan.js';
import { SummaryBuilder, selectSessions, type ListSessionsOptions, type SessionSummary } from './list.js';
import { planScan, type Coverage, type OffsetRange } from './scan-plan.js';
import type { KafkaIndex } from './redis-timeline.js';
import { inRange, parseStored, type FollowEnd, type FollowStart, type ReadSessionOptions, type SessionReadResult, type SessionSource, type SourceAttempt } from './source.js';

/** Where a read of one session looks: its partition's offsets and the ranges left to scan. */
interface ScanPlan {
  partition: number;
  low: number;
  high: number;
  start: number;
  ranges: OffsetRange[];
  warnings: string[];
}

interface RangesScan {
  events: ScannedEvent[];
  /** Offset after the last record looked at (the partition's end when every range was read). */
  nextOffset: number;
  warnings: string[];
}

/**
 * The session's single Kafka partition (the producer's murmur2 of the session id), read with the
 * plain consumers of kafka-scan.ts: a bounded offset range for read, the tail for follow, and the
 * last records of every partition for list.
 */
export class KafkaSource implements SessionSource {
  readonly name = 'kafka' as const;
  readonly #c: SourceConnections;

  constructor(connections: SourceConnections) {
    this.#c = connections;
  }

  describe(): string {
    return `${describeKafka(this.#c.settings.kafka)}, topic ${this.#c.settings.topic}`;
  }

  async read(sessionId: string, options: ReadSessionOptions, forced: boolean): Promise<SourceAttempt> {
    const topic = this.#c.settings.topic;
    await this.#c.assertKafkaReachable();
    // In forced mode Redis was not consulted yet; its offset index still saves scanning records.
    // The index, the topic id and the consumer's connection are asked for at once: each is a
    // round trip of its own, and none needs another's answer.
    const useIndex = forced || this.#c.redisTried;
    const indexLookup = useIndex ? this.#c.tryKafkaIndex(sessionId) : Promise.resolve(undefined);
    const topicIdLookup = useIndex ? this.#c.tryTopicId() : Promise.resolve(undefined);
    const opening = openConsumer(this.#c.settings.kafka, this.#c.opts.clientId, this.#c.opts.kafkaTimeoutMs);
    opening.catch(() => undefined);
    let plan: ScanPlan;
    let scan: RangesScan;
    try {
      const partition = await this.#c.partitionOf(sessionId);
      if (partition === undefined) return { kind: 'missing', detail: `topic ${topic} does not exist on ${describeKafka(this.#c.settings.kafka)}` };
      plan = await this.#plan(partition, options, indexLookup, topicIdLookup);
      try {
        scan = await this.#scanRanges(await opening, sessionId, plan);
      } catch (err) {
        throw this.#c.kafkaFailure(`reading ${topic} partition ${partition}`, err);
      }
    } finally {
      const consumer = await opening.catch(() => undefined);
      if (consumer) await closeConsumer(consumer);
    }
    const { partition, low, high, start, ranges } = plan;
    const warnings = [...plan.warnings, ...scan.warnings];
    const events = scan.events.map((s) => s.event);
    if (events.length === 0 || !events.some((e) => inRange(e, options.from, options.to))) {
      return { kind: 'missing', detail: `no record with this key in ${topic} partition ${partition}, offsets ${ranges.map((r) => `${r.start}..${r.end}`).join(', ') || `${start}..${high}`}` };
    }
    if (events[0]!.event_type !== 'session_start' && options.from === undefined && start === low && low > 0) {
      warnings.push(`partition ${partition} starts at offset ${low} (retention); the session's beginning may be only in the archive`);
    }
    const result: SessionReadResult = { sessionId, events, source: 'kafka', partition, warnings, cursor: { source: 'kafka', topic, partition, nextOffset: scan.nextOffset } };
    return { kind: 'found', result };
  }

  /** The partition's offsets, the --from start, and the ranges the session's index leaves to scan. */
  async #plan(partition: number, options: ReadSessionOptions, indexLookup: Promise<KafkaIndex | undefined>, topicIdLookup: Promise<string | undefined>): Promise<ScanPlan> {
    const topic = this.#c.settings.topic;
    const admin = this.#c.admin();
    const warnings: string[] = [];
    let low: number;
    let high: number;
    let start: number;
    try {
      const wm = (await admin.watermarks(topic, [partition], this.#c.opts.kafkaTimeoutMs)).get(partition);
      low = wm?.low ?? 0;
      high = wm?.high ?? 0;
      start = low;
      if (options.from !== undefined) {
        const at = await admin.offsetForTime(topic, partition, options.from, this.#c.opts.kafkaTimeoutMs);
        start = Math.max(start, at < 0 ? high : at);
      }
    } catch (err) {
      throw this.#c.kafkaFailure(`looking up offsets of ${topic} partition ${partition}`, err);
    }
    const [index, topicId] = await Promise.all([indexLookup, topicIdLookup]);
    let lastIndexed: number | undefined;
    let gaps: OffsetRange[] = [];
    let coverage: Coverage[] = [];
    if (index && index.topic === topic && index.partition === partition) {
      if (index.topicId !== undefined && topicId !== undefined && index.topicId !== topicId) {
        // Offsets of another log (the topic was created again, or Redis holds a DR peer's view).
        warnings.push(`the Redis offset index of this session is for another topic id (${index.topicId}, not ${topicId}); the whole partition is scanned`);
      } else {
        if (index.firstOffset < low) warnings.push(`the session's first ${low - index.firstOffset} offsets of partition ${partition} are past Kafka retention; older events may be in the archive`);
        start = Math.max(start, index.firstOffset);
        if (index.topicId !== undefined && index.topicId === topicId) {
          lastIndexed = index.lastOffset;
          gaps = index.gaps;
          coverage = await this.#c.tryCoverage(partition, topicId);
        }
      }
    }
    return { partition, low, high, start, ranges: planScan({ start, high, lastIndexed, coverage, gaps }), warnings };
  }

  /** Scans the planned ranges in order with one consumer; stops at the first incomplete one. */
  async #scanRanges(consumer: KafkaConsumer, sessionId: string, plan: ScanPlan): Promise<RangesScan> {
    const events: ScannedEvent[] = [];
    const warnings: string[] = [];
    let nextOffset = plan.start;
    for (const r of plan.ranges) {
      const scan = await scanPartition({
        consumer,
        topic: this.#c.settings.topic,
        partition: plan.partition,
        sessionId,
        start: r.start,
        end: r.end,
        batchSize: this.#c.opts.kafkaBatchSize,
        idleTimeoutMs: this.#c.opts.kafkaIdleTimeoutMs,
        maxEvents: this.#c.opts.maxEvents - events.length,
      });
      for (const e of scan.events) events.push(e);
      nextOffset = scan.nextOffset;
      if (scan.rejected.length > 0) warnings.push(`${scan.rejected.length} records with this key are not valid events: ${scan.rejected.slice(0, 3).join('; ')}`);
      if (scan.incomplete) {
        warnings.push(`Kafka scan incomplete: ${scan.incomplete}`);
        return { events, nextOffset, warnings };
      }
    }
    // A skipped gap at the end holds nothing of the session: a follow goes on from the end.
    return { events, nextOffset: Math.max(nextOffset, plan.high), warnings };
  }

  /** Tails the session's partition from the handed-over offset, the cursor's, or the current end. */
  async follow(sessionId: string, deliver: (events: AgentEvent[]) => Promise<void>, signal: AbortSignal, start: FollowStart): Promise<FollowEnd> {
    const fromOffset = start.handoff ? start.handoff.nextOffset : start.cursor?.source === this.name ? start.cursor.nextOffset : undefined;
    const topic = this.#c.settings.topic;
    const partition = await this.#c.partitionOf(sessionId);
    if (partition === undefined) throw new SessionNotFoundError(sessionId, ['kafka'], `topic ${topic} does not exist`);
    let offset = fromOffset;
    if (offset === undefined) {
      try {
        offset = (await this.#c.admin().watermarks(topic, [partition], this.#c.opts.kafkaTimeoutMs)).get(partition)?.high ?? 0;
      } catch (err) {
        throw this.#c.kafkaFailure(`looking up offsets of ${topic} partition ${partition}`, err);
      }
    }
    if (signal.aborted) return 'done';
    const consumer = await openConsumer(this.#c.settings.kafka, this.#c.opts.clientId, this.#c.opts.kafkaTimeoutMs);
    const wanted = Buffer.from(sessionId, 'utf8');
    try {
      consumer.assign([{ topic, partition, offset }]);
      consumer.setDefaultConsumeTimeout(Math.min(500, this.#c.opts.followPollMs));
      while (!signal.aborted) {
        const batch = await consumeBatch(consumer, this.#c.opts.kafkaBatchSize);
        if (batch.length === 0) continue;
        const found: ScannedEvent[] = [];
        pickSessionRecords(batch, sessionId, wanted, found, []);
        await deliver(found.map((f) => f.event));
      }
    } finally {
      await closeConsumer(consumer);
    }
    return 'done';
  }

  /** A bounded scan of the topic's tail: the last listScanPerPartition records of each partition. */
  async list(options: ListSessionsOptions): Promise<SessionSummary[]> {
    const topic = this.#c.settings.topic;
    const n = await this.#c.partitionCount();
    if (n === undefined) return [];
    const partitions = Array.from({ length: n }, (_, p) => p);
    const admin = this.#c.admin();
    const ranges: Array<{ partition: number; start: number; end: number }> = [];
    let cut = false;
    try {
      const wms = await admin.watermarks(topic, partitions, this.#c.opts.kafkaTimeoutMs);
      for (const p of partitions) {
        const wm = wms.get(p) ?? { low: 0, high: 0 };
        let start = Math.max(wm.low, wm.high - this.#c.opts.listScanPerPartition);
        if (options.since !== undefined) {
          const at = await admin.offsetForTime(topic, p, options.since, this.#c.opts.kafkaTimeoutMs);
          start = Math.max(start, at < 0 ? wm.high : at);
        }
        if (start > wm.low) cut = true;
        if (start < wm.high) ranges.push({ partition: p, start, end: wm.high });
      }
    } catch (err) {
      throw this.#c.kafkaFailure(`looking up offsets of ${topic}`, err);
    }
    const builder = new SummaryBuilder();
    if (ranges.length > 0) {
      const consumer = await openConsumer(this.#c.settings.kafka, this.#c.opts.clientId, this.#c.opts.kafkaTimeoutMs);
      try {
        consumer.assign(ranges.map((r) => ({ topic, partition: r.partition, offset: r.start })));
        consumer.setDefaultConsumeTimeout(200);
        const remaining = new Map(ranges.map((r) => [r.partition, r]));
        let lastProgress = Date.now();
        while (remaining.size > 0 && Date.now() - lastProgress < this.#c.opts.kafkaIdleTimeoutMs) {
          const batch = await consumeBatch(consumer, this.#c.opts.kafkaBatchSize);
          if (batch.length > 0) lastProgress = Date.now();
          for (const m of batch) {
            const r = remaining.get(m.partition);
            if (!r || m.offset >= r.end) continue;
            const e = m.value ? parseStored(m.value.toString('utf8')) : undefined;
            if (e) builder.add(e);
            if (m.offset >= r.end - 1) remaining.delete(m.partition);
          }
          if (batch.length === 0) {
            const pos = consumer.position(ranges.map((r) => ({ topic, partition: r.partition })));
            for (const tp of pos) {
              const r = remaining.get(tp.partition);
              if (r && typeof tp.offset === 'number' && tp.offset >= r.end) remaining.delete(tp.partition);
            }
          }
        }
      } catch (err) {
        throw this.#c.kafkaFailure(`scanning ${topic}`, err);
      } finally {
        await closeConsumer(consumer);
      }
    }
    return selectSessions(builder.rows(cut), options);
  }
}
