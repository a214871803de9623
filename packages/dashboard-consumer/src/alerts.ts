import { errorMessage, retry, stopRetrying } from '@agenttrace/common';
import type { KafkaSender } from './kafka-sender.js';
import type { RedisStore } from './redis-store.js';
import type { LogEntry } from './options.js';

/** An alert as produced to the alerts topic (and kept in Redis' recent-alerts list). */
export interface Alert {
  alert_id: string;
  rule: 'cost_threshold' | 'tool_loop' | 'error_burst' | 'idle';
  session_id: string;
  agent_id?: string;
  fired_at: string;
  value: number;
  threshold: number;
  message: string;
  tool?: string;
  source?: { topic: string; partition: number; offset: number };
}

/** The Slack incoming-webhook body for an alert (plain `text` is what every compatible receiver reads). */
export function slackPayload(alert: Alert): { text: string } {
  return { text: `:rotating_light: agenttrace ${alert.rule}: ${alert.message}` };
}

export interface DispatcherOptions {
  sender: KafkaSender;
  store: RedisStore;
  alertsTopic: string;
  webhookUrl: string | undefined;
  webhookRetries: number;
  webhookTimeoutMs: number;
  maxQueued: number;
  onDelivered: (sink: 'kafka' | 'webhook', ok: boolean) => void;
  log: (entry: LogEntry) => void;
}

const CONCURRENCY = 4;

/**
 * Delivers alerts the apply script decided to fire. The decision (and its dedup mark) is made
 * in Redis together with the batch, and the alert waits in a Redis outbox until both sinks
 * have it: delivery is at-least-once, firing is once per session and rule.
 */
export class AlertDispatcher {
  readonly #o: DispatcherOptions;
  readonly #queue: string[] = [];
  readonly #queuedIds = new Set<string>();
  readonly #inflight = new Set<Promise<void>>();
  #closing = false;

  constructor(options: DispatcherOptions) {
    this.#o = options;
  }

  get pending(): number {
    return this.#queue.length + this.#inflight.size;
  }

  /** Queues an alert JSON text; when the queue is full it stays in the outbox for the next sweep. */
  enqueue(json: string): void {
    let id: string;
    try {
      id = (JSON.parse(json) as Alert).alert_id;
    } catch {
      return;
    }
    if (this.#queuedIds.has(id)) return;
    if (this.#queue.length >= this.#o.maxQueued) {
      this.#o.log({ level: 'warn', message: 'alert queue full; the alert waits in the Redis outbox for the next sweep', alert_id: id });
      return;
    }
    this.#queuedIds.add(id);
    this.#queue.push(json);
    this.#pump();
  }

  /** Re-queues outbox entries older than minAgeMs (left by a crashed or slow instance). */
  async sweep(minAgeMs: number): Promise<number> {
    const entries = await this.#o.store.outbox();
    let n = 0;
    for (const [id, json] of entries) {
      if (this.#queuedIds.has(id)) continue;
      let firedAt = 0;
      try {
        firedAt = Date.parse((JSON.parse(json) as Alert).fired_at);
      } catch {
        firedAt = 0;
      }
      if (Date.now() - firedAt < minAgeMs) continue;
      this.enqueue(json);
      n += 1;
    }
    return n;
  }

  #pump(): void {
    while (!this.#closing && this.#inflight.size < CONCURRENCY && this.#queue.length > 0) {
      const json = this.#queue.shift()!;
      const task = this.#deliver(json).finally(() => {
        this.#inflight.delete(task);
        this.#pump();
      });
      this.#inflight.add(task);
    }
  }

  async #deliver(json: string): Promise<void> {
    const alert = JSON.parse(json) as Alert;
    let kafkaOk = false;
    try {
      await retry(() => this.#o.sender.send(this.#o.alertsTopic, Buffer.from(json), alert.session_id), { retries: 5, minMs: 200, maxMs: 5000 });
      kafkaOk = true;
    } catch (err) {
      this.#o.log({ level: 'warn', message: `alert not produced to ${this.#o.alertsTopic}: ${errorMessage(err)}`, alert_id: alert.alert_id });
    }
    this.#o.onDelivered('kafka', kafkaOk);
    let hookOk = true;
    if (this.#o.webhookUrl) hookOk = await this.#postWebhook(alert);
    // Only a fully delivered alert leaves the outbox; otherwise a later sweep tries again.
    if (kafkaOk && hookOk) {
      try {
        await this.#o.store.outboxDone(alert.alert_id);
      } catch {
        // Stays in the outbox: a later sweep may deliver it again (at-least-once).
      }
    }
    this.#queuedIds.delete(alert.alert_id);
  }

  async #postWebhook(alert: Alert): Promise<boolean> {
    const url = this.#o.webhookUrl!;
    try {
      await retry(
        async () => {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(slackPayload(alert)),
            signal: AbortSignal.timeout(this.#o.webhookTimeoutMs),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) return;
          const err = new Error(`webhook answered HTTP ${res.status}`);
          // A 4xx other than 408/429 will not get better by retrying.
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw stopRetrying(err);
          throw err;
        },
        { retries: this.#o.webhookRetries, minMs: 200, maxMs: 10_000 },
      );
      this.#o.onDelivered('webhook', true);
      return true;
    } catch (err) {
      // The URL carries a secret: log the host only.
      let host = 'webhook';
      try {
        host = new URL(url).host;
      } catch {
        host = 'webhook';
      }
      this.#o.log({ level: 'warn', message: `alert webhook to ${host} failed: ${errorMessage(err)}`, alert_id: alert.alert_id });
      this.#o.onDelivered('webhook', false);
      return false;
    }
  }

  /** Stops taking alerts and waits (bounded) for those in flight; undelivered ones stay in the outbox. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#queue.length > 0 || this.#inflight.size > 0) && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.#inflight]), new Promise((r) => setTimeout(r, 50))]);
    }
    this.#closing = true;
    this.#queue.length = 0;
  }
}
