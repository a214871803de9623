import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { KafkaConsumer } from '@confluentinc/kafka-javascript';
import {
  createS3Client,
  describeKafka,
  describeRedisUrl,
  describeS3,
  errorMessage,
  KafkaAdmin,
  KafkaError,
  OptionsError,
  redisKeys,
  restoreOffloads,
  type AgentTraceSettings,
  type RedisKeys,
} from '@agenttrace/common';
import { partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { loadArchiveReader } from './archive-source.js';
import { SessionNotFoundError, SourceUnavailableError, type SessionSource } from './errors.js';
import { assertKafkaReachable, closeConsumer, consumeBatch, openConsumer, pickSessionRecords, scanPartition, type ScannedEvent } from './kafka-scan.js';
import { mostCalled, SESSION_SORTS, SummaryBuilder, selectSessions, type ListSessionsOptions, type SessionSort, type SessionSummary } from './list.js';
import { resolveSessionReaderOptions, type ResolvedSessionReaderOptions, type SessionReaderOptions } from './options.js';
import { connectRedis, consumerOffset, decodeMeta, readEventTexts, readKafkaIndex, redisFailure, type KafkaIndex } from './redis-timeline.js';
import { seqAnomalies } from './seq.js';

export interface ReadSessionOptions {
  /** Which source to read; `auto` (default) tries Redis, then Kafka, then the archive. */
  source?: 'auto' | SessionSource;
  /** Keep events whose timestamp is at or after this (epoch ms). */
  from?: number;
  /** Keep events whose timestamp is at or before this (epoch ms). */
  to?: number;
  /** Fetch offloaded payloads back from S3 (default true). */
  restoreOffloads?: boolean;
}

/** Where a read ended, so follow() can continue exactly after it (no gap, no duplicate). */
export interface SessionCursor {
  source: SessionSource;
  topic: string;
  partition?: number;
  /** Kafka: the next offset of the session's partition to read. */
  nextOffset?: number;
  /** Redis: how many entries of the session's event list were read. */
  redisIndex?: number;
}

export interface SessionReadResult {
  sessionId: string;
  /** The session's events in its canonical (Kafka offset) order. */
  events: AgentEvent[];
  source: SessionSource;
  partition?: number;
  /** Gaps/duplicates in seq per emitter, offload fetch failures, skipped sources, cut scans. */
  warnings: string[];
  /** Continue here with follow(). */
  cursor: SessionCursor;
}

export interface FollowOptions {
  /** Continue after a read (from its result); without it, follow starts at the current end. */
  cursor?: SessionCursor;
  restoreOffloads?: boolean;
  /** Called when follow switches source or a fetch fails; follow keeps going. */
  onWarning?: (message: string) => void;
}

/** An alert as the dashboard consumer records it (the fields readers show). */
export interface AlertSummary {
  rule: string;
  session_id: string;
  message: string;
  fired_at: string;
}

type Attempt = { kind: 'found'; result: SessionReadResult } | { kind: 'missing'; detail: string };

/** Parses a stored event text; the dashboard consumer validated it before storing it. */
function parseStored(text: string): AgentEvent | undefined {
  try {
    const v = JSON.parse(text) as AgentEvent;
    return typeof v === 'object' && v !== null && typeof v.session_id === 'string' && typeof v.event_id === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function inRange(e: AgentEvent, from: number | undefined, to: number | undefined): boolean {
  if (from === undefined && to === undefined) return true;
  const t = Date.parse(e.timestamp);
  return (from === undefined || t >= from) && (to === undefined || t <= to);
}

function checkTime(name: string, v: number | undefined): void {
  if (v !== undefined && !Number.isFinite(v)) throw new OptionsError(`options.${name}`, 'must be epoch milliseconds');
}

/**
 * Reads one agent session from wherever it still lives: the Redis timeline the dashboard
 * consumer keeps, the session's single Kafka partition, or the Parquet archive on S3.
 * Connections are opened lazily and kept until close().
 */
export class SessionReader {
  readonly #settings: AgentTraceSettings;
  readonly #opts: ResolvedSessionReaderOptions;
  readonly #keys: RedisKeys;
  #redis: Promise<Redis> | undefined;
  #admin: KafkaAdmin | undefined;
  #s3: S3Client | undefined;
  #partitions: number | undefined;
  #closed = false;

  constructor(settings: AgentTraceSettings, options: SessionReaderOptions = {}) {
    if (!settings || !settings.kafka || typeof settings.topic !== 'string') throw new OptionsError('settings', 'must come from resolveSettings()');
    this.#settings = settings;
    this.#opts = resolveSessionReaderOptions(options);
    this.#keys = redisKeys(settings.redisPrefix);
  }

  get settings(): AgentTraceSettings {
    return this.#settings;
  }

  /** A safe description of a source's location (no credentials). */
  describe(source: SessionSource): string {
    if (source === 'redis') return describeRedisUrl(this.#settings.redisUrl);
    if (source === 'kafka') return `${describeKafka(this.#settings.kafka)}, topic ${this.#settings.topic}`;
    return describeS3(this.#settings.s3);
  }

  #redisClient(): Promise<Redis> {
    this.#assertOpen();
    if (!this.#redis) {
      const p = connectRedis(this.#settings.redisUrl, this.#opts.redisConnectTimeoutMs);
      this.#redis = p;
      // A failed connection is retried on the next call instead of being cached.
      p.catch(() => {
        if (this.#redis === p) this.#redis = undefined;
      });
    }
    return this.#redis;
  }

  #adminClient(): KafkaAdmin {
    this.#assertOpen();
    this.#admin ??= new KafkaAdmin({ ...this.#settings.kafka, clientId: this.#opts.clientId });
    return this.#admin;
  }

  #s3Client(): S3Client {
    this.#s3 ??= createS3Client(this.#settings.s3);
    return this.#s3;
  }

  #assertOpen(): void {
    if (this.#closed) throw new OptionsError('SessionReader', 'is closed');
  }

  #kafkaFailure(what: string, err: unknown): SourceUnavailableError {
    if (err instanceof SourceUnavailableError) return err;
    const where = describeKafka(this.#settings.kafka);
    // KafkaError messages already say what failed and where; say where only once.
    const detail = err instanceof KafkaError ? err.message.replace(` on ${where}`, '') : `${what} failed: ${errorMessage(err)}`;
    return new SourceUnavailableError('kafka', where, detail, err);
  }

  async #partitionCount(): Promise<number | undefined> {
    if (this.#partitions !== undefined) return this.#partitions;
    let n: number | undefined;
    // Every Kafka read starts here (partitionOf), so this is the one place to fail fast.
    await assertKafkaReachable(this.#settings.kafka);
    try {
      n = await this.#adminClient().partitionCount(this.#settings.topic, this.#opts.kafkaTimeoutMs);
    } catch (err) {
      throw this.#kafkaFailure(`describing topic ${this.#settings.topic}`, err);
    }
    // Partitions can only be added; caching the count for the reader's lifetime is safe enough for one command.
    if (n !== undefined) this.#partitions = n;
    return n;
  }

  /** The partition the session's records are on (the producer's murmur2 of the key), or undefined when the topic does not exist. */
  async partitionOf(sessionId: string): Promise<number | undefined> {
    const n = await this.#partitionCount();
    return n === undefined ? undefined : partitionForKey(sessionId, n);
  }

  async read(sessionId: string, options: ReadSessionOptions = {}): Promise<SessionReadResult> {
    this.#assertOpen();
    if (typeof sessionId !== 'string' || sessionId === '') throw new OptionsError('sessionId', 'must be a non-empty string');
    checkTime('from', options.from);
    checkTime('to', options.to);
    const mode = options.source ?? 'auto';
    if (!['auto', 'redis', 'kafka', 'archive'].includes(mode)) throw new OptionsError('options.source', `must be auto, redis, kafka or archive, got "${String(mode)}"`);
    const order: SessionSource[] = mode === 'auto' ? ['redis', 'kafka', 'archive'] : [mode as SessionSource];
    const warnings: string[] = [];
    const searched: SessionSource[] = [];
    const details: string[] = [];
    const unavailable: SourceUnavailableError[] = [];
    let found: SessionReadResult | undefined;
    for (const source of order) {
      let attempt: Attempt | undefined;
      try {
        if (source === 'redis') attempt = await this.#readRedis(sessionId);
        else if (source === 'kafka') attempt = await this.#readKafka(sessionId, options, mode === 'kafka');
        else {
          attempt = await this.#readArchive(sessionId, options);
          if (!attempt) {
            if (mode === 'archive') throw new SourceUnavailableError('archive', this.describe('archive'), 'the archive reader (@agenttrace/archiver) is not built; run npm run build');
            warnings.push('archive not searched: the archive reader (@agenttrace/archiver) is not built');
            continue;
          }
        }
      } catch (err) {
        if (!(err instanceof SourceUnavailableError) || mode !== 'auto') throw err;
        unavailable.push(err);
        warnings.push(`${err.message} (skipped)`);
        continue;
      }
      searched.push(source);
      if (attempt.kind === 'found') {
        found = attempt.result;
        break;
      }
      details.push(`${source}: ${attempt.detail}`);
    }
    if (!found) {
      // Redis only mirrors Kafka; when Kafka answered, a Redis outage cannot hide a session.
      const blocking = unavailable.filter((u) => !(u.source === 'redis' && searched.includes('kafka')));
      if (blocking.length > 0) throw blocking[0]!;
      throw new SessionNotFoundError(sessionId, searched, details.join('; '));
    }
    found.warnings.unshift(...warnings);
    return this.#finish(found, options);
  }

  /** Seq check before the time filter (a range must not look like a gap), then filter, cap, restore. */
  async #finish(result: SessionReadResult, options: ReadSessionOptions): Promise<SessionReadResult> {
    result.warnings.push(...seqAnomalies(result.events));
    let events = result.events.filter((e) => inRange(e, options.from, options.to));
    if (events.length > this.#opts.maxEvents) {
      result.warnings.push(`session has ${events.length} events; only the first ${this.#opts.maxEvents} are returned (maxEvents)`);
      events = events.slice(0, this.#opts.maxEvents);
    }
    if (options.restoreOffloads !== false) {
      const r = await this.restoreEvents(events);
      events = r.events;
      result.warnings.push(...r.warnings);
    }
    result.events = events;
    return result;
  }

  /** Fetches offloaded payloads back inline, a bounded number at a time; failures become warnings. */
  async restoreEvents(events: AgentEvent[]): Promise<{ events: AgentEvent[]; warnings: string[] }> {
    const warnings: string[] = [];
    // An event whose upload failed part way still holds references for the fields that made it.
    const todo = events.map((e, i) => [e, i] as const).filter(([e]) => e.offload && e.offload.fields.length > 0);
    if (todo.length === 0) return { events, warnings };
    const out = events.slice();
    const s3 = this.#s3Client();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length) {
        const [e, i] = todo[next++]!;
        const r = await restoreOffloads(s3, e);
        out[i] = r.event;
        for (const f of r.failures) warnings.push(`event ${e.event_id} (seq ${e.seq}): offloaded ${f}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#opts.offloadConcurrency, todo.length) }, worker));
    return { events: out, warnings };
  }

  async #readRedis(sessionId: string): Promise<Attempt> {
    const redis = await this.#redisClient();
    try {
      const texts = await readEventTexts(redis, this.#keys.events(sessionId));
      if (texts.length === 0) return { kind: 'missing', detail: 'no timeline in Redis' };
      const index = await readKafkaIndex(redis, this.#keys, sessionId);
      const warnings: string[] = [];
      const events: AgentEvent[] = [];
      let bad = 0;
      for (const t of texts) {
        const e = parseStored(t);
        if (e) events.push(e);
        else bad++;
      }
      if (bad > 0) warnings.push(`${bad} entries of the Redis timeline are not valid events and were skipped`);
      if (index && index.topic !== this.#settings.topic) warnings.push(`the Redis timeline was built from topic ${index.topic}, not ${this.#settings.topic}`);
      const cursor: SessionCursor = { source: 'redis', topic: index?.topic ?? this.#settings.topic, redisIndex: texts.length };
      if (index) {
        cursor.partition = index.partition;
        cursor.nextOffset = index.lastOffset + 1;
      }
      const result: SessionReadResult = { sessionId, events, source: 'redis', warnings, cursor };
      if (index) result.partition = index.partition;
      return { kind: 'found', result };
    } catch (err) {
      throw redisFailure(this.#settings.redisUrl, `reading session ${sessionId}`, err);
    }
  }

  /** The Redis offset index of a session, when Redis answers quickly; never fails the read. */
  async #tryKafkaIndex(sessionId: string): Promise<KafkaIndex | undefined> {
    try {
      const redis = await this.#redisClient();
      return await readKafkaIndex(redis, this.#keys, sessionId);
    } catch {
      return undefined;
    }
  }

  async #readKafka(sessionId: string, options: ReadSessionOptions, forced: boolean): Promise<Attempt> {
    const topic = this.#settings.topic;
    const partition = await this.partitionOf(sessionId);
    if (partition === undefined) return { kind: 'missing', detail: `topic ${topic} does not exist on ${describeKafka(this.#settings.kafka)}` };
    const admin = this.#adminClient();
    let low: number;
    let high: number;
    let start: number;
    try {
      const wm = (await admin.watermarks(topic, [partition], this.#opts.kafkaTimeoutMs)).get(partition);
      low = wm?.low ?? 0;
      high = wm?.high ?? 0;
      start = low;
      if (options.from !== undefined) {
        const at = await admin.offsetForTime(topic, partition, options.from, this.#opts.kafkaTimeoutMs);
        start = Math.max(start, at < 0 ? high : at);
      }
    } catch (err) {
      throw this.#kafkaFailure(`looking up offsets of ${topic} partition ${partition}`, err);
    }
    const warnings: string[] = [];
    // In forced mode Redis was not consulted yet; its offset index still saves scanning older records.
    const index = forced ? await this.#tryKafkaIndex(sessionId) : this.#redis ? await this.#tryKafkaIndex(sessionId) : undefined;
    if (index && index.topic === topic && index.partition === partition) {
      if (index.firstOffset < low) warnings.push(`the session's first ${low - index.firstOffset} offsets of partition ${partition} are past Kafka retention; older events may be in the archive`);
      start = Math.max(start, index.firstOffset);
    }
    let consumer: KafkaConsumer | undefined;
    let scanned: ScannedEvent[];
    let nextOffset: number;
    try {
      consumer = await openConsumer(this.#settings.kafka, this.#opts.clientId, this.#opts.kafkaTimeoutMs);
      const scan = await scanPartition({
        consumer,
        topic,
        partition,
        sessionId,
        start,
        end: high,
        batchSize: this.#opts.kafkaBatchSize,
        idleTimeoutMs: this.#opts.kafkaIdleTimeoutMs,
        maxEvents: this.#opts.maxEvents,
      });
      scanned = scan.events;
      nextOffset = scan.nextOffset;
      if (scan.incomplete) warnings.push(`Kafka scan incomplete: ${scan.incomplete}`);
      if (scan.rejected.length > 0) warnings.push(`${scan.rejected.length} records with this key are not valid events: ${scan.rejected.slice(0, 3).join('; ')}`);
    } catch (err) {
      throw this.#kafkaFailure(`reading ${topic} partition ${partition}`, err);
    } finally {
      if (consumer) await closeConsumer(consumer);
    }
    const events = scanned.map((s) => s.event);
    if (events.length === 0 || !events.some((e) => inRange(e, options.from, options.to))) {
      return { kind: 'missing', detail: `no record with this key in ${topic} partition ${partition}, offsets ${start}..${high}` };
    }
    if (events[0]!.event_type !== 'session_start' && options.from === undefined && start === low && low > 0) {
      warnings.push(`partition ${partition} starts at offset ${low} (retention); the session's beginning may be only in the archive`);
    }
    const result: SessionReadResult = { sessionId, events, source: 'kafka', partition, warnings, cursor: { source: 'kafka', topic, partition, nextOffset } };
    return { kind: 'found', result };
  }

  async #readArchive(sessionId: string, options: ReadSessionOptions): Promise<Attempt | undefined> {
    const reader = await loadArchiveReader();
    if (!reader) return undefined;
    let partition: number | undefined;
    try {
      partition = await this.partitionOf(sessionId);
    } catch {
      // The archive does not need Kafka; the partition only narrows what is listed.
      partition = undefined;
    }
    const s3 = this.#settings.s3;
    let events: AgentEvent[];
    try {
      const params: Parameters<typeof reader>[0] = {
        s3: this.#s3Client(),
        bucket: s3.bucket,
        prefix: this.#opts.archivePrefix || s3.prefix || '',
        topic: this.#settings.topic,
        sessionId,
      };
      if (options.from !== undefined) params.from = options.from;
      if (options.to !== undefined) params.to = options.to;
      if (partition !== undefined) params.partition = partition;
      events = await reader(params);
    } catch (err) {
      throw new SourceUnavailableError('archive', describeS3(s3), `reading the archive failed: ${errorMessage(err)}. Is the S3 endpoint reachable and the bucket right?`, err);
    }
    if (events.length === 0) return { kind: 'missing', detail: `not in the archive under s3://${s3.bucket}/${this.#opts.archivePrefix || s3.prefix || ''}` };
    const result: SessionReadResult = { sessionId, events, source: 'archive', warnings: [], cursor: { source: 'archive', topic: this.#settings.topic } };
    if (partition !== undefined) {
      result.partition = partition;
      result.cursor.partition = partition;
    }
    return { kind: 'found', result };
  }

  /**
   * Streams events of the session that arrive after `options.cursor` (or after now) until
   * `signal` aborts. Uses the Redis timeline and its pub/sub notifications while a dashboard
   * consumer keeps it current, and tails the session's Kafka partition otherwise (switching when
   * the consumer stops making progress).
   */
  async follow(sessionId: string, onEvents: (events: AgentEvent[]) => void, signal: AbortSignal, options: FollowOptions = {}): Promise<void> {
    this.#assertOpen();
    if (signal.aborted) return;
    const warn = options.onWarning ?? (() => undefined);
    const deliver = async (events: AgentEvent[]): Promise<void> => {
      if (events.length === 0) return;
      if (options.restoreOffloads !== false) {
        const r = await this.restoreEvents(events);
        r.warnings.forEach(warn);
        onEvents(r.events);
      } else onEvents(events);
    };
    const cursor = options.cursor;
    let kafkaFrom: number | undefined = cursor?.source === 'kafka' ? cursor.nextOffset : undefined;
    if (cursor?.source !== 'kafka') {
      const r = await this.#followRedis(sessionId, deliver, signal, cursor, warn);
      if (r === 'done') return;
      kafkaFrom = r.nextOffset;
    }
    await this.#followKafka(sessionId, deliver, signal, kafkaFrom);
  }

  /** Follows through Redis; returns where to continue in Kafka when Redis cannot (or stops) keeping up. */
  async #followRedis(
    sessionId: string,
    deliver: (events: AgentEvent[]) => Promise<void>,
    signal: AbortSignal,
    cursor: SessionCursor | undefined,
    warn: (m: string) => void,
  ): Promise<'done' | { nextOffset: number | undefined }> {
    const topic = this.#settings.topic;
    let redis: Redis;
    try {
      redis = await this.#redisClient();
    } catch (err) {
      if (cursor?.source === 'redis') warn(`${errorMessage(err)}; following the Kafka partition instead`);
      return { nextOffset: cursor?.nextOffset };
    }
    const keys = this.#keys;
    let index: KafkaIndex | undefined;
    let delivered: number;
    let partition: number | undefined;
    try {
      index = await readKafkaIndex(redis, keys, sessionId);
      partition = index?.partition ?? (await this.partitionOf(sessionId));
      if (partition === undefined) return { nextOffset: undefined };
      const live = await consumerOffset(redis, this.#settings.redisPrefix, topic, partition);
      if (live === undefined) {
        // No dashboard consumer has ever written this topic here: Kafka is the only live source.
        return { nextOffset: cursor?.source === 'redis' ? cursor.nextOffset : undefined };
      }
      delivered = cursor?.source === 'redis' && cursor.redisIndex !== undefined ? cursor.redisIndex : await redis.llen(keys.events(sessionId));
    } catch (err) {
      warn(`${redisFailure(this.#settings.redisUrl, 'following', err).message}; following the Kafka partition instead`);
      return { nextOffset: cursor?.nextOffset };
    }
    const sub = redis.duplicate();
    sub.on('error', () => undefined);
    let wake: (() => void) | undefined;
    const poke = () => wake?.();
    sub.on('message', poke);
    signal.addEventListener('abort', poke);
    let switchTo: { nextOffset: number | undefined } | undefined;
    try {
      // The duplicate inherits lazyConnect and the disabled offline queue: connect it explicitly.
      await sub.connect();
      await sub.subscribe(keys.sessionChannel(sessionId));
      let lastConsumerOffset: number | undefined;
      let stalledChecks = 0;
      let nextCheck = Date.now() + this.#opts.followPollMs * 3;
      while (!signal.aborted) {
        const len = await redis.llen(keys.events(sessionId));
        if (len > delivered) {
          const texts = await readEventTexts(redis, keys.events(sessionId), delivered);
          delivered += texts.length;
          const events = texts.map(parseStored).filter((e): e is AgentEvent => e !== undefined);
          await deliver(events);
        }
        if (Date.now() >= nextCheck) {
          nextCheck = Date.now() + this.#opts.followPollMs * 3;
          // The timeline is current only while a consumer moves through the partition.
          const stored = await consumerOffset(redis, this.#settings.redisPrefix, topic, partition);
          const wm = (await this.#adminClient().watermarks(topic, [partition], this.#opts.kafkaTimeoutMs)).get(partition);
          if (stored !== undefined && wm && stored < wm.high && stored === lastConsumerOffset) stalledChecks++;
          else stalledChecks = 0;
          lastConsumerOffset = stored;
          if (stalledChecks >= 2) {
            index = await readKafkaIndex(redis, keys, sessionId);
            // The list and the index are written in one step, so the index's last offset is the list's end.
            const from = index && index.partition === partition ? index.lastOffset + 1 : stored;
            warn(`the dashboard consumer is not keeping up (stored offset ${stored}, end ${wm?.high}); following the Kafka partition from offset ${from}`);
            switchTo = { nextOffset: from };
            break;
          }
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.#opts.followPollMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
      }
    } catch (err) {
      if (signal.aborted) return 'done';
      const idx = await readKafkaIndex(redis, keys, sessionId).catch(() => index);
      warn(`${errorMessage(err)}; following the Kafka partition instead`);
      switchTo = { nextOffset: idx ? idx.lastOffset + 1 : undefined };
    } finally {
      signal.removeEventListener('abort', poke);
      sub.disconnect();
    }
    return switchTo ?? 'done';
  }

  async #followKafka(sessionId: string, deliver: (events: AgentEvent[]) => Promise<void>, signal: AbortSignal, fromOffset: number | undefined): Promise<void> {
    const topic = this.#settings.topic;
    const partition = await this.partitionOf(sessionId);
    if (partition === undefined) throw new SessionNotFoundError(sessionId, ['kafka'], `topic ${topic} does not exist`);
    let start = fromOffset;
    if (start === undefined) {
      try {
        start = (await this.#adminClient().watermarks(topic, [partition], this.#opts.kafkaTimeoutMs)).get(partition)?.high ?? 0;
      } catch (err) {
        throw this.#kafkaFailure(`looking up offsets of ${topic} partition ${partition}`, err);
      }
    }
    if (signal.aborted) return;
    const consumer = await openConsumer(this.#settings.kafka, this.#opts.clientId, this.#opts.kafkaTimeoutMs);
    const wanted = Buffer.from(sessionId, 'utf8');
    try {
      consumer.assign([{ topic, partition, offset: start }]);
      consumer.setDefaultConsumeTimeout(Math.min(500, this.#opts.followPollMs));
      while (!signal.aborted) {
        const batch = await consumeBatch(consumer, this.#opts.kafkaBatchSize);
        if (batch.length === 0) continue;
        const found: ScannedEvent[] = [];
        pickSessionRecords(batch, sessionId, wanted, found, []);
        await deliver(found.map((f) => f.event));
      }
    } finally {
      await closeConsumer(consumer);
    }
  }

  /** Recent sessions: from the Redis indexes when present, else a bounded scan of the topic's tail. */
  async listSessions(options: ListSessionsOptions = {}): Promise<SessionSummary[]> {
    this.#assertOpen();
    const mode = options.source ?? 'auto';
    if (!['auto', 'redis', 'kafka'].includes(mode)) throw new OptionsError('options.source', `must be auto, redis or kafka, got "${String(mode)}"`);
    if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit <= 0)) throw new OptionsError('options.limit', 'must be a positive integer');
    if (options.sort !== undefined && !SESSION_SORTS.includes(options.sort)) throw new OptionsError('options.sort', `must be one of ${SESSION_SORTS.join(', ')}, got "${String(options.sort)}"`);
    if (options.minCalls !== undefined && (!Number.isInteger(options.minCalls) || options.minCalls <= 0)) throw new OptionsError('options.minCalls', 'must be a positive integer');
    if (options.minCalls !== undefined && options.tool === undefined) throw new OptionsError('options.minCalls', 'needs options.tool');
    if (options.tool !== undefined && (typeof options.tool !== 'string' || options.tool === '')) throw new OptionsError('options.tool', 'must be a non-empty string');
    if (options.errorCode !== undefined && (typeof options.errorCode !== 'string' || options.errorCode === '')) throw new OptionsError('options.errorCode', 'must be a non-empty string');
    checkTime('since', options.since);
    checkTime('until', options.until);
    if (mode !== 'kafka') {
      try {
        const rows = await this.#listRedis(options, mode === 'redis');
        if (rows) return rows;
      } catch (err) {
        if (mode === 'redis') throw err;
      }
    }
    return this.#listKafka(options);
  }

  /** The Redis index a sort ranks by: every session in Redis is in it, so the ranking needs no candidate cap. */
  #sortIndex(sort: SessionSort): string {
    const k = this.#keys;
    switch (sort) {
      case 'start':
        return k.byStart();
      case 'cost':
        return k.byCost();
      case 'events':
        return k.byEvents();
      case 'errors':
        return k.byErrors();
      case 'tool-calls':
        return k.byToolCalls();
      case 'max-tool-calls':
        return k.byMaxToolCalls();
      case 'duration':
        return k.byDuration();
      default:
        return k.byActivity();
    }
  }

  /**
   * Ranks over every session in Redis, exactly: each filter has an index (agent, tool, error
   * code, time range, status, cost, errors) that narrows the candidates, which are then ordered
   * by their scores in the sort index; without filters the sort index is read from the top.
   * Meta hashes are read only for the rows returned (and for sessions whose keys expired).
   * Ties are in descending session id order (the sorted set's own order).
   */
  async #listRedis(options: ListSessionsOptions, forced: boolean): Promise<SessionSummary[] | undefined> {
    const redis = await this.#redisClient();
    const keys = this.#keys;
    try {
      if (!forced && (await redis.exists(keys.byActivity())) === 0) return undefined;
      const sort = options.sort ?? 'last';
      const byRecency = sort === 'last' || sort === 'recent';
      const zkey = this.#sortIndex(sort);
      const limit = options.limit ?? 50;
      const since = options.since;
      let candidates: Set<string> | undefined;
      const narrow = (ids: string[]): void => {
        const prev = candidates;
        candidates = new Set(prev ? ids.filter((id) => prev.has(id)) : ids);
      };
      if (options.agent !== undefined) narrow(await redis.zrange(keys.byAgent(options.agent), 0, -1));
      if (options.tool !== undefined) narrow(await redis.zrangebyscore(keys.toolSessions(options.tool), options.minCalls ?? 1, '+inf'));
      if (options.errorCode !== undefined) narrow(await redis.zrangebyscore(keys.errorCodeSessions(options.errorCode), 1, '+inf'));
      if (since !== undefined && (candidates !== undefined || !byRecency)) narrow(await redis.zrangebyscore(keys.byActivity(), since, '+inf'));
      if (options.until !== undefined) narrow(await redis.zrangebyscore(keys.byActivity(), since ?? '-inf', options.until));
      if (options.status !== undefined) narrow(await redis.smembers(keys.byStatus(options.status)));
      if (options.minCost !== undefined && (candidates !== undefined || sort !== 'cost')) narrow(await redis.zrangebyscore(keys.byCost(), options.minCost, '+inf'));
      if (options.hasErrors === true && (candidates !== undefined || sort !== 'errors')) narrow(await redis.zrangebyscore(keys.byErrors(), 1, '+inf'));

      let pages: AsyncGenerator<string[]>;
      // Every filter narrowed the candidates already: a page beyond `limit` only covers sessions whose keys expired.
      const pageSize = limit + 20;
      if (candidates !== undefined) {
        const ids = [...candidates];
        const scored: Array<[string, number]> = [];
        for (let i = 0; i < ids.length; i += 5000) {
          const part = ids.slice(i, i + 5000);
          const scores = await redis.zmscore(zkey, ...part);
          // A session missing from the sort index (written before it existed) ranks last.
          part.forEach((id, j) => scored.push([id, scores[j] === null || scores[j] === undefined ? Number.NEGATIVE_INFINITY : Number(scores[j])]));
        }
        scored.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));
        pages = (async function* () {
          for (let i = 0; i < scored.length; i += pageSize) yield scored.slice(i, i + pageSize).map(([id]) => id);
        })();
      } else {
        const min = byRecency && since !== undefined ? since : options.hasErrors === true && sort === 'errors' ? 1 : options.minCost !== undefined && sort === 'cost' ? options.minCost : '-inf';
        pages = (async function* () {
          for (let offset = 0; ; offset += pageSize) {
            const ids = await redis.zrevrangebyscore(zkey, '+inf', min, 'LIMIT', offset, pageSize);
            if (ids.length > 0) yield ids;
            if (ids.length < pageSize) return;
          }
        })();
      }

      const rows: SessionSummary[] = [];
      for await (const ids of pages) {
        const pipe = redis.pipeline();
        for (const id of ids) pipe.hgetall(keys.meta(id));
        const replies = (await pipe.exec()) ?? [];
        for (const [err, h] of replies) {
          if (err || !h) continue;
          const m = decodeMeta(h as Record<string, string>);
          if (!m) continue;
          const row: SessionSummary = {
            sessionId: m.session_id,
            agentId: m.agent_id,
            firstTs: m.first_ts,
            lastTs: m.last_ts,
            eventCount: m.event_count,
            status: m.status,
            costUsd: m.cost_usd,
            inputTokens: m.input_tokens,
            outputTokens: m.output_tokens,
            errorCount: m.error_count,
            toolCalls: m.tool_calls,
            durationMs: Math.max(0, Date.parse(m.last_ts) - Date.parse(m.first_ts)) || 0,
            maxToolCalls: 0,
            maxTool: '',
            tools: {},
            currentStep: m.current_step,
            source: 'redis',
          };
          if (options.status !== undefined && row.status !== options.status) continue;
          if (options.minCost !== undefined && row.costUsd < options.minCost) continue;
          if (since !== undefined && Date.parse(row.lastTs) < since) continue;
          if (options.until !== undefined && Date.parse(row.lastTs) > options.until) continue;
          if (options.hasErrors === true && row.errorCount === 0) continue;
          rows.push(row);
          if (rows.length >= limit) break;
        }
        if (rows.length >= limit) break;
      }
      // Per-tool counts only for the rows shown.
      const pipe = redis.pipeline();
      for (const r of rows) pipe.hgetall(keys.tools(r.sessionId));
      const tools = (await pipe.exec()) ?? [];
      rows.forEach((r, i) => {
        const h = (tools[i]?.[1] ?? {}) as Record<string, string>;
        const counts: Record<string, number> = {};
        for (const [name, n] of Object.entries(h)) counts[name] = Number(n);
        r.tools = counts;
        const most = mostCalled(counts);
        r.maxToolCalls = most.calls;
        r.maxTool = most.tool;
      });
      return rows;
    } catch (err) {
      throw redisFailure(this.#settings.redisUrl, 'listing sessions', err);
    }
  }

  async #listKafka(options: ListSessionsOptions): Promise<SessionSummary[]> {
    const topic = this.#settings.topic;
    const n = await this.#partitionCount();
    if (n === undefined) return [];
    const partitions = Array.from({ length: n }, (_, p) => p);
    const admin = this.#adminClient();
    const ranges: Array<{ partition: number; start: number; end: number }> = [];
    let cut = false;
    try {
      const wms = await admin.watermarks(topic, partitions, this.#opts.kafkaTimeoutMs);
      for (const p of partitions) {
        const wm = wms.get(p) ?? { low: 0, high: 0 };
        let start = Math.max(wm.low, wm.high - this.#opts.listScanPerPartition);
        if (options.since !== undefined) {
          const at = await admin.offsetForTime(topic, p, options.since, this.#opts.kafkaTimeoutMs);
          start = Math.max(start, at < 0 ? wm.high : at);
        }
        if (start > wm.low) cut = true;
        if (start < wm.high) ranges.push({ partition: p, start, end: wm.high });
      }
    } catch (err) {
      throw this.#kafkaFailure(`looking up offsets of ${topic}`, err);
    }
    const builder = new SummaryBuilder();
    if (ranges.length > 0) {
      const consumer = await openConsumer(this.#settings.kafka, this.#opts.clientId, this.#opts.kafkaTimeoutMs);
      try {
        consumer.assign(ranges.map((r) => ({ topic, partition: r.partition, offset: r.start })));
        consumer.setDefaultConsumeTimeout(200);
        const remaining = new Map(ranges.map((r) => [r.partition, r]));
        let lastProgress = Date.now();
        while (remaining.size > 0 && Date.now() - lastProgress < this.#opts.kafkaIdleTimeoutMs) {
          const batch = await consumeBatch(consumer, this.#opts.kafkaBatchSize);
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
        throw this.#kafkaFailure(`scanning ${topic}`, err);
      } finally {
        await closeConsumer(consumer);
      }
    }
    return selectSessions(builder.rows(cut), options);
  }

  /**
   * The most recent alerts the dashboard consumer fired (newest first), or an empty list when
   * Redis holds none or cannot be reached (alerts are a Redis-only view).
   */
  async recentAlerts(limit = 10): Promise<AlertSummary[]> {
    this.#assertOpen();
    let redis: Redis;
    try {
      redis = await this.#redisClient();
    } catch {
      return [];
    }
    try {
      const texts = await redis.lrange(this.#keys.alertsRecent(), 0, Math.max(0, limit - 1));
      const out: AlertSummary[] = [];
      for (const t of texts) {
        try {
          const a = JSON.parse(t) as Partial<AlertSummary>;
          if (typeof a.rule === 'string' && typeof a.session_id === 'string') {
            out.push({ rule: a.rule, session_id: a.session_id, message: String(a.message ?? ''), fired_at: String(a.fired_at ?? '') });
          }
        } catch {
          // A malformed entry is skipped; the list is advisory.
        }
      }
      return out;
    } catch {
      return [];
    }
  }

  /** Closes every connection; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const redis = this.#redis;
    this.#redis = undefined;
    if (redis) {
      try {
        const r = await redis;
        await r.quit().catch(() => r.disconnect());
      } catch {
        // never connected
      }
    }
    this.#admin?.close();
    this.#admin = undefined;
    this.#s3?.destroy();
    this.#s3 = undefined;
  }
}
