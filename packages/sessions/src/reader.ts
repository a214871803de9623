import type { AgentTraceSettings } from '@agenttrace/common';
import { OptionsError, restoreOffloads, validateLogger, type Logger } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { ArchiveSource } from './archive-source.js';
import { SourceConnections } from './connections.js';
import { SessionNotFoundError, SourceUnavailableError, type SessionSourceName } from './errors.js';
import { KafkaSource } from './kafka-source.js';
import { SESSION_SORTS, type ListSessionsOptions, type SessionSummary } from './list.js';
import { resolveSessionReaderOptions, type SessionReaderOptions } from './options.js';
import { RedisSource, type AlertSummary } from './redis-source.js';
import { seqAnomalies } from './seq.js';
import { inRange, type FollowStart, type ReadSessionOptions, type SessionCursor, type SessionReadResult, type SessionSource } from './source.js';

export interface FollowOptions {
  /** Continue after a read (from its result); without it, follow starts at the current end. */
  cursor?: SessionCursor;
  restoreOffloads?: boolean;
  /**
   * Receives, at warn level with the session id as field, what follow has to say while it keeps
   * going: a switch of source, a failed fetch, an offloaded payload it could not restore. A
   * pino-compatible logger (common's Logger; `loggerFromHook` makes one from a function).
   */
  logger?: Logger;
  /**
   * Called with the same messages.
   * @deprecated Give `logger` instead (`loggerFromHook((level, message) => ...)` for a function).
   * Still called when given, also together with `logger`.
   */
  onWarning?: (message: string) => void;
}

/** Where follow's warnings go: the logger and the older callback, each when given. */
function followWarnings(sessionId: string, options: FollowOptions): (message: string) => void {
  const logger = options.logger === undefined ? undefined : validateLogger(options.logger, 'options.logger');
  const onWarning = options.onWarning;
  if (onWarning !== undefined && typeof onWarning !== 'function') throw new OptionsError('options.onWarning', 'must be a function');
  return (message) => {
    logger?.warn({ sessionId }, message);
    onWarning?.(message);
  };
}

function checkTime(name: string, v: number | undefined): void {
  if (v !== undefined && !Number.isFinite(v)) throw new OptionsError(`options.${name}`, 'must be epoch milliseconds');
}

/** `auto, redis, kafka or archive`. */
function choices(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

type Follower = SessionSource & Required<Pick<SessionSource, 'follow'>>;
type Lister = SessionSource & Required<Pick<SessionSource, 'list'>>;

/**
 * Reads one agent session from wherever it still lives: the Redis timeline the dashboard
 * consumer keeps, the session's single Kafka partition, or the Parquet archive on S3.
 * Each place is a SessionSource; the reader picks them (one by name, or all in order for `auto`)
 * and finishes what they return the same way: seq check, time range, cap, offload restore.
 * Connections are opened lazily and kept until close().
 */
export class SessionReader {
  readonly #c: SourceConnections;
  readonly #redis: RedisSource;
  /** In the order `auto` asks them: the live view first, the archive last. */
  readonly #sources: readonly SessionSource[];
  readonly #followers: readonly Follower[];
  readonly #listers: readonly Lister[];

  constructor(settings: AgentTraceSettings, options: SessionReaderOptions = {}) {
    if (!settings || !settings.kafka || typeof settings.topic !== 'string') throw new OptionsError('settings', 'must come from resolveSettings()');
    this.#c = new SourceConnections(settings, resolveSessionReaderOptions(options));
    this.#redis = new RedisSource(this.#c);
    this.#sources = [this.#redis, new KafkaSource(this.#c), new ArchiveSource(this.#c)];
    this.#followers = this.#sources.filter((s): s is Follower => s.follow !== undefined);
    this.#listers = this.#sources.filter((s): s is Lister => s.list !== undefined);
  }

  get settings(): AgentTraceSettings {
    return this.#c.settings;
  }

  /** The source of that name; throws OptionsError naming `option` for any other name. */
  #source<S extends SessionSource>(sources: readonly S[], name: unknown, option: string): S {
    const found = sources.find((s) => s.name === name);
    if (!found) throw new OptionsError(option, `must be ${choices(['auto', ...sources.map((s) => s.name)])}, got "${String(name)}"`);
    return found;
  }

  /** A safe description of a source's location (no credentials). */
  describe(source: SessionSourceName): string {
    return this.#source(this.#sources, source, 'source').describe();
  }

  /** The partition the session's records are on (the producer's murmur2 of the key), or undefined when the topic does not exist. */
  partitionOf(sessionId: string): Promise<number | undefined> {
    return this.#c.partitionOf(sessionId);
  }

  async read(sessionId: string, options: ReadSessionOptions = {}): Promise<SessionReadResult> {
    this.#c.assertOpen();
    if (typeof sessionId !== 'string' || sessionId === '') throw new OptionsError('sessionId', 'must be a non-empty string');
    checkTime('from', options.from);
    checkTime('to', options.to);
    const mode = options.source ?? 'auto';
    const order = mode === 'auto' ? this.#sources : [this.#source(this.#sources, mode, 'options.source')];
    const forced = mode !== 'auto';
    const warnings: string[] = [];
    const searched: SessionSourceName[] = [];
    const details: string[] = [];
    const unavailable: Array<{ source: SessionSource; err: SourceUnavailableError }> = [];
    let found: SessionReadResult | undefined;
    for (const source of order) {
      let attempt;
      try {
        attempt = await source.read(sessionId, options, forced);
      } catch (err) {
        if (!(err instanceof SourceUnavailableError) || forced) throw err;
        unavailable.push({ source, err });
        warnings.push(`${err.message} (skipped)`);
        continue;
      }
      searched.push(source.name);
      if (attempt.kind === 'found') {
        found = attempt.result;
        break;
      }
      details.push(`${source.name}: ${attempt.detail}`);
    }
    if (!found) {
      // A mirror's outage cannot hide a session when the source it mirrors answered.
      const blocking = unavailable.filter((u) => !(u.source.mirrorOf !== undefined && searched.includes(u.source.mirrorOf)));
      if (blocking.length > 0) throw blocking[0]!.err;
      throw new SessionNotFoundError(sessionId, searched, details.join('; '));
    }
    found.warnings.unshift(...warnings);
    return this.#finish(found, options);
  }

  /** Seq check before the time filter (a range must not look like a gap), then filter, cap, restore. */
  async #finish(result: SessionReadResult, options: ReadSessionOptions): Promise<SessionReadResult> {
    result.warnings.push(...seqAnomalies(result.events));
    let events = result.events.filter((e) => inRange(e, options.from, options.to));
    if (events.length > this.#c.opts.maxEvents) {
      result.warnings.push(`session has ${events.length} events; only the first ${this.#c.opts.maxEvents} are returned (maxEvents)`);
      events = events.slice(0, this.#c.opts.maxEvents);
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
    const s3 = this.#c.s3();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length) {
        const [e, i] = todo[next++]!;
        const r = await restoreOffloads(s3, e);
        out[i] = r.event;
        for (const f of r.failures) warnings.push(`event ${e.event_id} (seq ${e.seq}): offloaded ${f}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#c.opts.offloadConcurrency, todo.length) }, worker));
    return { events: out, warnings };
  }

  /**
   * Streams events of the session that arrive after `options.cursor` (or after now) until
   * `signal` aborts. Uses the Redis timeline and its pub/sub notifications while a dashboard
   * consumer keeps it current, and tails the session's Kafka partition otherwise (switching when
   * the consumer stops making progress): the followers in order, each handing over to the next.
   * A cursor of a follower starts there; any other cursor (or none) starts at the first.
   */
  async follow(sessionId: string, onEvents: (events: AgentEvent[]) => void, signal: AbortSignal, options: FollowOptions = {}): Promise<void> {
    this.#c.assertOpen();
    const warn = followWarnings(sessionId, options);
    if (signal.aborted) return;
    const deliver = async (events: AgentEvent[]): Promise<void> => {
      if (events.length === 0) return;
      if (options.restoreOffloads !== false) {
        const r = await this.restoreEvents(events);
        r.warnings.forEach(warn);
        onEvents(r.events);
      } else onEvents(events);
    };
    const cursor = options.cursor;
    const first = Math.max(0, this.#followers.findIndex((f) => f.name === cursor?.source));
    let start: FollowStart = { cursor };
    for (const follower of this.#followers.slice(first)) {
      const end = await follower.follow(sessionId, deliver, signal, start, warn);
      if (end === 'done') return;
      start = { cursor, handoff: end };
    }
  }

  /** Recent sessions: from the Redis indexes when present, else a bounded scan of the topic's tail. */
  async listSessions(options: ListSessionsOptions = {}): Promise<SessionSummary[]> {
    this.#c.assertOpen();
    const mode = options.source ?? 'auto';
    const order = mode === 'auto' ? this.#listers : [this.#source(this.#listers, mode, 'options.source')];
    if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit <= 0)) throw new OptionsError('options.limit', 'must be a positive integer');
    if (options.sort !== undefined && !SESSION_SORTS.includes(options.sort)) throw new OptionsError('options.sort', `must be one of ${SESSION_SORTS.join(', ')}, got "${String(options.sort)}"`);
    if (options.minCalls !== undefined && (!Number.isInteger(options.minCalls) || options.minCalls <= 0)) throw new OptionsError('options.minCalls', 'must be a positive integer');
    if (options.minCalls !== undefined && options.tool === undefined) throw new OptionsError('options.minCalls', 'needs options.tool');
    if (options.tool !== undefined && (typeof options.tool !== 'string' || options.tool === '')) throw new OptionsError('options.tool', 'must be a non-empty string');
    if (options.errorCode !== undefined && (typeof options.errorCode !== 'string' || options.errorCode === '')) throw new OptionsError('options.errorCode', 'must be a non-empty string');
    checkTime('since', options.since);
    checkTime('until', options.until);
    const forced = mode !== 'auto';
    for (const [i, lister] of order.entries()) {
      try {
        const rows = await lister.list(options, forced);
        if (rows) return rows;
      } catch (err) {
        // Under auto, a source that fails gives way to the next; the last one's failure is the answer.
        if (forced || i === order.length - 1) throw err;
      }
    }
    return [];
  }

  /**
   * The most recent alerts the dashboard consumer fired (newest first), or an empty list when
   * Redis holds none or cannot be reached (alerts are a Redis-only view).
   */
  recentAlerts(limit = 10): Promise<AlertSummary[]> {
    this.#c.assertOpen();
    return this.#redis.recentAlerts(limit);
  }

  /** Closes every connection; idempotent. */
  close(): Promise<void> {
    return this.#c.close();
  }
}
