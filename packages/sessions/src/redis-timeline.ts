import { Redis } from 'ioredis';
import { backoffMs, describeRedisUrl, errorMessage, redisKeys, type RedisKeys, type SessionMeta } from '@agenttrace/common';
import { SourceUnavailableError } from './errors.js';
import type { Coverage, OffsetRange } from './scan-plan.js';

/** Where the dashboard consumer saw the session in Kafka. */
export interface KafkaIndex {
  topic: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  /** The id of the topic the offsets are in; absent in indexes written before it was stored. */
  topicId?: string;
  /**
   * Offset ranges between the first and last offsets that hold no record of the session (runs of
   * other sessions' records the dashboard applied, in offset order); empty when none were noted.
   */
  gaps: OffsetRange[];
}

/** A Redis connection that fails fast: a reader must fall back to Kafka, not hang. */
export async function connectRedis(url: string, timeoutMs: number): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: timeoutMs,
    // One attempt at connect time; later drops reconnect a few times for follow().
    retryStrategy: (times) => (times > 5 ? null : backoffMs(times - 1, { minMs: 200, maxMs: 1000 })),
  });
  // Errors surface through the failing commands; without a listener ioredis would print them.
  redis.on('error', () => undefined);
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)),
    ]);
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new SourceUnavailableError('redis', describeRedisUrl(url), `cannot connect: ${errorMessage(err)}. Is Redis running and is --redis-url right?`, err);
  }
  return redis;
}

export function redisFailure(url: string, what: string, err: unknown): SourceUnavailableError {
  if (err instanceof SourceUnavailableError) return err;
  return new SourceUnavailableError('redis', describeRedisUrl(url), `${what} failed: ${errorMessage(err)}`, err);
}

/**
 * The index's `gaps` field: 'after:before' pairs in rising order, each saying no record of the
 * session lies strictly between the two offsets. Anything malformed drops them all: a gap is only
 * a saving, and a wrong one would hide records.
 */
export function parseGaps(text: string | undefined): OffsetRange[] {
  if (!text) return [];
  const out: OffsetRange[] = [];
  let floor = -1;
  for (const part of text.split(',')) {
    const m = /^(\d+):(\d+)$/.exec(part);
    if (!m) return [];
    const after = Number(m[1]);
    const before = Number(m[2]);
    if (!Number.isSafeInteger(after) || !Number.isSafeInteger(before) || before <= after + 1 || after < floor) return [];
    out.push({ start: after + 1, end: before });
    floor = before;
  }
  return out;
}

export async function readKafkaIndex(redis: Redis, keys: RedisKeys, sessionId: string): Promise<KafkaIndex | undefined> {
  const h = await redis.hgetall(keys.kafkaIndex(sessionId));
  if (!h.topic || h.partition === undefined || h.first_offset === undefined) return undefined;
  const idx: KafkaIndex = { topic: h.topic, partition: Number(h.partition), firstOffset: Number(h.first_offset), lastOffset: Number(h.last_offset ?? h.first_offset), gaps: parseGaps(h.gaps) };
  if (h.topic_id) idx.topicId = h.topic_id;
  return Number.isInteger(idx.partition) && Number.isInteger(idx.firstOffset) && Number.isInteger(idx.lastOffset) ? idx : undefined;
}

/** Reads the event texts of a session list in slices (a 10k-event session is several MB). */
export async function readEventTexts(redis: Redis, key: string, start = 0, slice = 5000): Promise<string[]> {
  const out: string[] = [];
  for (let i = start; ; i += slice) {
    const part = await redis.lrange(key, i, i + slice - 1);
    for (const s of part) out.push(s);
    if (part.length < slice) break;
  }
  return out;
}

/** The meta hash with numbers decoded. */
export function decodeMeta(h: Record<string, string>): SessionMeta | undefined {
  if (!h.session_id) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === '' ? 0 : Number(v));
  return {
    session_id: h.session_id,
    agent_id: h.agent_id ?? '',
    first_ts: h.first_ts ?? '',
    last_ts: h.last_ts ?? '',
    event_count: num(h.event_count),
    status: (h.status as SessionMeta['status']) ?? 'active',
    current_step: h.current_step ?? '',
    input_tokens: num(h.input_tokens),
    output_tokens: num(h.output_tokens),
    cost_usd: num(h.cost_usd),
    error_count: num(h.error_count),
    tool_calls: num(h.tool_calls),
  };
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * The highest offset any dashboard consumer group has stored for a partition of the topic, used
 * to tell whether a consumer is keeping the Redis timeline up to date. Bounded SCAN.
 */
export async function consumerOffset(redis: Redis, prefix: string, topic: string, partition: number): Promise<number | undefined> {
  // The dashboard consumer registers its offsets keys: a bounded SCAN can miss them on a Redis
  // holding many sessions' keys.
  const registered = (await redis.smembers(redisKeys(prefix).offsetKeys())).filter((k) => k.startsWith(`${prefix}offsets:`) && k.endsWith(`:${topic}`));
  if (registered.length > 0) {
    let best: number | undefined;
    for (const k of registered) {
      const v = await redis.hget(k, String(partition));
      if (v !== null && (best === undefined || Number(v) > best)) best = Number(v);
    }
    if (best !== undefined) return best;
  }
  // Written by a consumer that does not register its keys yet.
  const pattern = `${escapeGlob(prefix)}offsets:*:${escapeGlob(topic)}`;
  let cursor = '0';
  let best: number | undefined;
  for (let round = 0; round < 50; round++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    for (const k of keys) {
      const v = await redis.hget(k, String(partition));
      if (v !== null && (best === undefined || Number(v) > best)) best = Number(v);
    }
    cursor = next;
    if (cursor === '0') break;
  }
  return best;
}

/**
 * What the dashboard consumer groups writing under this prefix vouch for on one partition of the
 * topic whose id is `topicId` (see planScan): groups whose offsets owner names another topic id,
 * or that stored offsets before `since:` was kept and have not applied a batch since, vouch for
 * nothing.
 */
export async function dashboardCoverage(redis: Redis, prefix: string, topic: string, partition: number, topicId: string): Promise<Coverage[]> {
  const keys = redisKeys(prefix);
  const head = `${prefix}offsets:`;
  const tail = `:${topic}`;
  const out: Coverage[] = [];
  for (const k of await redis.smembers(keys.offsetKeys())) {
    if (!k.startsWith(head) || !k.endsWith(tail) || k.length <= head.length + tail.length) continue;
    const group = k.slice(head.length, k.length - tail.length);
    const [owner, position] = await Promise.all([redis.hmget(keys.offsetsOwner(group, topic), 'topic_id', `since:${partition}`), redis.hget(k, String(partition))]);
    if (owner[0] !== topicId || owner[1] === null || position === null) continue;
    const c = { since: Number(owner[1]), position: Number(position) };
    if (Number.isInteger(c.since) && Number.isInteger(c.position)) out.push(c);
  }
  return out;
}
