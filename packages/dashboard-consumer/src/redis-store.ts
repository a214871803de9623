import { Redis } from 'ioredis';
import { backoffMs, describeRedisUrl, errorMessage, redisKeys, type RedisKeys } from '@agenttrace/common';
import type { ApplyPlan } from './batch.js';
import { alertsOutboxKey } from './batch.js';
import { DashboardError } from './errors.js';
import { APPLY_BATCH, CLAIM_POSITIONS, FIRE_IDLE } from './scripts.js';

export type ApplyResult =
  | { kind: 'foreign'; clusterId: string; topicId: string }
  | { kind: 'stale'; stored: Map<number, number> }
  | { kind: 'ok'; alerts: string[]; counts: Map<string, number> };

type ScriptRedis = Redis & {
  agenttraceApply(numKeys: number, ...args: Array<string | Buffer | number>): Promise<unknown>;
  agenttraceFireIdle(numKeys: number, ...args: Array<string | number>): Promise<string | null>;
  agenttraceClaim(numKeys: number, ...args: string[]): Promise<string[]>;
};

/** What claiming the stored offsets for a cluster and topic id found (see CLAIM_POSITIONS). */
export type ClaimResult =
  | { kind: 'matched' | 'fresh' | 'legacy' | 'adopted' | 'reset' }
  | { kind: 'mismatch'; clusterId: string; topicId: string };

/** True for errors that mean "Redis is not reachable right now" rather than "the request is wrong". */
export function isConnectionError(err: unknown): boolean {
  const m = errorMessage(err);
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|Connection is closed|Stream isn't writeable|max retries per request|Command timed out|LOADING|BUSY|MASTERDOWN|TRYAGAIN|READONLY|socket/i.test(m);
}

/** The Redis side of the consumer: one connection, the apply scripts, offsets and the alert outbox. */
export class RedisStore {
  readonly keys: RedisKeys;
  readonly prefix: string;
  readonly #url: string;
  readonly #redis: ScriptRedis;
  #closed = false;

  constructor(url: string, prefix: string, retryMaxMs: number, onError: (err: Error) => void) {
    this.#url = url;
    this.prefix = prefix;
    this.keys = redisKeys(prefix);
    this.#redis = new Redis(url, {
      lazyConnect: true,
      // Fail commands at once while disconnected: the consumer pauses and retries the whole batch
      // itself, which keeps memory bounded and the ordering in one place.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 5000,
      commandTimeout: 30_000,
      // ioredis counts reconnects from 1; common's jittered backoff, 200 ms doubling to retryMaxMs.
      retryStrategy: (times) => (this.#closed ? null : backoffMs(times - 1, { minMs: Math.min(200, retryMaxMs), maxMs: retryMaxMs })),
    }) as ScriptRedis;
    this.#redis.on('error', (err: Error) => onError(err));
    this.#redis.defineCommand('agenttraceApply', { lua: APPLY_BATCH });
    this.#redis.defineCommand('agenttraceFireIdle', { lua: FIRE_IDLE });
    this.#redis.defineCommand('agenttraceClaim', { lua: CLAIM_POSITIONS });
  }

  get description(): string {
    return describeRedisUrl(this.#url);
  }

  get ready(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Connects, waiting up to timeoutMs; the client keeps reconnecting on its own afterwards. */
  async connect(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    try {
      await this.#redis.connect();
    } catch (err) {
      last = err;
    }
    while (Date.now() < deadline && !this.#closed) {
      if (this.#redis.status === 'ready') {
        try {
          await this.#redis.ping();
          return;
        } catch (err) {
          last = err;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new DashboardError('REDIS_UNAVAILABLE', `cannot reach ${this.description} within ${timeoutMs} ms${last ? `: ${errorMessage(last)}` : ''}. Is Redis running and is --redis-url right?`, {
      cause: last,
      retryable: true,
    });
  }

  async readOffsets(group: string, topic: string): Promise<Map<number, number>> {
    const h = await this.#redis.hgetall(this.keys.offsets(group, topic));
    const out = new Map<number, number>();
    for (const [p, o] of Object.entries(h)) out.set(Number(p), Number(o));
    return out;
  }

  /** Claims the offsets of group and topic for a cluster and topic id; see CLAIM_POSITIONS. */
  async claimPositions(group: string, topic: string, owner: { clusterId: string; topicId: string }, action: 'claim' | 'adopt' | 'reset'): Promise<ClaimResult> {
    const reply = await this.#redis.agenttraceClaim(2, this.keys.offsets(group, topic), this.keys.offsetsOwner(group, topic), owner.clusterId, owner.topicId, action, new Date().toISOString());
    const kind = reply[0];
    if (kind === 'mismatch') return { kind, clusterId: String(reply[1] ?? ''), topicId: String(reply[2] ?? '') };
    if (kind === 'matched' || kind === 'fresh' || kind === 'legacy' || kind === 'adopted' || kind === 'reset') return { kind };
    throw new DashboardError('REDIS_SCRIPT_FAILED', `unexpected reply from the claim script: ${String(kind)}`);
  }

  async apply(plan: ApplyPlan): Promise<ApplyResult> {
    const reply = (await this.#redis.agenttraceApply(plan.keys.length, ...plan.keys, ...plan.args)) as [string, unknown[], unknown[]?];
    if (reply[0] === 'foreign') {
      const r = reply as unknown as [string, string, string];
      return { kind: 'foreign', clusterId: String(r[1]), topicId: String(r[2]) };
    }
    if (reply[0] === 'stale') {
      const list = reply[1] as string[];
      const stored = new Map<number, number>();
      for (let i = 0; i < list.length; i += 2) stored.set(Number(list[i]), Number(list[i + 1]));
      return { kind: 'stale', stored };
    }
    if (reply[0] !== 'ok') throw new DashboardError('REDIS_SCRIPT_FAILED', `unexpected reply from the apply script: ${String(reply[0])}`);
    const counts = new Map<string, number>();
    const c = (reply[2] ?? []) as Array<string | number>;
    for (let i = 0; i < c.length; i += 2) counts.set(String(c[i]), Number(c[i + 1]));
    return { kind: 'ok', alerts: (reply[1] as string[]) ?? [], counts };
  }

  /** Sessions whose last event is older than `cutoffMs` but newer than `sinceMs` (idle candidates). */
  async idleCandidates(sinceMs: number, cutoffMs: number, limit: number): Promise<string[]> {
    return this.#redis.zrangebyscore(this.keys.byActivity(), sinceMs, cutoffMs, 'LIMIT', 0, limit);
  }

  async fireIdle(sessionId: string, cutoffMs: number, owned: number[], firedAt: string, idleSeconds: number, recent: number, topic: string): Promise<string | null> {
    const k = this.keys;
    return this.#redis.agenttraceFireIdle(
      6,
      k.meta(sessionId),
      k.kafkaIndex(sessionId),
      k.byActivity(),
      k.alertsFired(),
      k.alertsRecent(),
      alertsOutboxKey(this.prefix),
      sessionId,
      cutoffMs,
      JSON.stringify(owned),
      firedAt,
      idleSeconds,
      recent,
      topic,
    );
  }

  async outbox(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.#redis.hgetall(alertsOutboxKey(this.prefix))));
  }

  async outboxDone(alertId: string): Promise<void> {
    await this.#redis.hdel(alertsOutboxKey(this.prefix), alertId);
  }

  /**
   * Removes index entries of sessions whose keys have expired (the indexes are sorted sets
   * without per-member TTL). Bounded per call.
   */
  async pruneIndexes(cutoffMs: number, limit: number): Promise<number> {
    const k = this.keys;
    const ids = await this.#redis.zrangebyscore(k.byActivity(), '-inf', cutoffMs, 'LIMIT', 0, limit);
    if (ids.length === 0) return 0;
    const [agents, tools, codes] = await Promise.all([this.#redis.smembers(k.agents()), this.#redis.smembers(k.toolNames()), this.#redis.smembers(k.errorCodes())]);
    const m = this.#redis.multi();
    for (const z of [k.byCost(), k.byStart(), k.byEvents(), k.byErrors(), k.byToolCalls(), k.byMaxToolCalls(), k.byDuration()]) m.zrem(z, ...ids);
    for (const t of tools) m.zrem(k.toolSessions(t), ...ids);
    for (const c of codes) m.zrem(k.errorCodeSessions(c), ...ids);
    for (const st of ['active', 'completed', 'error']) m.srem(k.byStatus(st), ...ids);
    m.zrem(k.byActivity(), ...ids);
    for (const a of agents) m.zremrangebyscore(k.byAgent(a), '-inf', cutoffMs);
    await m.exec();
    return ids.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#redis.status === 'ready') await this.#redis.quit();
      else this.#redis.disconnect();
    } catch {
      this.#redis.disconnect();
    }
  }
}
