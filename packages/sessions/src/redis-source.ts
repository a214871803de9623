import type { Redis } from 'ioredis';
import { describeRedisUrl, errorMessage } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import type { SourceConnections } from './connections.js';
import { mostCalled, type ListSessionsOptions, type SessionSort, type SessionSummary } from './list.js';
import { consumerOffset, decodeMeta, readEventTexts, readKafkaIndex, redisFailure, type KafkaIndex } from './redis-timeline.js';
import { parseStored, type FollowEnd, type FollowStart, type SessionCursor, type SessionReadResult, type SessionSource, type SourceAttempt } from './source.js';

/** An alert as the dashboard consumer records it (the fields readers show). */
export interface AlertSummary {
  rule: string;
  session_id: string;
  message: string;
  fired_at: string;
}

/**
 * The live timeline the dashboard consumer keeps in Redis: the session's event list, its offset
 * index into Kafka, the ranking indexes for listing, and pub/sub notifications for follow().
 * Redis only mirrors Kafka.
 */
export class RedisSource implements SessionSource {
  readonly name = 'redis' as const;
  readonly mirrorOf = 'kafka' as const;
  readonly #c: SourceConnections;

  constructor(connections: SourceConnections) {
    this.#c = connections;
  }

  describe(): string {
    return describeRedisUrl(this.#c.settings.redisUrl);
  }

  async read(sessionId: string): Promise<SourceAttempt> {
    const redis = await this.#c.redis();
    try {
      const texts = await readEventTexts(redis, this.#c.keys.events(sessionId));
      if (texts.length === 0) return { kind: 'missing', detail: 'no timeline in Redis' };
      const index = await readKafkaIndex(redis, this.#c.keys, sessionId);
      const warnings: string[] = [];
      const events: AgentEvent[] = [];
      let bad = 0;
      for (const t of texts) {
        const e = parseStored(t);
        if (e) events.push(e);
        else bad++;
      }
      if (bad > 0) warnings.push(`${bad} entries of the Redis timeline are not valid events and were skipped`);
      if (index && index.topic !== this.#c.settings.topic) warnings.push(`the Redis timeline was built from topic ${index.topic}, not ${this.#c.settings.topic}`);
      const cursor: SessionCursor = { source: 'redis', topic: index?.topic ?? this.#c.settings.topic, redisIndex: texts.length };
      if (index) {
        cursor.partition = index.partition;
        cursor.nextOffset = index.lastOffset + 1;
      }
      const result: SessionReadResult = { sessionId, events, source: 'redis', warnings, cursor };
      if (index) result.partition = index.partition;
      return { kind: 'found', result };
    } catch (err) {
      throw redisFailure(this.#c.settings.redisUrl, `reading session ${sessionId}`, err);
    }
  }

  /** Follows through Redis; hands over to Kafka when Redis cannot (or stops) keeping up. */
  async follow(sessionId: string, deliver: (events: AgentEvent[]) => Promise<void>, signal: AbortSignal, start: FollowStart, warn: (message: string) => void): Promise<FollowEnd> {
    const cursor = start.cursor;
    const topic = this.#c.settings.topic;
    let redis: Redis;
    try {
      redis = await this.#c.redis();
    } catch (err) {
      if (cursor?.source === 'redis') warn(`${errorMessage(err)}; following the Kafka partition instead`);
      return { nextOffset: cursor?.nextOffset };
    }
    const keys = this.#c.keys;
    let index: KafkaIndex | undefined;
    let delivered: number;
    let partition: number | undefined;
    try {
      index = await readKafkaIndex(redis, keys, sessionId);
      partition = index?.partition ?? (await this.#c.partitionOf(sessionId));
      if (partition === undefined) return { nextOffset: undefined };
      const live = await consumerOffset(redis, this.#c.settings.redisPrefix, topic, partition);
      if (live === undefined) {
        // No dashboard consumer has ever written this topic here: Kafka is the only live source.
        return { nextOffset: cursor?.source === 'redis' ? cursor.nextOffset : undefined };
      }
      delivered = cursor?.source === 'redis' && cursor.redisIndex !== undefined ? cursor.redisIndex : await redis.llen(keys.events(sessionId));
    } catch (err) {
      warn(`${redisFailure(this.#c.settings.redisUrl, 'following', err).message}; following the Kafka partition instead`);
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
      let nextCheck = Date.now() + this.#c.opts.followPollMs * 3;
      while (!signal.aborted) {
        const len = await redis.llen(keys.events(sessionId));
        if (len > delivered) {
          const texts = await readEventTexts(redis, keys.events(sessionId), delivered);
          delivered += texts.length;
          const events = texts.map(parseStored).filter((e): e is AgentEvent => e !== undefined);
          await deliver(events);
        }
        if (Date.now() >= nextCheck) {
          nextCheck = Date.now() + this.#c.opts.followPollMs * 3;
          // The timeline is current only while a consumer moves through the partition.
          const stored = await consumerOffset(redis, this.#c.settings.redisPrefix, topic, partition);
          const wm = (await this.#c.admin().watermarks(topic, [partition], this.#c.opts.kafkaTimeoutMs)).get(partition);
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
          const t = setTimeout(resolve, this.#c.opts.followPollMs);
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

  /** The Redis index a sort ranks by: every session in Redis is in it, so the ranking needs no candidate cap. */
  #sortIndex(sort: SessionSort): string {
    const k = this.#c.keys;
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
  async list(options: ListSessionsOptions, forced: boolean): Promise<SessionSummary[] | undefined> {
    const redis = await this.#c.redis();
    const keys = this.#c.keys;
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
      throw redisFailure(this.#c.settings.redisUrl, 'listing sessions', err);
    }
  }

  /**
   * The most recent alerts the dashboard consumer fired (newest first), or an empty list when
   * Redis holds none or cannot be reached (alerts are a Redis-only view).
   */
  async recentAlerts(limit = 10): Promise<AlertSummary[]> {
    this.#c.assertOpen();
    let redis: Redis;
    try {
      redis = await this.#c.redis();
    } catch {
      return [];
    }
    try {
      const texts = await redis.lrange(this.#c.keys.alertsRecent(), 0, Math.max(0, limit - 1));
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
}
