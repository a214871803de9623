import { Redis } from 'ioredis';
import { redisKeys, resolveSettings, type AgentTraceSettings } from '@agenttrace/common';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { AgentTracer } from '@agenttrace/tracer';
import { createTopic, deleteTopic, eventually, stack, uniqueName } from '../../../test-support/stack.js';

/** A topic, a Redis prefix and the real dashboard consumer materializing it, for one test file. */
export class Pipeline {
  readonly topic = uniqueName('web');
  readonly prefix = `${uniqueName('web')}:`;
  readonly tracerErrors: unknown[] = [];
  #consumer: DashboardConsumer | undefined;
  readonly #tracers: AgentTracer[] = [];

  settings(extra: Record<string, string> = {}): AgentTraceSettings {
    return resolveSettings({ topic: this.topic, redisPrefix: this.prefix, brokers: stack.brokers.join(','), redisUrl: stack.redisUrl, s3Endpoint: stack.s3Endpoint, s3Bucket: stack.s3Bucket, ...extra }, {});
  }

  async start(): Promise<void> {
    await createTopic(this.topic, 3);
    this.#consumer = new DashboardConsumer({
      kafka: { brokers: stack.brokers },
      topic: this.topic,
      group: uniqueName('web-dash'),
      redisUrl: stack.redisUrl,
      redisPrefix: this.prefix,
      dlqTopic: `${this.topic}.dlq`,
      alertsTopic: `${this.topic}.alerts`,
      metricsPort: false,
      alerts: { costThresholdUsd: 0.001 },
    });
    await this.#consumer.start();
  }

  tracer(sessionId: string, agentId = 'invoice-agent'): AgentTracer {
    const t = new AgentTracer({ sessionId, agentId, kafka: { brokers: stack.brokers }, topic: this.topic, handleExit: false, onError: (err) => this.tracerErrors.push(err) });
    this.#tracers.push(t);
    return t;
  }

  /** Waits until the dashboard consumer holds `count` events of each session. */
  async materialized(counts: Record<string, number>, timeoutMs = 60_000): Promise<void> {
    const redis = new Redis(stack.redisUrl);
    const keys = redisKeys(this.prefix);
    try {
      await eventually(
        `sessions in Redis: ${Object.keys(counts).join(', ')}`,
        async () => {
          for (const [sid, n] of Object.entries(counts)) if ((await redis.llen(keys.events(sid))) < n) return false;
          return true;
        },
        timeoutMs,
      );
    } finally {
      await redis.quit();
    }
  }

  async close(): Promise<void> {
    for (const t of this.#tracers) await t.close().catch(() => undefined);
    await this.#consumer?.close();
    for (const t of [this.topic, `${this.topic}.dlq`, `${this.topic}.alerts`]) await deleteTopic(t);
    const redis = new Redis(stack.redisUrl);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      await redis.quit();
    }
  }
}

/** The invoice agent with a research sub-agent; `variant` changes one step (for compare). */
export async function invoiceSession(t: AgentTracer, variant: 'a' | 'b' = 'a'): Promise<void> {
  await t.trackToolCall('crm.get_customer', { customer_id: 'cus_1' }, () => ({ name: 'Acme' }));
  await t.trackLlmCall({ model: 'claude-sonnet-4-5', input: 'Draft the invoice' }, () => 'drafted', { usage: () => ({ inputTokens: 1200, outputTokens: 300, costUsd: 0.0081 }), reasoning: 'need a draft' });
  await t.delegate('research-agent', { topic: 'pricing' }, async () => {
    await t.trackToolCall('web.search', { q: 'acme pricing' }, () => ({ hits: 3 }));
  });
  if (variant === 'a') await t.trackToolCall('stripe.create_invoice', { customer_id: 'cus_1', amount: 4500 }, () => ({ invoice_id: 'inv_1' }));
  else await t.trackToolCall('stripe.create_refund', { customer_id: 'cus_1', amount: 4500 }, () => ({ refund_id: 're_1' }));
  t.logDecision({ action: 'skip_email', reasoning: 'Customer disabled notifications', confidence: 0.89, options: ['send_email', 'skip_email'] });
  await t.trackToolCall('ledger.record', { invoice: 'inv_1' }, () => ({ ok: true }));
  t.endSession({ status: 'ok' });
}

/** The incident: a payment retried at once, `retries` times, each failing. */
export async function incidentSession(t: AgentTracer, retries: number): Promise<void> {
  await t.trackToolCall('crm.get_customer', { customer_id: 'cus_incident42' }, () => ({ name: 'Acme Corp' }));
  t.logDecision({ action: 'charge_card_on_file', reasoning: 'valid card on file', confidence: 0.91, options: ['charge_card_on_file', 'send_payment_link'] });
  for (let attempt = 0; attempt < retries; attempt++) {
    await t
      .trackToolCall('stripe.create_payment', { customer_id: 'cus_incident42', amount: 48_200, attempt: attempt + 1 }, () => {
        throw Object.assign(new Error('Too many requests (429)'), { name: 'StripeRateLimitError' });
      })
      .catch(() => undefined);
  }
  t.logError(Object.assign(new Error(`stripe.create_payment failed ${retries} times in a row; giving up`), { name: 'RetryBudgetExhausted' }));
  t.endSession({ status: 'error' });
}
