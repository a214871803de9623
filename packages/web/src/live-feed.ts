import { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';

/** What the dashboard consumer announces for a changed session (only these fields are passed on). */
export interface SessionUpdate {
  session_id: string;
  count: number;
  last_ts: string;
}

export function parseUpdate(text: string): SessionUpdate | undefined {
  try {
    const v = JSON.parse(text) as Partial<SessionUpdate>;
    if (typeof v !== 'object' || v === null || typeof v.session_id !== 'string') return undefined;
    return { session_id: v.session_id, count: typeof v.count === 'number' ? v.count : 0, last_ts: typeof v.last_ts === 'string' ? v.last_ts : '' };
  } catch {
    return undefined;
  }
}

/**
 * One Redis subscription to the dashboard consumer's change channel, shared by every open page:
 * a hundred pages cost one connection, not a hundred. Listeners are called synchronously; each
 * writes to its own response, whose buffering Node bounds per socket.
 */
export class LiveFeed {
  readonly #url: string;
  readonly #channel: string;
  readonly #listeners = new Set<(u: SessionUpdate) => void>();
  #sub: Redis | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(redisUrl: string, redisPrefix: string) {
    this.#url = redisUrl;
    this.#channel = redisKeys(redisPrefix).updatesChannel();
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /** Subscribes on first use; resolves once the subscription is in place (rejects when Redis is unreachable). */
  async add(listener: (u: SessionUpdate) => void): Promise<void> {
    this.#listeners.add(listener);
    try {
      await this.#start();
    } catch (err) {
      this.#listeners.delete(listener);
      throw err;
    }
  }

  remove(listener: (u: SessionUpdate) => void): void {
    this.#listeners.delete(listener);
  }

  #start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('live feed is closed'));
    if (this.#ready) return this.#ready;
    // Reconnects on its own (ioredis re-subscribes after a reconnect); errors are not fatal.
    const sub = new Redis(this.#url, { lazyConnect: true, maxRetriesPerRequest: null, connectTimeout: 5000 });
    sub.on('error', () => undefined);
    sub.on('message', (_channel: string, message: string) => {
      const u = parseUpdate(message);
      if (!u) return;
      for (const l of this.#listeners) l(u);
    });
    this.#sub = sub;
    const p = (async () => {
      await sub.connect();
      await sub.subscribe(this.#channel);
    })();
    this.#ready = p;
    p.catch(() => {
      // A failed first subscription is retried by the next page that opens the feed.
      if (this.#ready === p) {
        this.#ready = undefined;
        this.#sub = undefined;
        sub.disconnect();
      }
    });
    return p;
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#sub?.disconnect();
    this.#sub = undefined;
  }
}
