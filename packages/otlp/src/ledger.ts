import type { Redis } from 'ioredis';

/**
 * Which span events Kafka already acknowledged, so a retried export is answered without producing
 * them again. A claim marks ids as being written; settle() records the outcome.
 */
export interface SpanLedger {
  /**
   * Claims the ids nobody holds. `done`: acknowledged before (skip them). `busy`: another request
   * is writing some of them right now; then nothing is claimed.
   */
  claim(ids: readonly string[]): Promise<{ done: Set<string>; busy: boolean }>;
  /** Delivered ids become done; failed ones are released for the retry. */
  settle(delivered: readonly string[], failed: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** In memory, the last `window` ids: retries to the same running receiver. */
export class MemoryLedger implements SpanLedger {
  readonly #window: number;
  readonly #map = new Map<string, 'done' | 'pending'>();

  constructor(window: number) {
    this.#window = window;
  }

  claim(ids: readonly string[]): Promise<{ done: Set<string>; busy: boolean }> {
    const done = new Set<string>();
    for (const id of ids) {
      const s = this.#map.get(id);
      if (s === 'pending') return Promise.resolve({ done: new Set(), busy: true });
      if (s === 'done') done.add(id);
    }
    // Checked and claimed in one synchronous step: no other request runs in between.
    for (const id of ids) if (!done.has(id)) this.#map.set(id, 'pending');
    return Promise.resolve({ done, busy: false });
  }

  settle(delivered: readonly string[], failed: readonly string[]): Promise<void> {
    for (const id of failed) this.#map.delete(id);
    if (this.#window === 0) {
      for (const id of delivered) this.#map.delete(id);
      return Promise.resolve();
    }
    // In place: an id keeps the place of its claim (the window is the last ids claimed), and a
    // delete + insert per id cost more than the whole claim.
    for (const id of delivered) this.#map.set(id, 'done');
    for (let guard = this.#map.size; this.#map.size > this.#window && guard > 0; guard--) {
      const oldest = this.#map.entries().next().value!;
      // Never evict a claim in progress (it is settled soon and re-inserted at the end).
      this.#map.delete(oldest[0]);
      if (oldest[1] === 'pending') this.#map.set(oldest[0], 'pending');
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * In Redis: survives receiver restarts and is shared by several receivers. A claim is SET NX with
 * a short expiry (a receiver that dies mid-write frees its claims); done marks keep `ttlSeconds`.
 */
export class RedisLedger implements SpanLedger {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #claimTtl: number;

  constructor(redis: Redis, prefix: string, ttlSeconds: number, claimTtlSeconds: number) {
    this.#redis = redis;
    this.#prefix = `${prefix}otlp:span:`;
    this.#ttl = ttlSeconds;
    this.#claimTtl = claimTtlSeconds;
  }

  async claim(ids: readonly string[]): Promise<{ done: Set<string>; busy: boolean }> {
    if (ids.length === 0) return { done: new Set(), busy: false };
    const p = this.#redis.pipeline();
    for (const id of ids) p.set(this.#prefix + id, 'pending', 'EX', this.#claimTtl, 'NX');
    const set = (await p.exec()) ?? [];
    const claimed: string[] = [];
    const taken: string[] = [];
    set.forEach(([err, res], i) => {
      if (err) throw err;
      (res === 'OK' ? claimed : taken).push(ids[i]!);
    });
    const done = new Set<string>();
    let busy = false;
    if (taken.length > 0) {
      const states = await this.#redis.mget(...taken.map((id) => this.#prefix + id));
      states.forEach((s, i) => {
        if (s === 'done') done.add(taken[i]!);
        // Expired between SET and GET (null) or being written: let the client come back.
        else busy = true;
      });
    }
    if (busy && claimed.length > 0) await this.#redis.del(...claimed.map((id) => this.#prefix + id));
    return { done: busy ? new Set() : done, busy };
  }

  async settle(delivered: readonly string[], failed: readonly string[]): Promise<void> {
    const p = this.#redis.pipeline();
    for (const id of delivered) p.set(this.#prefix + id, 'done', 'EX', this.#ttl);
    if (failed.length > 0) p.del(...failed.map((id) => this.#prefix + id));
    await p.exec();
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => undefined);
  }
}
